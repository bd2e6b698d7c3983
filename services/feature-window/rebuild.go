package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/services/feature-window/internal/labels"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/pipeline"
)

// rebuild re-derives the windows after Redis lost them: every tx.v1 partition is caught up from
// its Redis checkpoint (the earliest retained offset when the checkpoint is gone) to its end,
// exactly as the service catches up after a crash, then labels.v1 is applied from the earliest
// offset. Checkpoints are compare-and-set, so it is safe to repeat, to interrupt, or to run next
// to the service (which would catch up by itself anyway). Windows older than the topics'
// retention cannot come back.
func rebuild(ctx context.Context, cfg Config, pipe *pipeline.Pipeline, a *labels.Applier, log *slog.Logger) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, cfg.Kafka.Topics.Tx)
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", cfg.Kafka.Topics.Tx, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("end offsets of %s: %w", cfg.Kafka.Topics.Tx, err)
	}
	var failed error
	ends.Each(func(o kadm.ListedOffset) {
		if failed != nil {
			return
		}
		n, err := pipe.CatchUpTo(ctx, o.Topic, o.Partition, o.Offset)
		if err != nil {
			failed = fmt.Errorf("rebuild %s/%d: %w", o.Topic, o.Partition, err)
			return
		}
		log.Info("rebuilt windows", "topic", o.Topic, "partition", o.Partition, "end", o.Offset, "records", n)
	})
	if failed != nil {
		return failed
	}
	n, err := replayTopic(ctx, cfg.Kafka.Brokers, cfg.Kafka.Topics.Labels, 5*time.Second,
		func(ctx context.Context, recs []*kgo.Record) error { _, err := a.Apply(ctx, recs); return err })
	if err != nil {
		return fmt.Errorf("rebuild from %s: %w", cfg.Kafka.Topics.Labels, err)
	}
	log.Info("rebuilt windows", "topic", cfg.Kafka.Topics.Labels, "records", n)
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
