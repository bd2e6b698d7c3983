package metrics

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	tests := []struct {
		name string
		bs   []Bucket
		want float64
		ok   bool
	}{
		{"interpolates", []Bucket{{0.1, 50}, {0.2, 100}, {inf, 100}}, 0.198, true},
		{"first bucket from 0", []Bucket{{1, 100}, {inf, 100}}, 0.99, true},
		{"lands in +Inf", []Bucket{{0.5, 90}, {inf, 100}}, 0.5, true},
		{"empty", []Bucket{{0.5, 0}, {inf, 0}}, 0, false},
		{"no +Inf", []Bucket{{0.5, 10}}, 0, false},
	}
	for _, tc := range tests {
		got, ok := Quantile(0.99, tc.bs)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseSources(t *testing.T) {
	t.Parallel()
	got, err := ParseSources(" scoring=http://127.0.0.1:8082/metrics, ingest=http://127.0.0.1:8080/metrics ")
	if err != nil || len(got) != 2 || got[0].Name != "scoring" || got[1].URL != "http://127.0.0.1:8080/metrics" {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := ParseSources(""); err != nil || got != nil {
		t.Fatalf("empty: %+v %v", got, err)
	}
	for _, bad := range []string{"scoring", "=http://x/metrics", "s=ftp://x/metrics", "s=http:///metrics", "s=http://u:p@x/metrics",
		"s=http://a/m,s=http://b/m", "bad name=http://x/m"} {
		if _, err := ParseSources(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestScraperFixture scrapes a fixture over HTTP: lag summed by group, p99 from merged buckets,
// one fetch per ttl, and a broken source reported without hiding the others.
func TestScraperFixture(t *testing.T) {
	t.Parallel()
	fixture, err := os.ReadFile("testdata/scoring.prom")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(fixture)
	}))
	defer good.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer slow.Close()
	redirect := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/latest/meta-data", http.StatusFound))
	defer redirect.Close()

	srcs, err := ParseSources("scoring=" + good.URL + "/metrics,slow=" + slow.URL + ",redir=" + redirect.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := NewScraper(srcs, 200*time.Millisecond, time.Minute)
	now := time.Now()
	s.now = func() time.Time { return now }
	snap := s.Snapshot(context.Background())
	if !snap.Configured || len(snap.Sources) != 3 {
		t.Fatalf("snapshot %+v", snap)
	}
	sc := snap.Sources[0]
	if sc.Err != "" || sc.Lag["vigil-scoring"] != 150 || sc.Lag["vigil-scoring-labels"] != 0 {
		t.Fatalf("scoring: %+v", sc)
	}
	// 1000 decisions; rank 990 lies in (0.05, 0.1] holding 20: 0.05 + 0.05*10/20.
	if sc.DecisionP99 == nil || math.Abs(*sc.DecisionP99-0.075) > 1e-9 || sc.Decisions != 1000 {
		t.Fatalf("decision p99 %v (%d)", sc.DecisionP99, sc.Decisions)
	}
	// HTTP merged over routes: 100 requests, 90 ≤ 10 ms, rank 99 lands in +Inf → 0.01.
	if sc.HTTPP99 == nil || *sc.HTTPP99 != 0.01 || sc.HTTPCount != 100 {
		t.Fatalf("http p99 %v (%d)", sc.HTTPP99, sc.HTTPCount)
	}
	if !strings.Contains(snap.Sources[1].Err, "unreachable") || !strings.Contains(snap.Sources[2].Err, "redirects are not followed") {
		t.Fatalf("errors: %q, %q", snap.Sources[1].Err, snap.Sources[2].Err)
	}
	s.Snapshot(context.Background())
	if hits.Load() != 1 {
		t.Fatalf("%d fetches within the ttl, want 1", hits.Load())
	}
	now = now.Add(2 * time.Minute)
	s.Snapshot(context.Background())
	if hits.Load() != 2 {
		t.Fatalf("%d fetches after the ttl, want 2", hits.Load())
	}
}

func TestNotConfigured(t *testing.T) {
	t.Parallel()
	var s *Scraper
	if s.Snapshot(context.Background()).Configured || NewScraper(nil, time.Second, time.Second).Snapshot(context.Background()).Configured {
		t.Fatal("no sources must read as not configured")
	}
}
