// Package harness is Vigil's load and benchmark harness: an open-loop driver fed by the
// Handbook simulator, latency histograms, consumer-lag sampling, raw baselines measured in the
// same run, a correctness checker and the reports. cmd/vigil-load wires it into a CLI.
package harness

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram records latencies in microseconds from 1 µs to 10 minutes with 3 significant
// digits; values outside are clamped, so a stuck request still counts as "very slow" instead
// of disappearing from the tail. Safe for concurrent use.
type Histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

const maxRecordable = int64(10 * time.Minute / time.Microsecond)

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(1, maxRecordable, 3)}
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	us := max(int64(d/time.Microsecond), 1)
	us = min(us, maxRecordable)
	h.mu.Lock()
	_ = h.h.RecordValue(us)
	h.mu.Unlock()
}

// Merge adds every value of o.
func (h *Histogram) Merge(o *Histogram) {
	o.mu.Lock()
	snap := hdrhistogram.Import(o.h.Export())
	o.mu.Unlock()
	h.mu.Lock()
	h.h.Merge(snap)
	h.mu.Unlock()
}

// Count is the number of recorded values.
func (h *Histogram) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.TotalCount()
}

// Quantile returns the latency at q in [0, 1].
func (h *Histogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(h.h.ValueAtQuantile(q*100)) * time.Microsecond
}

// Summary is a histogram's headline numbers in milliseconds, the unit of the reports.
type Summary struct {
	Count  int64   `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p999_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Summary computes the headline numbers.
func (h *Histogram) Summary() Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h.TotalCount() == 0 {
		return Summary{}
	}
	at := func(q float64) float64 { return float64(h.h.ValueAtQuantile(q)) / 1000 }
	return Summary{Count: h.h.TotalCount(), MeanMS: h.h.Mean() / 1000,
		P50MS: at(50), P90MS: at(90), P99MS: at(99), P999MS: at(99.9), MaxMS: float64(h.h.Max()) / 1000}
}

// Series keeps one histogram per whole second since a start time, for percentiles over time.
type Series struct {
	mu    sync.Mutex
	start time.Time
	secs  []*Histogram
}

// NewSeries starts a series at start.
func NewSeries(start time.Time) *Series { return &Series{start: start} }

// Record adds d to the second that contains at.
func (s *Series) Record(at time.Time, d time.Duration) {
	i := int(at.Sub(s.start) / time.Second)
	if i < 0 {
		i = 0
	}
	s.mu.Lock()
	for len(s.secs) <= i {
		s.secs = append(s.secs, NewHistogram())
	}
	h := s.secs[i]
	s.mu.Unlock()
	h.Record(d)
}

// Point is one second of a series.
type Point struct {
	Second int     `json:"second"`
	Count  int64   `json:"count"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Points summarises each second.
func (s *Series) Points() []Point {
	s.mu.Lock()
	secs := append([]*Histogram(nil), s.secs...)
	s.mu.Unlock()
	out := make([]Point, 0, len(secs))
	for i, h := range secs {
		sum := h.Summary()
		out = append(out, Point{Second: i, Count: sum.Count, P50MS: sum.P50MS, P99MS: sum.P99MS, MaxMS: sum.MaxMS})
	}
	return out
}
