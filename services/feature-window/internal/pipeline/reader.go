package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaReader returns a Reader on brokers. It stops at the first record at or after to-1 (tx.v1
// producers are not transactional, so to-1 is a record when to is an end offset). Each call uses its own short-lived client with no
// consumer group, read-committed, so aborted records are never folded. It gives up after
// timeout without reaching to (the caller's transaction then aborts and retries).
func KafkaReader(brokers []string, timeout time.Duration, opts ...kgo.Opt) Reader {
	return func(ctx context.Context, topic string, partition int32, from, to int64, fn func(*kgo.Record) error) error {
		if from >= to {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(brokers...),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
			// Offsets below the log start (retention) restart at the earliest retained record.
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		}, opts...)...)
		if err != nil {
			return err
		}
		defer cl.Close()
		for {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return fmt.Errorf("read %s/%d [%d, %d): %w", topic, partition, from, to, ctx.Err())
			}
			var ferr error
			fetches.EachError(func(_ string, _ int32, err error) { ferr = err })
			if ferr != nil {
				return fmt.Errorf("read %s/%d: %w", topic, partition, ferr)
			}
			done := false
			var cbErr error
			fetches.EachRecord(func(r *kgo.Record) {
				if done || cbErr != nil {
					return
				}
				if r.Offset >= to {
					done = true
					return
				}
				cbErr = fn(r)
				done = r.Offset == to-1
			})
			if cbErr != nil {
				return cbErr
			}
			if done {
				return nil
			}
		}
	}
}
