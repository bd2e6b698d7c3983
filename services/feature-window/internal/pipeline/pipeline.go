// Package pipeline turns tx.v1 records into features.v1 records: decode, run each
// transaction's feature plan against the windows (one pipelined Redis round trip per poll),
// compute the frozen feature vector, encode. It runs inside the exactly-once loop.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/window"
)

// HeaderLate is set to "1" on a features.v1 record whose transaction came later than the
// allowed lateness: its features were computed but it did not update the windows.
const HeaderLate = "vigil-late"

// Windows runs feature plans in order and returns their results.
type Windows interface {
	Apply(ctx context.Context, plans []features.Plan) ([]features.Result, error)
}

// Stats counts what the transform saw; read with Load.
type Stats struct {
	Transactions atomic.Int64 // valid transactions emitted, replays included
	Late         atomic.Int64 // transactions beyond the allowed lateness
	Replayed     atomic.Int64 // transactions whose offset was applied before (abort, crash, rebalance)
	Stale        atomic.Int64 // replayed after their stored result expired: features recomputed
	DeadLetters  atomic.Int64
}

// SpanName names the span of processing one tx.v1 record.
const SpanName = "feature-window process"

const tracerName = "github.com/vigil-fraud/vigil/services/feature-window/internal/pipeline"

// Pipeline holds the transform's dependencies.
type Pipeline struct {
	windows   Windows
	cfg       features.Config
	outTopic  string
	resultTTL time.Duration
	now       func() time.Time
	log       *slog.Logger
	freshness prometheus.Observer
	Stats     Stats
}

// Option adds an optional dependency.
type Option func(*Pipeline)

// WithLogger logs dead-lettered records (with their trace id) to log.
func WithLogger(log *slog.Logger) Option { return func(p *Pipeline) { p.log = log } }

// WithMetrics registers vigil_feature_freshness_seconds on reg: processing time minus event
// time, observed per transaction emitted.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(p *Pipeline) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_feature_freshness_seconds",
			Help: "Feature-window processing time minus the transaction's event time (0 when the event time is ahead).",
			// From a live stream (sub-second) to backfills and late events (hours, days).
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 7 * 24 * 3600},
		})
		reg.MustRegister(h)
		p.freshness = h
	}
}

// New returns a pipeline writing to outTopic. resultTTL is how long the features emitted for an
// offset are kept for replays: longer than a transaction can stay uncommitted plus a restart.
func New(w Windows, cfg features.Config, outTopic string, resultTTL time.Duration, now func() time.Time, opts ...Option) *Pipeline {
	p := &Pipeline{windows: w, cfg: cfg, outTopic: outTopic, resultTTL: resultTTL, now: now,
		log: slog.New(slog.DiscardHandler), freshness: discardObserver{}}
	for _, opt := range opts {
		opt(p)
	}
	return p
}

type discardObserver struct{}

func (discardObserver) Observe(float64) {}

// Event converts a transaction to what the feature definitions see.
func Event(tx *fraudv1.Transaction) features.Event {
	ch := ""
	if c := tx.GetChannel(); c != fraudv1.Channel_CHANNEL_UNSPECIFIED {
		ch = strings.ToLower(strings.TrimPrefix(c.String(), "CHANNEL_"))
	}
	return features.Event{
		TransactionID: tx.GetId(),
		AccountID:     tx.GetAccountId(),
		CardToken:     tx.GetCard().GetToken(),
		MerchantID:    tx.GetMerchantId(),
		TerminalID:    tx.GetTerminalId(),
		DeviceID:      tx.GetDeviceId(),
		Country:       tx.GetCountry(),
		Channel:       ch,
		AmountMinor:   tx.GetAmountMinor(),
		EventTime:     tx.GetEventTime().AsTime(),
	}
}

// Plan is the plan of transaction tx read from record r, guarded by r's offset.
func (p *Pipeline) Plan(r *kgo.Record, ev features.Event) features.Plan {
	return window.WithMark(features.TxPlan(p.cfg, ev), r.Topic+"/"+strconv.Itoa(int(r.Partition)), r.Offset, p.resultTTL)
}

