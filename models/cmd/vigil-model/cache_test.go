package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/models/dataset"
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

// A miss caches every row of the file, so a later command that needs more rows than the first
// one (evaluate after train) reads them instead of recomputing the history.
func TestCachedFeaturesCoverTheWholeFile(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data.csv")
	csv := "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n" +
		"0,2018-04-01 10:00:00,1,7,10.00,0\n" +
		"1,2018-04-01 11:00:00,1,7,250.00,1\n" +
		"2,2018-04-02 09:00:00,2,7,20.00,0\n" +
		"3,2018-04-09 12:00:00,1,7,30.00,0\n" +
		"4,2018-04-10 12:00:00,2,8,40.00,0\n"
	if err := os.WriteFile(data, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := dataset.ReadCSV(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	want := dataset.Features(rows, len(rows), 7*24*time.Hour, nil)

	var first, second strings.Builder
	X, err := cachedFeatures(data, rows, 2, 7, &first)
	if err != nil || len(X) != 2 || strings.Contains(first.String(), "from cache") {
		t.Fatalf("first call: %d rows, %v, %q", len(X), err, first.String())
	}
	X, err = cachedFeatures(data, rows, len(rows), 7, &second)
	if err != nil || !strings.Contains(second.String(), "from cache") {
		t.Fatalf("second call recomputed: %v, %q", err, second.String())
	}
	for i := range want {
		if !slices.Equal(X[i], want[i]) {
			t.Errorf("row %d: cached %v, computed %v", i, X[i], want[i])
		}
	}
}
