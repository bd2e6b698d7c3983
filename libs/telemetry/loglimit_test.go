package telemetry

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	t.Parallel()
	l := NewLogLimiter(time.Second)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	steps := []struct {
		after      time.Duration
		key        string
		ok         bool
		suppressed int
	}{
		{0, "redis", true, 0},
		{100 * time.Millisecond, "redis", false, 0},
		{100 * time.Millisecond, "redis", false, 0},
		{0, "kafka", true, 0}, // keys are independent
		{900 * time.Millisecond, "redis", true, 2},
		{2 * time.Second, "redis", true, 0},
	}
	for i, s := range steps {
		now = now.Add(s.after)
		ok, n := l.Allow(s.key)
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d: Allow(%q) = %v, %d; want %v, %d", i, s.key, ok, n, s.ok, s.suppressed)
		}
	}
}