// Transform is a kafka.Transform. Records that cannot be decoded or are invalid go to the
// dead-letter topic; a window store failure is returned so the transaction aborts and retries.
//
// Each input record gets a consumer span, child of the trace context in its headers, and its
// output record carries that span's context: the trace runs ingest → here → scoring.
func (p *Pipeline) Transform(ctx context.Context, in []*kgo.Record) ([]*kgo.Record, error) {
	out := make([]*kgo.Record, 0, len(in))
	txs := make([]*fraudv1.Transaction, 0, len(in))
	spanCtxs := make([]context.Context, 0, len(in))
	spans := make([]trace.Span, 0, len(in))
	events := make([]features.Event, 0, len(in))
	plans := make([]features.Plan, 0, len(in))
	for _, r := range in {
		sctx, span := telemetry.StartConsumerSpan(ctx, tracerName, r, SpanName)
		tx := &fraudv1.Transaction{}
		err := kafka.Decode(r, tx)
		if err == nil {
			if verr := validate(tx); verr != nil {
				err = fmt.Errorf("%w: %v", kafka.ErrDecode, verr)
			}
		}
		if err != nil {
			dl := kafka.DeadLetter(r, err)
			telemetry.Inject(sctx, dl)
			out = append(out, dl)
			p.Stats.DeadLetters.Add(1)
			p.log.WarnContext(sctx, "record sent to the dead-letter topic", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			telemetry.EndSpan(span, err)
			continue
		}
		span.SetAttributes(telemetry.TransactionID(tx.GetId()))
		ev := Event(tx)
		txs = append(txs, tx)
		spanCtxs = append(spanCtxs, sctx)
		spans = append(spans, span)
		events = append(events, ev)
		plans = append(plans, p.Plan(r, ev))
	}
	results, err := p.windows.Apply(ctx, plans)
	if err != nil {
		for _, span := range spans {
			telemetry.EndSpan(span, err)
		}
		return nil, err
	}
	now := p.now()
	computed := timestamppb.New(now)
	for i, tx := range txs {
		res := results[i]
		p.freshness.Observe(max(0, now.Sub(events[i].EventTime).Seconds()))
		p.Stats.Transactions.Add(1)
		if res.Replayed {
			p.Stats.Replayed.Add(1)
		}
		if res.Status == features.StatusReplayedStale {
			p.Stats.Stale.Add(1)
		}
		msg := &fraudv1.EnrichedTransaction{
			Transaction: tx,
			Features: &fraudv1.FeatureVector{
				SchemaVersion: features.SchemaVersion,
				SchemaHash:    features.SchemaHash(),
				Names:         features.Names,
				Values:        features.Vector(plans[i], events[i], res.Reads),
			},
			ComputedTime: computed,
		}
		rec, err := kafka.NewRecord(p.outTopic, tx.GetAccountId(), msg)
		if err != nil {
			for _, span := range spans[i:] {
				telemetry.EndSpan(span, err)
			}
			return nil, err
		}
		late := res.Status == features.StatusLate
		if late {
			p.Stats.Late.Add(1)
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderLate, Value: []byte("1")})
		}
		if spans[i].IsRecording() {
			spans[i].SetAttributes(attribute.Bool("vigil.late", late), attribute.Bool("vigil.replayed", res.Replayed))
		}
		telemetry.Inject(spanCtxs[i], rec)
		spans[i].End()
		out = append(out, rec)
	}
	return out, nil
}

func validate(tx *fraudv1.Transaction) error {
	switch {
	case tx.GetId() == "":
		return fmt.Errorf("transaction without id")
	case tx.GetAccountId() == "":
		return fmt.Errorf("transaction %s without account_id", tx.GetId())
	case tx.GetEventTime() == nil:
		return fmt.Errorf("transaction %s without event_time", tx.GetId())
	}
	return nil
}
