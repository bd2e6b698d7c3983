package pipeline

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/window"
)

// gatedStore is a memStore whose checkpoint writes wait until the test opens the gate.
type gatedStore struct {
	*memStore
	gate    chan struct{}
	flushed atomic.Bool
}

func (g *gatedStore) Flush(ctx context.Context, deltas []window.Delta) ([]error, error) {
	<-g.gate
	errs, err := g.memStore.Flush(ctx, deltas)
	g.flushed.Store(true)
	return errs, err
}

// notWithin fails unless done stays open for a while: the call it reports on is waiting.
func notWithin(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
		t.Fatalf("%s returned while the checkpoint write was still under way", what)
	case <-time.After(100 * time.Millisecond):
	}
}

// within fails unless done closes: the call it reports on did not wait (or stopped waiting).
func within(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
	}
}

// TestCheckpointInBackground: after a commit the checkpoint is written in the background. The
// next polls go on meanwhile, except one that must read from Redis a terminal's tiles the
// write is adding to (it waits for the write, then counts its deltas once), and Reset (a
// rebalance) waits for the write so the partitions' next owner never sees it land later. Every
// vector equals the offline recomputation.
func TestCheckpointInBackground(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	st := &gatedStore{memStore: newMemStore(), gate: make(chan struct{})}
	cfg := features.DefaultConfig()
	p := New(st, noReader, cfg, "features.v1", time.Now)
	off := features.NewOffline()
	var offset int64
	rec := func(id, acct string, at time.Time) *kgo.Record {
		return offsetRecord(t, &fraudv1.Transaction{Id: id, AccountId: acct, Card: &fraudv1.Card{Token: "tok-" + acct}, AmountMinor: 1200,
			Currency: "EUR", MerchantId: "m", TerminalId: "T", DeviceId: "D", Country: "FR",
			Channel: fraudv1.Channel_CHANNEL_ECOMMERCE, EventTime: timestamppb.New(at)}, &offset)
	}
	// transform runs one poll in the background; done closes when it returned, and then the
	// vectors it emitted are checked against the offline recomputation.
	transform := func(in ...*kgo.Record) (done chan struct{}, check func()) {
		done = make(chan struct{})
		var out []*kgo.Record
		var err error
		go func() {
			defer close(done)
			out, err = p.Transform(context.Background(), in)
		}()
		return done, func() {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			matchOffline(t, off, in, out)
		}
	}

	// Eight days ago on terminal T: in the tiles T's features read a week later.
	old := t0.Add(-8 * 24 * time.Hour)
	done, check := transform(rec("b1", "b", old))
	within(t, done, "first Transform")
	check()
	p.Committed(context.Background(), nil) // starts the write; the gate holds it

	done, check = transform(rec("b2", "b", old.Add(time.Minute)))
	within(t, done, "Transform of a poll whose reads are cached")
	check()
	if st.flushed.Load() {
		t.Fatal("the checkpoint was written before the gate opened")
	}

	// Now an event whose terminal tiles (ending a week before it) hold b1 and b2: T's tiles
	// must be read, and the write under way is adding b1's; the poll waits for it.
	done, check = transform(rec("a1", "a", t0))
	notWithin(t, done, "Transform reading a terminal the checkpoint is writing")
	close(st.gate)
	within(t, done, "Transform after the checkpoint landed")
	check()

	// A rebalance waits for the write under way.
	st.gate = make(chan struct{})
	st.flushed.Store(false)
	p.Committed(context.Background(), nil)
	if p.ckpt == nil {
		t.Fatal("no checkpoint started after the second commit")
	}
	reset := make(chan struct{})
	go func() { p.Reset(); close(reset) }()
	notWithin(t, reset, "Reset")
	close(st.gate)
	within(t, reset, "Reset after the checkpoint landed")
	if !st.flushed.Load() {
		t.Fatal("Reset returned before the write")
	}
	if got := st.ckpt["tx.v1/0"]; got != offset {
		t.Errorf("checkpoint %d, want %d", got, offset)
	}
}

// matchOffline checks that each output record's features equal off's for its input record
// (one output per input, in order).
func matchOffline(t *testing.T, off *features.Offline, in, out []*kgo.Record) {
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
			t.Errorf("%s: features %v, offline %v", tx.GetId(), et.GetFeatures().GetValues(), want)
		}
	}
}

// TestTerminalRefreshDuringAwaitCheck: whether a poll waits for the write under way must not
// depend on the moment its terminal's cached copy turns older than the refresh. Here it turns
// stale between mustAwaitCheckpoint and fetch: a check of only the partial range toRead gave
// at the first moment missed the tile of a backfill the write is adding to, which fetch then
// read whole before the write landed, and that transaction was counted nowhere.
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
	p := New(st, noReader, features.DefaultConfig(), "features.v1", clock, WithTerminalRefresh(10*time.Minute))
	off := features.NewOffline()
	var offset int64
	rec := func(id, acct string, at time.Time) *kgo.Record {
		return offsetRecord(t, &fraudv1.Transaction{Id: id, AccountId: acct, AmountMinor: 1200, Currency: "EUR",
			TerminalId: "T", EventTime: timestamppb.New(at)}, &offset)
	}
	poll := func(in ...*kgo.Record) {
		t.Helper()
		out, err := p.Transform(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		matchOffline(t, off, in, out)
	}

	poll(rec("a1", "a", t0)) // T cached whole
	// The same tiles for a, and b's first transaction ten days back (a backfill): the range is
	// read whole again, and b1 lands in a cached tile below the newest two.
	poll(rec("a2", "a", t0.Add(time.Minute)), rec("b1", "b", t0.Add(-10*24*time.Hour)))
	p.Committed(context.Background(), nil) // the write holding b1's tile starts; the gate holds it

	// a moves on one tile, and the copy turns stale right after mustAwaitCheckpoint's clock.
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
	matchOffline(t, off, in, out)
}
