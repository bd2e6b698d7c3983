package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/models/model"
)

func TestLoadConfigNamesBadVariables(t *testing.T) {
	t.Parallel()
	_, err := loadConfig(config.FromMap(map[string]string{
		"VIGIL_SCORING_REVIEW_THRESHOLD": "1.5",
		"VIGIL_SCORING_MAX_POLL_RECORDS": "lots",
	}))
	if err == nil {
		t.Fatal("want error")
	}
	for _, name := range []string{"VIGIL_SCORING_REVIEW_THRESHOLD", "VIGIL_SCORING_MAX_POLL_RECORDS", "VIGIL_POSTGRES_URL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestLoadScorer(t *testing.T) {
	t.Parallel()
	baseline, err := loadScorer("")
	if err != nil || baseline.FeatureSchema() != features.SchemaVersion {
		t.Fatalf("baseline: %v, %v", baseline, err)
	}

	// A trained artifact loads and scores through the models package.
	var X [][]float64
	var y []float64
	hist := features.NewOffline()
	t0 := time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 400; i++ {
		amount := float64(10 + i)
		X = append(X, hist.Next(features.Event{TransactionID: strconv.Itoa(i), AccountID: "a" + strconv.Itoa(i%50),
			AmountMinor: int64(amount * 100), EventTime: t0.Add(time.Duration(i) * time.Minute)}))
		if amount > 220 {
			y = append(y, 1)
		} else {
			y = append(y, 0)
		}
	}
	a, err := model.TrainLogistic(X, y, model.TrainOptions{Epochs: 20, Version: "test-lr-1", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.json")
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	m, err := loadScorer(path)
	if err != nil || m.Version() != "test-lr-1" {
		t.Fatalf("trained: %v, %v", m, err)
	}

	if _, err := loadScorer(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "VIGIL_SCORING_MODEL_PATH") {
		t.Fatalf("missing artifact: %v", err)
	}
}
