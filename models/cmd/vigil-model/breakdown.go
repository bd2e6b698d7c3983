package main

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/vigil-fraud/vigil/models/dataset"
	"github.com/vigil-fraud/vigil/models/model"
)

// groupResult is how well a model ranks one kind of fraud: the group's frauds against every
// legitimate row of the test set.
type groupResult struct {
	Group  string  `json:"group"`
	Frauds int     `json:"frauds"`
	Share  float64 `json:"share"` // of the test set's frauds
	AUC    float64 `json:"auc"`
}

// ceilingResult is the best any model can score on a test set when a compromised terminal's
// frauds are invisible until the first of them is delay old (see ceiling).
type ceilingResult struct {
	AUC float64 `json:"auc"`
	AP  float64 `json:"ap"`
	CPk float64 `json:"card_precision_at_k"`
}

// Fraud groups of data from the Handbook's simulator (TX_FRAUD_SCENARIO). A compromised
// terminal's frauds are split by the age of its compromise at the transaction: until the
// first fraud is delay old no label of the terminal is known, so nothing distinguishes them
// from the terminal's earlier legitimate transactions.
const (
	groupAmount      = "1 amount > 220"
	groupTerminalNew = "2 terminal, compromise younger than the delay"
	groupTerminalOld = "2 terminal, compromise at least the delay old"
	groupCustomer    = "3 customer"
)

// compromiseStart returns, for each row of scenario 2, when its terminal's current
// compromise began: the first scenario-2 fraud of the terminal not separated from the row by
// a legitimate transaction of the terminal (a scenario-3 fraud there does not end it). Other
// rows map to the zero time.
func compromiseStart(rows []dataset.Row, upTo int) []time.Time {
	start := make([]time.Time, upTo)
	open := map[string]time.Time{} // terminal → start of its running compromise
	for i, r := range rows[:upTo] {
		if !r.Fraud {
			delete(open, r.Terminal)
		}
		if r.Scenario != 2 {
			continue
		}
		s, ok := open[r.Terminal]
		if !ok {
			s = r.Time
			open[r.Terminal] = s
		}
		start[i] = s
	}
	return start
}

// hasScenarios reports whether the data carries TX_FRAUD_SCENARIO for its frauds.
func hasScenarios(rows []dataset.Row) bool {
	for _, r := range rows {
		if r.Fraud && r.Scenario != 0 {
			return true
		}
	}
	return false
}

func fraudGroup(r dataset.Row, start time.Time, delay time.Duration) string {
	switch r.Scenario {
	case 1:
		return groupAmount
	case 2:
		if r.Time.Sub(start) < delay {
			return groupTerminalNew
		}
		return groupTerminalOld
	case 3:
		return groupCustomer
	}
	return ""
}

// breakdown computes groupResults for the test rows idx with scores.
func breakdown(rows []dataset.Row, start []time.Time, idx []int, scores []float64, delay time.Duration) []groupResult {
	var legit []float64
	byGroup := map[string][]float64{}
	total := 0
	for k, i := range idx {
		if !rows[i].Fraud {
			legit = append(legit, scores[k])
			continue
		}
		g := fraudGroup(rows[i], start[i], delay)
		byGroup[g] = append(byGroup[g], scores[k])
		total++
	}
	if len(legit) == 0 {
		return nil
	}
	var out []groupResult
	for _, g := range []string{groupAmount, groupTerminalNew, groupTerminalOld, groupCustomer} {
		fs := byGroup[g]
		if len(fs) == 0 {
			continue
		}
		s := append(append(make([]float64, 0, len(fs)+len(legit)), fs...), legit...)
		y := make([]float64, len(s))
		for j := range fs {
			y[j] = 1
		}
		out = append(out, groupResult{Group: g, Frauds: len(fs), Share: float64(len(fs)) / float64(total), AUC: model.AUC(s, y)})
	}
	return out
}

// ceiling scores the test rows idx as a perfect model limited by the label delay would:
// every fraud above every legitimate row, except a compromised terminal's frauds before its
// first fraud is delay old, which rank among the legitimate rows at random. It is the upper
// bound of the Handbook protocol on simulated data; a model above it uses labels it could not
// have known.
func ceiling(rows []dataset.Row, start []time.Time, idx []int, testStart time.Time, delay time.Duration, k int) ceilingResult {
	rng := rand.New(rand.NewPCG(1, 1))
	scores := make([]float64, len(idx))
	cards := make([]string, len(idx))
	days := make([]int, len(idx))
	for j, i := range idx {
		scores[j] = rng.Float64()
		if rows[i].Fraud && fraudGroup(rows[i], start[i], delay) != groupTerminalNew {
			scores[j]++
		}
		cards[j] = rows[i].Customer
		days[j] = dataset.Day(testStart, rows[i].Time)
	}
	y := dataset.Labels(rows, idx)
	c := ceilingResult{AUC: model.AUC(scores, y), AP: model.AveragePrecision(scores, y), CPk: model.CardPrecisionAtK(scores, y, cards, days, k)}
	if math.IsNaN(c.AUC) {
		c.AUC = 0
	}
	if math.IsNaN(c.AP) {
		c.AP = 0
	}
	return c
}
