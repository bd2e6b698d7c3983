package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-fraud/vigil/models/features"
)

// Artifact kinds this package can score.
const (
	// KindLogistic is sigmoid(w·x' + b) on the standardized vector x'.
	KindLogistic = "lr"
	// KindFFNN is a feed-forward network with one ReLU hidden layer:
	// sigmoid(w·relu(W1·x' + b1) + b); Weights and Bias are its output layer.
	KindFFNN = "ffnn"
	// KindGBT is gradient-boosted trees: sigmoid(Bias + Σ tree value) on the raw vector.
	KindGBT = "gbt"
)

// KnownKind reports whether kind is one this package trains and scores: the one list the
// artifact check, Train's options and the CLI's --kind share.
func KnownKind(kind string) bool {
	return kind == KindLogistic || kind == KindFFNN || kind == KindGBT
}

// ErrInvalidArtifact marks an artifact that is malformed or internally
// inconsistent; callers can tell it apart from I/O errors with errors.Is.
var ErrInvalidArtifact = errors.New("invalid model artifact")

// Artifact is the versioned, self-describing output of training. It is the
// only thing that crosses from training to serving, so it carries the feature
// schema it was trained on and the standardization, not just the weights.
type Artifact struct {
	Version       string   `json:"version"`
	Kind          string   `json:"kind"`
	FeatureSchema string   `json:"feature_schema"`
	FeatureHash   string   `json:"feature_hash"`
	Names         []string `json:"names"`
	// Mean and Std standardize each input feature before the weights apply:
	// x' = (x - Mean) / Std.
	Mean      []float64          `json:"mean"`
	Std       []float64          `json:"std"`
	Weights   []float64          `json:"weights"`
	Bias      float64            `json:"bias"`
	TrainedAt time.Time          `json:"trained_at"`
	Metrics   map[string]float64 `json:"metrics,omitempty"`

	// Hidden is the ffnn's hidden layer; absent for lr.
	Hidden *Layer `json:"hidden,omitempty"`
	// Trees are gbt's trees (Weights is then empty and Mean and Std only describe the data).
	Trees []Tree `json:"trees,omitempty"`
	// DataFingerprint is a sha256 over the training and validation matrices and labels, so
	// two artifacts can be shown to come from the same data.
	DataFingerprint string `json:"data_fingerprint,omitempty"`
	// TrainWindow and ValidWindow are the days the model learned from and early-stopped on;
	// evaluation refuses a test window that overlaps either.
	TrainWindow *Window `json:"train_window,omitempty"`
	ValidWindow *Window `json:"valid_window,omitempty"`
	// Thresholds are candidate operating points measured on the validation window (or the
	// training data without one); scoring takes its default alert threshold from here.
	Thresholds []ThresholdRow `json:"thresholds,omitempty"`
}

// Layer is a dense layer: output j = B[j] + Σ_i W[j][i]·input[i].
type Layer struct {
	W [][]float64 `json:"w"`
	B []float64   `json:"b"`
}

// Window is a span of whole days.
type Window struct {
	Start time.Time `json:"start"`
	Days  int       `json:"days"`
}

// End is the first instant after the window.
func (w *Window) End() time.Time { return w.Start.AddDate(0, 0, w.Days) }

