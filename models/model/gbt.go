package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Gradient-boosted trees (KindGBT), trained in plain Go: gorgonia has no trees. The method is
// XGBoost's "hist" one (Chen & Guestrin 2016): each round fits a depth-limited regression tree
// to the gradient and Hessian of the logistic loss, on features bucketed into at most
// gbtMaxBins quantile bins, with L2-regularized leaf values, row and column subsampling, and
// shrinkage. The defaults were chosen on five selection folds that end before the Handbook's
// test folds begin (models/README.md).
const (
	defaultGBTRounds   = 400
	defaultGBTRate     = 0.05
	defaultGBTDepth    = 4
	defaultGBTPatience = 30
	gbtSubsample       = 0.8 // rows drawn per tree
	gbtColSample       = 0.8 // features drawn per tree
	gbtLambda          = 1.0 // L2 penalty on leaf values
	gbtMinChildWeight  = 1.0 // least Hessian sum in a child
	gbtMaxBins         = 256
)

// Tree is one regression tree in flat arrays, node 0 the root. A node with Feature[i] < 0 is a
// leaf; otherwise a vector x goes to Left[i] when x[Feature[i]] < Threshold[i], else to
// Right[i]. Children always have larger indices than their parent. Value[i] is the node's
// logit increment had growth stopped there: the prediction at its leaves, and at inner nodes
// the baseline that Contributions credits each split against.
type Tree struct {
	Feature   []int     `json:"feature"`
	Threshold []float64 `json:"threshold"`
	Left      []int     `json:"left"`
	Right     []int     `json:"right"`
	Value     []float64 `json:"value"`
}

// maxTreeValue bounds a node's value in a valid artifact.
const maxTreeValue = 1e4

// leaf returns the index of the leaf x falls into.
func (t *Tree) leaf(x []float64) int {
	i := 0
	for t.Feature[i] >= 0 {
		if x[t.Feature[i]] < t.Threshold[i] {
			i = t.Left[i]
		} else {
			i = t.Right[i]
		}
	}
	return i
}

func (t *Tree) validate(field string, inputs int) error {
	n := len(t.Feature)
	if n == 0 {
		return fieldErr(field+".feature", "is empty")
	}
	for _, c := range []struct {
		name string
		len  int
	}{{"threshold", len(t.Threshold)}, {"left", len(t.Left)}, {"right", len(t.Right)}, {"value", len(t.Value)}} {
		if c.len != n {
			return fieldErr(field+"."+c.name, fmt.Sprintf("has %d values, feature has %d", c.len, n))
		}
	}
	for i, f := range t.Feature {
		at := func(name string) string { return fmt.Sprintf("%s.%s[%d]", field, name, i) }
		// Bounded, so that sums and differences of values (the score, Contributions) stay
		// finite and exact to rounding: a logit step beyond ±maxTreeValue means nothing to a
		// probability anyway.
		if !(math.Abs(t.Value[i]) <= maxTreeValue) {
			return fieldErr(at("value"), fmt.Sprintf("is %v, want a finite value within ±%v", t.Value[i], float64(maxTreeValue)))
		}
		if f < 0 {
			continue
		}
		if f >= inputs {
			return fieldErr(at("feature"), fmt.Sprintf("is %d, names has %d", f, inputs))
		}
		if !isFinite(t.Threshold[i]) {
			return fieldErr(at("threshold"), fmt.Sprintf("is not finite (%v)", t.Threshold[i]))
		}
		// Children after their parent: every path ends at a leaf, so scoring terminates.
		for k, c := range [2]int{t.Left[i], t.Right[i]} {
			if c <= i || c >= n {
				side := "left"
				if k == 1 {
					side = "right"
				}
				return fieldErr(at(side), fmt.Sprintf("is %d, want a node in (%d, %d)", c, i, n))
			}
		}
	}
	return nil
}

type gbt struct {
	params
	trees []Tree
}

