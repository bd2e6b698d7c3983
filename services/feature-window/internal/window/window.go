// Package window keeps per-account event-time windows in Redis.
//
// Each account has a sorted set of its transaction ids scored by event time. Adding is keyed by
// transaction id, so re-processing a record after an aborted Kafka transaction, a crash or a
// rebalance never counts it twice, and the count is taken as of the transaction's own event
// time, so a replay returns what the first run returned. (The tiled counters of the
// feature-window issue replace this for the 30-day windows, where a member per transaction
// costs too much memory.)
package window

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event is one transaction's contribution to its account's window.
type Event struct {
	AccountID     string
	TransactionID string
	EventTime     time.Time
}

// Store is the Redis adapter.
type Store struct {
	rdb    redis.Cmdable
	prefix string
	window time.Duration
	// retain is how far back of an event members are kept: the window plus slack for
	// transactions that arrive late.
	retain time.Duration
}

// New returns a store for windows of length window.
func New(rdb redis.Cmdable, keyPrefix string, window time.Duration) *Store {
	return &Store{rdb: rdb, prefix: keyPrefix, window: window, retain: 2 * window}
}

//go:embed count.lua
var countSrc string

var countScript = redis.NewScript(countSrc)

func (s *Store) key(account string) string { return s.prefix + "fw:acct:{" + account + "}:tx" }

// AddAndCount records each event and returns, per event, the number of the account's
// transactions in (event_time - window, event_time], itself included. One pipelined round trip
// for the whole batch.
func (s *Store) AddAndCount(ctx context.Context, events []Event) ([]int64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	// Load once so the pipeline can use EVALSHA; a flushed script cache costs one retry.
	if err := countScript.Load(ctx, s.rdb).Err(); err != nil {
		return nil, fmt.Errorf("load window script: %w", err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(events))
	for i, ev := range events {
		ms := ev.EventTime.UnixMilli()
		cmds[i] = countScript.EvalSha(ctx, pipe, []string{s.key(ev.AccountID)},
			ev.TransactionID, ms, s.window.Milliseconds(), s.retain.Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("window pipeline (%d events): %w", len(events), err)
	}
	out := make([]int64, len(events))
	for i, c := range cmds {
		n, err := c.Int64()
		if err != nil {
			return nil, fmt.Errorf("window count for %s: %w", events[i].TransactionID, err)
		}
		out[i] = n
	}
	return out, nil
}
