package harness

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PhaseResult is one open-loop phase after its decisions have been collected.
type PhaseResult struct {
	Prefix       string              `json:"prefix"`
	Warmup       bool                `json:"warmup,omitempty"` // not part of the headline or find-max
	Plan         Plan                `json:"plan"`
	OfferedRate  float64             `json:"offered_tx_per_s"`
	Sent         int                 `json:"sent"`
	Acked        int                 `json:"acked"`
	AckedRate    float64             `json:"acked_tx_per_s"`
	Decided      int                 `json:"decided"`
	E2ERate      float64             `json:"end_to_end_tx_per_s"` // decisions persisted per second, first receipt → last persist
	ByStatus     map[string]int      `json:"by_status"`
	ErrorSamples map[string][]string `json:"error_samples,omitempty"`
	Ack          Summary             `json:"ack_latency"`              // intended send → HTTP answer
	E2E          Summary             `json:"end_to_end_latency"`       // ingest receipt → decision row
	E2EFromSend  Summary             `json:"send_to_decision_latency"` // intended send → decision row
	// The end-to-end latency in two stages: ingest receipt → scoring's decision (ingest publish,
	// feature-window and scoring, two exactly-once hops) and decision → row (the decision's
	// transaction commit and the sink).
	ToDecision Summary `json:"receipt_to_decision_latency"`
	ToRow      Summary `json:"decision_to_row_latency"`
	// receipt → decision split where feature-window produced the features: ingest publish plus
	// feature-window's fetch and transform, then feature-window's commit plus scoring's fetch
	// and transform up to the decision. Empty without Runner.FeatureTimes.
	ToFeatures         Summary `json:"receipt_to_features_latency"`
	FeaturesToDecision Summary `json:"features_to_decision_latency"`
	DriverLagging      int     `json:"driver_late_arrivals"`
	LagGrowing         bool    `json:"lag_growing"`
	Sustainable        bool    `json:"sustainable"` // keeps up and meets the SLO
	KeepsUp            bool    `json:"keeps_up"`    // every ack decided in time, lag not growing, generator on time
	Why                string  `json:"why,omitempty"`
	StartSec           float64 `json:"start_s"` // on the lag sampler's clock
	EndSec             float64 `json:"end_s"`
	AckSeries          []Point `json:"ack_series"`
	E2ESeries          []Point `json:"e2e_series"`

	load *LoadResult
	rows []DecisionRow
}

// PhaseConfig bounds one phase.
type PhaseConfig struct {
	Plan        Plan
	Count       int           // at most this many arrivals (0: the plan decides)
	Drain       time.Duration // how long to wait for decisions after the last ack
	SLO         time.Duration // p99 end-to-end objective
	MaxLateFrac float64       // driver late arrivals tolerated (fraction)
	Warmup      bool
}

// Runner drives phases against one stack and keeps what the checker needs.
type Runner struct {
	Target Target
	Work   *Workload
	Pool   *pgxpool.Pool
	Lag    *LagSampler
	RunID  string
	Log    *slog.Logger
	// FeatureTimes, when set, returns when each transaction of a prefix had its features
	// produced (FeatureTimes over the stack's features topic).
	FeatureTimes func(ctx context.Context, prefix string) (map[string]time.Time, error)
	next         int
	phases       []*PhaseResult
}

