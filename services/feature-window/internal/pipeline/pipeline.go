// Package pipeline turns tx.v1 records into features.v1 records: decode, update the windows,
// compute the frozen feature vector, encode. It runs inside the exactly-once loop.
package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/window"
)

// Windows updates the windows and returns each event's 1-hour account count.
type Windows interface {
	AddAndCount(ctx context.Context, events []window.Event) ([]int64, error)
}

// Pipeline holds the transform's dependencies.
type Pipeline struct {
	windows  Windows
	outTopic string
	now      func() time.Time
}

// New returns a pipeline writing to outTopic.
func New(w Windows, outTopic string, now func() time.Time) *Pipeline {
	return &Pipeline{windows: w, outTopic: outTopic, now: now}
}

// Transform is a kafka.Transform. Records that cannot be decoded or are invalid go to the
// dead-letter topic; a window store failure is returned so the transaction aborts and retries.
func (p *Pipeline) Transform(ctx context.Context, in []*kgo.Record) ([]*kgo.Record, error) {
	out := make([]*kgo.Record, 0, len(in))
	txs := make([]*fraudv1.Transaction, 0, len(in))
	srcs := make([]*kgo.Record, 0, len(in))
	events := make([]window.Event, 0, len(in))
	for _, r := range in {
		tx := &fraudv1.Transaction{}
		if err := kafka.Decode(r, tx); err != nil {
			out = append(out, kafka.DeadLetter(r, err))
			continue
		}
		if err := validate(tx); err != nil {
			out = append(out, kafka.DeadLetter(r, fmt.Errorf("%w: %v", kafka.ErrDecode, err)))
			continue
		}
		txs = append(txs, tx)
		srcs = append(srcs, r)
		events = append(events, window.Event{AccountID: tx.GetAccountId(), TransactionID: tx.GetId(), EventTime: tx.GetEventTime().AsTime()})
	}
	counts, err := p.windows.AddAndCount(ctx, events)
	if err != nil {
		return nil, err
	}
	computed := timestamppb.New(p.now())
	for i, tx := range txs {
		values := features.Compute(features.Input{
			AmountMinor:    tx.GetAmountMinor(),
			EventTime:      tx.GetEventTime().AsTime(),
			AccountCount1h: counts[i],
		})
		msg := &fraudv1.EnrichedTransaction{
			Transaction: tx,
			Features: &fraudv1.FeatureVector{
				SchemaVersion: features.SchemaVersion,
				SchemaHash:    features.SchemaHash(),
				Names:         features.Names,
				Values:        values,
			},
			ComputedTime: computed,
		}
		rec, err := kafka.NewRecord(p.outTopic, tx.GetAccountId(), msg)
		if err != nil {
			return nil, err
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
