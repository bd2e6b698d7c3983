package model

import (
	"fmt"
	"math"
	"sort"
)

// Evaluate scores X with m and compares against labels y (1 fraud, 0 not).
// Keys: "auc", "accuracy" (threshold 0.5), "log_loss", "positive_rate";
// "auc" is left out when y holds a single class, where it is undefined.
func Evaluate(m Model, X [][]float64, y []float64) (map[string]float64, error) {
	if len(X) != len(y) {
		return nil, fmt.Errorf("evaluate: %d rows but %d labels", len(X), len(y))
	}
	if len(X) == 0 {
		return nil, fmt.Errorf("evaluate: no rows")
	}
	scores, err := m.Score(X)
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	var correct, positives, logLoss float64
	// Clipping keeps one confidently wrong row from making the mean +Inf.
	const eps = 1e-15
	for i, p := range scores {
		if (p >= 0.5) == (y[i] == 1) {
			correct++
		}
		pc := math.Min(math.Max(p, eps), 1-eps)
		if y[i] == 1 {
			positives++
			logLoss -= math.Log(pc)
		} else {
			logLoss -= math.Log(1 - pc)
		}
	}
	n := float64(len(y))
	out := map[string]float64{
		"accuracy":      correct / n,
		"log_loss":      logLoss / n,
		"positive_rate": positives / n,
	}
	if auc := AUC(scores, y); !math.IsNaN(auc) {
		out["auc"] = auc
	}
	return out, nil
}

// AUC is the area under the ROC curve: the probability that a random fraud
// scores above a random legitimate transaction, ties counting half. It is
// NaN when either class is absent.
func AUC(scores, labels []float64) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })

	// Mann-Whitney U with mid-ranks for tied scores.
	var pos, neg, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		midRank := float64(i+j+1) / 2 // ranks are 1-based: (i+1 + j) / 2
		for _, k := range idx[i:j] {
			if labels[k] == 1 {
				pos++
				rankSum += midRank
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}
