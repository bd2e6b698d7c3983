package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/vigil-fraud/vigil/models/dataset"
	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/models/model"
)

// foldResult is one test window's metrics.
type foldResult struct {
	TrainStart string             `json:"train_start"`
	TestStart  string             `json:"test_start"`
	TestDays   int                `json:"test_days"`
	Rows       int                `json:"rows"`
	Frauds     int                `json:"frauds"`
	AUC        float64            `json:"auc"`
	AP         float64            `json:"ap"`
	CPk        float64            `json:"card_precision_at_k"`
	Budget     model.BudgetResult `json:"at_budget"`
	Model      string             `json:"model"`
	// Simulated data only (TX_FRAUD_SCENARIO): AUC per kind of fraud, and the best score any
	// model can reach under the label delay.
	Scenarios []groupResult  `json:"scenarios,omitempty"`
	Ceiling   *ceilingResult `json:"ceiling,omitempty"`
}

type summary struct {
	Kind     string             `json:"kind"`
	K        int                `json:"k"`
	Budget   int                `json:"alert_budget_per_day"`
	Folds    []foldResult       `json:"folds"`
	Mean     map[string]float64 `json:"mean"`
	Std      map[string]float64 `json:"std"`
	Handbook map[string]float64 `json:"handbook_reference,omitempty"`
}

// handbookRef are the Handbook's published test-fold means (AUC, AP, CP@100).
var handbookRef = map[string]map[string]float64{
	model.KindLogistic: {"auc": 0.868, "ap": 0.623, "card_precision_at_100": 0.297},
	model.KindFFNN:     {"auc": 0.876, "ap": 0.675, "card_precision_at_100": 0.303},
	model.KindGBT:      {"auc": 0.869, "ap": 0.687, "card_precision_at_100": 0.303}, // XGBoost
}

func cmdEvaluate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("evaluate", "measure a model on the Handbook protocol (AUC, AP, card precision@k); with --folds > 1 the artifact's settings are retrained per fold", stderr)
	data := fs.String("data", "", "transactions CSV in the Handbook format; required")
	artifact := fs.String("artifact", "", "trained artifact; required")
	start := fs.String("test-start", "", "first test day YYYY-MM-DD; required")
	testDays := fs.Int("test-days", 7, "test window in days")
	folds := fs.Int("folds", 1, "rolling folds: fold i tests on the window test-days×i earlier and retrains on the window before it")
	k := fs.Int("k", 100, "cards per day for card precision@k")
	budget := fs.Int("budget", 100, "alerts per day for precision/recall at a budget")
	plots := fs.String("plots", "", "directory for roc.png and pr.png of the first fold (empty: none)")
	out := fs.String("out", "", "write the JSON metrics here instead of stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *data == "":
		return flagErr("data", "is required")
	case *artifact == "":
		return flagErr("artifact", "is required")
	case *testDays < 1:
		return flagErr("test-days", "must be >= 1, got %d", *testDays)
	case *folds < 1 || *folds > 20:
		return flagErr("folds", "must be in 1..20, got %d", *folds)
	case *k < 1:
		return flagErr("k", "must be >= 1, got %d", *k)
	case *budget < 1:
		return flagErr("budget", "must be >= 1, got %d", *budget)
	}
	testStart, err := parseDate("test-start", *start)
	if err != nil {
		return err
	}
	a, err := model.Load(*artifact)
	if err != nil {
		return flagErr("artifact", "%v", err)
	}
	h := hyperFrom(a)
	if *folds == 1 && a.FeatureHash != features.SchemaHash() {
		return flagErr("artifact", "was trained on feature schema %s (%s), this binary computes %s (%s): retrain it",
			a.FeatureSchema, a.FeatureHash, features.SchemaVersion, features.SchemaHash())
	}
	if a.TrainWindow != nil && *folds == 1 {
		for name, w := range map[string]*model.Window{"training": a.TrainWindow, "validation": a.ValidWindow} {
			if w != nil && w.End().After(testStart) {
				return flagErr("test-start", "%s overlaps the artifact's %s window %s + %d days: that would measure memorized data",
					testStart.Format(time.DateOnly), name, w.Start.Format(time.DateOnly), w.Days)
			}
		}
	}
	rows, err := loadData(*data, stderr)
	if err != nil {
		return err
	}
	X, err := cachedFeatures(*data, rows, dataset.Before(rows, testStart.AddDate(0, 0, *testDays)), h.delayDays, stderr)
	if err != nil {
		return err
	}

	var compromised []time.Time
	if hasScenarios(rows) {
		compromised = compromiseStart(rows, len(X))
	}
	sum := summary{Kind: a.Kind, K: *k, Budget: *budget, Handbook: handbookRef[a.Kind]}
	for f := range *folds {
		ts := testStart.AddDate(0, 0, -f**testDays)
		trainStart := ts.AddDate(0, 0, -h.delayDays-h.trainDays)
		m := a
		if *folds > 1 {
			fmt.Fprintf(stderr, "fold %d/%d: train from %s, test from %s\n", f+1, *folds, trainStart.Format(time.DateOnly), ts.Format(time.DateOnly))
			if m, err = trainWindow(rows, X, trainStart, h, fmt.Sprintf("%s-fold%d", a.Version, f), a.TrainedAt, stderr); err != nil {
				return fmt.Errorf("fold %d: %w", f+1, err)
			}
		}
		res, scores, y, err := evalFold(rows, X, m, trainStart, h, *testDays, *k, *budget, compromised)
		if err != nil {
			return fmt.Errorf("fold %d: %w", f+1, err)
		}
		fmt.Fprintf(stderr, "fold %d: AUC %.4f AP %.4f CP@%d %.4f (%d rows, %d frauds)\n", f+1, res.AUC, res.AP, *k, res.CPk, res.Rows, res.Frauds)
		if c := res.Ceiling; c != nil {
			fmt.Fprintf(stderr, "fold %d: ceiling under the %d-day label delay: AUC %.4f AP %.4f CP@%d %.4f\n", f+1, h.delayDays, c.AUC, c.AP, *k, c.CPk)
			for _, g := range res.Scenarios {
				fmt.Fprintf(stderr, "fold %d:   scenario %-47s %3d frauds (%4.1f%%) AUC %.4f\n", f+1, g.Group, g.Frauds, 100*g.Share, g.AUC)
			}
		}
		sum.Folds = append(sum.Folds, res)
		if f == 0 && *plots != "" {
			if err := writePlots(*plots, scores, y); err != nil {
				return flagErr("plots", "%v", err)
			}
		}
	}
	sum.Mean, sum.Std = meanStd(sum.Folds, *k)
	enc, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	enc = append(enc, '\n')
	if *out != "" {
		if err := os.WriteFile(*out, enc, 0o644); err != nil {
			return flagErr("out", "%v", err)
		}
		return nil
	}
	_, err = stdout.Write(enc)
	return err
}

