package main

import (
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/models/dataset"
	"github.com/vigil-fraud/vigil/models/model"
)

// TestFoldRetrainingReproducesGBT: evaluate --folds retrains with hyperFrom's settings; on the
// artifact's own window they give back the same trees (depth, shrinkage, rounds, patience, seed
// and an unweighted fraud class all carried).
func TestFoldRetrainingReproducesGBT(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := smallSimulation(t, dir)
	art := filepath.Join(dir, "gbt.json")
	if _, stderr, err := runCLI(t, "train", "--data", data, "--train-start", "2018-04-20", "--kind", "gbt", "--epochs", "25",
		"--depth", "3", "--learning-rate", "0.2", "--patience", "4", "--seed", "9", "--out", art); err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	a, err := model.Load(art)
	if err != nil {
		t.Fatal(err)
	}
	h := hyperFrom(a)
	rows, err := loadData(data, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	start := a.TrainWindow.Start
	X, err := cachedFeatures(data, rows, dataset.Before(rows, start.AddDate(0, 0, h.trainDays)), h.delayDays, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := trainWindow(rows, X, start, h, a.Version, a.TrainedAt, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"depth", "learning_rate", "max_epochs", "patience", "pos_weight", "seed", "best_epoch", "trees"} {
		if a.Metrics[k] != b.Metrics[k] {
			t.Errorf("metrics[%s] = %v, retrained %v", k, a.Metrics[k], b.Metrics[k])
		}
	}
	a.Metrics, b.Metrics = nil, nil
	a.TrainedAt, b.TrainedAt = time.Time{}, time.Time{}
	if len(a.Trees) != len(b.Trees) || a.DataFingerprint != b.DataFingerprint {
		t.Fatalf("retrained %d trees on %s, artifact %d on %s", len(b.Trees), b.DataFingerprint, len(a.Trees), a.DataFingerprint)
	}
	for i := range a.Trees {
		for j, v := range a.Trees[i].Value {
			if b.Trees[i].Value[j] != v {
				t.Fatalf("tree %d node %d: %v, retrained %v", i, j, v, b.Trees[i].Value[j])
			}
		}
	}
}
