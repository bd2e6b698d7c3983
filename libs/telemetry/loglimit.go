package telemetry

import (
	"sync"
	"time"
)

// LogLimiter lets one log line per key through per period: a dependency that is down makes
// every request fail the same way, and logging each would flood the logs (and their disks)
// exactly when they are read. Safe for concurrent use.
type LogLimiter struct {
	period time.Duration
	now    func() time.Time
	mu     sync.Mutex
	last   map[string]time.Time
	held   map[string]int
}

// NewLogLimiter lets one line per key through per period.
func NewLogLimiter(period time.Duration) *LogLimiter {
	return &LogLimiter{period: period, now: time.Now, last: map[string]time.Time{}, held: map[string]int{}}
}

// Allow reports whether a line for key may be logged now, and how many were held back since
// the last one that was (log it as "suppressed").
func (l *LogLimiter) Allow(key string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if last, seen := l.last[key]; seen && now.Sub(last) < l.period {
		l.held[key]++
		return false, 0
	}
	l.last[key] = now
	suppressed = l.held[key]
	delete(l.held, key)
	return true, suppressed
}
