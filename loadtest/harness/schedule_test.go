package harness

import (
	"testing"
	"time"
)

func TestParsePlan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    Plan
		wantErr bool
	}{
		{"200", Plan{{200, 5 * time.Second}}, false},
		{"100@2s, 300@1s", Plan{{100, 2 * time.Second}, {300, time.Second}}, false},
		{"0", nil, true},
		{"abc", nil, true},
		{"100@-1s", nil, true},
		{"100@x", nil, true},
	} {
		got, err := ParsePlan("--rate", tc.in, 5*time.Second)
		if (err != nil) != tc.wantErr {
			t.Fatalf("%q: err %v, wantErr %v", tc.in, err, tc.wantErr)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%q: %v, want %v", tc.in, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%q: %v, want %v", tc.in, got, tc.want)
			}
		}
	}
}

func TestArrivalsFollowTheClock(t *testing.T) {
	t.Parallel()
	p := Plan{{Rate: 10, Duration: time.Second}, {Rate: 100, Duration: 500 * time.Millisecond}}
	a := p.Arrivals(0)
	if len(a) != 10+50 {
		t.Fatalf("%d arrivals, want 60", len(a))
	}
	if a[1].At != 100*time.Millisecond || a[9].Step != 0 {
		t.Fatalf("first step spacing: %+v", a[:2])
	}
	if a[10].At != time.Second || a[10].Step != 1 || a[11].At != time.Second+10*time.Millisecond {
		t.Fatalf("second step: %+v", a[10:12])
	}
	if got := len(p.Arrivals(25)); got != 25 {
		t.Fatalf("limit 25: %d arrivals", got)
	}
	for i := 1; i < len(a); i++ {
		if a[i].At <= a[i-1].At {
			t.Fatalf("arrival %d not after %d", i, i-1)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	s := h.Summary()
	if s.Count != 1000 {
		t.Fatalf("count %d", s.Count)
	}
	// 3 significant digits: within 0.1% of the exact order statistic.
	for _, c := range []struct{ got, want float64 }{{s.P50MS, 500}, {s.P99MS, 990}, {s.MaxMS, 1000}} {
		if c.got < c.want*0.999 || c.got > c.want*1.001 {
			t.Fatalf("got %v want %v (summary %+v)", c.got, c.want, s)
		}
	}
	h.Record(time.Hour) // clamped, not lost
	if h.Count() != 1001 || h.Quantile(1) < 9*time.Minute {
		t.Fatalf("clamp: count %d max %v", h.Count(), h.Quantile(1))
	}
	m := NewHistogram()
	m.Merge(h)
	if m.Count() != 1001 {
		t.Fatalf("merge count %d", m.Count())
	}
}

func TestLagGrowing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		totals []float64
		rate   float64
		want   bool
	}{
		{"too few samples", []float64{0, 5000, 9000}, 500, false},
		{"idle residue", []float64{4, 6, 4, 6, 4, 6, 4, 6}, 500, false},
		{"breathing with batches", []float64{0, 300, 50, 280, 20, 310, 40, 290}, 500, false},
		{"backlog building", []float64{0, 200, 400, 600, 800, 1000, 1200, 1400}, 500, true},
		{"backlog draining", []float64{3000, 2800, 2400, 2000, 1600, 1200, 800, 600}, 500, false},
	} {
		if got := LagGrowing(tc.totals, tc.rate); got != tc.want {
			t.Errorf("%s: LagGrowing = %v, want %v", tc.name, got, tc.want)
		}
	}
}
