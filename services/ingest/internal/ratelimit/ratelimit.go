// Package ratelimit keeps one token bucket per API key.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Limits is a bucket's refill rate (tokens per second) and capacity.
type Limits struct {
	Rate  float64
	Burst int
}

// Limiter holds a bucket per key. A token is one transaction, so a batch of 100 costs 100.
type Limiter struct {
	def     Limits
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	limits Limits
	tokens float64
	last   time.Time
}

// New returns a Limiter with default limits def; now is the clock.
func New(def Limits, now func() time.Time) *Limiter {
	return &Limiter{def: def, now: now, buckets: map[string]*bucket{}}
}

// Allow takes cost tokens from key's bucket (limits override the default when positive). When
// the bucket is short it takes nothing and returns how long until it holds enough.
// A cost above the burst is capped at the burst, so a maximal batch is slow, never impossible.
func (l *Limiter) Allow(key string, override Limits, cost int) (bool, time.Duration) {
	lim := l.def
	if override.Rate > 0 {
		lim.Rate = override.Rate
	}
	if override.Burst > 0 {
		lim.Burst = override.Burst
	}
	if lim.Rate <= 0 {
		return true, 0
	}
	c := float64(min(cost, lim.Burst))
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok || b.limits != lim {
		// A changed override starts a full bucket at the new limits.
		b = &bucket{limits: lim, tokens: float64(lim.Burst), last: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = math.Min(float64(lim.Burst), b.tokens+elapsed*lim.Rate)
		b.last = now
	}
	if b.tokens >= c {
		b.tokens -= c
		return true, 0
	}
	wait := time.Duration((c - b.tokens) / lim.Rate * float64(time.Second))
	return false, wait
}
