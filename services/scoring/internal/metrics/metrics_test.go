package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func decision(action fraudv1.Action, score float64, latency time.Duration) *fraudv1.Decision {
	return &fraudv1.Decision{Action: action, Score: score, ModelVersion: "lr-1",
		ReceivedTime: timestamppb.New(t0), DecidedTime: timestamppb.New(t0.Add(latency))}
}

// loop is a fake of the exactly-once loop's counters.
type loop struct{ committed, aborted int64 }

func (l *loop) outcome() (int64, int64) { return l.committed, l.aborted }

func decisionsTotal(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	// Collect settles what the counters resolved, as a scrape does.
	testutil.CollectAndCount(m, "vigil_decisions_total")
	out := map[string]float64{}
	for _, a := range []string{"approve", "review", "decline"} {
		out[a] = testutil.ToFloat64(m.decisions.WithLabelValues(a))
	}
	return out
}

func TestDecisionsCountOnceCommitted(t *testing.T) {
	t.Parallel()
	approve := decision(fraudv1.Action_ACTION_APPROVE, 0.1, time.Millisecond)
	decline := decision(fraudv1.Action_ACTION_DECLINE, 0.99, time.Millisecond)
	tests := []struct {
		name string
		// run stages batches and ends transactions on l; want is vigil_decisions_total afterwards.
		run  func(m *Metrics, l *loop)
		want map[string]float64
	}{
		{"open transaction is not counted", func(m *Metrics, l *loop) {
			m.Batch([]*fraudv1.Decision{approve})
		}, map[string]float64{}},
		{"committed transaction counts at the next scrape", func(m *Metrics, l *loop) {
			m.Batch([]*fraudv1.Decision{approve, decline})
			l.committed++
		}, map[string]float64{"approve": 1, "decline": 1}},
		{"aborted then retried counts once", func(m *Metrics, l *loop) {
			m.Batch([]*fraudv1.Decision{approve, decline})
			l.aborted++
			m.Batch([]*fraudv1.Decision{approve, decline}) // the replay
			l.committed++
		}, map[string]float64{"approve": 1, "decline": 1}},
		{"a failed End (neither counter moves) is dropped when the replay starts", func(m *Metrics, l *loop) {
			m.Batch([]*fraudv1.Decision{approve})
			m.Batch([]*fraudv1.Decision{approve})
			l.committed++
		}, map[string]float64{"approve": 1}},
		{"a dead-letter-only batch still settles the previous one", func(m *Metrics, l *loop) {
			m.Batch([]*fraudv1.Decision{decline})
			l.committed++
			m.Batch(nil)
			l.committed++
		}, map[string]float64{"decline": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, l := New(), &loop{}
			m.SetOutcome(l.outcome)
			tc.run(m, l)
			got := decisionsTotal(t, m)
			for _, a := range []string{"approve", "review", "decline"} {
				if got[a] != tc.want[a] {
					t.Errorf("%s: %v, want %v", a, got[a], tc.want[a])
				}
			}
		})
	}
}

func TestEndedHookAndAttempts(t *testing.T) {
	t.Parallel()
	d := decision(fraudv1.Action_ACTION_REVIEW, 0.85, time.Millisecond)
	hook := New()
	hook.SetOutcome(func() (int64, int64) { return 0, 0 }) // counters that never move: only Ended settles
	hook.Batch([]*fraudv1.Decision{d})
	hook.Ended(false)
	hook.Batch([]*fraudv1.Decision{d})
	hook.Ended(true)
	if got := testutil.ToFloat64(hook.decisions.WithLabelValues("review")); got != 1 {
		t.Errorf("with the end hook: %v reviews, want 1", got)
	}
	attempts := New() // no outcome at all: counts each batch as decided
	attempts.Batch([]*fraudv1.Decision{d})
	attempts.Batch([]*fraudv1.Decision{d})
	if got := testutil.ToFloat64(attempts.decisions.WithLabelValues("review")); got != 2 {
		t.Errorf("without an outcome: %v reviews, want 2", got)
	}
}

