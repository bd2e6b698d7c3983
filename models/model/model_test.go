package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/models/features"
)

// scenarioOne builds n transactions in the spirit of the Fraud Detection
// Handbook's simulator, scenario 1: any amount above 220 is fraud. Amounts
// are log-normal around 80 so about a tenth are fraud; the other features are
// drawn independently of the label and should end up with little weight.
func scenarioOne(n int, seed uint64) (X [][]float64, y []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for range n {
		amountMinor := int64(math.Exp(math.Log(80)+0.8*rng.NormFloat64()) * 100)
		in := features.Input{
			AmountMinor:    amountMinor,
			EventTime:      start.Add(time.Duration(rng.Int64N(int64(30 * 24 * time.Hour)))),
			AccountCount1h: 1 + rng.Int64N(10),
		}
		X = append(X, features.Compute(in))
		label := 0.0
		if amountMinor > 220_00 {
			label = 1
		}
		y = append(y, label)
	}
	return X, y
}

func trainScenarioOne(t *testing.T) *Artifact {
	t.Helper()
	X, y := scenarioOne(4000, 1)
	a, err := TrainLogistic(X, y, TrainOptions{Epochs: 40, LearningRate: 0.05, BatchSize: 128, Seed: 7, Version: "lr-test-1"})
	if err != nil {
		t.Fatalf("TrainLogistic: %v", err)
	}
	return a
}

func TestTrainLogisticLearnsScenarioOne(t *testing.T) {
	a := trainScenarioOne(t)
	m, err := New(a)
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	Xtest, ytest := scenarioOne(2000, 2)
	got, err := Evaluate(m, Xtest, ytest)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	majority := math.Max(got["positive_rate"], 1-got["positive_rate"])
	t.Logf("train: %v", a.Metrics)
	t.Logf("held-out: auc=%.4f accuracy=%.4f log_loss=%.4f positive_rate=%.4f (majority-class accuracy %.4f)",
		got["auc"], got["accuracy"], got["log_loss"], got["positive_rate"], majority)
	t.Logf("weights=%v bias=%v", a.Weights, a.Bias)

	if got["auc"] < 0.99 {
		t.Errorf("held-out AUC = %.4f, want >= 0.99", got["auc"])
	}
	if got["accuracy"] < 0.97 || got["accuracy"] <= majority+0.05 {
		t.Errorf("held-out accuracy = %.4f, want >= 0.97 and well above majority class %.4f", got["accuracy"], majority)
	}
	if a.Metrics["train_auc"] < 0.99 {
		t.Errorf("train_auc metric = %.4f, want >= 0.99", a.Metrics["train_auc"])
	}

	// Scenario 1 depends on amount alone: it must dominate every other weight.
	amount := a.Weights[features.Index("amount")]
	for i, w := range a.Weights {
		if i != features.Index("amount") && math.Abs(w) >= math.Abs(amount)/3 {
			t.Errorf("weight of %s = %.3f, not small next to amount's %.3f", a.Names[i], w, amount)
		}
	}

	probe := func(amountMinor int64) float64 {
		s, err := m.Score([][]float64{features.Compute(features.Input{AmountMinor: amountMinor, EventTime: time.Date(2024, 3, 6, 12, 0, 0, 0, time.UTC), AccountCount1h: 3})})
		if err != nil {
			t.Fatalf("Score: %v", err)
		}
		return s[0]
	}
	if p := probe(50_00); p > 0.1 {
		t.Errorf("score for 50.00 = %.3f, want < 0.1", p)
	}
	if p := probe(400_00); p < 0.9 {
		t.Errorf("score for 400.00 = %.3f, want > 0.9", p)
	}
}

func TestTrainLogisticArtifactDescribesSchema(t *testing.T) {
	a := trainScenarioOne(t)
	if a.Kind != KindLogistic || a.Version != "lr-test-1" {
		t.Errorf("kind, version = %q, %q", a.Kind, a.Version)
	}
	if a.FeatureSchema != features.SchemaVersion || a.FeatureHash != features.SchemaHash() {
		t.Errorf("schema, hash = %q, %q; want %q, %q", a.FeatureSchema, a.FeatureHash, features.SchemaVersion, features.SchemaHash())
	}
	if !slices.Equal(a.Names, features.Names) {
		t.Errorf("names = %v, want %v", a.Names, features.Names)
	}
	if err := a.Validate(); err != nil {
		t.Errorf("trained artifact does not validate: %v", err)
	}
	m, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != "lr-test-1" || m.FeatureSchema() != features.SchemaVersion {
		t.Errorf("model reports version %q schema %q", m.Version(), m.FeatureSchema())
	}
}

func TestTrainLogisticIsReproducible(t *testing.T) {
	X, y := scenarioOne(600, 3)
	opts := TrainOptions{Epochs: 5, BatchSize: 64, Seed: 11, Version: "v"}
	a1, err := TrainLogistic(X, y, opts)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := TrainLogistic(X, y, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a1.Weights, a2.Weights) || a1.Bias != a2.Bias {
		t.Errorf("same seed gave different models: %v %v vs %v %v", a1.Weights, a1.Bias, a2.Weights, a2.Bias)
	}
}

