package model

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// AveragePrecision is the area under the precision-recall curve as scikit-learn's
// average_precision_score (which the Handbook uses) computes it: Σ (Rₙ − Rₙ₋₁)·Pₙ over the
// distinct score thresholds in decreasing order, tied scores entering together. NaN without
// positives.
func AveragePrecision(scores, labels []float64) float64 {
	idx := sortedDesc(scores)
	var pos float64
	for _, l := range labels {
		if l == 1 {
			pos++
		}
	}
	if pos == 0 {
		return math.NaN()
	}
	var tp, fp, prevRecall, ap float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] == 1 {
				tp++
			} else {
				fp++
			}
			j++
		}
		recall := tp / pos
		ap += (recall - prevRecall) * tp / (tp + fp)
		prevRecall = recall
		i = j
	}
	return ap
}

// CardPrecisionAtK is the Handbook's card_precision_top_k: for each day, every card's score is
// its highest transaction score that day and it counts as compromised if any of its
// transactions that day is fraud; the k cards with the highest scores are the alerts and the
// day's precision is the compromised ones among them over k. A card found compromised on an
// earlier day is no longer ranked (it has been blocked). The result is the mean over days.
// Ties in score break by card id so the result is deterministic.
func CardPrecisionAtK(scores, labels []float64, cards []string, days []int, k int) float64 {
	if k <= 0 || len(scores) == 0 {
		return math.NaN()
	}
	type card struct {
		id    string
		score float64
		fraud bool
	}
	byDay := map[int]map[string]*card{}
	for i, s := range scores {
		m := byDay[days[i]]
		if m == nil {
			m = map[string]*card{}
			byDay[days[i]] = m
		}
		c := m[cards[i]]
		if c == nil {
			c = &card{id: cards[i], score: s}
			m[cards[i]] = c
		}
		c.score = math.Max(c.score, s)
		c.fraud = c.fraud || labels[i] == 1
	}
	dayList := make([]int, 0, len(byDay))
	for d := range byDay {
		dayList = append(dayList, d)
	}
	slices.Sort(dayList)
	detected := map[string]bool{}
	var sum float64
	for _, d := range dayList {
		var ranked []*card
		for _, c := range byDay[d] {
			if !detected[c.id] {
				ranked = append(ranked, c)
			}
		}
		slices.SortFunc(ranked, func(a, b *card) int {
			if c := cmp.Compare(b.score, a.score); c != 0 {
				return c
			}
			return cmp.Compare(a.id, b.id)
		})
		hits := 0
		for _, c := range ranked[:min(k, len(ranked))] {
			if c.fraud {
				hits++
				detected[c.id] = true
			}
		}
		sum += float64(hits) / float64(k)
	}
	return sum / float64(len(dayList))
}

// BudgetResult is what a fixed alert budget catches.
type BudgetResult struct {
	Alerts    int     `json:"alerts"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
}

// AtBudget raises, on each day, alerts for the perDay highest-scoring transactions, and
// reports precision and recall over all days (recall against every fraud in the set).
func AtBudget(scores, labels []float64, days []int, perDay int) BudgetResult {
	byDay := map[int][]int{}
	var pos float64
	for i := range scores {
		byDay[days[i]] = append(byDay[days[i]], i)
		if labels[i] == 1 {
			pos++
		}
	}
	var r BudgetResult
	var hits float64
	for _, idx := range byDay {
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
		for _, i := range idx[:min(perDay, len(idx))] {
			r.Alerts++
			hits += labels[i]
		}
	}
	if r.Alerts > 0 {
		r.Precision = hits / float64(r.Alerts)
	}
	if pos > 0 {
		r.Recall = hits / pos
	}
	return r
}

// ThresholdRow is one candidate operating point of a model.
type ThresholdRow struct {
	Threshold    float64 `json:"threshold"`
	Precision    float64 `json:"precision"`
	Recall       float64 `json:"recall"`
	AlertsPerDay float64 `json:"alerts_per_day"`
}

// ThresholdTable evaluates each threshold (alert when score >= threshold) over a set spanning
// nDays days. Precision is 1 by convention when nothing alerts.
func ThresholdTable(scores, labels []float64, nDays int, thresholds []float64) []ThresholdRow {
	var pos float64
	for _, l := range labels {
		pos += l
	}
	out := make([]ThresholdRow, 0, len(thresholds))
	for _, th := range thresholds {
		var alerts, hits float64
		for i, s := range scores {
			if s >= th {
				alerts++
				hits += labels[i]
			}
		}
		row := ThresholdRow{Threshold: th, Precision: 1, AlertsPerDay: alerts / float64(max(nDays, 1))}
		if alerts > 0 {
			row.Precision = hits / alerts
		}
		if pos > 0 {
			row.Recall = hits / pos
		}
		out = append(out, row)
	}
	return out
}

// CurvePoint is one point of a ROC (X=FPR, Y=TPR) or precision-recall (X=recall,
// Y=precision) curve.
type CurvePoint struct{ X, Y float64 }

// Curves returns the ROC and precision-recall curves, one point per distinct score.
func Curves(scores, labels []float64) (roc, pr []CurvePoint) {
	idx := sortedDesc(scores)
	var pos, neg float64
	for _, l := range labels {
		if l == 1 {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return nil, nil
	}
	roc = []CurvePoint{{0, 0}}
	var tp, fp float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] == 1 {
				tp++
			} else {
				fp++
			}
			j++
		}
		roc = append(roc, CurvePoint{fp / neg, tp / pos})
		pr = append(pr, CurvePoint{tp / pos, tp / (tp + fp)})
		i = j
	}
	return roc, pr
}

func sortedDesc(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx
}
