package model

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// trainFFNN returns a fresh copy of a network trained once per test binary.
func trainFFNN(t *testing.T) *Artifact {
	t.Helper()
	return cloneArtifact(t, trainedFFNN)
}

var trainedFFNN = sync.OnceValues(func() (*Artifact, error) {
	X, y := scenarioOne(3000, 21)
	vX, vY := scenarioOne(800, 22)
	return Train(X, y, TrainOptions{Kind: KindFFNN, Hidden: 8, Epochs: 20, BatchSize: 128, LearningRate: 0.02, Seed: 5, Version: "ffnn-test",
		PosWeight: BalancedPosWeight(y), ValX: vX, ValY: vY, Patience: 5, ThresholdDays: 2, TrainedAt: fixedTime,
		TrainWindow: &Window{Start: fixedTime, Days: 7}, ValidWindow: &Window{Start: fixedTime.AddDate(0, 0, -7), Days: 7}})
})

func TestTrainFFNNLearnsScenarioOne(t *testing.T) {
	a := trainFFNN(t)
	got := heldOut(t, a, 23)
	t.Logf("held-out %v; train metrics %v", got, a.Metrics)
	if got["auc"] < 0.98 {
		t.Errorf("held-out AUC = %.4f, want >= 0.98", got["auc"])
	}
	if a.Metrics["best_epoch"] < 1 || a.Metrics["best_epoch"] > a.Metrics["epochs"] {
		t.Errorf("best_epoch %v epochs %v", a.Metrics["best_epoch"], a.Metrics["epochs"])
	}
	if len(a.Thresholds) != len(CandidateThresholds) || a.DataFingerprint == "" || a.Hidden == nil || len(a.Hidden.W) != 8 {
		t.Errorf("artifact lacks thresholds/fingerprint/hidden layer: %d %q %v", len(a.Thresholds), a.DataFingerprint, a.Hidden != nil)
	}
}

func TestFFNNGorgoniaAndPureGoAgree(t *testing.T) {
	a := trainFFNN(t)
	pure, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	graph, err := NewGorgonia(a)
	if err != nil {
		t.Fatal(err)
	}
	held, _ := scenarioOne(300, 24)
	held = append(held, vec(1e7, 1), vec(-1e7, 1), vec(220, 1), vec(0))
	want, err := pure.Score(held)
	if err != nil {
		t.Fatal(err)
	}
	got, err := graph.Score(held)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-6 {
			t.Errorf("vector %d: gorgonia %.9f, pure Go %.9f", i, got[i], want[i])
		}
	}
}

// TestTrainingIsReproducible: the same data, options and seed give a byte-identical
// artifact, for both kinds, early stopping included; another seed gives another network.
func TestTrainingIsReproducible(t *testing.T) {
	X, y := scenarioOne(800, 31)
	vX, vY := scenarioOne(300, 32)
	for _, kind := range []string{KindLogistic, KindFFNN, KindGBT} {
		t.Run(kind, func(t *testing.T) {
			train := func(seed int64) []byte {
				a, err := Train(X, y, TrainOptions{Kind: kind, Hidden: 4, Epochs: 4, BatchSize: 64, Seed: seed, Version: "v",
					ValX: vX, ValY: vY, TrainedAt: fixedTime, PosWeight: 3})
				if err != nil {
					t.Fatal(err)
				}
				data, err := json.Marshal(a)
				if err != nil {
					t.Fatal(err)
				}
				return data
			}
			a, b := train(9), train(9)
			if !bytes.Equal(a, b) {
				t.Fatalf("same seed, different artifacts:\n%s\n%s", a, b)
			}
			if kind != KindLogistic && bytes.Equal(a, train(10)) {
				t.Error("a different seed gave the same network")
			}
		})
	}
}

// TestArtifactRoundTripIntoScorer does what the scoring service does: Save, model.Load,
// model.New, Score — and gets the trainer's scores back.
func TestArtifactRoundTripIntoScorer(t *testing.T) {
	X, _ := scenarioOne(100, 41)
	for name, a := range map[string]*Artifact{"lr": trainScenarioOne(t), "ffnn": trainFFNN(t), "gbt": trainGBT(t)} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.json")
			if err := a.Save(path); err != nil {
				t.Fatal(err)
			}
			loaded, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			before, _ := New(a)
			after, err := New(loaded)
			if err != nil {
				t.Fatal(err)
			}
			s1, _ := before.Score(X)
			s2, err := after.Score(X)
			if err != nil || !slices.Equal(s1, s2) {
				t.Errorf("scores changed through Save/Load (err %v)", err)
			}
			if loaded.Kind != name || len(loaded.Thresholds) == 0 || loaded.DataFingerprint != a.DataFingerprint {
				t.Errorf("loaded artifact lost fields: kind %q thresholds %d", loaded.Kind, len(loaded.Thresholds))
			}
		})
	}
}

func TestBalancedPosWeight(t *testing.T) {
	t.Parallel()
	if w := BalancedPosWeight([]float64{1, 0, 0, 0, 0}); w != 2 {
		t.Errorf("1:4 → %v, want 2", w)
	}
	if w := BalancedPosWeight([]float64{0, 0}); w != 1 {
		t.Errorf("no positives → %v, want 1", w)
	}
}