// Phase runs one open-loop phase under its own id prefix and collects its decisions.
func (r *Runner) Phase(ctx context.Context, cfg PhaseConfig) (*PhaseResult, error) {
	prefix := fmt.Sprintf("%s%d", r.RunID, len(r.phases))
	p := &PhaseResult{Prefix: prefix, Plan: cfg.Plan, Warmup: cfg.Warmup, StartSec: time.Since(r.Lag.start).Seconds()}
	arrivals := len(cfg.Plan.Arrivals(cfg.Count))
	p.OfferedRate = float64(arrivals) / cfg.Plan.Duration().Seconds()
	r.Log.Info("phase", "prefix", prefix, "plan", fmt.Sprint(cfg.Plan), "arrivals", arrivals)
	drive := Drive
	if r.Target.Batch > 1 {
		drive = DriveBatched
	}
	load, err := drive(ctx, r.Target, r.Work, r.next, prefix, cfg.Plan, cfg.Count)
	if load != nil {
		r.next += len(load.Records)
	}
	if err != nil {
		return nil, err
	}
	p.load = load
	p.Sent, p.Acked, p.ByStatus, p.DriverLagging = len(load.Records), load.Acked(), load.ByStatus, load.Lagging
	p.ErrorSamples = load.Samples
	if load.SendSpan > 0 {
		p.AckedRate = float64(p.Acked) / load.SendSpan.Seconds()
	}
	p.Ack, p.AckSeries = load.Ack.Summary(), load.AckSeries.Points()
	dctx, cancel := context.WithTimeout(ctx, cfg.Drain)
	defer cancel()
	if _, err := WaitDecisions(dctx, r.Pool, prefix, p.Acked, min(cfg.Drain, 15*time.Second)); err != nil {
		return nil, err
	}
	p.EndSec = time.Since(r.Lag.start).Seconds()
	rows, err := LoadDecisions(ctx, r.Pool, prefix)
	if err != nil {
		return nil, err
	}
	p.rows = rows
	p.Decided = len(rows)
	intended := make(map[string]time.Time, len(load.Records))
	for _, s := range load.Records {
		intended[s.StoredID] = s.Intended
	}
	e2e, fromSend, toDecision, toRow := NewHistogram(), NewHistogram(), NewHistogram(), NewHistogram()
	toFeatures, featuresToDecision := NewHistogram(), NewHistogram()
	var featuresAt map[string]time.Time
	if r.FeatureTimes != nil {
		if featuresAt, err = r.FeatureTimes(ctx, prefix); err != nil {
			r.Log.Warn("features timestamps unavailable; receipt→decision is not split", "err", err)
		}
	}
	series := NewSeries(load.Start)
	var first, last time.Time
	for _, d := range rows {
		e2e.Record(d.PersistedAt.Sub(d.ReceivedAt))
		toDecision.Record(d.DecidedAt.Sub(d.ReceivedAt))
		toRow.Record(d.PersistedAt.Sub(d.DecidedAt))
		if at, ok := featuresAt[d.TransactionID]; ok {
			toFeatures.Record(at.Sub(d.ReceivedAt))
			featuresToDecision.Record(d.DecidedAt.Sub(at))
		}
		if at, ok := intended[d.TransactionID]; ok {
			fromSend.Record(d.PersistedAt.Sub(at))
			series.Record(at, d.PersistedAt.Sub(d.ReceivedAt))
		}
		if first.IsZero() || d.ReceivedAt.Before(first) {
			first = d.ReceivedAt
		}
		if d.PersistedAt.After(last) {
			last = d.PersistedAt
		}
	}
	p.E2E, p.E2ESeries, p.E2EFromSend = e2e.Summary(), series.Points(), fromSend.Summary()
	p.ToDecision, p.ToRow = toDecision.Summary(), toRow.Summary()
	p.ToFeatures, p.FeaturesToDecision = toFeatures.Summary(), featuresToDecision.Summary()
	if len(rows) > 1 {
		p.E2ERate = float64(len(rows)) / last.Sub(first).Seconds()
	}
	var totals []float64
	for _, s := range r.Lag.Samples() {
		if s.AtSec >= p.StartSec && s.AtSec <= p.StartSec+cfg.Plan.Duration().Seconds() {
			var t int64
			for _, v := range s.Lag {
				t += v
			}
			totals = append(totals, float64(t))
		}
	}
	p.LagGrowing = LagGrowing(totals, p.OfferedRate)
	p.Sustainable, p.Why = judge(p, cfg)
	p.KeepsUp, _ = judge(p, PhaseConfig{MaxLateFrac: cfg.MaxLateFrac})
	r.phases = append(r.phases, p)
	r.Log.Info("phase done", "prefix", prefix, "acked", p.Acked, "decided", p.Decided, "ack_p99_ms", p.Ack.P99MS,
		"e2e_p99_ms", p.E2E.P99MS, "e2e_tx_per_s", p.E2ERate, "sustainable", p.Sustainable, "why", p.Why)
	return p, nil
}

