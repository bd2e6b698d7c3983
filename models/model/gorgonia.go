package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// NewGorgonia returns a scorer that evaluates sigmoid(XW+b) as a gorgonia
// graph on a TapeMachine. It is the reference the pure-Go scorer is tested
// against; it builds a graph per call, so it is slower and not meant for
// the hot path.
func NewGorgonia(a *Artifact) (Model, error) {
	p, err := newParams(a)
	if err != nil {
		return nil, err
	}
	return &gorgoniaLogistic{params: p}, nil
}

type gorgoniaLogistic struct {
	params
}

// Score builds a fresh graph for each batch: graph shapes are fixed at
// construction and a TapeMachine is not safe for concurrent use, so sharing
// one across calls would need both a shape cache and a lock.
func (m *gorgoniaLogistic) Score(vectors [][]float64) ([]float64, error) {
	if err := m.checkVectors(vectors); err != nil {
		return nil, fmt.Errorf("score with model %s: %w", m.version, err)
	}
	if len(vectors) == 0 {
		return []float64{}, nil
	}
	out, err := m.run(vectors)
	if err != nil {
		return nil, fmt.Errorf("score with model %s: %w", m.version, err)
	}
	return out, nil
}

func (m *gorgoniaLogistic) run(vectors [][]float64) ([]float64, error) {
	n, d := len(vectors), len(m.weights)
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithName("x"), G.WithShape(n, d),
		G.WithValue(tensor.New(tensor.WithShape(n, d), tensor.WithBacking(m.standardize(vectors)))))
	w := G.NewVector(g, tensor.Float64, G.WithName("w"), G.WithShape(d),
		G.WithValue(tensor.New(tensor.WithShape(d), tensor.WithBacking(append([]float64(nil), m.weights...)))))
	b := G.NewScalar(g, tensor.Float64, G.WithName("b"), G.WithValue(m.bias))
	prob, err := forward(x, w, b)
	if err != nil {
		return nil, err
	}
	var probVal G.Value
	G.Read(prob, &probVal)

	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		return nil, fmt.Errorf("run graph: %w", err)
	}
	data, ok := probVal.Data().([]float64)
	if !ok || len(data) != n {
		return nil, fmt.Errorf("graph returned %T of unexpected shape %v", probVal.Data(), probVal.Shape())
	}
	return append([]float64(nil), data...), nil
}

// logits is the linear part XW+b shared by training and inference, so the
// two graphs cannot compute different models.
func logits(x, w, b *G.Node) (*G.Node, error) {
	xw, err := G.Mul(x, w)
	if err != nil {
		return nil, fmt.Errorf("build XW: %w", err)
	}
	z, err := G.Add(xw, b)
	if err != nil {
		return nil, fmt.Errorf("build XW+b: %w", err)
	}
	return z, nil
}

func forward(x, w, b *G.Node) (*G.Node, error) {
	z, err := logits(x, w, b)
	if err != nil {
		return nil, err
	}
	p, err := G.Sigmoid(z)
	if err != nil {
		return nil, fmt.Errorf("build sigmoid: %w", err)
	}
	return p, nil
}