func (m *gbt) Score(vectors [][]float64) ([]float64, error) {
	if err := m.checkVectors(vectors); err != nil {
		return nil, fmt.Errorf("score with model %s: %w", m.version, err)
	}
	out := make([]float64, len(vectors))
	for i, v := range vectors {
		z := m.bias
		for t := range m.trees {
			tr := &m.trees[t]
			z += tr.Value[tr.leaf(v)]
		}
		out[i] = sigmoid(z)
	}
	return out, nil
}

// Contributions splits the model's logit for x (in Names order) into per-feature terms. For
// lr they are weight × standardized value. For gbt each tree credits the change of node value
// at every split on x's path to the split's feature (Saabas's method): the terms plus the
// trees' root values plus Bias add up to the logit. ok is false for kinds without per-feature
// terms (ffnn) and for a vector of the wrong length.
func (a *Artifact) Contributions(x []float64) (logits []float64, ok bool) {
	if len(x) != len(a.Names) {
		return nil, false
	}
	switch a.Kind {
	case KindLogistic:
		out := make([]float64, len(x))
		for j, v := range x {
			out[j] = a.Weights[j] * ((v - a.Mean[j]) / a.Std[j])
		}
		return out, true
	case KindGBT:
		out := make([]float64, len(x))
		for t := range a.Trees {
			tr := &a.Trees[t]
			for i := 0; tr.Feature[i] >= 0; {
				f := tr.Feature[i]
				next := tr.Right[i]
				if x[f] < tr.Threshold[i] {
					next = tr.Left[i]
				}
				out[f] += tr.Value[next] - tr.Value[i]
				i = next
			}
		}
		return out, true
	}
	return nil, false
}

// bins is the training matrix bucketed per feature: bin(x) is the number of cuts ≤ x, so a
// split after bin b sends x left exactly when x < cuts[b], the threshold it is saved with.
type bins struct {
	n, d int
	cell []uint8     // row-major bin of every value
	cuts [][]float64 // per feature, ascending
	off  []int       // first histogram slot of each feature
	size int         // histogram slots over all features
}

func makeBins(X [][]float64, d int) *bins {
	b := &bins{n: len(X), d: d, cell: make([]uint8, len(X)*d), cuts: make([][]float64, d), off: make([]int, d)}
	col := make([]float64, len(X))
	for j := range d {
		for i, row := range X {
			col[i] = row[j]
		}
		slices.Sort(col)
		b.cuts[j] = quantileCuts(col)
		b.off[j] = b.size
		b.size += len(b.cuts[j]) + 1
		cuts := b.cuts[j]
		for i, row := range X {
			b.cell[i*d+j] = uint8(sort.Search(len(cuts), func(k int) bool { return cuts[k] > row[j] }))
		}
	}
	return b
}

// quantileCuts returns at most gbtMaxBins-1 cuts for sorted values: the midpoints between
// distinct values when there are few enough, else the values at evenly spaced ranks.
func quantileCuts(sorted []float64) []float64 {
	distinct := slices.Compact(slices.Clone(sorted))
	if len(distinct) <= gbtMaxBins {
		cuts := make([]float64, 0, len(distinct)-1)
		for k := 1; k < len(distinct); k++ {
			cuts = append(cuts, distinct[k-1]+(distinct[k]-distinct[k-1])/2)
		}
		return cuts
	}
	var cuts []float64
	for q := 1; q < gbtMaxBins; q++ {
		v := sorted[q*len(sorted)/gbtMaxBins]
		if v > sorted[0] && (len(cuts) == 0 || v > cuts[len(cuts)-1]) {
			cuts = append(cuts, v)
		}
	}
	return cuts
}

// growing is a node whose split is still open.
type growing struct {
	node       int
	rows       []int32
	sumG, sumH float64
	hist       []float64 // per slot: gradient sum, Hessian sum (interleaved); nil at the last level
}

type treeGrower struct {
	b        *bins
	g, h     []float64
	cols     []int
	depth    int
	rate     float64
	tree     Tree
	splitBin []int // per node: the bin a split node cuts after, for the binned training rows
}

