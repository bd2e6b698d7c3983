package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vigil-fraud/vigil/models/features"
)

func TestFeatureCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "x.features")
	d := len(features.Names)
	X := make([][]float64, 3)
	for i := range X {
		X[i] = make([]float64, d)
		for j := range X[i] {
			X[i][j] = float64(i*d+j) + 0.5
		}
	}
	key := cacheKey{size: 10, mtime: 20, delayDays: 7}
	if err := writeCache(path, key, X); err != nil {
		t.Fatal(err)
	}
	got, err := readCache(path, key, 2)
	if err != nil || len(got) != 2 || !slices.Equal(got[1], X[1]) {
		t.Fatalf("readCache prefix: %v, %v", got, err)
	}
	for name, k := range map[string]cacheKey{
		"data changed": {size: 11, mtime: 20, delayDays: 7},
		"data touched": {size: 10, mtime: 21, delayDays: 7},
		"other delay":  {size: 10, mtime: 20, delayDays: 3},
	} {
		if _, err := readCache(path, k, 1); err == nil {
			t.Errorf("%s: stale cache accepted", name)
		}
	}
	if _, err := readCache(path, key, 4); err == nil {
		t.Error("cache shorter than asked for accepted")
	}
	os.WriteFile(path, []byte("garbage"), 0o644)
	if _, err := readCache(path, key, 1); err == nil {
		t.Error("garbage accepted")
	}
}
