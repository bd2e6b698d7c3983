package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/services/feature-window/internal/labels"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/pipeline"
)

// rebuild re-derives the windows after Redis lost them: it reads tx.v1 and then labels.v1 from
// their earliest retained offsets (read-committed, no consumer group, nothing produced) and runs
// every record through the same plans as the stream. The applied-offset marks make it safe to
// run twice, interrupted, or while the service runs; windows older than the topics' retention
// cannot come back. It stops when the topics have been quiet for idle.
func rebuild(ctx context.Context, cfg Config, pipe *pipeline.Pipeline, a *labels.Applier, log *slog.Logger) error {
	const idle = 5 * time.Second
	for _, step := range []struct {
		topic string
		apply func(context.Context, []*kgo.Record) error
	}{
		{cfg.Kafka.Topics.Tx, func(ctx context.Context, recs []*kgo.Record) error { _, err := pipe.Transform(ctx, recs); return err }},
		{cfg.Kafka.Topics.Labels, func(ctx context.Context, recs []*kgo.Record) error { _, err := a.Apply(ctx, recs); return err }},
	} {
		n, err := replayTopic(ctx, cfg.Kafka.Brokers, step.topic, idle, step.apply)
		if err != nil {
			return fmt.Errorf("rebuild from %s: %w", step.topic, err)
		}
		log.Info("rebuilt windows", "topic", step.topic, "records", n)
	}
	return nil
}

func replayTopic(ctx context.Context, brokers []string, topic string, idle time.Duration, apply func(context.Context, []*kgo.Record) error) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	total := 0
	for {
		pctx, cancel := context.WithTimeout(ctx, idle)
		fetches := cl.PollRecords(pctx, 1000)
		cancel()
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		recs := fetches.Records()
		if len(recs) == 0 {
			return total, nil
		}
		for {
			err := apply(ctx, recs)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return total, ctx.Err()
			case <-time.After(time.Second):
			}
		}
		total += len(recs)
	}
}
