package model

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

// trainGBT returns a fresh copy of boosted trees trained once per test binary.
func trainGBT(t *testing.T) *Artifact {
	t.Helper()
	return cloneArtifact(t, trainedGBT)
}

var trainedGBT = sync.OnceValues(func() (*Artifact, error) {
	X, y := scenarioOne(3000, 21)
	vX, vY := scenarioOne(800, 22)
	return Train(X, y, TrainOptions{Kind: KindGBT, Epochs: 60, Seed: 5, Version: "gbt-test", ValX: vX, ValY: vY,
		Patience: 10, ThresholdDays: 2, TrainedAt: fixedTime})
})

func TestTrainGBTLearnsScenarioOne(t *testing.T) {
	t.Parallel()
	a := trainGBT(t)
	got := heldOut(t, a, 23)
	t.Logf("held-out %v; %d trees", got, len(a.Trees))
	// A threshold is what trees do best: amount > 220 is separated exactly.
	if got["auc"] < 0.999 {
		t.Errorf("held-out AUC = %.4f, want >= 0.999", got["auc"])
	}
	if a.Metrics["best_epoch"] != float64(len(a.Trees)) || a.Metrics["depth"] != defaultGBTDepth {
		t.Errorf("best_epoch %v, %d trees, depth %v", a.Metrics["best_epoch"], len(a.Trees), a.Metrics["depth"])
	}
	if len(a.Weights) != 0 || a.Hidden != nil || len(a.Thresholds) != len(CandidateThresholds) {
		t.Errorf("gbt artifact has weights %d, hidden %v, thresholds %d", len(a.Weights), a.Hidden != nil, len(a.Thresholds))
	}
	if got["accuracy"] < 0.999 {
		t.Errorf("held-out accuracy at 0.5 = %.4f: the probabilities are not sharp", got["accuracy"])
	}
}

// TestContributionsAddUpToTheLogit: the explanation scoring shows is exact, for both kinds
// that have one.
func TestContributionsAddUpToTheLogit(t *testing.T) {
	t.Parallel()
	X, _ := scenarioOne(200, 51)
	for name, a := range map[string]*Artifact{"lr": trainScenarioOne(t), "gbt": trainGBT(t)} {
		t.Run(name, func(t *testing.T) {
			m, err := New(a)
			if err != nil {
				t.Fatal(err)
			}
			scores, err := m.Score(X)
			if err != nil {
				t.Fatal(err)
			}
			base := a.Bias
			for _, tr := range a.Trees {
				base += tr.Value[0]
			}
			amount := 0
			for i, x := range X {
				c, ok := a.Contributions(x)
				if !ok || len(c) != len(x) {
					t.Fatalf("Contributions = %v, %v", c, ok)
				}
				z := base
				for _, v := range c {
					z += v
				}
				if p := sigmoid(z); math.Abs(p-scores[i]) > 1e-9 {
					t.Fatalf("vector %d: contributions give %.12f, score %.12f", i, p, scores[i])
				}
				if j := slices.IndexFunc(c, func(v float64) bool { return math.Abs(v) == slices.Max(absAll(c)) }); j == 0 {
					amount++
				}
			}
			if amount == 0 {
				t.Error("amount, the only signal, is never the largest contribution")
			}
		})
	}
	ffnn := trainFFNN(t)
	if c, ok := ffnn.Contributions(X[0]); ok || c != nil {
		t.Errorf("ffnn Contributions = %v, %v; want none", c, ok)
	}
	if c, ok := trainGBT(t).Contributions(X[0][1:]); ok || c != nil {
		t.Errorf("short vector: Contributions = %v, %v; want none", c, ok)
	}
}

func absAll(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Abs(x)
	}
	return out
}

