package modelset

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/models/model"
)

// artifact builds a valid artifact for the current feature schema without assuming its length.
func artifact(version, schema string) *model.Artifact {
	n := len(features.Names)
	a := &model.Artifact{Version: version, Kind: model.KindLogistic, FeatureSchema: schema,
		FeatureHash: features.Hash(schema, features.Names), Names: append([]string(nil), features.Names...),
		Mean: make([]float64, n), Std: make([]float64, n), Weights: make([]float64, n), Bias: -2,
		TrainedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i := range n {
		a.Mean[i], a.Std[i], a.Weights[i] = float64(i), 1+float64(i), 0.5-float64(i)*0.1
	}
	return a
}

func save(t *testing.T, a *model.Artifact, path string) {
	t.Helper()
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	save(t, artifact("lr-1", features.SchemaVersion), good)
	other := filepath.Join(dir, "other.json")
	save(t, artifact("lr-old", "fs-0"), other)
	corrupt := filepath.Join(dir, "corrupt.json")
	if err := os.WriteFile(corrupt, []byte(`{"version": "x"`), 0o644); err != nil {
		t.Fatal(err)
	}

	b, err := Load("", features.SchemaVersion)
	if err != nil || b.Version() != "baseline-amount-1" || b.Contributions([]float64{1}) != nil {
		t.Fatalf("baseline %v %v", b, err)
	}
	m, err := Load(good, features.SchemaVersion)
	if err != nil || m.Version() != "lr-1" {
		t.Fatalf("good: %v", err)
	}

	for name, tc := range map[string]struct {
		path string
		is   error
		want string
	}{
		"missing":         {filepath.Join(dir, "absent.json"), os.ErrNotExist, "absent.json"},
		"corrupt":         {corrupt, model.ErrInvalidArtifact, "corrupt.json"},
		"schema mismatch": {other, ErrSchemaMismatch, `trained on "fs-0"`},
	} {
		_, err := Load(tc.path, features.SchemaVersion)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %v containing %q", name, err, tc.is, tc.want)
		}
	}
}

func TestContributionsExplainTheScore(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "m.json")
	save(t, artifact("lr-1", features.SchemaVersion), path)
	m, err := Load(path, features.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, len(features.Names))
	for i := range x {
		x[i] = 3 - float64(i)
	}
	cs := m.Contributions(x)
	if len(cs) != len(x) {
		t.Fatalf("%d contributions", len(cs))
	}
	z := m.Artifact.Bias
	for i, c := range cs {
		if c.Name != features.Names[i] || c.Value != x[i] {
			t.Errorf("contribution %d = %+v", i, c)
		}
		z += c.Logit
	}
	s, err := m.Score([][]float64{x})
	if err != nil {
		t.Fatal(err)
	}
	if got := 1 / (1 + math.Exp(-z)); math.Abs(got-s[0]) > 1e-12 {
		t.Fatalf("bias + Σ contributions gives %v, model scores %v", got, s[0])
	}
	if m.Contributions(x[:1]) != nil {
		t.Error("short vector gave contributions")
	}
}

func TestHolderReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	primary, shadow := filepath.Join(dir, "p.json"), filepath.Join(dir, "s.json")
	save(t, artifact("lr-1", features.SchemaVersion), primary)
	save(t, artifact("lr-challenger", features.SchemaVersion), shadow)
	h, err := NewHolder(primary, shadow, features.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	before := h.Current()
	if before.Primary.Version() != "lr-1" || before.Shadow.Version() != "lr-challenger" || h.Changed() {
		t.Fatalf("initial %v %v", before.Primary.Version(), h.Changed())
	}

	save(t, artifact("lr-2", features.SchemaVersion), primary)
	// Some filesystems keep mtimes at a coarse granularity: force a visible change.
	_ = os.Chtimes(primary, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if !h.Changed() {
		t.Fatal("new file not noticed")
	}
	if _, err := h.Reload(); err != nil || h.Current().Primary.Version() != "lr-2" || h.Reloads.Load() != 1 {
		t.Fatalf("reload: %v %s", err, h.Current().Primary.Version())
	}
	if before.Primary.Version() != "lr-1" {
		t.Fatal("a set taken before the reload changed under its reader")
	}

	if err := os.WriteFile(primary, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept, err := h.Reload()
	if err == nil || !strings.Contains(err.Error(), "VIGIL_SCORING_MODEL_PATH") || !strings.Contains(err.Error(), "p.json") {
		t.Fatalf("corrupt reload: %v", err)
	}
	if kept.Primary.Version() != "lr-2" || h.Current().Primary.Version() != "lr-2" {
		t.Fatal("corrupt reload replaced the model")
	}

	if _, err := NewHolder(primary, "", features.SchemaVersion); err == nil {
		t.Fatal("corrupt primary accepted at start")
	}
	save(t, artifact("lr-3", features.SchemaVersion), primary)
	if _, err := NewHolder(primary, filepath.Join(dir, "none.json"), features.SchemaVersion); err == nil ||
		!strings.Contains(err.Error(), "VIGIL_SCORING_SHADOW_MODEL_PATH") {
		t.Fatalf("missing shadow: %v", err)
	}
}

func TestThresholdAtBudget(t *testing.T) {
	t.Parallel()
	a := artifact("lr-1", features.SchemaVersion)
	a.Thresholds = []model.ThresholdRow{{Threshold: 0.9, AlertsPerDay: 5}, {Threshold: 0.5, AlertsPerDay: 80}, {Threshold: 0.7, AlertsPerDay: 20}}
	tests := []struct {
		budget float64
		want   float64
		ok     bool
	}{{100, 0.5, true}, {20, 0.7, true}, {19.9, 0.9, true}, {1, 0, false}, {0, 0, false}}
	for _, tc := range tests {
		if got, ok := ThresholdAtBudget(a, tc.budget); got != tc.want || ok != tc.ok {
			t.Errorf("budget %v: %v %v, want %v %v", tc.budget, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := ThresholdAtBudget(nil, 10); ok {
		t.Error("baseline has no thresholds")
	}
}

// TestTreeContributions: a gbt's explanation credits each split on the vector's path to its
// feature, and the terms add up to the score.
func TestTreeContributions(t *testing.T) {
	t.Parallel()
	a := artifact("gbt-1", features.SchemaVersion)
	a.Kind, a.Weights, a.Bias = model.KindGBT, nil, -3
	amount, ratio := features.Index("amount"), features.Index("terminal_fraud_ratio_7d")
	// amount < 220 → (ratio < 0.5 → -1 | 2.5) | 4
	a.Trees = []model.Tree{{Feature: []int{amount, ratio, -1, -1, -1}, Threshold: []float64{220, 0.5, 0, 0, 0},
		Left: []int{1, 3, 0, 0, 0}, Right: []int{2, 4, 0, 0, 0}, Value: []float64{0.5, 0, 4, -1, 2.5}}}
	path := filepath.Join(t.TempDir(), "gbt.json")
	save(t, a, path)
	m, err := Load(path, features.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, len(features.Names))
	x[amount], x[ratio] = 50, 0.8
	cs := m.Contributions(x)
	if len(cs) != len(x) || cs[amount].Logit != -0.5 || cs[ratio].Logit != 2.5 || cs[amount].Value != 50 {
		t.Fatalf("contributions: amount %+v, ratio %+v", cs[amount], cs[ratio])
	}
	s, err := m.Score([][]float64{x})
	if err != nil {
		t.Fatal(err)
	}
	// Bias + the root's value + Σ terms = -3 + 0.5 - 0.5 + 2.5 = -0.5, the leaf's logit.
	if want := 1 / (1 + math.Exp(0.5)); math.Abs(s[0]-want) > 1e-12 {
		t.Fatalf("score %v, want %v", s[0], want)
	}
}

func TestNoContributionsForNonLinearKinds(t *testing.T) {
	t.Parallel()
	a := artifact("nn", features.SchemaVersion)
	a.Kind = model.KindFFNN
	a.Hidden = &model.Layer{W: [][]float64{make([]float64, len(features.Names))}, B: []float64{0}}
	a.Weights = []float64{1}
	l := &Loaded{Artifact: a}
	if l.Contributions(make([]float64, len(features.Names))) != nil {
		t.Fatal("ffnn weights read as per-feature contributions")
	}
}

// TestShippedModel: the reference model the images, the demo and the benchmarks score with
// (models/artifacts, trained by `make default-model` on the default simulation) loads in this
// build. It goes stale when the feature schema changes, and then scoring would refuse it at
// start-up.
func TestShippedModel(t *testing.T) {
	t.Parallel()
	const path = "../../../../models/artifacts/handbook-lr.json"
	l, err := Load(path, features.SchemaVersion)
	if err != nil {
		t.Fatalf("%v\nthe shipped model is stale: run `make default-model` and commit models/artifacts", err)
	}
	a := l.Artifact
	if a.FeatureHash != features.SchemaHash() || a.Kind != model.KindLogistic {
		t.Fatalf("shipped model: kind %q, feature hash %s; want lr and %s: run `make default-model`", a.Kind, a.FeatureHash, features.SchemaHash())
	}
	if _, ok := ThresholdAtBudget(a, 100); !ok {
		t.Errorf("shipped model has no threshold within 100 alerts a day: %+v", a.Thresholds)
	}
	scores, err := l.Score([][]float64{make([]float64, len(features.Names))})
	if err != nil || len(scores) != 1 || !(scores[0] >= 0 && scores[0] <= 1) {
		t.Fatalf("Score = %v, %v", scores, err)
	}
	if c := l.Contributions(make([]float64, len(features.Names))); len(c) != len(features.Names) {
		t.Errorf("%d contributions, want %d", len(c), len(features.Names))
	}
}