func (tg *treeGrower) histogram(rows []int32) []float64 {
	hist := make([]float64, 2*tg.b.size)
	d := tg.b.d
	for _, r := range rows {
		cell := tg.b.cell[int(r)*d : int(r)*d+d]
		g, h := tg.g[r], tg.h[r]
		for _, j := range tg.cols {
			s := 2 * (tg.b.off[j] + int(cell[j]))
			hist[s] += g
			hist[s+1] += h
		}
	}
	return hist
}

func (tg *treeGrower) addNode(sumG, sumH float64) int {
	t := &tg.tree
	t.Feature = append(t.Feature, -1)
	t.Threshold = append(t.Threshold, 0)
	t.Left = append(t.Left, 0)
	t.Right = append(t.Right, 0)
	v := -sumG / (sumH + gbtLambda) * tg.rate
	t.Value = append(t.Value, min(max(v, -maxTreeValue), maxTreeValue)) // binds only with absurd row weights
	tg.splitBin = append(tg.splitBin, -1)
	return len(t.Feature) - 1
}

// bestSplit scans every drawn feature's bins for the largest loss reduction.
func (tg *treeGrower) bestSplit(n *growing) (feature, bin int, gl, hl float64, ok bool) {
	parent := n.sumG * n.sumG / (n.sumH + gbtLambda)
	best := 1e-9 // a split must reduce the loss
	for _, j := range tg.cols {
		var accG, accH float64
		nb := len(tg.b.cuts[j])
		for k := range nb { // left: bins 0..k
			s := 2 * (tg.b.off[j] + k)
			accG += n.hist[s]
			accH += n.hist[s+1]
			rG, rH := n.sumG-accG, n.sumH-accH
			if accH < gbtMinChildWeight || rH < gbtMinChildWeight {
				continue
			}
			gain := accG*accG/(accH+gbtLambda) + rG*rG/(rH+gbtLambda) - parent
			if gain > best {
				best, feature, bin, gl, hl, ok = gain, j, k, accG, accH, true
			}
		}
	}
	return feature, bin, gl, hl, ok
}

// grow builds one tree level by level. Each split builds the histogram of its smaller child
// and derives the other's by subtraction from the parent's.
func (tg *treeGrower) grow(rows []int32) {
	var sg, sh float64
	for _, r := range rows {
		sg += tg.g[r]
		sh += tg.h[r]
	}
	root := &growing{node: tg.addNode(sg, sh), rows: rows, sumG: sg, sumH: sh}
	if tg.depth > 0 {
		root.hist = tg.histogram(rows)
	}
	level := []*growing{root}
	d := tg.b.d
	for depth := 0; depth < tg.depth && len(level) > 0; depth++ {
		var next []*growing
		for _, n := range level {
			j, k, gl, hl, ok := tg.bestSplit(n)
			if !ok {
				continue
			}
			left := make([]int32, 0, len(n.rows))
			right := make([]int32, 0, len(n.rows))
			for _, r := range n.rows {
				if int(tg.b.cell[int(r)*d+j]) <= k {
					left = append(left, r)
				} else {
					right = append(right, r)
				}
			}
			l := &growing{node: tg.addNode(gl, hl), rows: left, sumG: gl, sumH: hl}
			rt := &growing{node: tg.addNode(n.sumG-gl, n.sumH-hl), rows: right, sumG: n.sumG - gl, sumH: n.sumH - hl}
			t := &tg.tree
			t.Feature[n.node], t.Threshold[n.node] = j, tg.b.cuts[j][k]
			t.Left[n.node], t.Right[n.node] = l.node, rt.node
			tg.splitBin[n.node] = k
			if depth+1 < tg.depth {
				small, large := l, rt
				if len(right) < len(left) {
					small, large = rt, l
				}
				small.hist = tg.histogram(small.rows)
				large.hist = n.hist // reused in place: the parent is done with it
				for s := range large.hist {
					large.hist[s] -= small.hist[s]
				}
			}
			n.rows, n.hist = nil, nil
			next = append(next, l, rt)
		}
		level = next
	}
}

