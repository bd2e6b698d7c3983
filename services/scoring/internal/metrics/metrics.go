// Package metrics holds scoring's Prometheus series of the deploy/observability contract:
// vigil_decisions_total, vigil_score, vigil_decision_latency_seconds, vigil_model_info,
// vigil_rules_info, vigil_redis_call_duration_seconds and vigil_postgres_call_duration_seconds.
//
// Decisions count once their Kafka transaction committed. The transform runs before the
// transaction ends, so a batch's observations are staged and settled afterwards: by Ended when
// the exactly-once loop reports the outcome, or else by comparing the loop's committed/aborted
// counters (SetOutcome) at the next batch and at scrape time. A retried batch (abort, rebalance,
// crash) therefore never counts twice.
package metrics

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/libs/telemetry"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
)

// ScoreBuckets are 0, 0.05, …, 1: scores are probabilities.
var ScoreBuckets = func() []float64 {
	b := make([]float64, 21)
	for i := range b {
		b[i] = float64(i) / 20
	}
	return b
}()

// LatencyBuckets span ingest accept → decision from 1 ms to 30 s (a backlog after an outage).
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30}

// RedisHelp and PostgresHelp are, word for word, the help of the histograms of the same names
// that libs/redisclient (Instrument) and libs/postgres (WithMetrics) register: a registry only
// lets two registrations of one name share the series when the help is identical. Scoring's
// op values name its calls (decision_windows_load, sink_insert_decisions, ...), the libraries'
// the command (pipeline, batch, select, ...).
const (
	RedisHelp    = "Redis round trips by command (op) or pipeline, errors included."
	PostgresHelp = "Postgres round trips by op: first SQL keyword of a statement, batch or copy; errors included."
)

// Outcome returns the exactly-once loop's counters of committed and aborted transactions
// (kafka.EOS.Stats); both only grow, and exactly one grows when a transaction ends.
type Outcome func() (committed, aborted int64)

// observation is what one decision contributes, kept small while its transaction is open.
type observation struct {
	action        string
	modelVersion  string
	score         float64
	modelOK       bool
	shadowVersion string
	shadowScore   float64
	latency       float64 // seconds; < 0: no received time
}

// Metrics holds the series; Register adds them to a registry.
type Metrics struct {
	decisions *prometheus.CounterVec
	score     *prometheus.HistogramVec
	latency   prometheus.Histogram
	redis     *prometheus.HistogramVec
	postgres  *prometheus.HistogramVec
	modelInfo *prometheus.GaugeVec
	rulesInfo *prometheus.GaugeVec

	mu      sync.Mutex
	outcome Outcome
	pending []observation
	// committed0, aborted0 are the loop's counters when pending was staged.
	committed0, aborted0 int64
	infoMu               sync.Mutex
}

// New returns the series, not yet registered.
func New() *Metrics {
	return &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_decisions_total",
			Help: "Decisions in committed Kafka transactions of decisions.v1, by action (a retried batch counts once).",
		}, []string{"action"}),
		score: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_score",
			Help:    "Model scores of committed decisions, by model version (the shadow model's under its own version; degraded decisions have none).",
			Buckets: ScoreBuckets,
		}, []string{"model_version"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_decision_latency_seconds",
			Help:    "Ingest accept (received_time) to decision produced (decided_time), for committed decisions.",
			Buckets: LatencyBuckets,
		}),
		redis: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_redis_call_duration_seconds", Help: RedisHelp, Buckets: telemetry.LatencyBuckets,
		}, []string{"op"}),
		postgres: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_postgres_call_duration_seconds", Help: PostgresHelp, Buckets: telemetry.LatencyBuckets,
		}, []string{"op"}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_model_info", Help: "1 for the primary model in use; labels name its version and feature schema.",
		}, []string{"version", "feature_schema"}),
		rulesInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_rules_info", Help: "1 for the active rule set; the label names its version.",
		}, []string{"version"}),
	}
}

// Register adds the series to reg. The Redis and Postgres histograms are registered on their own
// and, when reg already has a histogram of that name (libs/redisclient.Instrument and
// libs/postgres.WithMetrics register the same contract names), that one is reused, so the two
// never collide whichever registers first.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	if err := reg.Register(m); err != nil {
		return fmt.Errorf("register scoring metrics: %w", err)
	}
	var err error
	if m.redis, err = registerOrReuse(reg, m.redis); err != nil {
		return err
	}
	m.postgres, err = registerOrReuse(reg, m.postgres)
	return err
}

