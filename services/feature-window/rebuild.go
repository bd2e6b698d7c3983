package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/services/feature-window/internal/labels"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/pipeline"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/window"
)

// rebuild re-derives the windows after Redis lost them: every tx.v1 partition is caught up from
// its Redis checkpoint (the earliest retained offset when the checkpoint is gone) to the
// service group's committed offset, exactly as the service catches up after a crash, then labels.v1 is applied from the earliest
// offset. Checkpoints are compare-and-set, so it is safe to repeat, to interrupt, or to run next
// to the service (which would catch up by itself anyway). Windows older than the topics'
// retention cannot come back.
func rebuild(ctx context.Context, cfg Config, pipe *pipeline.Pipeline, a *labels.Applier, log *slog.Logger) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	// Up to the group's committed offsets, not the topic's end: what lies beyond was not
	// emitted yet, and the service must still process (and emit) it. Folding it here would
	// mark those transactions as seen and the service would drop them as duplicates.
	committed, err := kadm.NewClient(cl).FetchOffsets(ctx, cfg.Group)
	if err != nil {
		return fmt.Errorf("committed offsets of %s: %w", cfg.Group, err)
	}
	if err := committed.Error(); err != nil {
		return fmt.Errorf("committed offsets of %s: %w", cfg.Group, err)
	}
	var ends []kadm.OffsetResponse
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == cfg.Kafka.Topics.Tx && o.At >= 0 {
			ends = append(ends, o)
		}
	})
	var failed error
	for _, o := range ends {
		if failed != nil {
			break
		}
		var n int64
		var err error
		for attempt := 0; attempt < 10; attempt++ {
			// A running service checkpoints the same partition: when it moved the checkpoint
			// first, read it again and catch up from there.
			if n, err = pipe.CatchUpTo(ctx, o.Topic, o.Partition, o.At); !errors.Is(err, window.ErrConflict) {
				break
			}
			log.Info("checkpoint moved by another writer; rebuilding the partition from its new checkpoint", "topic", o.Topic, "partition", o.Partition)
		}
		if err != nil {
			failed = fmt.Errorf("rebuild %s/%d: %w", o.Topic, o.Partition, err)
			break
		}
		log.Info("rebuilt windows", "topic", o.Topic, "partition", o.Partition, "committed", o.At, "records", n)
	}
	if failed != nil {
		return failed
	}
	n, err := replayTopic(ctx, cfg.Kafka.Brokers, cfg.Kafka.Topics.Labels,
		func(ctx context.Context, recs []*kgo.Record) error { _, err := a.Apply(ctx, recs); return err })
	if err != nil {
		return fmt.Errorf("rebuild from %s: %w", cfg.Kafka.Topics.Labels, err)
	}
	log.Info("rebuilt windows", "topic", cfg.Kafka.Topics.Labels, "records", n)
	return nil
}

// replayTopic applies every committed record of topic, from the earliest retained offset to
// each partition's last stable offset when it starts. The end is known up front, not guessed
// from a quiet moment: on a loaded machine the first fetch alone can take seconds, and a
// replay that stopped early would leave the terminal risk windows without their labels.
// Control records (transaction markers) are kept so that an offset can be seen up to the end
// even when the last record there is a marker.
func replayTopic(ctx context.Context, brokers []string, topic string, apply func(context.Context, []*kgo.Record) error) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.KeepControlRecords(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic) // read-committed: the last stable offsets
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	left := map[int32]int64{} // partition → its end, while records below it are unread
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(topic, o.Partition); !ok || s.Offset < o.Offset {
			left[o.Partition] = o.Offset
		}
	})
	total := 0
	for len(left) > 0 {
		fetches := cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		var recs []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				recs = append(recs, r)
			}
			if r.Offset >= end-1 {
				delete(left, r.Partition)
			}
		})
		for len(recs) > 0 {
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
	return total, nil
}
