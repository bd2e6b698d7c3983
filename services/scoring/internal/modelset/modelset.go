// Package modelset loads the primary and shadow models and swaps them atomically on reload, so
// a batch is always scored by one consistent pair.
package modelset

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/models/model"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
)

// Scorer scores feature vectors of one feature schema; models/model.Model satisfies it.
type Scorer interface {
	Version() string
	FeatureSchema() string
	Score(vectors [][]float64) ([]float64, error)
}

// ErrSchemaMismatch marks an artifact trained on another feature schema than this build's.
var ErrSchemaMismatch = errors.New("feature schema mismatch")

// Loaded is one model ready to score.
type Loaded struct {
	Scorer
	// Artifact is nil for the baseline.
	Artifact *model.Artifact
	Path     string
	ModTime  time.Time
}

// Load loads the artifact at path (the amount baseline when path is empty) and refuses one
// trained on a feature schema other than schema. Errors name the file.
func Load(path, schema string) (*Loaded, error) {
	if path == "" {
		return &Loaded{Scorer: Baseline{Schema: schema, AmountIndex: features.Index("amount")}}, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	a, err := model.Load(path)
	if err != nil {
		return nil, err
	}
	if a.FeatureSchema != schema {
		return nil, fmt.Errorf("model %s (%s): %w: trained on %q, this build computes %q",
			path, a.Version, ErrSchemaMismatch, a.FeatureSchema, schema)
	}
	m, err := model.New(a)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return &Loaded{Scorer: m, Artifact: a, Path: path, ModTime: st.ModTime()}, nil
}

// Contributions are the model's per-feature logit terms (model.Artifact.Contributions):
// weight × standardized value for lr; for gbt, the change of node value at each split on the
// vector's path, credited to the split's feature. The vector is in artifact Names order (the
// schema hash was checked at load). The baseline and ffnn have none: a network's weights are
// not per-feature shares of its score.
func (l *Loaded) Contributions(values []float64) []decide.Contribution {
	a := l.Artifact
	if a == nil {
		return nil
	}
	logits, ok := a.Contributions(values)
	if !ok {
		return nil
	}
	out := make([]decide.Contribution, len(values))
	for j, x := range values {
		out[j] = decide.Contribution{Name: a.Names[j], Value: x, Logit: logits[j]}
	}
	return out
}

// ThresholdAtBudget is the lowest validated threshold whose alerts per day stay within
// perDay, from the artifact's threshold table; ok is false when the artifact has none that fits.
func ThresholdAtBudget(a *model.Artifact, perDay float64) (float64, bool) {
	if a == nil || perDay <= 0 {
		return 0, false
	}
	best, ok := 0.0, false
	for _, r := range a.Thresholds {
		if r.AlertsPerDay <= perDay && (!ok || r.Threshold < best) {
			best, ok = r.Threshold, true
		}
	}
	return best, ok
}

// Set is the pair scored together.
type Set struct {
	Primary *Loaded
	// Shadow is nil when no challenger is configured.
	Shadow *Loaded
}

// Holder owns the current Set. Readers take Current once per batch; Reload replaces it whole.
type Holder struct {
	primaryPath, shadowPath, schema string
	cur                             atomic.Pointer[Set]
	mu                              sync.Mutex // serialises reloads
	// Reloads counts successful swaps.
	Reloads atomic.Int64
}

// NewHolder loads both models or fails naming the file.
func NewHolder(primaryPath, shadowPath, schema string) (*Holder, error) {
	h := &Holder{primaryPath: primaryPath, shadowPath: shadowPath, schema: schema}
	s, err := h.load()
	if err != nil {
		return nil, err
	}
	h.cur.Store(s)
	return h, nil
}

func (h *Holder) load() (*Set, error) {
	p, err := Load(h.primaryPath, h.schema)
	if err != nil {
		return nil, fmt.Errorf("VIGIL_SCORING_MODEL_PATH: %w", err)
	}
	s := &Set{Primary: p}
	if h.shadowPath != "" {
		if s.Shadow, err = Load(h.shadowPath, h.schema); err != nil {
			return nil, fmt.Errorf("VIGIL_SCORING_SHADOW_MODEL_PATH: %w", err)
		}
	}
	return s, nil
}

// Current is the set to score the next batch with.
func (h *Holder) Current() *Set { return h.cur.Load() }

// Reload loads the files again and swaps them in. On error the previous set stays.
func (h *Holder) Reload() (*Set, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, err := h.load()
	if err != nil {
		return h.cur.Load(), err
	}
	h.cur.Store(s)
	h.Reloads.Add(1)
	return s, nil
}

// Changed reports whether a model file's modification time differs from the loaded one.
func (h *Holder) Changed() bool {
	s := h.cur.Load()
	for _, l := range []*Loaded{s.Primary, s.Shadow} {
		if l == nil || l.Path == "" {
			continue
		}
		if st, err := os.Stat(l.Path); err == nil && !st.ModTime().Equal(l.ModTime) {
			return true
		}
	}
	return false
}

// Baseline stands in when no trained model is configured: a smooth function of the amount
// alone, so thresholds behave sensibly in a demo. It is versioned like a model so decisions say
// which one produced their score.
type Baseline struct {
	Schema      string
	AmountIndex int
}

// Version names the baseline.
func (Baseline) Version() string { return "baseline-amount-1" }

// FeatureSchema is the feature schema the amount index refers to.
func (b Baseline) FeatureSchema() string { return b.Schema }

// Score maps amount (major units) a to a/(a+1000).
func (b Baseline) Score(vectors [][]float64) ([]float64, error) {
	out := make([]float64, len(vectors))
	for i, v := range vectors {
		if b.AmountIndex < 0 || b.AmountIndex >= len(v) {
			return nil, fmt.Errorf("vector %d has no amount at index %d", i, b.AmountIndex)
		}
		a := math.Max(v[b.AmountIndex], 0)
		out[i] = a / (a + 1000)
	}
	return out, nil
}