func TestQuantileCuts(t *testing.T) {
	t.Parallel()
	many := make([]float64, 10000)
	for i := range many {
		many[i] = float64(i % 1000)
	}
	slices.Sort(many)
	tests := []struct {
		name   string
		sorted []float64
		want   []float64 // nil: check only the invariants
	}{
		{"constant", []float64{3, 3, 3}, []float64{}},
		{"two values", []float64{0, 0, 1}, []float64{0.5}},
		{"few distinct", []float64{-1, 0, 0, 2, 10}, []float64{-0.5, 1, 6}},
		{"more than the bins", many, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := quantileCuts(tc.sorted)
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Fatalf("cuts = %v, want %v", got, tc.want)
			}
			if len(got) >= gbtMaxBins || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Fatalf("%d cuts, sorted %v: want fewer than %d, strictly ascending", len(got), slices.IsSorted(got), gbtMaxBins)
			}
			if len(got) > 0 && got[0] <= tc.sorted[0] {
				t.Errorf("first cut %v leaves its bin empty (min %v)", got[0], tc.sorted[0])
			}
		})
	}
}

// TestBinsMatchThresholds: a split after bin b sends a value left exactly when it is below
// the threshold saved in the artifact, so training and serving route every row alike.
func TestBinsMatchThresholds(t *testing.T) {
	t.Parallel()
	X, _ := scenarioOne(1500, 61)
	d := len(X[0])
	b := makeBins(X, d)
	for j := range d {
		for k, cut := range b.cuts[j] {
			for i, row := range X {
				if left := int(b.cell[i*d+j]) <= k; left != (row[j] < cut) {
					t.Fatalf("feature %d row %d value %v: bin %d, cut %d = %v", j, i, row[j], b.cell[i*d+j], k, cut)
				}
			}
		}
	}
}

func TestValidateRejectsBadTrees(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(a *Artifact)
		field string
	}{
		{"no trees", func(a *Artifact) { a.Trees = nil }, `"trees"`},
		{"short value", func(a *Artifact) { a.Trees[0].Value = a.Trees[0].Value[:1] }, `"trees[0].value"`},
		{"child before parent", func(a *Artifact) { a.Trees[0].Left[0] = 0 }, `"trees[0].left[0]"`},
		{"child out of range", func(a *Artifact) { a.Trees[0].Right[0] = len(a.Trees[0].Feature) }, `"trees[0].right[0]"`},
		{"feature out of range", func(a *Artifact) { a.Trees[0].Feature[0] = len(a.Names) }, `"trees[0].feature[0]"`},
		{"NaN threshold", func(a *Artifact) { a.Trees[0].Threshold[0] = math.NaN() }, `"trees[0].threshold[0]"`},
		{"infinite value", func(a *Artifact) { a.Trees[0].Value[1] = math.Inf(1) }, `"trees[0].value[1]"`},
		{"value beyond the bound", func(a *Artifact) { a.Trees[0].Value[2] = -2e4 }, `"trees[0].value[2]"`},
		{"weights on gbt", func(a *Artifact) { a.Weights = make([]float64, 3) }, `"weights"`},
		{"trees on lr", func(a *Artifact) { a.Kind = KindLogistic; a.Weights = make([]float64, len(a.Names)) }, `"trees"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := trainGBT(t)
			if a.Trees[0].Feature[0] < 0 {
				t.Fatal("the first tree is a single leaf; the cases need a split at its root")
			}
			tc.edit(a)
			err := a.Validate()
			if !errors.Is(err, ErrInvalidArtifact) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate() = %v, want ErrInvalidArtifact naming %s", err, tc.field)
			}
			if _, err := New(a); !errors.Is(err, ErrInvalidArtifact) {
				t.Errorf("New() = %v, want ErrInvalidArtifact", err)
			}
		})
	}
}

func TestGorgoniaRefusesTrees(t *testing.T) {
	t.Parallel()
	if _, err := NewGorgonia(trainGBT(t)); !errors.Is(err, ErrInvalidArtifact) || !strings.Contains(err.Error(), "gbt") {
		t.Fatalf("NewGorgonia(gbt) = %v, want ErrInvalidArtifact naming gbt", err)
	}
}

// BenchmarkScoreGBT: scoring cost per batch of the test's boosted trees (up to 60 trees of
// depth 4, about what the Handbook's training windows stop at), next to BenchmarkScore's lr.
func BenchmarkScoreGBT(b *testing.B) {
	a, err := trainedGBT()
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(a)
	if err != nil {
		b.Fatal(err)
	}
	X, _ := scenarioOne(2000, 8)
	b.Logf("%d trees", len(a.Trees))
	for _, size := range []int{1, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			for b.Loop() {
				if _, err := m.Score(X[:size]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