// hyperFrom recovers the training settings recorded in an artifact, for per-fold retraining.
func hyperFrom(a *model.Artifact) hyper {
	h := hyper{kind: a.Kind, trainDays: 7, delayDays: 7, valDays: 0,
		epochs: int(a.Metrics["max_epochs"]), batch: int(a.Metrics["batch_size"]), patience: int(a.Metrics["patience"]),
		learningRate: a.Metrics["learning_rate"], seed: int64(a.Metrics["seed"])}
	if a.TrainWindow != nil {
		h.trainDays = a.TrainWindow.Days
	}
	if a.ValidWindow != nil {
		h.valDays = a.ValidWindow.Days
	}
	if d, ok := a.Metrics["delay_days"]; ok {
		h.delayDays = int(d)
	}
	if a.Hidden != nil {
		h.hidden = len(a.Hidden.B)
	}
	h.depth = int(a.Metrics["depth"])
	if a.Metrics["pos_weight_auto"] != 1 {
		h.posWeight = a.Metrics["pos_weight"]
	}
	return h
}

// evalFold scores the fold's test set; start (compromiseStart, nil for data without
// scenarios) adds the per-scenario breakdown and the ceiling.
func evalFold(rows []dataset.Row, X [][]float64, a *model.Artifact, trainStart time.Time, h hyper, testDays, k, budget int, start []time.Time) (foldResult, []float64, []float64, error) {
	split := dataset.HandbookSplit(rows, trainStart, h.trainDays, h.delayDays, testDays)
	if len(split.Test) == 0 {
		return foldResult{}, nil, nil, flagErr("test-start", "no test transactions from %s", split.TestStart.Format(time.DateOnly))
	}
	m, err := model.New(a)
	if err != nil {
		return foldResult{}, nil, nil, err
	}
	scores, err := m.Score(dataset.Select(X, split.Test))
	if err != nil {
		return foldResult{}, nil, nil, err
	}
	y := dataset.Labels(rows, split.Test)
	cards := make([]string, len(split.Test))
	days := make([]int, len(split.Test))
	frauds := 0
	for j, i := range split.Test {
		cards[j] = rows[i].Customer
		days[j] = dataset.Day(split.TestStart, rows[i].Time)
		if rows[i].Fraud {
			frauds++
		}
	}
	res := foldResult{
		TrainStart: trainStart.Format(time.DateOnly), TestStart: split.TestStart.Format(time.DateOnly), TestDays: testDays,
		Rows: len(split.Test), Frauds: frauds,
		AUC: model.AUC(scores, y), AP: model.AveragePrecision(scores, y),
		CPk:    model.CardPrecisionAtK(scores, y, cards, days, k),
		Budget: model.AtBudget(scores, y, days, budget), Model: a.Version,
	}
	if start != nil {
		delay := time.Duration(h.delayDays) * 24 * time.Hour
		res.Scenarios = breakdown(rows, start, split.Test, scores, delay)
		c := ceiling(rows, start, split.Test, split.TestStart, delay, k)
		res.Ceiling = &c
	}
	return res, scores, y, nil
}

func meanStd(folds []foldResult, k int) (mean, std map[string]float64) {
	cp := "card_precision_at_" + strconv.Itoa(k)
	get := map[string]func(foldResult) float64{
		"auc": func(f foldResult) float64 { return f.AUC }, "ap": func(f foldResult) float64 { return f.AP },
		cp:                 func(f foldResult) float64 { return f.CPk },
		"budget_precision": func(f foldResult) float64 { return f.Budget.Precision },
		"budget_recall":    func(f foldResult) float64 { return f.Budget.Recall },
	}
	if len(folds) > 0 && folds[0].Ceiling != nil {
		get["ceiling_auc"] = func(f foldResult) float64 { return f.Ceiling.AUC }
		get["ceiling_ap"] = func(f foldResult) float64 { return f.Ceiling.AP }
		get["ceiling_"+cp] = func(f foldResult) float64 { return f.Ceiling.CPk }
	}
	mean, std = map[string]float64{}, map[string]float64{}
	n := float64(len(folds))
	for name, fn := range get {
		var s, s2 float64
		for _, f := range folds {
			s += fn(f)
		}
		mu := s / n
		for _, f := range folds {
			s2 += (fn(f) - mu) * (fn(f) - mu)
		}
		mean[name] = mu
		std[name] = math.Sqrt(s2 / n)
	}
	return mean, std
}
