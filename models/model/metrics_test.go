package model

import (
	"math"
	"testing"
)

func TestAUC(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		labels []float64
		want   float64
	}{
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []float64{0, 0, 1, 1}, 1},
		{"inverted", []float64{0.9, 0.8, 0.2, 0.1}, []float64{0, 0, 1, 1}, 0},
		{"all tied", []float64{0.5, 0.5, 0.5, 0.5}, []float64{0, 1, 0, 1}, 0.5},
		{"one pair misordered", []float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, 0.75},
		{"tie across classes", []float64{0.1, 0.5, 0.5, 0.9}, []float64{0, 0, 1, 1}, 0.875},
		{"unsorted input", []float64{0.9, 0.1, 0.8, 0.2}, []float64{1, 0, 1, 0}, 1},
		{"single class", []float64{0.1, 0.2}, []float64{1, 1}, math.NaN()},
		{"empty", nil, nil, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AUC(tt.scores, tt.labels)
			if math.IsNaN(tt.want) {
				if !math.IsNaN(got) {
					t.Errorf("AUC = %v, want NaN", got)
				}
				return
			}
			if math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("AUC = %v, want %v", got, tt.want)
			}
		})
	}
}

type fixedScores []float64

func (f fixedScores) Version() string                              { return "fixed" }
func (f fixedScores) FeatureSchema() string                        { return "fs-test" }
func (f fixedScores) Score(vectors [][]float64) ([]float64, error) { return f[:len(vectors)], nil }

func TestEvaluate(t *testing.T) {
	m := fixedScores{0.9, 0.2, 0.6, 0.4}
	X := make([][]float64, 4)
	got, err := Evaluate(m, X, []float64{1, 0, 0, 1})
	if err != nil {
		t.Fatal(err)
	}
	wantLogLoss := -(math.Log(0.9) + math.Log(0.8) + math.Log(0.4) + math.Log(0.4)) / 4
	want := map[string]float64{"accuracy": 0.5, "auc": 0.75, "positive_rate": 0.5, "log_loss": wantLogLoss}
	for k, v := range want {
		if math.Abs(got[k]-v) > 1e-12 {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}

	got, err = Evaluate(m, X, []float64{0, 0, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["auc"]; ok {
		t.Errorf("auc reported for a single-class set: %v", got["auc"])
	}

	if _, err := Evaluate(m, X, []float64{0}); err == nil {
		t.Error("Evaluate accepted mismatched labels")
	}
}
