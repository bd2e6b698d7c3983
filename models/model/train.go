package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vigil-fraud/vigil/models/features"
)

// TrainOptions tunes TrainLogistic. Zero values take the defaults below.
type TrainOptions struct {
	Epochs       int     // passes over the data; default 30
	LearningRate float64 // Adam step size; default 0.05
	BatchSize    int     // rows per gradient step; default 256, capped at len(X)
	Seed         int64   // drives the per-epoch shuffle, so a run is reproducible
	Version      string  // artifact version; required
}

const (
	defaultEpochs       = 30
	defaultLearningRate = 0.05
	defaultBatchSize    = 256
)

// ErrInvalidTrainingData marks input TrainLogistic refuses to train on.
var ErrInvalidTrainingData = errors.New("invalid training data")

// TrainLogistic fits a logistic regression on X (rows laid out as
// features.Compute returns them) and labels y (1 fraud, 0 legitimate).
//
// Features are standardized with the training mean and standard deviation,
// which are stored in the artifact so serving applies the same transform.
// The graph minimizes mean binary cross-entropy with gorgonia's Adam solver
// over shuffled mini-batches; weights start at zero, which is safe because
// the loss is convex.
func TrainLogistic(X [][]float64, y []float64, opts TrainOptions) (*Artifact, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("train logistic: %w", err)
	}
	d := len(features.Names)
	if err := checkTrainingData(X, y, d); err != nil {
		return nil, fmt.Errorf("train logistic: %w", err)
	}

	mean, std := meanStd(X, d)
	p := params{version: opts.Version, schema: features.SchemaVersion, mean: mean, std: std, weights: make([]float64, d)}
	xs := p.standardize(X)

	weights, bias, finalLoss, err := fitAdam(xs, y, d, opts)
	if err != nil {
		return nil, fmt.Errorf("train logistic: %w", err)
	}

	a := &Artifact{
		Version:       opts.Version,
		Kind:          KindLogistic,
		FeatureSchema: features.SchemaVersion,
		FeatureHash:   features.SchemaHash(),
		Names:         slices.Clone(features.Names),
		Mean:          mean,
		Std:           std,
		Weights:       weights,
		Bias:          bias,
		TrainedAt:     time.Now().UTC(),
	}
	m, err := New(a)
	if err != nil {
		return nil, fmt.Errorf("train logistic: %w", err)
	}
	metrics, err := Evaluate(m, X, y)
	if err != nil {
		return nil, fmt.Errorf("train logistic: %w", err)
	}
	a.Metrics = map[string]float64{
		"train_rows":          float64(len(X)),
		"train_positive_rate": metrics["positive_rate"],
		"train_auc":           metrics["auc"],
		"train_accuracy":      metrics["accuracy"],
		"train_log_loss":      metrics["log_loss"],
		"final_batch_loss":    finalLoss,
		"epochs":              float64(opts.Epochs),
		"learning_rate":       opts.LearningRate,
		"batch_size":          float64(opts.BatchSize),
	}
	return a, nil
}

func (o TrainOptions) withDefaults() (TrainOptions, error) {
	if o.Version == "" {
		return o, errors.New("options: Version is empty")
	}
	if o.Epochs < 0 || o.BatchSize < 0 || o.LearningRate < 0 || !isFinite(o.LearningRate) {
		return o, fmt.Errorf("options: Epochs, BatchSize and LearningRate must be non-negative and finite, got %d, %d, %v",
			o.Epochs, o.BatchSize, o.LearningRate)
	}
	if o.Epochs == 0 {
		o.Epochs = defaultEpochs
	}
	if o.LearningRate == 0 {
		o.LearningRate = defaultLearningRate
	}
	if o.BatchSize == 0 {
		o.BatchSize = defaultBatchSize
	}
	return o, nil
}

func checkTrainingData(X [][]float64, y []float64, d int) error {
	if len(X) == 0 {
		return fmt.Errorf("%w: no rows", ErrInvalidTrainingData)
	}
	if len(X) != len(y) {
		return fmt.Errorf("%w: %d rows but %d labels", ErrInvalidTrainingData, len(X), len(y))
	}
	var positives int
	for i, row := range X {
		if len(row) != d {
			return fmt.Errorf("%w: row %d has %d values, feature schema %s has %d", ErrInvalidTrainingData, i, len(row), features.SchemaVersion, d)
		}
		for j, v := range row {
			if !isFinite(v) {
				return fmt.Errorf("%w: row %d feature %q is %v", ErrInvalidTrainingData, i, features.Names[j], v)
			}
		}
		switch y[i] {
		case 1:
			positives++
		case 0:
		default:
			return fmt.Errorf("%w: label %d is %v, want 0 or 1", ErrInvalidTrainingData, i, y[i])
		}
	}
	if positives == 0 || positives == len(y) {
		return fmt.Errorf("%w: labels are all one class (%d of %d positive)", ErrInvalidTrainingData, positives, len(y))
	}
	return nil
}