// binnedValue is the tree's output for training row r, found through its bins.
func (tg *treeGrower) binnedValue(r int) float64 {
	t := &tg.tree
	cell := tg.b.cell[r*tg.b.d:]
	i := 0
	for t.Feature[i] >= 0 {
		if int(cell[t.Feature[i]]) <= tg.splitBin[i] {
			i = t.Left[i]
		} else {
			i = t.Right[i]
		}
	}
	return t.Value[i]
}

// fitGBT boosts trees on the raw (unstandardized) rows: trees only compare values, so the
// artifact's Mean and Std describe the data but do not enter the score. With a validation set
// it keeps the round count with the best validation average precision and stops after
// Patience rounds without improvement.
func fitGBT(base *Artifact, X [][]float64, y []float64, opts TrainOptions) (*Artifact, fitStats, error) {
	var st fitStats
	d := len(base.Names)
	n := len(y)
	b := makeBins(X, d)
	w := make([]float64, n)
	var sw, swy float64
	for i, v := range y {
		w[i] = 1
		if v == 1 {
			w[i] = opts.PosWeight
		}
		sw += w[i]
		swy += w[i] * v
	}
	p0 := swy / sw
	bias := math.Log(p0 / (1 - p0))
	margin := make([]float64, n)
	for i := range margin {
		margin[i] = bias
	}
	valMargin := make([]float64, len(opts.ValX))
	for i := range valMargin {
		valMargin[i] = bias
	}
	valP := make([]float64, len(opts.ValX))
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x76696769))
	g := make([]float64, n)
	h := make([]float64, n)
	rows := make([]int32, 0, n)
	perm := make([]int, d)
	nCols := max(1, int(math.Round(gbtColSample*float64(d))))
	var trees []Tree
	bestAP := math.Inf(-1)
	for round := range opts.Epochs {
		var loss float64
		for i := range n {
			p := sigmoid(margin[i])
			g[i] = (p - y[i]) * w[i]
			h[i] = max(p*(1-p), 1e-16) * w[i]
			loss += w[i] * logLoss(p, y[i])
		}
		st.loss = loss / sw
		rows = rows[:0]
		for i := range n {
			if rng.Float64() < gbtSubsample {
				rows = append(rows, int32(i))
			}
		}
		for j := range perm {
			perm[j] = j
		}
		rng.Shuffle(d, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		cols := slices.Clone(perm[:nCols])
		slices.Sort(cols)
		tg := &treeGrower{b: b, g: g, h: h, cols: cols, depth: opts.Depth, rate: opts.LearningRate}
		tg.grow(rows)
		for i := range n {
			margin[i] += tg.binnedValue(i)
		}
		trees = append(trees, tg.tree)
		st.epochs = round + 1
		ap := math.NaN()
		if len(opts.ValX) > 0 {
			for i, v := range opts.ValX {
				valMargin[i] += tg.tree.Value[tg.tree.leaf(v)]
				valP[i] = sigmoid(valMargin[i])
			}
			ap = AveragePrecision(valP, opts.ValY)
			// A tie moves on to the later round: once the ranking is perfect, more rounds
			// still sharpen the probabilities that the threshold table is read from.
			if ap >= bestAP {
				bestAP, st.bestEpoch = ap, round+1
			}
		}
		if opts.OnEpoch != nil {
			opts.OnEpoch(round+1, st.loss, ap)
		}
		if len(opts.ValX) > 0 && round+1-st.bestEpoch >= opts.Patience {
			break
		}
	}
	if len(opts.ValX) > 0 {
		trees = trees[:st.bestEpoch]
	} else {
		st.bestEpoch = st.epochs
	}
	a := *base
	a.Bias = bias
	a.Trees = trees
	a.Weights = nil
	return &a, st, nil
}

func logLoss(p, y float64) float64 {
	const eps = 1e-15
	p = min(max(p, eps), 1-eps)
	if y == 1 {
		return -math.Log(p)
	}
	return -math.Log(1 - p)
}
