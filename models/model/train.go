package model

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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

// TrainOptions tunes Train. Zero values take the defaults below.
type TrainOptions struct {
	Kind         string  // KindLogistic (default), KindFFNN or KindGBT
	Hidden       int     // ffnn hidden units; default 32
	Depth        int     // gbt tree depth; default 4
	Epochs       int     // maximum passes over the data (gbt: boosting rounds); default 30 (gbt 400)
	LearningRate float64 // Adam step size; default 0.05 (lr), 0.005 (ffnn); gbt's shrinkage, default 0.05
	BatchSize    int     // rows per gradient step; default 256, capped at len(X)
	Seed         int64   // drives initialization and the per-epoch shuffle, so a run is reproducible
	Version      string  // artifact version; required
	// PosWeight multiplies the loss of fraud rows to counter class imbalance; 0 means 1
	// (unweighted). BalancedPosWeight gives a common choice.
	PosWeight float64
	// ValX and ValY, when set, are a validation set from a window that must not overlap the
	// test window: training keeps the epoch with the best validation average precision and
	// stops after Patience epochs (default 3; gbt 30 rounds) without improvement.
	ValX     [][]float64
	ValY     []float64
	Patience int
	// ThresholdDays is the number of days the threshold table's set spans (validation set
	// if given, else the training set), for alerts per day; default 1.
	ThresholdDays int
	// TrainedAt is recorded in the artifact; zero means now. Fix it to get byte-identical
	// artifacts from identical inputs.
	TrainedAt   time.Time
	TrainWindow *Window
	ValidWindow *Window
	// OnEpoch, if not nil, reports progress after each epoch.
	OnEpoch func(epoch int, loss, validAP float64)
}

const (
	defaultEpochs       = 30
	defaultLearningRate = 0.05
	defaultFFNNRate     = 0.005
	defaultBatchSize    = 256
	defaultHidden       = 32
	defaultPatience     = 3
)

// CandidateThresholds are the operating points recorded in an artifact's threshold table.
var CandidateThresholds = []float64{0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99}

// BalancedPosWeight is sqrt(negatives/positives): halfway, on a log scale, between no
// weighting and fully balanced classes, which on fraud data (~1:120) keeps the gradient of
// the rare class from vanishing without flattening the scores of the common one.
func BalancedPosWeight(y []float64) float64 {
	var pos float64
	for _, v := range y {
		pos += v
	}
	if pos == 0 || pos == float64(len(y)) {
		return 1
	}
	return math.Sqrt((float64(len(y)) - pos) / pos)
}

// ErrInvalidTrainingData marks input Train refuses to train on.
var ErrInvalidTrainingData = errors.New("invalid training data")

// TrainLogistic is Train with Kind forced to KindLogistic.
func TrainLogistic(X [][]float64, y []float64, opts TrainOptions) (*Artifact, error) {
	opts.Kind = KindLogistic
	return Train(X, y, opts)
}

