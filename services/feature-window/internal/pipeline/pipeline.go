// Package pipeline turns tx.v1 records into features.v1 records: decode, run each
// transaction's feature plan against the windows (one pipelined Redis round trip per poll),
// compute the frozen feature vector, encode. It runs inside the exactly-once loop.
package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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

// Pipeline holds the transform's dependencies.
type Pipeline struct {
	windows   Windows
	cfg       features.Config
	outTopic  string
	resultTTL time.Duration
	now       func() time.Time
	Stats     Stats
}

// New returns a pipeline writing to outTopic. resultTTL is how long the features emitted for an
// offset are kept for replays: longer than a transaction can stay uncommitted plus a restart.
func New(w Windows, cfg features.Config, outTopic string, resultTTL time.Duration, now func() time.Time) *Pipeline {
	return &Pipeline{windows: w, cfg: cfg, outTopic: outTopic, resultTTL: resultTTL, now: now}
}

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
func (p *Pipeline) Transform(ctx context.Context, in []*kgo.Record) ([]*kgo.Record, error) {
	out := make([]*kgo.Record, 0, len(in))
	txs := make([]*fraudv1.Transaction, 0, len(in))
	srcs := make([]*kgo.Record, 0, len(in))
	events := make([]features.Event, 0, len(in))
	plans := make([]features.Plan, 0, len(in))
	for _, r := range in {
		tx := &fraudv1.Transaction{}
		if err := kafka.Decode(r, tx); err != nil {
			out = append(out, kafka.DeadLetter(r, err))
			p.Stats.DeadLetters.Add(1)
			continue
		}
		if err := validate(tx); err != nil {
			out = append(out, kafka.DeadLetter(r, fmt.Errorf("%w: %v", kafka.ErrDecode, err)))
			p.Stats.DeadLetters.Add(1)
			continue
		}
		ev := Event(tx)
		txs = append(txs, tx)
		srcs = append(srcs, r)
		events = append(events, ev)
		plans = append(plans, p.Plan(r, ev))
	}
	results, err := p.windows.Apply(ctx, plans)
	if err != nil {
		return nil, err
	}
	computed := timestamppb.New(p.now())
	for i, tx := range txs {
		res := results[i]
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
			return nil, err
		}
		if res.Status == features.StatusLate {
			p.Stats.Late.Add(1)
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderLate, Value: []byte("1")})
		}
		// Carry the trace that started at ingest into the next hop.
		telemetry.Inject(telemetry.Extract(ctx, srcs[i]), rec)
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
