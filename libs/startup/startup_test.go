package startup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	t.Parallel()
	down := errors.New("connection refused")
	tests := []struct {
		name      string
		limit     time.Duration
		failFirst int // calls that fail before one succeeds (-1: all fail)
		wantCalls int
		wantErr   string
	}{
		{"up at once", time.Second, 0, 1, ""},
		{"up after two failures", 5 * time.Second, 2, 3, ""},
		{"no waiting: one try", 0, -1, 1, "connection refused"},
		{"down for good", 500 * time.Millisecond, -1, 0, "postgres not reachable after"},
		{"refused for good (say, a wrong password)", time.Hour, -2, 1, "password authentication failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			start := time.Now()
			err := Wait(context.Background(), tc.limit, "postgres", func(context.Context) error {
				calls++
				if tc.failFirst == -2 {
					return Permanent(fmt.Errorf("password authentication failed: %w", down))
				}
				if tc.failFirst < 0 || calls <= tc.failFirst {
					return down
				}
				return nil
			})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, down) {
				t.Fatalf("err = %v, want one containing %q and wrapping the last error", err, tc.wantErr)
			}
			if tc.wantCalls > 0 && calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			if took := time.Since(start); took > tc.limit+time.Second {
				t.Errorf("took %s with limit %s", took, tc.limit)
			}
		})
	}
}

func TestWaitStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := Wait(ctx, time.Hour, "redis", func(context.Context) error { return errors.New("down") })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's", err)
	}
}