// Train fits a model of opts.Kind on X (rows in features.Names order) and labels y (1 fraud,
// 0 legitimate).
//
// Features are standardized with the training mean and standard deviation, which are stored
// in the artifact so serving applies the same transform (gbt's trees read the raw values:
// fitGBT). The graph minimizes (class-weighted)
// mean binary cross-entropy with gorgonia's Adam solver over shuffled mini-batches. Logistic
// weights start at zero (the loss is convex); the network's start from a seeded He-uniform
// draw.
func Train(X [][]float64, y []float64, opts TrainOptions) (*Artifact, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("train %s: %w", opts.Kind, err)
	}
	d := len(features.Names)
	if err := checkTrainingData(X, y, d); err != nil {
		return nil, fmt.Errorf("train %s: %w", opts.Kind, err)
	}
	if len(opts.ValX) > 0 || len(opts.ValY) > 0 {
		if err := checkTrainingData(opts.ValX, opts.ValY, d); err != nil {
			return nil, fmt.Errorf("train %s: validation set: %w", opts.Kind, err)
		}
	}

	mean, std := meanStd(X, d)
	base := &Artifact{
		Version:         opts.Version,
		Kind:            opts.Kind,
		FeatureSchema:   features.SchemaVersion,
		FeatureHash:     features.SchemaHash(),
		Names:           slices.Clone(features.Names),
		Mean:            mean,
		Std:             std,
		TrainedAt:       opts.TrainedAt.UTC(),
		DataFingerprint: fingerprint(X, y, opts.ValX, opts.ValY),
		TrainWindow:     opts.TrainWindow,
		ValidWindow:     opts.ValidWindow,
	}
	var a *Artifact
	var stats fitStats
	if opts.Kind == KindGBT {
		a, stats, err = fitGBT(base, X, y, opts)
	} else {
		p := params{mean: mean, std: std}
		a, stats, err = fitAdam(base, p.standardize(X), y, d, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("train %s: %w", opts.Kind, err)
	}
	m, err := New(a)
	if err != nil {
		return nil, fmt.Errorf("train %s: %w", opts.Kind, err)
	}
	scores, err := m.Score(X)
	if err != nil {
		return nil, fmt.Errorf("train %s: %w", opts.Kind, err)
	}
	metrics, err := Evaluate(m, X, y)
	if err != nil {
		return nil, fmt.Errorf("train %s: %w", opts.Kind, err)
	}
	a.Metrics = map[string]float64{
		"train_rows":          float64(len(X)),
		"train_positive_rate": metrics["positive_rate"],
		"train_auc":           metrics["auc"],
		"train_ap":            AveragePrecision(scores, y),
		"train_accuracy":      metrics["accuracy"],
		"train_log_loss":      metrics["log_loss"],
		"final_batch_loss":    stats.loss,
		"epochs":              float64(stats.epochs),
		"max_epochs":          float64(opts.Epochs),
		"patience":            float64(opts.Patience),
		"best_epoch":          float64(stats.bestEpoch),
		"learning_rate":       opts.LearningRate,
		"batch_size":          float64(opts.BatchSize),
		"pos_weight":          opts.PosWeight,
		"seed":                float64(opts.Seed),
	}
	thY := y
	if len(opts.ValX) > 0 {
		vs, err := m.Score(opts.ValX)
		if err != nil {
			return nil, fmt.Errorf("train %s: %w", opts.Kind, err)
		}
		a.Metrics["valid_rows"] = float64(len(opts.ValX))
		a.Metrics["valid_auc"] = AUC(vs, opts.ValY)
		a.Metrics["valid_ap"] = AveragePrecision(vs, opts.ValY)
		thY, scores = opts.ValY, vs
	}
	a.Thresholds = ThresholdTable(scores, thY, opts.ThresholdDays, CandidateThresholds)
	switch opts.Kind {
	case KindFFNN:
		a.Metrics["hidden"] = float64(opts.Hidden)
	case KindGBT:
		a.Metrics["depth"] = float64(opts.Depth)
		a.Metrics["trees"] = float64(len(a.Trees))
		delete(a.Metrics, "batch_size")
	}
	for k, v := range a.Metrics {
		if !isFinite(v) {
			delete(a.Metrics, k) // e.g. AUC of a single-class set: undefined, not an error
		}
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("train %s: %w", opts.Kind, err)
	}
	return a, nil
}

func (o TrainOptions) withDefaults() (TrainOptions, error) {
	if o.Kind == "" {
		o.Kind = KindLogistic
	}
	if !KnownKind(o.Kind) {
		return o, fmt.Errorf("options: Kind is %q, want %q, %q or %q", o.Kind, KindLogistic, KindFFNN, KindGBT)
	}
	if o.Version == "" {
		return o, errors.New("options: Version is empty")
	}
	if o.Epochs < 0 || o.BatchSize < 0 || o.LearningRate < 0 || !isFinite(o.LearningRate) || o.Hidden < 0 || o.Depth < 0 || o.Depth > 16 ||
		o.PosWeight < 0 || !isFinite(o.PosWeight) || o.Patience < 0 || o.ThresholdDays < 0 {
		return o, fmt.Errorf("options: Epochs, BatchSize, LearningRate, Hidden, PosWeight, Patience and ThresholdDays must be non-negative and finite, and Depth in 0..16, got %d, %d, %v, %d, %v, %d, %d, %d",
			o.Epochs, o.BatchSize, o.LearningRate, o.Hidden, o.PosWeight, o.Patience, o.ThresholdDays, o.Depth)
	}
	if o.Kind == KindGBT {
		o.Epochs = cmp.Or(o.Epochs, defaultGBTRounds)
		o.LearningRate = cmp.Or(o.LearningRate, defaultGBTRate)
		o.Depth = cmp.Or(o.Depth, defaultGBTDepth)
		o.Patience = cmp.Or(o.Patience, defaultGBTPatience)
	}
	if o.Epochs == 0 {
		o.Epochs = defaultEpochs
	}
	if o.LearningRate == 0 {
		o.LearningRate = defaultLearningRate
		if o.Kind == KindFFNN {
			o.LearningRate = defaultFFNNRate
		}
	}
	if o.BatchSize == 0 {
		o.BatchSize = defaultBatchSize
	}
	if o.Hidden == 0 {
		o.Hidden = defaultHidden
	}
	if o.PosWeight == 0 {
		o.PosWeight = 1
	}
	if o.Patience == 0 {
		o.Patience = defaultPatience
	}
	if o.ThresholdDays == 0 {
		o.ThresholdDays = 1
	}
	if o.TrainedAt.IsZero() {
		o.TrainedAt = time.Now()
	}
	return o, nil
}

