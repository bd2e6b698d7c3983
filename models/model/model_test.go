package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/models/features"
)

// scenarioOne builds n transactions in the spirit of the Fraud Detection
// Handbook's simulator, scenario 1: any amount above 220 is fraud. Amounts
// are log-normal around 80 so about a tenth are fraud; accounts and times are
// drawn independently of the label. Vectors come from features.Offline, the
// same code the dataset builder and the stream use.
func scenarioOne(n int, seed uint64) (X [][]float64, y []float64) {
	// Feature rows cost ~0.2 ms each through Offline; many tests share the same sets.
	type key struct {
		n    int
		seed uint64
	}
	type set struct {
		X [][]float64
		y []float64
	}
	v, _ := scenarioCache.LoadOrStore(key{n, seed}, sync.OnceValue(func() set {
		X, y := buildScenarioOne(n, seed)
		return set{X, y}
	}))
	s := v.(func() set)()
	return slices.Clone(s.X), slices.Clone(s.y)
}

var scenarioCache sync.Map

func buildScenarioOne(n int, seed uint64) (X [][]float64, y []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	times := make([]time.Duration, n)
	for i := range times {
		times[i] = time.Duration(rng.Int64N(int64(30 * 24 * time.Hour)))
	}
	slices.Sort(times)
	off := features.NewOffline()
	for i := range n {
		amountMinor := int64(math.Exp(math.Log(80)+0.8*rng.NormFloat64()) * 100)
		X = append(X, off.Next(features.Event{
			TransactionID: fmt.Sprint(i),
			AccountID:     fmt.Sprint("acct-", rng.IntN(200)),
			CardToken:     fmt.Sprint("card-", i%200),
			TerminalID:    fmt.Sprint("term-", rng.IntN(100)),
			AmountMinor:   amountMinor,
			EventTime:     start.Add(times[i]),
		}))
		label := 0.0
		if amountMinor > 220_00 {
			label = 1
		}
		y = append(y, label)
	}
	return X, y
}

// vec returns a vector of the current schema with the given amount and every
// other feature 0, or the values in rest from position 1 on.
func vec(amount float64, rest ...float64) []float64 {
	v := make([]float64, len(features.Names))
	v[features.Index("amount")] = amount
	for i, r := range rest {
		if i+1 < len(v) {
			v[i+1] = r
		}
	}
	return v
}

// heldOut is a's Evaluate metrics on 2,000 fresh scenario-one transactions drawn with seed.
func heldOut(t *testing.T, a *Artifact, seed uint64) map[string]float64 {
	t.Helper()
	m, err := New(a)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	X, y := scenarioOne(2000, seed)
	got, err := Evaluate(m, X, y)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return got
}

// trainScenarioOne returns a fresh copy of one trained logistic model, trained once per
// test binary.
func trainScenarioOne(t *testing.T) *Artifact {
	t.Helper()
	return cloneArtifact(t, trainedLR)
}

var trainedLR = sync.OnceValues(func() (*Artifact, error) {
	X, y := scenarioOne(4000, 1)
	return TrainLogistic(X, y, TrainOptions{Epochs: 40, LearningRate: 0.05, BatchSize: 128, Seed: 7, Version: "lr-test-1"})
})

func cloneArtifact(t *testing.T, train func() (*Artifact, error)) *Artifact {
	t.Helper()
	a, err := train()
	if err != nil {
		t.Fatalf("train: %v", err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var c Artifact
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return &c
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

	probe := func(amountMinor int64) float64 {
		v := features.NewOffline().Next(features.Event{TransactionID: "p", AccountID: "probe", CardToken: "probe", TerminalID: "probe",
			AmountMinor: amountMinor, EventTime: time.Date(2024, 3, 6, 12, 0, 0, 0, time.UTC)})
		s, err := m.Score([][]float64{v})
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
	tests := []struct {
		name string
		X    [][]float64
		y    []float64
		opts TrainOptions
	}{
		{"no rows", nil, nil, TrainOptions{Version: "v"}},
		{"label count", good, goodY[:10], TrainOptions{Version: "v"}},
		{"short row", append([][]float64{{1, 2}}, good[1:]...), goodY, TrainOptions{Version: "v"}},
		{"NaN feature", append([][]float64{vec(math.NaN())}, good[1:]...), goodY, TrainOptions{Version: "v"}},
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
			vec(0, 1),
			vec(1e7, 1),  // saturates to 1
			vec(-1e7, 1), // saturates to 0
			vec(220, 1),  // on the boundary
			vec(220.01, 50, 1, 1),
			vec(1e-9, 1e6, 1, 0),
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
			{"too short", [][]float64{vec(1)[1:]}},
			{"too long", [][]float64{append(vec(1), 5)}},
			{"NaN", [][]float64{vec(1, 2), vec(math.NaN(), 2)}},
			{"Inf", [][]float64{vec(math.Inf(1), 2)}},
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
	v := [][]float64{vec(300, 1)}
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
