package model

import (
	"math"
	"testing"
)

func TestAveragePrecision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		scores, labels []float64
		want           float64
	}{
		{"perfect", []float64{0.9, 0.8, 0.1}, []float64{1, 1, 0}, 1},
		// Ranked 1,0,1,0: recall 0.5 at precision 1, recall 1 at precision 2/3.
		{"interleaved", []float64{0.9, 0.8, 0.7, 0.1}, []float64{1, 0, 1, 0}, 0.5*1 + 0.5*2.0/3},
		// scikit-learn doc example: y=[0,0,1,1], s=[0.1,0.4,0.35,0.8] → 0.8333.
		{"sklearn example", []float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, 0.5 + 0.5*2.0/3},
		// A tie enters as one threshold: both at once, precision 1/2.
		{"tie", []float64{0.5, 0.5}, []float64{1, 0}, 0.5},
		{"no positives", []float64{0.5, 0.2}, []float64{0, 0}, math.NaN()},
	}
	for _, tt := range tests {
		got := AveragePrecision(tt.scores, tt.labels)
		if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tt.want) > 1e-12) {
			t.Errorf("%s: AP = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCardPrecisionAtK(t *testing.T) {
	t.Parallel()
	// Day 0: cards a (max 0.9, fraud on its second tx), b (0.8), c (0.7, fraud).
	//   top 2 = a, b → 1 hit → 0.5; a is now known compromised.
	// Day 1: a (0.99, fraud, but already detected: dropped), c (0.6, fraud), d (0.5), e (0.1, fraud).
	//   top 2 = c, d → 1 hit → 0.5.
	// Day 2: e (0.3, fraud) alone → 1 hit / k=2 → 0.5 (precision is over k, not over cards seen).
	scores := []float64{0.2, 0.9, 0.8, 0.7, 0.99, 0.6, 0.5, 0.1, 0.3}
	labels := []float64{0, 1, 0, 1, 1, 1, 0, 1, 1}
	cards := []string{"a", "a", "b", "c", "a", "c", "d", "e", "e"}
	days := []int{0, 0, 0, 0, 1, 1, 1, 1, 2}
	if got := CardPrecisionAtK(scores, labels, cards, days, 2); math.Abs(got-0.5) > 1e-12 {
		t.Errorf("CP@2 = %v, want 0.5", got)
	}
	// k=1: day 0 a → 1; day 1 a dropped, c → 1; day 2 e → 1.
	if got := CardPrecisionAtK(scores, labels, cards, days, 1); got != 1 {
		t.Errorf("CP@1 = %v, want 1", got)
	}
	// k=3: day 0 a,b,c → 2/3, a and c detected; day 1 only d,e remain → 1/3; day 2 e was
	// detected on day 1 → no card ranked → 0.
	if got := CardPrecisionAtK(scores, labels, cards, days, 3); math.Abs(got-(2.0/3+1.0/3+0)/3) > 1e-12 {
		t.Errorf("CP@3 = %v, want %v", got, (2.0/3+1.0/3)/3)
	}
}

func TestAtBudgetAndThresholdTable(t *testing.T) {
	t.Parallel()
	scores := []float64{0.9, 0.8, 0.1, 0.7, 0.6, 0.2}
	labels := []float64{1, 0, 1, 1, 0, 0}
	days := []int{0, 0, 0, 1, 1, 1}
	got := AtBudget(scores, labels, days, 1) // alerts: 0.9 (fraud), 0.7 (fraud)
	if got.Alerts != 2 || got.Precision != 1 || math.Abs(got.Recall-2.0/3) > 1e-12 {
		t.Errorf("AtBudget = %+v", got)
	}
	table := ThresholdTable(scores, labels, 2, []float64{0.65, 0.95})
	if r := table[0]; r.AlertsPerDay != 1.5 || math.Abs(r.Precision-2.0/3) > 1e-12 || math.Abs(r.Recall-2.0/3) > 1e-12 {
		t.Errorf("row 0.65 = %+v", r)
	}
	if r := table[1]; r.AlertsPerDay != 0 || r.Precision != 1 || r.Recall != 0 {
		t.Errorf("row 0.95 = %+v", r)
	}
}

func TestCurves(t *testing.T) {
	t.Parallel()
	roc, pr := Curves([]float64{0.9, 0.8, 0.7, 0.1}, []float64{1, 0, 1, 0})
	wantROC := []CurvePoint{{0, 0}, {0, 0.5}, {0.5, 0.5}, {0.5, 1}, {1, 1}}
	wantPR := []CurvePoint{{0.5, 1}, {0.5, 0.5}, {1, 2.0 / 3}, {1, 0.5}}
	for i, p := range wantROC {
		if roc[i] != p {
			t.Errorf("roc[%d] = %v, want %v", i, roc[i], p)
		}
	}
	for i, p := range wantPR {
		if math.Abs(pr[i].X-p.X) > 1e-12 || math.Abs(pr[i].Y-p.Y) > 1e-12 {
			t.Errorf("pr[%d] = %v, want %v", i, pr[i], p)
		}
	}
}