// meanStd returns per-feature mean and population standard deviation. A
// constant feature (say is_weekend in a weekday-only sample) gets std 1, so
// it standardizes to 0 instead of dividing by zero.
func meanStd(X [][]float64, d int) (mean, std []float64) {
	mean = make([]float64, d)
	std = make([]float64, d)
	n := float64(len(X))
	for _, row := range X {
		for j, v := range row {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= n
	}
	for _, row := range X {
		for j, v := range row {
			diff := v - mean[j]
			std[j] += diff * diff
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j] / n)
		if std[j] < 1e-12 {
			std[j] = 1
		}
	}
	return mean, std
}

// fitAdam runs the gorgonia training loop over the standardized rows xs
// (row-major, d columns). The last partial batch of each epoch is dropped
// because the graph's shapes are fixed; reshuffling every epoch means every
// row is still used.
func fitAdam(xs, y []float64, d int, opts TrainOptions) (weights []float64, bias, loss float64, err error) {
	n := len(y)
	batch := min(opts.BatchSize, n)

	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithName("x"), G.WithShape(batch, d))
	target := G.NewVector(g, tensor.Float64, G.WithName("y"), G.WithShape(batch))
	w := G.NewVector(g, tensor.Float64, G.WithName("w"), G.WithShape(d), G.WithInit(G.Zeroes()))
	b := G.NewScalar(g, tensor.Float64, G.WithName("b"), G.WithValue(0.0))

	z, err := logits(x, w, b)
	if err != nil {
		return nil, 0, 0, err
	}
	cost, err := crossEntropyWithLogits(z, target)
	if err != nil {
		return nil, 0, 0, err
	}
	if _, err := G.Grad(cost, w, b); err != nil {
		return nil, 0, 0, fmt.Errorf("build gradient: %w", err)
	}
	var costVal G.Value
	G.Read(cost, &costVal)

	vm := G.NewTapeMachine(g, G.BindDualValues(w, b))
	defer vm.Close()
	solver := G.NewAdamSolver(G.WithLearnRate(opts.LearningRate))
	learnables := G.NodesToValueGrads(G.Nodes{w, b})

	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x76696769)) // "vigi": any fixed stream id
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	xb := make([]float64, batch*d)
	yb := make([]float64, batch)

	for epoch := range opts.Epochs {
		rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start+batch <= n; start += batch {
			for r, idx := range order[start : start+batch] {
				copy(xb[r*d:(r+1)*d], xs[idx*d:(idx+1)*d])
				yb[r] = y[idx]
			}
			if err := G.Let(x, tensor.New(tensor.WithShape(batch, d), tensor.WithBacking(xb))); err != nil {
				return nil, 0, 0, fmt.Errorf("bind batch: %w", err)
			}
			if err := G.Let(target, tensor.New(tensor.WithShape(batch), tensor.WithBacking(yb))); err != nil {
				return nil, 0, 0, fmt.Errorf("bind labels: %w", err)
			}
			if err := vm.RunAll(); err != nil {
				return nil, 0, 0, fmt.Errorf("epoch %d: run graph: %w", epoch, err)
			}
			if err := solver.Step(learnables); err != nil {
				return nil, 0, 0, fmt.Errorf("epoch %d: solver step: %w", epoch, err)
			}
			vm.Reset()

			loss = costVal.Data().(float64)
			if !isFinite(loss) {
				return nil, 0, 0, fmt.Errorf("epoch %d: loss diverged to %v; lower LearningRate", epoch, loss)
			}
		}
	}

	wData, ok := w.Value().Data().([]float64)
	if !ok {
		return nil, 0, 0, fmt.Errorf("weights have unexpected type %T", w.Value().Data())
	}
	bias, ok = b.Value().Data().(float64)
	if !ok {
		return nil, 0, 0, fmt.Errorf("bias has unexpected type %T", b.Value().Data())
	}
	return slices.Clone(wData), bias, loss, nil
}

// crossEntropyWithLogits is mean binary cross-entropy written on the logits,
// softplus(z) - y*z, rather than on sigmoid outputs: -log(sigmoid(z)) is
// -Inf once sigmoid saturates, which happens quickly on separable data.
func crossEntropyWithLogits(z, target *G.Node) (*G.Node, error) {
	sp, err := G.Softplus(z)
	if err != nil {
		return nil, fmt.Errorf("build softplus: %w", err)
	}
	yz, err := G.HadamardProd(target, z)
	if err != nil {
		return nil, fmt.Errorf("build y*z: %w", err)
	}
	perRow, err := G.Sub(sp, yz)
	if err != nil {
		return nil, fmt.Errorf("build loss: %w", err)
	}
	mean, err := G.Mean(perRow)
	if err != nil {
		return nil, fmt.Errorf("build mean loss: %w", err)
	}
	return mean, nil
}
