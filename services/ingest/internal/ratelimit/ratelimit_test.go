package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(Limits{Rate: 10, Burst: 5}, func() time.Time { return now })
	steps := []struct {
		name     string
		advance  time.Duration
		key      string
		override Limits
		cost     int
		ok       bool
		wait     time.Duration
	}{
		{"burst available", 0, "a", Limits{}, 5, true, 0},
		{"empty", 0, "a", Limits{}, 1, false, 100 * time.Millisecond},
		{"other key has its own bucket", 0, "b", Limits{}, 1, true, 0},
		{"refilled one token", 100 * time.Millisecond, "a", Limits{}, 1, true, 0},
		{"cost above burst is capped", time.Second, "a", Limits{}, 500, true, 0},
		{"short by three", 200 * time.Millisecond, "a", Limits{}, 5, false, 300 * time.Millisecond},
		{"override rate and burst", 0, "c", Limits{Rate: 1, Burst: 1}, 1, true, 0},
		{"override empty", 0, "c", Limits{Rate: 1, Burst: 1}, 1, false, time.Second},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		ok, wait := l.Allow(s.key, s.override, s.cost)
		if ok != s.ok || (wait-s.wait).Abs() > time.Millisecond {
			t.Errorf("%s: Allow = %v, %v; want %v, %v", s.name, ok, wait, s.ok, s.wait)
		}
	}
}

func TestZeroRateIsUnlimited(t *testing.T) {
	t.Parallel()
	l := New(Limits{}, time.Now)
	for range 1000 {
		if ok, _ := l.Allow("k", Limits{}, 500); !ok {
			t.Fatal("limited without a rate")
		}
	}
}
