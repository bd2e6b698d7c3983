package features

import (
	"testing"
	"time"
)

func TestOfflineAccountCount(t *testing.T) {
	t.Parallel()
	o := NewOffline()
	t0 := time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC) // a Monday noon
	idx := Index("account_count_1h")
	steps := []struct {
		acct string
		at   time.Duration
		want float64
	}{
		{"a", 0, 1},
		{"a", 30 * time.Minute, 2},
		{"b", 30 * time.Minute, 1},
		{"a", 60 * time.Minute, 2}, // the first left the window: (t-1h, t]
	}
	for i, s := range steps {
		v := o.Next(Event{TransactionID: string(rune('0' + i)), AccountID: s.acct, AmountMinor: 100, EventTime: t0.Add(s.at)})
		if v[idx] != s.want {
			t.Fatalf("step %d: count %v, want %v", i, v[idx], s.want)
		}
	}
}
