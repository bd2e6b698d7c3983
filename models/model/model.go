// Package model trains fraud models and scores feature vectors with them.
//
// gorgonia is confined to this package: it is barely maintained, so the rest
// of Vigil depends only on Model and Artifact and the engine underneath can
// be replaced without touching the services.
package model

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Model scores feature vectors. Implementations are safe for concurrent use.
type Model interface {
	Version() string
	// FeatureSchema is the features.SchemaVersion the model was trained on.
	FeatureSchema() string
	// Score returns the fraud probability of each vector, in input order.
	Score(vectors [][]float64) ([]float64, error)
}

// ErrInvalidInput marks a vector the model cannot score (wrong length or a
// non-finite value); it points at the caller's feature code, not the model.
var ErrInvalidInput = errors.New("invalid feature vector")

// New returns the pure-Go scorer for a, chosen by a.Kind. For lr and ffnn it
// computes the same function as NewGorgonia, without building a graph per call;
// gbt exists only here. It is the one to serve with.
func New(a *Artifact) (Model, error) {
	p, err := newParams(a)
	if err != nil {
		return nil, err
	}
	switch a.Kind {
	case KindFFNN:
		return &ffnn{params: p}, nil
	case KindGBT:
		trees := make([]Tree, len(a.Trees))
		for i, t := range a.Trees {
			trees[i] = Tree{Feature: slices.Clone(t.Feature), Threshold: slices.Clone(t.Threshold),
				Left: slices.Clone(t.Left), Right: slices.Clone(t.Right), Value: slices.Clone(t.Value)}
		}
		return &gbt{params: p, trees: trees}, nil
	}
	return &logistic{params: p}, nil
}

// params is an immutable copy of an artifact's numbers, so a caller that
// later mutates its Artifact cannot change a live model.
type params struct {
	version string
	schema  string
	mean    []float64
	std     []float64
	weights []float64 // output layer
	bias    float64
	hiddenW [][]float64 // ffnn only: [unit][feature]
	hiddenB []float64
}

func newParams(a *Artifact) (params, error) {
	if err := a.Validate(); err != nil {
		return params{}, fmt.Errorf("new model: %w", err)
	}
	p := params{
		version: a.Version,
		schema:  a.FeatureSchema,
		mean:    slices.Clone(a.Mean),
		std:     slices.Clone(a.Std),
		weights: slices.Clone(a.Weights),
		bias:    a.Bias,
	}
	if a.Hidden != nil {
		p.hiddenB = slices.Clone(a.Hidden.B)
		for _, row := range a.Hidden.W {
			p.hiddenW = append(p.hiddenW, slices.Clone(row))
		}
	}
	return p, nil
}

func (p *params) Version() string       { return p.version }
func (p *params) FeatureSchema() string { return p.schema }

// checkVectors rejects the whole batch on the first bad vector: a NaN would
// otherwise come out as a NaN score, and a short vector would silently
// ignore features.
func (p *params) checkVectors(vectors [][]float64) error {
	for i, v := range vectors {
		if len(v) != len(p.mean) {
			return fmt.Errorf("%w: vector %d has %d values, model %s expects %d", ErrInvalidInput, i, len(v), p.version, len(p.mean))
		}
		for j, x := range v {
			if !isFinite(x) {
				return fmt.Errorf("%w: vector %d value %d is %v", ErrInvalidInput, i, j, x)
			}
		}
	}
	return nil
}

// standardize writes the batch, standardized, into one row-major slice.
func (p *params) standardize(vectors [][]float64) []float64 {
	d := len(p.mean)
	out := make([]float64, len(vectors)*d)
	for i, v := range vectors {
		for j, x := range v {
			out[i*d+j] = (x - p.mean[j]) / p.std[j]
		}
	}
	return out
}

type logistic struct {
	params
}

func (m *logistic) Score(vectors [][]float64) ([]float64, error) {
	if err := m.checkVectors(vectors); err != nil {
		return nil, fmt.Errorf("score with model %s: %w", m.version, err)
	}
	out := make([]float64, len(vectors))
	for i, v := range vectors {
		z := m.bias
		for j, x := range v {
			z += m.weights[j] * ((x - m.mean[j]) / m.std[j])
		}
		out[i] = sigmoid(z)
	}
	return out, nil
}

type ffnn struct {
	params
}

func (m *ffnn) Score(vectors [][]float64) ([]float64, error) {
	if err := m.checkVectors(vectors); err != nil {
		return nil, fmt.Errorf("score with model %s: %w", m.version, err)
	}
	out := make([]float64, len(vectors))
	xs := make([]float64, len(m.mean))
	for i, v := range vectors {
		for j, x := range v {
			xs[j] = (x - m.mean[j]) / m.std[j]
		}
		z := m.bias
		for u, row := range m.hiddenW {
			h := m.hiddenB[u]
			for j, w := range row {
				h += w * xs[j]
			}
			if h > 0 {
				z += m.weights[u] * h
			}
		}
		out[i] = sigmoid(z)
	}
	return out, nil
}

// sigmoid clamps exactly where gorgonia's float64 sigmoid does, so the two
// scorers agree at the extremes and not only in the middle.
func sigmoid(z float64) float64 {
	switch {
	case z < -709:
		return 0
	case z > 19:
		return 1
	}
	return 1 / (1 + math.Exp(-z))
}