func TestTrainLogisticRejectsBadInput(t *testing.T) {
	good, goodY := scenarioOne(50, 4)
	row := func(vals ...float64) []float64 { return vals }
	tests := []struct {
		name string
		X    [][]float64
		y    []float64
		opts TrainOptions
	}{
		{"no rows", nil, nil, TrainOptions{Version: "v"}},
		{"label count", good, goodY[:10], TrainOptions{Version: "v"}},
		{"short row", append([][]float64{row(1, 2)}, good[1:]...), goodY, TrainOptions{Version: "v"}},
		{"NaN feature", append([][]float64{row(math.NaN(), 1, 0, 0)}, good[1:]...), goodY, TrainOptions{Version: "v"}},
		{"label not 0/1", good, append([]float64{0.5}, goodY[1:]...), TrainOptions{Version: "v"}},
		{"one class", good, make([]float64, len(good)), TrainOptions{Version: "v"}},
		{"no version", good, goodY, TrainOptions{}},
		{"negative epochs", good, goodY, TrainOptions{Version: "v", Epochs: -1}},
		{"NaN learning rate", good, goodY, TrainOptions{Version: "v", LearningRate: math.NaN()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := TrainLogistic(tt.X, tt.y, tt.opts); err == nil {
				t.Error("TrainLogistic succeeded, want error")
			}
		})
	}
}

func TestGorgoniaAndPureGoAgree(t *testing.T) {
	a := trainScenarioOne(t)
	pure, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	graph, err := NewGorgonia(a)
	if err != nil {
		t.Fatal(err)
	}

	held, _ := scenarioOne(300, 5)
	batches := map[string][][]float64{
		"held-out":   held,
		"one vector": held[:1],
		"empty":      {},
		"extremes": {
			{0, 1, 0, 0},
			{1e7, 1, 0, 0},  // saturates to 1
			{-1e7, 1, 0, 0}, // saturates to 0
			{220, 1, 0, 0},  // on the boundary
			{220.01, 50, 1, 1},
			{1e-9, 1e6, 1, 0},
		},
	}
	for name, vectors := range batches {
		t.Run(name, func(t *testing.T) {
			want, err := pure.Score(vectors)
			if err != nil {
				t.Fatalf("pure Score: %v", err)
			}
			got, err := graph.Score(vectors)
			if err != nil {
				t.Fatalf("gorgonia Score: %v", err)
			}
			if len(got) != len(vectors) || len(want) != len(vectors) {
				t.Fatalf("got %d and %d scores for %d vectors", len(got), len(want), len(vectors))
			}
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-6 {
					t.Errorf("vector %d %v: gorgonia %.9f, pure Go %.9f", i, vectors[i], got[i], want[i])
				}
				if got[i] < 0 || got[i] > 1 {
					t.Errorf("vector %d: score %v outside [0,1]", i, got[i])
				}
			}
		})
	}
}

func TestScoreRejectsBadVectors(t *testing.T) {
	a := trainScenarioOne(t)
	for name, newModel := range map[string]func(*Artifact) (Model, error){"pure": New, "gorgonia": NewGorgonia} {
		m, err := newModel(a)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			vectors [][]float64
		}{
			{"too short", [][]float64{{1, 2, 0}}},
			{"too long", [][]float64{{1, 2, 0, 0, 5}}},
			{"NaN", [][]float64{{1, 2, 0, 0}, {math.NaN(), 2, 0, 0}}},
			{"Inf", [][]float64{{math.Inf(1), 2, 0, 0}}},
		}
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				_, err := m.Score(tt.vectors)
				if !errors.Is(err, ErrInvalidInput) {
					t.Errorf("Score error = %v, want ErrInvalidInput", err)
				}
			})
		}
	}
}

func TestNewCopiesArtifact(t *testing.T) {
	a := trainScenarioOne(t)
	m, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	v := [][]float64{{300, 1, 0, 0}}
	before, _ := m.Score(v)
	a.Weights[0] = -a.Weights[0]
	after, _ := m.Score(v)
	if before[0] != after[0] {
		t.Errorf("mutating the artifact changed a live model: %v -> %v", before[0], after[0])
	}
}

func TestNewRejectsInvalidArtifact(t *testing.T) {
	a := trainScenarioOne(t)
	a.Std[0] = 0
	for name, newModel := range map[string]func(*Artifact) (Model, error){"pure": New, "gorgonia": NewGorgonia} {
		if _, err := newModel(a); !errors.Is(err, ErrInvalidArtifact) {
			t.Errorf("%s: error = %v, want ErrInvalidArtifact", name, err)
		}
	}
}

func TestScoreIsSafeForConcurrentUse(t *testing.T) {
	a := trainScenarioOne(t)
	vectors, _ := scenarioOne(50, 6)
	for name, newModel := range map[string]func(*Artifact) (Model, error){"pure": New, "gorgonia": NewGorgonia} {
		t.Run(name, func(t *testing.T) {
			m, err := newModel(a)
			if err != nil {
				t.Fatal(err)
			}
			want, err := m.Score(vectors)
			if err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, 4)
			for range 4 {
				go func() {
					got, err := m.Score(vectors)
					if err == nil && !slices.Equal(got, want) {
						err = errors.New("concurrent Score returned different values")
					}
					errs <- err
				}()
			}
			for range 4 {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func BenchmarkScore(b *testing.B) {
	X, y := scenarioOne(2000, 8)
	a, err := TrainLogistic(X, y, TrainOptions{Epochs: 5, Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	for name, newModel := range map[string]func(*Artifact) (Model, error){"pure": New, "gorgonia": NewGorgonia} {
		m, err := newModel(a)
		if err != nil {
			b.Fatal(err)
		}
		for _, size := range []int{1, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, size), func(b *testing.B) {
				for b.Loop() {
					if _, err := m.Score(X[:size]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
