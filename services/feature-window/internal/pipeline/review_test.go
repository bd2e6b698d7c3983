package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// TestTerminalRefreshDuringAwaitCheck: mustAwaitCheckpoint and fetchRequest each call toRead
// with their own p.now(). When the cached copy turns older than the terminal refresh between
// the two calls, mustAwaitCheckpoint checks only the partial range [hi-1, want.Hi] against the
// write under way, but fetchRequest reads the whole range, which holds a tile the write is
// adding to: read before the write lands, that transaction is counted nowhere.
func TestTerminalRefreshDuringAwaitCheck(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 12, 30, 0, 0, time.UTC)
	wall := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	jump := false // the next call returns wall, then wall moves on by the refresh
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		w := wall
		if jump {
			jump = false
			wall = wall.Add(10 * time.Minute)
		}
		return w
	}
	st := &gatedStore{memStore: newMemStore(), gate: make(chan struct{})}
	cfg := features.DefaultConfig()
	p := New(st, noReader, cfg, "features.v1", clock, WithTerminalRefresh(10*time.Minute))
	off := features.NewOffline()
	var offset int64
	rec := func(id, acct string, at time.Time) *kgo.Record {
		tx := &fraudv1.Transaction{Id: id, AccountId: acct, AmountMinor: 1200, Currency: "EUR",
			TerminalId: "T", EventTime: timestamppb.New(at)}
		r, err := kafka.NewRecord("tx.v1", acct, tx)
		if err != nil {
			t.Fatal(err)
		}
		r.Offset = offset
		offset++
		return r
	}
	check := func(in []*kgo.Record, out []*kgo.Record) {
		t.Helper()
		for i, r := range out {
			var et fraudv1.EnrichedTransaction
			if err := kafka.Decode(r, &et); err != nil {
				t.Fatal(err)
			}
			tx := &fraudv1.Transaction{}
			if err := kafka.Decode(in[i], tx); err != nil {
				t.Fatal(err)
			}
			if want := off.Next(features.FromTransaction(tx)); !slices.Equal(et.GetFeatures().GetValues(), want) {
				t.Errorf("%s: terminal_count_30d %v, offline %v", tx.GetId(),
					et.GetFeatures().GetValues()[features.Index("terminal_count_30d")], want[features.Index("terminal_count_30d")])
			}
		}
	}
	poll := func(in ...*kgo.Record) {
		t.Helper()
		out, err := p.Transform(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		check(in, out)
	}

	poll(rec("a1", "a", t0)) // T cached whole: [lo0, hi0]
	// The same tiles for a, and b's first transaction ten days back (a backfill): the range is
	// read whole again, and b1 lands in a cached tile below hi0-1 (cache and partition delta).
	poll(rec("a2", "a", t0.Add(time.Minute)), rec("b1", "b", t0.Add(-10*24*time.Hour)))
	p.Committed(context.Background(), nil) // the write holding b1's tile starts; the gate holds it

	// a moves on one tile. mustAwaitCheckpoint sees a fresh copy (partial read, b1's tile not
	// in it: no wait); fetch, a moment later, sees it stale and reads every tile.
	mu.Lock()
	jump = true
	mu.Unlock()
	in := []*kgo.Record{rec("a3", "a", t0.Add(3*time.Hour))}
	done := make(chan struct{})
	var out []*kgo.Record
	var err error
	go func() {
		defer close(done)
		out, err = p.Transform(context.Background(), in)
	}()
	select {
	case <-done:
		t.Log("the poll did not wait for the write under way")
	case <-time.After(300 * time.Millisecond):
	}
	close(st.gate)
	within(t, done, "Transform")
	if err != nil {
		t.Fatal(err)
	}
	check(in, out)
}