func registerOrReuse(reg prometheus.Registerer, h *prometheus.HistogramVec) (*prometheus.HistogramVec, error) {
	h, err := telemetry.RegisterOrReuse(reg, h)
	if err != nil {
		return nil, fmt.Errorf("register scoring metrics: %w", err)
	}
	return h, nil
}

// collectors are the series Collect serves; the Redis and Postgres histograms are registered
// separately (see Register).
func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.decisions, m.score, m.latency, m.modelInfo, m.rulesInfo}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector. It first settles a batch whose transaction has
// ended since, so an idle scorer's last batch shows up at the next scrape.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	m.settleLocked(false)
	m.mu.Unlock()
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

// SetOutcome makes Batch settle by the loop's counters. Without it (and without Ended calls)
// a batch counts as soon as it is decided: attempts, not commits.
func (m *Metrics) SetOutcome(o Outcome) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outcome = o
}

// Batch stages the decisions of one transform call (one Kafka transaction). The loop runs one
// transaction at a time, so the previous batch's transaction has ended by now: it is settled
// first, and dropped when the counters show no commit.
func (m *Metrics) Batch(ds []*fraudv1.Decision) {
	obs := make([]observation, 0, len(ds))
	for _, d := range ds {
		o := observation{
			action: actionLabel(d.GetAction()), modelVersion: d.GetModelVersion(), score: d.GetScore(), modelOK: decide.ModelOK(d),
			shadowVersion: d.GetShadowModelVersion(), shadowScore: d.GetShadowScore(), latency: -1,
		}
		if r, dt := d.GetReceivedTime(), d.GetDecidedTime(); r != nil && dt != nil {
			o.latency = max(0, dt.AsTime().Sub(r.AsTime()).Seconds())
		}
		obs = append(obs, o)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.outcome == nil {
		m.apply(obs)
		return
	}
	m.settleLocked(true)
	m.pending = obs
	m.committed0, m.aborted0 = m.outcome()
}

// Ended settles the staged batch with its transaction's outcome, for a loop that reports it
// (the EOS end hook); it replaces the counter comparison.
func (m *Metrics) Ended(committed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if committed {
		m.apply(m.pending)
	}
	m.pending = nil
}

// settleLocked applies or drops the pending batch once the counters show how its transaction
// ended. final (a new batch started) drops a batch whose end moved neither counter: the loop
// failed to end it and replaces the session, so its input is processed again.
func (m *Metrics) settleLocked(final bool) {
	if len(m.pending) == 0 || m.outcome == nil {
		return
	}
	c, a := m.outcome()
	switch {
	case c > m.committed0:
		m.apply(m.pending)
	case a > m.aborted0 || final:
	default:
		return
	}
	m.pending = nil
}

func (m *Metrics) apply(obs []observation) {
	for _, o := range obs {
		m.decisions.WithLabelValues(o.action).Inc()
		if o.modelOK {
			m.score.WithLabelValues(o.modelVersion).Observe(o.score)
		}
		if o.shadowVersion != "" {
			m.score.WithLabelValues(o.shadowVersion).Observe(o.shadowScore)
		}
		if o.latency >= 0 {
			m.latency.Observe(o.latency)
		}
	}
}

// ModelLoaded makes version the one model reported by vigil_model_info.
func (m *Metrics) ModelLoaded(version, featureSchema string) {
	m.infoMu.Lock()
	defer m.infoMu.Unlock()
	m.modelInfo.Reset()
	m.modelInfo.WithLabelValues(version, featureSchema).Set(1)
}

// RulesLoaded makes version the one rule set reported by vigil_rules_info.
func (m *Metrics) RulesLoaded(version string) {
	m.infoMu.Lock()
	defer m.infoMu.Unlock()
	m.rulesInfo.Reset()
	m.rulesInfo.WithLabelValues(version).Set(1)
}

// Redis records one Redis round trip of op that started at start.
func (m *Metrics) Redis(op string, start time.Time) {
	m.redis.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// Postgres records one Postgres call of op that started at start.
func (m *Metrics) Postgres(op string, start time.Time) {
	m.postgres.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// actionLabel is decide.ActionName, but a value this build does not know is "unspecified":
// label values stay bounded.
func actionLabel(a fraudv1.Action) string {
	if _, known := fraudv1.Action_name[int32(a)]; !known {
		return "unspecified"
	}
	return decide.ActionName(a)
}
