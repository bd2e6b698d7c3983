package main

import (
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want time.Duration
	}{
		{"empty", nil, 0},
		{"one", []time.Duration{3 * ms}, 3 * ms},
		{"odd, unsorted", []time.Duration{9 * ms, 1 * ms, 4 * ms}, 4 * ms},
		{"even averages the middle two", []time.Duration{8 * ms, 2 * ms, 4 * ms, 100 * ms}, 6 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := median(tc.in); got != tc.want {
				t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestQuantileOf(t *testing.T) {
	t.Parallel()
	sorted := make([]time.Duration, 100)
	for i := range sorted {
		sorted[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := quantileOf(sorted, tc.q); got != tc.want {
			t.Errorf("quantileOf(1..100 ms, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := quantileOf(nil, 0.99); got != 0 {
		t.Errorf("quantileOf(nil) = %v, want 0", got)
	}
}

func TestPairOrderAlternates(t *testing.T) {
	t.Parallel()
	if a, b := pairOrder(0), pairOrder(1); a[0] == b[0] || a[0] == a[1] {
		t.Errorf("pairOrder(0) = %v, pairOrder(1) = %v: want both sides in each, first side alternating", a, b)
	}
}

func TestParseRejects(t *testing.T) {
	t.Setenv("VIGIL_KAFKA_BROKERS", "127.0.0.1:9092")
	t.Setenv("VIGIL_POSTGRES_URL", "postgres://x")
	t.Setenv("VIGIL_REDIS_ADDR", "127.0.0.1:6379")
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error; empty for none
	}{
		{"defaults fit the time bound", nil, ""},
		{"zero pairs", []string{"--pairs", "0"}, "--pairs"},
		{"too long", []string{"--pairs", "10"}, "at most 45s"},
		{"batch too big", []string{"--batch", "501"}, "--batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.args)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("parse(%v) = %v, want no error", tc.args, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("parse(%v) = %v, want an error naming %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestBoxMonitorSeesThisProcess(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the monitor reads Linux's /proc and reports zeros elsewhere")
	}
	m := watchBox(map[string]int{"self": os.Getpid()})
	end := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(end) { // burn some CPU so the delta is positive
	}
	s := m.finish()
	if s.procs["self"].cpu <= 0 {
		t.Errorf("CPU of this process over a busy 50 ms = %v, want > 0", s.procs["self"].cpu)
	}
	if s.sleepLateP99 < s.sleepLateP50 {
		t.Errorf("sleep lateness p99 %v < p50 %v", s.sleepLateP99, s.sleepLateP50)
	}
	if line := s.line(10); !strings.Contains(line, "self CPU") {
		t.Errorf("line() = %q, want the watched process in it", line)
	}
}

func TestListenerPIDFindsThisProcess(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("listenerPID reads Linux's /proc")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := listenerPID(ln.Addr().String()); got != os.Getpid() {
		t.Errorf("listenerPID(%s) = %d, want this process %d", ln.Addr(), got, os.Getpid())
	}
	if got := listenerPID("not an address"); got != 0 {
		t.Errorf("listenerPID(bad) = %d, want 0", got)
	}
}

func TestMeanOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{0.5}, 0.5}, {[]float64{0.4, 0.8}, 0.6000000000000001}} {
		if got := meanOf(tc.in); got != tc.want {
			t.Errorf("meanOf(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