func judge(p *PhaseResult, cfg PhaseConfig) (bool, string) {
	var why []string
	if p.Acked < p.Sent {
		why = append(why, fmt.Sprintf("%d of %d not acknowledged", p.Sent-p.Acked, p.Sent))
	}
	if p.Decided < p.Acked {
		why = append(why, fmt.Sprintf("%d of %d acknowledged not decided within the drain time", p.Acked-p.Decided, p.Acked))
	}
	if cfg.SLO > 0 && p.E2E.P99MS > float64(cfg.SLO.Milliseconds()) {
		why = append(why, fmt.Sprintf("p99 end-to-end %.1f ms > SLO %s", p.E2E.P99MS, cfg.SLO))
	}
	if p.LagGrowing {
		why = append(why, "consumer lag kept growing")
	}
	if cfg.MaxLateFrac > 0 && float64(p.DriverLagging) > cfg.MaxLateFrac*float64(p.Sent) {
		why = append(why, fmt.Sprintf("the load generator itself fell behind on %d arrivals", p.DriverLagging))
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// LagGrowing reads total lag sampled once a second during a phase: it keeps growing when the
// second half ends above a second's worth of arrivals and rose over that half by more than a
// tenth of the rate per second. A queue that merely breathes with batches does neither.
func LagGrowing(totals []float64, rate float64) bool {
	if len(totals) < 4 {
		return false
	}
	half := totals[len(totals)/2:]
	n := float64(len(half))
	var sx, sy, sxy, sxx float64
	for i, y := range half {
		x := float64(i)
		sx, sy, sxy, sxx = sx+x, sy+y, sxy+x*y, sxx+x*x
	}
	slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	return half[len(half)-1] > max(rate, 100) && slope > 0.1*rate
}

// ServerErrors counts the phase's 5xx answers.
func (p *PhaseResult) ServerErrors() int {
	n := 0
	for k, v := range p.ByStatus {
		if len(k) == 3 && k[0] == '5' {
			n += v
		}
	}
	return n
}

// Phases returns the phases run so far.
func (r *Runner) Phases() []*PhaseResult { return r.phases }

// CheckAll loads alerts and runs the checker over every phase of the run.
func (r *Runner) CheckAll(ctx context.Context, serverErrors int) ([]Violation, Quality, Quality, error) {
	in := CheckInput{Sent: map[string]Outcome{}, Decisions: map[string]int{}, DecisionOf: map[string]string{}, AlertsPer: map[string]int{}, ServerErrors: serverErrors}
	truth := map[string]bool{}
	flagged, alerted := map[string]bool{}, map[string]bool{}
	var decided []string
	for _, p := range r.phases {
		for _, s := range p.load.Records {
			in.Sent[s.StoredID] = s.Outcome
			truth[s.StoredID] = s.Fraud
		}
		// Late decisions (after the phase's drain) count too: reload the prefix.
		rows, err := LoadDecisions(ctx, r.Pool, p.Prefix)
		if err != nil {
			return nil, Quality{}, Quality{}, err
		}
		for _, d := range rows {
			in.Decisions[d.TransactionID]++
			in.DecisionOf[d.DecisionID] = d.TransactionID
			decided = append(decided, d.TransactionID)
			if d.Action == "review" || d.Action == "decline" {
				flagged[d.TransactionID] = true
			}
		}
		alerts, err := LoadAlerts(ctx, r.Pool, p.Prefix)
		if err != nil {
			return nil, Quality{}, Quality{}, err
		}
		for d, n := range alerts {
			in.AlertsPer[d] += n
			if tx, ok := in.DecisionOf[d]; ok {
				alerted[tx] = true
			}
		}
	}
	sort.Strings(decided)
	q := Measure(truth, flagged, decided)
	aq := Measure(truth, alerted, decided)
	aq.FlaggedByAlert = true
	return Check(in), q, aq, nil
}

// WaitAlerting waits until the alerting consumer has read as far as the decision sink (both
// consume the decisions topic), so alert counts are final, or until d passes.
func WaitAlerting(ctx context.Context, pool *pgxpool.Pool, s *Stack, d time.Duration) bool {
	if len(s.PGConsumers) < 2 {
		return false
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var sink, al int64
		_ = pool.QueryRow(ctx, `SELECT coalesce(sum(next_offset) FILTER (WHERE consumer = $1), 0), coalesce(sum(next_offset) FILTER (WHERE consumer = $2), 0)
			FROM kafka_offsets WHERE topic = $3`, s.PGConsumers[0], s.PGConsumers[1], s.Topics.Decisions).Scan(&sink, &al)
		if al >= sink && sink > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
	return false
}
