package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-fraud/vigil/models/features"
)

// KindLogistic is the only artifact kind this package can score.
const KindLogistic = "lr"

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
}

// Validate reports the first problem found, naming the JSON field so that a
// hand-edited or truncated artifact can be fixed without reading this code.
func (a *Artifact) Validate() error {
	if a == nil {
		return fmt.Errorf("%w: artifact is nil", ErrInvalidArtifact)
	}
	if a.Version == "" {
		return fieldErr("version", "is empty")
	}
	if a.Kind != KindLogistic {
		return fieldErr("kind", fmt.Sprintf("is %q, want %q", a.Kind, KindLogistic))
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
	for _, f := range []struct {
		name string
		vals []float64
	}{{"mean", a.Mean}, {"std", a.Std}, {"weights", a.Weights}} {
		if len(f.vals) != n {
			return fieldErr(f.name, fmt.Sprintf("has %d values, names has %d", len(f.vals), n))
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
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var a Artifact
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("load model artifact %s: %w: %w", path, ErrInvalidArtifact, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("load model artifact %s: %w: trailing data after the JSON object", path, ErrInvalidArtifact)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("load model artifact %s: %w", path, err)
	}
	return &a, nil
}

func fieldErr(field, problem string) error {
	return fmt.Errorf("%w: field %q %s", ErrInvalidArtifact, field, problem)
}

func isFinite(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0)
}