// fingerprint hashes the exact bits of the data the model saw.
func fingerprint(sets ...any) string {
	h := sha256.New()
	var buf [8]byte
	put := func(v float64) {
		binary.LittleEndian.PutUint64(buf[:], math.Float64bits(v))
		h.Write(buf[:])
	}
	for _, s := range sets {
		switch s := s.(type) {
		case [][]float64:
			put(float64(len(s)))
			for _, row := range s {
				for _, v := range row {
					put(v)
				}
			}
		case []float64:
			put(float64(len(s)))
			for _, v := range s {
				put(v)
			}
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
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

type fitStats struct {
	loss      float64
	epochs    int
	bestEpoch int
}

// fitAdam runs the gorgonia training loop over the standardized rows xs (row-major, d
// columns) and returns base completed with the fitted layers. The last partial batch of each
// epoch is dropped because the graph's shapes are fixed; reshuffling every epoch means every
// row is still used.
func fitAdam(base *Artifact, xs, y []float64, d int, opts TrainOptions) (*Artifact, fitStats, error) {
	var st fitStats
	n := len(y)
	batch := min(opts.BatchSize, n)
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x76696769)) // "vigi": any fixed stream id

	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float64, G.WithName("x"), G.WithShape(batch, d))
	target := G.NewVector(g, tensor.Float64, G.WithName("y"), G.WithShape(batch))
	rowWeight := G.NewVector(g, tensor.Float64, G.WithName("rw"), G.WithShape(batch))

	in, k := x, d
	var w1, b1 *G.Node
	if opts.Kind == KindFFNN {
		h := opts.Hidden
		w1 = G.NewMatrix(g, tensor.Float64, G.WithName("w1"), G.WithShape(d, h),
			G.WithValue(tensor.New(tensor.WithShape(d, h), tensor.WithBacking(heUniform(rng, d*h, d)))))
		b1 = G.NewVector(g, tensor.Float64, G.WithName("b1"), G.WithShape(h), G.WithInit(G.Zeroes()))
		var err error
		if in, err = hiddenLayer(x, w1, b1); err != nil {
			return nil, st, err
		}
		k = h
	}
	wInit := make([]float64, k)
	if opts.Kind == KindFFNN {
		wInit = heUniform(rng, k, k)
	}
	w := G.NewVector(g, tensor.Float64, G.WithName("w"), G.WithShape(k),
		G.WithValue(tensor.New(tensor.WithShape(k), tensor.WithBacking(wInit))))
	b := G.NewScalar(g, tensor.Float64, G.WithName("b"), G.WithValue(0.0))
	learn := G.Nodes{w, b}
	if w1 != nil {
		learn = append(learn, w1, b1)
	}

	z, err := logits(in, w, b)
	if err != nil {
		return nil, st, err
	}
	cost, err := weightedCrossEntropyWithLogits(z, target, rowWeight)
	if err != nil {
		return nil, st, err
	}
	if _, err := G.Grad(cost, learn...); err != nil {
		return nil, st, fmt.Errorf("build gradient: %w", err)
	}
	var costVal G.Value
	G.Read(cost, &costVal)

	vm := G.NewTapeMachine(g, G.BindDualValues(learn...))
	defer vm.Close()
	solver := G.NewAdamSolver(G.WithLearnRate(opts.LearningRate))
	learnables := G.NodesToValueGrads(learn)

	// snapshot copies the current parameters into an artifact.
	snapshot := func() (*Artifact, error) {
		a := *base
		wData, ok := w.Value().Data().([]float64)
		if !ok {
			return nil, fmt.Errorf("weights have unexpected type %T", w.Value().Data())
		}
		a.Weights = slices.Clone(wData)
		if a.Bias, ok = b.Value().Data().(float64); !ok {
			return nil, fmt.Errorf("bias has unexpected type %T", b.Value().Data())
		}
		if w1 != nil {
			wd, ok1 := w1.Value().Data().([]float64)
			bd, ok2 := b1.Value().Data().([]float64)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("hidden layer has unexpected types %T, %T", w1.Value().Data(), b1.Value().Data())
			}
			h := len(bd)
			layer := &Layer{B: slices.Clone(bd), W: make([][]float64, h)}
			for u := range h {
				layer.W[u] = make([]float64, d)
				for i := range d {
					layer.W[u][i] = wd[i*h+u]
				}
			}
			a.Hidden = layer
		}
		return &a, nil
	}

	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	xb := make([]float64, batch*d)
	yb := make([]float64, batch)
	wb := make([]float64, batch)

	var best *Artifact
	bestAP, sinceBest := math.Inf(-1), 0
	for epoch := range opts.Epochs {
		rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start+batch <= n; start += batch {
			for r, idx := range order[start : start+batch] {
				copy(xb[r*d:(r+1)*d], xs[idx*d:(idx+1)*d])
				yb[r] = y[idx]
				wb[r] = 1
				if y[idx] == 1 {
					wb[r] = opts.PosWeight
				}
			}
			for _, bind := range []struct {
				node *G.Node
				data []float64
			}{{x, xb}, {target, yb}, {rowWeight, wb}} {
				shape := []int{batch}
				if bind.node == x {
					shape = []int{batch, d}
				}
				if err := G.Let(bind.node, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(bind.data))); err != nil {
					return nil, st, fmt.Errorf("bind batch: %w", err)
				}
			}
			if err := vm.RunAll(); err != nil {
				return nil, st, fmt.Errorf("epoch %d: run graph: %w", epoch, err)
			}
			if err := solver.Step(learnables); err != nil {
				return nil, st, fmt.Errorf("epoch %d: solver step: %w", epoch, err)
			}
			vm.Reset()

			st.loss = costVal.Data().(float64)
			if !isFinite(st.loss) {
				return nil, st, fmt.Errorf("epoch %d: loss diverged to %v; lower LearningRate", epoch, st.loss)
			}
		}
		st.epochs = epoch + 1
		cur, err := snapshot()
		if err != nil {
			return nil, st, err
		}
		if len(opts.ValX) == 0 {
			best, st.bestEpoch = cur, epoch+1
			if opts.OnEpoch != nil {
				opts.OnEpoch(epoch+1, st.loss, math.NaN())
			}
			continue
		}
		m, err := New(cur)
		if err != nil {
			return nil, st, err
		}
		vs, err := m.Score(opts.ValX)
		if err != nil {
			return nil, st, err
		}
		ap := AveragePrecision(vs, opts.ValY)
		if opts.OnEpoch != nil {
			opts.OnEpoch(epoch+1, st.loss, ap)
		}
		if ap > bestAP {
			best, bestAP, st.bestEpoch, sinceBest = cur, ap, epoch+1, 0
		} else if sinceBest++; sinceBest >= opts.Patience {
			break
		}
	}
	return best, st, nil
}

// heUniform draws n weights uniform in ±sqrt(6/fanIn), the He initialization for ReLU
// layers, from the seeded stream so initialization is reproducible.
func heUniform(rng *rand.Rand, n, fanIn int) []float64 {
	limit := math.Sqrt(6 / float64(fanIn))
	out := make([]float64, n)
	for i := range out {
		out[i] = (2*rng.Float64() - 1) * limit
	}
	return out
}

// weightedCrossEntropyWithLogits is crossEntropyWithLogits with a per-row weight.
func weightedCrossEntropyWithLogits(z, target, rowWeight *G.Node) (*G.Node, error) {
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
	weighted, err := G.HadamardProd(rowWeight, perRow)
	if err != nil {
		return nil, fmt.Errorf("build weighted loss: %w", err)
	}
	mean, err := G.Mean(weighted)
	if err != nil {
		return nil, fmt.Errorf("build mean loss: %w", err)
	}
	return mean, nil
}
