package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// NewGorgonia returns a scorer that evaluates sigmoid(XW+b) as a gorgonia
// graph on a TapeMachine. It is the reference the pure-Go scorer is tested
// against for lr and ffnn (gbt has no graph: ErrInvalidArtifact); it builds a
// graph per call, so it is slower and not meant for the hot path.
func NewGorgonia(a *Artifact) (Model, error) {
	p, err := newParams(a)
	if err != nil {
		return nil, err
	}
	if a.Kind == KindGBT {
		return nil, fmt.Errorf("new gorgonia model: %w: kind gbt has no gorgonia graph; use New", ErrInvalidArtifact)
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
	n, d := len(vectors), len(m.mean)
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithName("x"), G.WithShape(n, d),
		G.WithValue(tensor.New(tensor.WithShape(n, d), tensor.WithBacking(m.standardize(vectors)))))
	in := x
	if m.hiddenW != nil {
		h := len(m.hiddenW)
		w1 := G.NewMatrix(g, tensor.Float64, G.WithName("w1"), G.WithShape(d, h),
			G.WithValue(tensor.New(tensor.WithShape(d, h), tensor.WithBacking(transpose(m.hiddenW)))))
		b1 := G.NewVector(g, tensor.Float64, G.WithName("b1"), G.WithShape(h),
			G.WithValue(tensor.New(tensor.WithShape(h), tensor.WithBacking(append([]float64(nil), m.hiddenB...)))))
		var err error
		if in, err = hiddenLayer(x, w1, b1); err != nil {
			return nil, err
		}
	}
	k := len(m.weights)
	w := G.NewVector(g, tensor.Float64, G.WithName("w"), G.WithShape(k),
		G.WithValue(tensor.New(tensor.WithShape(k), tensor.WithBacking(append([]float64(nil), m.weights...)))))
	b := G.NewScalar(g, tensor.Float64, G.WithName("b"), G.WithValue(m.bias))
	prob, err := forward(in, w, b)
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

// hiddenLayer is relu(x·W1 + b1), with b1 broadcast over the rows of the batch.
func hiddenLayer(x, w1, b1 *G.Node) (*G.Node, error) {
	xw, err := G.Mul(x, w1)
	if err != nil {
		return nil, fmt.Errorf("build XW1: %w", err)
	}
	z, err := G.BroadcastAdd(xw, b1, nil, []byte{0})
	if err != nil {
		return nil, fmt.Errorf("build XW1+b1: %w", err)
	}
	h, err := G.Rectify(z)
	if err != nil {
		return nil, fmt.Errorf("build relu: %w", err)
	}
	return h, nil
}

// transpose lays out W[unit][feature] as the row-major (feature × unit) backing of W1.
func transpose(w [][]float64) []float64 {
	h, d := len(w), len(w[0])
	out := make([]float64, d*h)
	for u, row := range w {
		for i, v := range row {
			out[i*h+u] = v
		}
	}
	return out
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