// Validate reports the first problem found, naming the JSON field so that a
// hand-edited or truncated artifact can be fixed without reading this code.
func (a *Artifact) Validate() error {
	if a == nil {
		return fmt.Errorf("%w: artifact is nil", ErrInvalidArtifact)
	}
	if a.Version == "" {
		return fieldErr("version", "is empty")
	}
	if !KnownKind(a.Kind) {
		return fieldErr("kind", fmt.Sprintf("is %q, want %q, %q or %q", a.Kind, KindLogistic, KindFFNN, KindGBT))
	}
	if a.FeatureSchema == "" {
		return fieldErr("feature_schema", "is empty")
	}
	n := len(a.Names)
	if n == 0 {
		return fieldErr("names", "is empty")
	}
	seen := make(map[string]bool, n)
	for i, name := range a.Names {
		if name == "" {
			return fieldErr(fmt.Sprintf("names[%d]", i), "is empty")
		}
		if seen[name] {
			return fieldErr(fmt.Sprintf("names[%d]", i), fmt.Sprintf("repeats %q", name))
		}
		seen[name] = true
	}
	if want := features.Hash(a.FeatureSchema, a.Names); a.FeatureHash != want {
		return fieldErr("feature_hash", fmt.Sprintf("is %q, but feature_schema and names hash to %q", a.FeatureHash, want))
	}
	outputs := n // the output layer reads the features (lr), the hidden units (ffnn) or nothing (gbt)
	switch {
	case a.Kind != KindFFNN && a.Hidden != nil:
		return fieldErr("hidden", fmt.Sprintf("is set, but kind %s has no hidden layer", a.Kind))
	case a.Kind != KindGBT && len(a.Trees) > 0:
		return fieldErr("trees", fmt.Sprintf("is set, but kind %s has no trees", a.Kind))
	case a.Kind == KindFFNN:
		if err := a.Hidden.validate(n); err != nil {
			return err
		}
		outputs = len(a.Hidden.B)
	case a.Kind == KindGBT:
		if len(a.Trees) == 0 {
			return fieldErr("trees", "is empty, kind gbt needs at least one tree")
		}
		for i := range a.Trees {
			if err := a.Trees[i].validate(fmt.Sprintf("trees[%d]", i), n); err != nil {
				return err
			}
		}
		outputs = 0
	}
	for _, f := range []struct {
		name string
		vals []float64
		want int
	}{{"mean", a.Mean, n}, {"std", a.Std, n}, {"weights", a.Weights, outputs}} {
		if len(f.vals) != f.want {
			if f.want == n {
				return fieldErr(f.name, fmt.Sprintf("has %d values, names has %d", len(f.vals), n))
			}
			if a.Kind == KindGBT {
				return fieldErr(f.name, "is set, but kind gbt has no output layer")
			}
			return fieldErr(f.name, fmt.Sprintf("has %d values, hidden layer has %d units", len(f.vals), f.want))
		}
		for i, v := range f.vals {
			if !isFinite(v) {
				return fieldErr(fmt.Sprintf("%s[%d]", f.name, i), fmt.Sprintf("is not finite (%v)", v))
			}
		}
	}
	for i, s := range a.Std {
		if s <= 0 {
			return fieldErr(fmt.Sprintf("std[%d]", i), fmt.Sprintf("must be > 0, got %v", s))
		}
	}
	if !isFinite(a.Bias) {
		return fieldErr("bias", fmt.Sprintf("is not finite (%v)", a.Bias))
	}
	if a.TrainedAt.IsZero() {
		return fieldErr("trained_at", "is missing")
	}
	for i, r := range a.Thresholds {
		if !isFinite(r.Threshold) || !isFinite(r.Precision) || !isFinite(r.Recall) || !isFinite(r.AlertsPerDay) {
			return fieldErr(fmt.Sprintf("thresholds[%d]", i), "has a non-finite value")
		}
	}
	for k, v := range a.Metrics {
		if !isFinite(v) {
			return fieldErr(fmt.Sprintf("metrics[%q]", k), fmt.Sprintf("is not finite (%v)", v))
		}
	}
	return nil
}

// Save writes the artifact as indented JSON. It writes a temporary file in
// the same directory and renames it, so a scorer loading path concurrently
// sees either the old artifact or the new one, never a torn file.
func (a *Artifact) Save(path string) (err error) {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("save model artifact %s: %w", path, err)
	}
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return fmt.Errorf("save model artifact %s: %w", path, err)
	}
	data = append(data, '\n')

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save model artifact %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("save model artifact %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("save model artifact %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("save model artifact %s: %w", path, err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("save model artifact %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save model artifact %s: %w", path, err)
	}
	return nil
}

// Load reads and validates an artifact written by Save. Unknown fields are
// rejected: an artifact from a newer trainer may depend on something this
// scorer would silently ignore.
func Load(path string) (*Artifact, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model artifact %s: %w", path, err)
	}
	a, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("load model artifact %s: %w", path, err)
	}
	return a, nil
}

// decode parses and validates an artifact's JSON.
func decode(data []byte) (*Artifact, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var a Artifact
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArtifact, err)
	}
	// Anything but white space after the object: More alone misses closing brackets.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidArtifact)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

func (l *Layer) validate(inputs int) error {
	if l == nil {
		return fieldErr("hidden", "is missing, kind ffnn needs it")
	}
	if len(l.W) == 0 {
		return fieldErr("hidden.w", "is empty")
	}
	if len(l.B) != len(l.W) {
		return fieldErr("hidden.b", fmt.Sprintf("has %d values, hidden.w has %d rows", len(l.B), len(l.W)))
	}
	for j, row := range l.W {
		if len(row) != inputs {
			return fieldErr(fmt.Sprintf("hidden.w[%d]", j), fmt.Sprintf("has %d values, names has %d", len(row), inputs))
		}
		for i, v := range row {
			if !isFinite(v) {
				return fieldErr(fmt.Sprintf("hidden.w[%d][%d]", j, i), fmt.Sprintf("is not finite (%v)", v))
			}
		}
		if !isFinite(l.B[j]) {
			return fieldErr(fmt.Sprintf("hidden.b[%d]", j), fmt.Sprintf("is not finite (%v)", l.B[j]))
		}
	}
	return nil
}

func fieldErr(field, problem string) error {
	return fmt.Errorf("%w: field %q %s", ErrInvalidArtifact, field, problem)
}

func isFinite(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0)
}
