package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-fraud/vigil/models/model"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestFlagErrorsNameTheFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"simulate"}, "--out"},
		{[]string{"simulate", "--out", "x", "--days", "0"}, "--days"},
		{[]string{"simulate", "--out", "x", "--start", "April"}, "--start"},
		{[]string{"stream", "--url", "http://example.com/v1/transactions"}, "--url"},
		{[]string{"stream", "--count", "0"}, "--count"},
		{[]string{"stream", "--rate", "-1"}, "--rate"},
		{[]string{"train", "--data", "d", "--out", "o"}, "--train-start"},
		{[]string{"train", "--data", "d", "--out", "o", "--train-start", "2018-13-01"}, "--train-start"},
		{[]string{"train", "--kind", "gbm"}, "--kind"},
		{[]string{"train", "--train-days", "0"}, "--train-days"},
		{[]string{"train", "--kind", "gbt", "--depth", "17"}, "--depth"},
		{[]string{"train", "--data", filepath.Join(dir, "absent.csv"), "--out", "o", "--train-start", "2018-04-01"}, "--data"},
		{[]string{"evaluate", "--data", "d", "--artifact", filepath.Join(dir, "absent.json"), "--test-start", "2018-04-01"}, "--artifact"},
		{[]string{"evaluate", "--data", "d", "--artifact", "a", "--folds", "0"}, "--folds"},
		{[]string{"score", "--data", "d", "--artifact", "a", "--out", "o", "--from", "2018-04-02", "--to", "2018-04-01"}, "--to"},
	}
	for _, tt := range tests {
		_, _, err := runCLI(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want it to name %s", tt.args, err, tt.want)
		}
	}
	if _, stderr, err := runCLI(t, "train", "--bogus"); err != errUsage || !strings.Contains(stderr, "bogus") {
		t.Errorf("unknown flag: %v / %q", err, stderr)
	}
	if _, stderr, err := runCLI(t, "frobnicate"); err != errUsage || !strings.Contains(stderr, "frobnicate") {
		t.Errorf("unknown command: %v / %q", err, stderr)
	}
	if _, stderr, _ := runCLI(t, "evaluate", "--help"); !strings.Contains(stderr, "-test-start") {
		t.Errorf("--help does not list flags: %q", stderr)
	}
}

// smallSimulation writes a 41-day simulation of 200 customers (seed 3) to dir/data.csv and
// returns its path: enough rows for a training window from 2018-04-20 and a validation window.
func smallSimulation(t *testing.T, dir string) string {
	t.Helper()
	data := filepath.Join(dir, "data.csv")
	if _, _, err := runCLI(t, "simulate", "--out", data, "--customers", "200", "--terminals", "400", "--days", "41", "--seed", "3"); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestEndToEnd runs simulate → train (every kind) → evaluate (with plots and folds) → score
// on a small simulation.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	data := smallSimulation(t, dir)
	for _, kind := range []string{"lr", "ffnn", "gbt"} {
		art := filepath.Join(dir, kind+".json")
		if _, stderr, err := runCLI(t, "train", "--data", data, "--train-start", "2018-04-20", "--kind", kind, "--epochs", "3", "--hidden", "4", "--out", art); err != nil {
			t.Fatalf("train %s: %v\n%s", kind, err, stderr)
		}
		a, err := model.Load(art)
		if err != nil {
			t.Fatal(err)
		}
		if a.ValidWindow == nil || a.TrainWindow.Start.Format("2006-01-02") != "2018-04-20" {
			t.Errorf("%s: windows %+v %+v", kind, a.TrainWindow, a.ValidWindow)
		}
		// The test window may not overlap training.
		if _, _, err := runCLI(t, "evaluate", "--data", data, "--artifact", art, "--test-start", "2018-04-22"); err == nil || !strings.Contains(err.Error(), "overlaps") {
			t.Errorf("%s: overlapping test window accepted: %v", kind, err)
		}
		plots := filepath.Join(dir, "plots-"+kind)
		out, stderr, err := runCLI(t, "evaluate", "--data", data, "--artifact", art, "--test-start", "2018-05-04", "--folds", "2", "--plots", plots)
		if err != nil {
			t.Fatalf("evaluate %s: %v\n%s", kind, err, stderr)
		}
		var sum summary
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			t.Fatalf("evaluate output: %v\n%s", err, out)
		}
		if len(sum.Folds) != 2 || sum.Folds[1].TestStart != "2018-04-27" || sum.Mean["auc"] <= 0.5 || sum.Folds[0].Rows == 0 {
			t.Errorf("%s: summary %+v", kind, sum)
		}
		for _, f := range []string{"roc.png", "pr.png"} {
			if st, err := os.Stat(filepath.Join(plots, f)); err != nil || st.Size() == 0 {
				t.Errorf("%s: plot %s: %v", kind, f, err)
			}
		}
		scores := filepath.Join(dir, kind+"-scores.csv")
		if _, stderr, err := runCLI(t, "score", "--data", data, "--artifact", art, "--from", "2018-05-04", "--to", "2018-05-05", "--out", scores); err != nil {
			t.Fatalf("score: %v\n%s", err, stderr)
		}
		body, _ := os.ReadFile(scores)
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		if lines[0] != "TRANSACTION_ID,SCORE" || len(lines) < 50 {
			t.Errorf("scores: %d lines, header %q", len(lines), lines[0])
		}
	}
}

// TestHyperFromCarriesTrainingSettings: per-fold retraining must use the artifact's settings.
func TestHyperFromCarriesTrainingSettings(t *testing.T) {
	t.Parallel()
	a := &model.Artifact{Kind: model.KindFFNN, Hidden: &model.Layer{B: make([]float64, 5)},
		TrainWindow: &model.Window{Days: 6}, ValidWindow: &model.Window{Days: 4},
		Metrics: map[string]float64{"max_epochs": 12, "batch_size": 512, "patience": 4, "learning_rate": 0.002,
			"seed": 9, "delay_days": 3, "pos_weight": 2.5}}
	want := hyper{kind: "ffnn", trainDays: 6, delayDays: 3, valDays: 4, epochs: 12, hidden: 5, batch: 512, patience: 4,
		learningRate: 0.002, posWeight: 2.5, seed: 9}
	if got := hyperFrom(a); got != want {
		t.Errorf("hyperFrom = %+v, want %+v", got, want)
	}
	a.Metrics["pos_weight_auto"] = 1
	if got := hyperFrom(a); got.posWeight != 0 {
		t.Errorf("auto pos weight carried as %v, want 0 (recompute per fold)", got.posWeight)
	}
	g := &model.Artifact{Kind: model.KindGBT, TrainWindow: &model.Window{Days: 7},
		Metrics: map[string]float64{"max_epochs": 300, "patience": 20, "learning_rate": 0.1, "depth": 5, "delay_days": 7, "pos_weight": 1}}
	wantG := hyper{kind: "gbt", trainDays: 7, delayDays: 7, epochs: 300, depth: 5, patience: 20, learningRate: 0.1, posWeight: 1}
	if got := hyperFrom(g); got != wantG {
		t.Errorf("hyperFrom(gbt) = %+v, want %+v", got, wantG)
	}
}