// TestScrape registers the series the way serve.go does and scrapes them: names, buckets,
// labels and values of the observability contract (deploy/observability/metrics.txt).
func TestScrape(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	l := &loop{}
	m.SetOutcome(l.outcome)

	healthy := decision(fraudv1.Action_ACTION_DECLINE, 0.97, 1500*time.Millisecond)
	healthy.ShadowModelVersion, healthy.ShadowScore = "lr-2", 0.42
	degraded := decision(fraudv1.Action_ACTION_REVIEW, 0, 3*time.Millisecond)
	degraded.Degraded = true
	degraded.DegradedCauses = []fraudv1.DegradedCause{fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL}
	noReceived := decision(fraudv1.Action_ACTION_APPROVE, 0.02, 0)
	noReceived.ReceivedTime = nil
	m.Batch([]*fraudv1.Decision{healthy, degraded, noReceived})
	l.committed++

	m.ModelLoaded("lr-0", "fs-1")
	m.ModelLoaded("lr-1", "fs-1") // a hot reload replaces the label set
	m.RulesLoaded("rs-aaa")
	m.RulesLoaded("rs-bbb")
	m.Redis("decision_windows_load", time.Now().Add(-2*time.Millisecond))
	m.Postgres("sink_insert_decisions", time.Now().Add(-7*time.Millisecond))

	want := `
# HELP vigil_decisions_total Decisions in committed Kafka transactions of decisions.v1, by action (a retried batch counts once).
# TYPE vigil_decisions_total counter
vigil_decisions_total{action="approve"} 1
vigil_decisions_total{action="decline"} 1
vigil_decisions_total{action="review"} 1
# HELP vigil_model_info 1 for the primary model in use; labels name its version and feature schema.
# TYPE vigil_model_info gauge
vigil_model_info{feature_schema="fs-1",version="lr-1"} 1
# HELP vigil_rules_info 1 for the active rule set; the label names its version.
# TYPE vigil_rules_info gauge
vigil_rules_info{version="rs-bbb"} 1
# HELP vigil_decision_latency_seconds Ingest accept (received_time) to decision produced (decided_time), for committed decisions.
# TYPE vigil_decision_latency_seconds histogram
vigil_decision_latency_seconds_bucket{le="0.001"} 0
vigil_decision_latency_seconds_bucket{le="0.0025"} 0
vigil_decision_latency_seconds_bucket{le="0.005"} 1
vigil_decision_latency_seconds_bucket{le="0.01"} 1
vigil_decision_latency_seconds_bucket{le="0.025"} 1
vigil_decision_latency_seconds_bucket{le="0.05"} 1
vigil_decision_latency_seconds_bucket{le="0.1"} 1
vigil_decision_latency_seconds_bucket{le="0.25"} 1
vigil_decision_latency_seconds_bucket{le="0.5"} 1
vigil_decision_latency_seconds_bucket{le="1"} 1
vigil_decision_latency_seconds_bucket{le="2.5"} 2
vigil_decision_latency_seconds_bucket{le="5"} 2
vigil_decision_latency_seconds_bucket{le="10"} 2
vigil_decision_latency_seconds_bucket{le="20"} 2
vigil_decision_latency_seconds_bucket{le="30"} 2
vigil_decision_latency_seconds_bucket{le="+Inf"} 2
vigil_decision_latency_seconds_sum 1.503
vigil_decision_latency_seconds_count 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"vigil_decisions_total", "vigil_model_info", "vigil_rules_info", "vigil_decision_latency_seconds"); err != nil {
		t.Fatal(err)
	}

	// Scores: the degraded decision has none; the shadow's is under its own version.
	if n := testutil.CollectAndCount(m, "vigil_score"); n != 2 {
		t.Fatalf("vigil_score series %d, want lr-1 and lr-2", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "vigil_score":
			for _, s := range mf.GetMetric() {
				h := s.GetHistogram()
				if len(h.GetBucket()) != 21 || h.GetBucket()[0].GetUpperBound() != 0 || h.GetBucket()[20].GetUpperBound() != 1 ||
					h.GetBucket()[3].GetUpperBound() != 0.15 {
					t.Errorf("score buckets %v", h.GetBucket())
				}
				want := map[string]uint64{"lr-1": 2, "lr-2": 1}[s.GetLabel()[0].GetValue()]
				if h.GetSampleCount() != want {
					t.Errorf("%v: %d scores, want %d", s.GetLabel(), h.GetSampleCount(), want)
				}
			}
		case "vigil_redis_call_duration_seconds", "vigil_postgres_call_duration_seconds":
			if len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetHistogram().GetSampleCount() != 1 {
				t.Errorf("%s: %v", mf.GetName(), mf.GetMetric())
			}
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

// TestRegisterBesideLibraryHistograms: libs/redisclient and libs/postgres register histograms of
// the same contract names; whichever registers first, both register and share one series.
func TestRegisterBesideLibraryHistograms(t *testing.T) {
	t.Parallel()
	lib := func() *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_redis_call_duration_seconds", Help: RedisHelp}, []string{"op"})
	}
	for _, libFirst := range []bool{true, false} {
		reg := prometheus.NewRegistry()
		m := New()
		libVec := lib()
		if libFirst {
			reg.MustRegister(libVec)
		}
		if err := m.Register(reg); err != nil {
			t.Fatalf("lib first %v: %v", libFirst, err)
		}
		if !libFirst {
			var are prometheus.AlreadyRegisteredError
			if err := reg.Register(libVec); !errors.As(err, &are) {
				t.Fatalf("library registering second: %v, want AlreadyRegisteredError to reuse", err)
			}
		}
		m.Redis("decision_windows_load", time.Now())
		if n, err := testutil.GatherAndCount(reg, "vigil_redis_call_duration_seconds"); err != nil || n != 1 {
			t.Errorf("lib first %v: %d series (%v)", libFirst, n, err)
		}
	}
}
