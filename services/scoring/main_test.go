package main

import (
	"path/filepath"
	"strings"
	"testing"

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
	for i := 0; i < 400; i++ {
		amount := float64(10 + i)
		X = append(X, []float64{amount, 1, 0, 0})
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
