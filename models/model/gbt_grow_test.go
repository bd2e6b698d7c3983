package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// growData mixes the columns that stress the bins: many distinct values (quantile cuts),
// a few small integers, adjacent floats (midpoints that round onto a value) and 400 repeated
// integers (quantile cuts on ties).
func growData(n int, seed uint64) ([][]float64, []float64) {
	const d = 8
	rng := rand.New(rand.NewPCG(seed, 2))
	one, next := math.Nextafter(1, 2), math.Nextafter(math.Nextafter(1, 2), 2)
	X := make([][]float64, n)
	y := make([]float64, n)
	for i := range X {
		X[i] = make([]float64, d)
		for j := range d {
			switch j % 4 {
			case 0:
				X[i][j] = rng.NormFloat64() * 100
			case 1:
				X[i][j] = float64(rng.IntN(5))
			case 2:
				X[i][j] = []float64{1, one, next}[rng.IntN(3)]
			case 3:
				X[i][j] = float64(rng.IntN(400))
			}
		}
		z := 0.02*X[i][0] + X[i][1] - 2 + 3e15*(X[i][2]-1) + 0.01*X[i][3]
		if rng.Float64() < sigmoid(z) {
			y[i] = 1
		}
	}
	return X, y
}

// TestGrowMatchesBruteForce checks each grown tree against sums taken directly over the rows
// that reach each node: node values are -G/(H+λ)·rate, every split is as good as the best
// one found by scanning the rows (so the histograms derived by subtraction are right),
// growth stops only where no split helps, and serving's x < threshold routes every row to
// the leaf that training's bins did.
func TestGrowMatchesBruteForce(t *testing.T) {
	t.Parallel()
	const n = 3000
	X, y := growData(n, 7)
	d := len(X[0])
	b := makeBins(X, d)
	rng := rand.New(rand.NewPCG(3, 4))
	g, h := make([]float64, n), make([]float64, n)
	var rows []int32
	for i := range n {
		p := 0.1 + 0.8*rng.Float64()
		g[i], h[i] = p-y[i], p*(1-p)
		if rng.Float64() < gbtSubsample {
			rows = append(rows, int32(i))
		}
	}
	gain := func(gl, hl, G, H float64) float64 {
		return gl*gl/(hl+gbtLambda) + (G-gl)*(G-gl)/(H-hl+gbtLambda) - G*G/(H+gbtLambda)
	}
	for _, depth := range []int{1, 2, 3, 5, 8} {
		tg := &treeGrower{b: b, g: g, h: h, cols: []int{0, 1, 2, 3, 5, 6, 7}, depth: depth, rate: 0.3}
		tg.grow(rows)
		tr := tg.tree
		for i := range n {
			if bv, sv := tg.binnedValue(i), tr.Value[tr.leaf(X[i])]; bv != sv {
				t.Fatalf("depth %d row %d: bins give %v, thresholds %v", depth, i, bv, sv)
			}
		}
		reach := make([][]int32, len(tr.Feature))
		level := make([]int, len(tr.Feature))
		reach[0] = rows
		for i := range tr.Feature {
			var G, H float64
			for _, r := range reach[i] {
				G += g[r]
				H += h[r]
			}
			if want := -G / (H + gbtLambda) * tg.rate; math.Abs(tr.Value[i]-want) > 1e-9*(1+math.Abs(want)) {
				t.Errorf("depth %d node %d: value %v, direct sums give %v", depth, i, tr.Value[i], want)
			}
			best := 1e-9
			for _, j := range tg.cols {
				for k := range b.cuts[j] {
					var gl, hl float64
					for _, r := range reach[i] {
						if int(b.cell[int(r)*d+j]) <= k {
							gl += g[r]
							hl += h[r]
						}
					}
					if hl >= gbtMinChildWeight && H-hl >= gbtMinChildWeight {
						best = max(best, gain(gl, hl, G, H))
					}
				}
			}
			j := tr.Feature[i]
			if j < 0 {
				if level[i] < depth && best > 1e-6 {
					t.Errorf("depth %d node %d at level %d is a leaf, but a split gains %v", depth, i, level[i], best)
				}
				continue
			}
			var gl, hl float64
			for _, r := range reach[i] {
				if X[r][j] < tr.Threshold[i] {
					gl += g[r]
					hl += h[r]
					reach[tr.Left[i]] = append(reach[tr.Left[i]], r)
				} else {
					reach[tr.Right[i]] = append(reach[tr.Right[i]], r)
				}
			}
			if got := gain(gl, hl, G, H); got < best-1e-7*(1+best) {
				t.Errorf("depth %d node %d: split gains %v, the best split %v", depth, i, got, best)
			}
			level[tr.Left[i]], level[tr.Right[i]] = level[i]+1, level[i]+1
		}
	}
}

// TestGBTKeepsTheBestRound: with a validation set, the kept trees are the rounds up to the
// last one with the best validation AP, their validation AP is that AP (the running
// validation margins match Score), and training stops Patience rounds after it.
func TestGBTKeepsTheBestRound(t *testing.T) {
	t.Parallel()
	X, y := scenarioOne(1500, 71)
	vX, vY := scenarioOne(600, 72)
	for i := range y {
		if i%7 == 0 {
			y[i] = 1 - y[i] // label noise, so the validation AP peaks early
		}
	}
	const rounds, patience = 80, 8
	var aps []float64
	a, err := Train(X, y, TrainOptions{Kind: KindGBT, Epochs: rounds, Depth: 6, LearningRate: 0.3, Seed: 1, Version: "v",
		ValX: vX, ValY: vY, Patience: patience, TrainedAt: fixedTime, OnEpoch: func(_ int, _, ap float64) { aps = append(aps, ap) }})
	if err != nil {
		t.Fatal(err)
	}
	best, bestRound := math.Inf(-1), 0
	for i, ap := range aps {
		if ap >= best {
			best, bestRound = ap, i+1
		}
	}
	if len(a.Trees) != bestRound || a.Metrics["valid_ap"] != best {
		t.Errorf("kept %d trees with valid AP %v; the best round is %d with AP %v", len(a.Trees), a.Metrics["valid_ap"], bestRound, best)
	}
	if len(aps) != rounds && len(aps)-bestRound != patience {
		t.Errorf("stopped after %d rounds, best round %d, patience %d", len(aps), bestRound, patience)
	}
}
