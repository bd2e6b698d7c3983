// Package labels feeds labels.v1 into the terminal fraud windows. A label's plan is applied at
// most once (keyed by transaction id in Redis), so the consumer can commit offsets after
// applying: a crash between the two replays labels harmlessly.
package labels

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// Windows applies labels to the terminal windows, each at most once per transaction.
type Windows interface {
	ApplyLabels(ctx context.Context, labels []features.Label) (applied, duplicates int, err error)
}

// Stats counts labels; read with Load.
type Stats struct {
	Applied     atomic.Int64
	Duplicates  atomic.Int64
	DeadLetters atomic.Int64
}

// Convert maps a label message to the feature definitions' label; ok is false for labels that
// carry no verdict (unsure, unspecified).
func Convert(l *fraudv1.Label) (features.Label, bool, error) {
	switch {
	case l.GetTransactionId() == "":
		return features.Label{}, false, errors.New("label without transaction_id")
	case l.GetTransactionTime() == nil:
		return features.Label{}, false, fmt.Errorf("label of %s without transaction_time", l.GetTransactionId())
	case l.GetLabelledTime() == nil:
		return features.Label{}, false, fmt.Errorf("label of %s without labelled_time", l.GetTransactionId())
	}
	v := l.GetValue()
	if v != fraudv1.LabelValue_LABEL_VALUE_FRAUD && v != fraudv1.LabelValue_LABEL_VALUE_LEGITIMATE {
		return features.Label{}, false, nil
	}
	return features.Label{
		TransactionID:   l.GetTransactionId(),
		TerminalID:      l.GetTerminalId(),
		Fraud:           v == fraudv1.LabelValue_LABEL_VALUE_FRAUD,
		TransactionTime: l.GetTransactionTime().AsTime(),
		KnownAt:         l.GetLabelledTime().AsTime(),
	}, true, nil
}

// Applier turns label records into applied plans and dead letters.
type Applier struct {
	Windows Windows
	Stats   Stats
}

// Apply applies the labels in recs and returns the dead letters of the bad ones.
func (a *Applier) Apply(ctx context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
	var dead []*kgo.Record
	var ls []features.Label
	for _, r := range recs {
		msg := &fraudv1.Label{}
		err := kafka.Decode(r, msg)
		var l features.Label
		ok := false
		if err == nil {
			l, ok, err = Convert(msg)
		}
		if err != nil {
			dead = append(dead, kafka.DeadLetter(r, fmt.Errorf("%w: %v", kafka.ErrDecode, err)))
			a.Stats.DeadLetters.Add(1)
			continue
		}
		if ok {
			ls = append(ls, l)
		}
	}
	applied, dup, err := a.Windows.ApplyLabels(ctx, ls)
	if err != nil {
		return nil, err
	}
	a.Stats.Applied.Add(int64(applied))
	a.Stats.Duplicates.Add(int64(dup))
	return dead, nil
}

// Consumer reads labels.v1 in its own consumer group.
type Consumer struct {
	cl      *kgo.Client
	applier *Applier
	log     *slog.Logger
}

// NewConsumer returns a consumer of topic in group; Run starts it.
func NewConsumer(brokers []string, group, topic string, a *Applier, log *slog.Logger) (*Consumer, error) {
	cl, err := kgo.NewClient(append(kafka.ProducerOptions(brokers),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("labels consumer: %w", err)
	}
	return &Consumer{cl: cl, applier: a, log: log.With("consumer", "labels")}, nil
}

// Run consumes until ctx ends. A Redis failure pauses and retries the same records.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.cl.Close()
	for {
		fetches := c.cl.PollRecords(ctx, 500)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			c.cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		})
		recs := fetches.Records()
		for len(recs) > 0 {
			if err := c.process(ctx, recs); err != nil {
				c.log.Error("labels not applied; retrying", "records", len(recs), "err", err)
				select {
				case <-ctx.Done():
					c.cl.AllowRebalance()
					return nil
				case <-time.After(time.Second):
				}
				continue
			}
			break
		}
		c.cl.AllowRebalance()
	}
}

func (c *Consumer) process(ctx context.Context, recs []*kgo.Record) error {
	dead, err := c.applier.Apply(ctx, recs)
	if err != nil {
		return err
	}
	if len(dead) > 0 {
		if err := c.cl.ProduceSync(ctx, dead...).FirstErr(); err != nil {
			return fmt.Errorf("dead-letter labels: %w", err)
		}
	}
	if err := c.cl.CommitRecords(ctx, recs...); err != nil {
		return fmt.Errorf("commit labels: %w", err)
	}
	return nil
}
