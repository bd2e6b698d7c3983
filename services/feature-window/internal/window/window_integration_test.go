package window

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/testinfra"
	"github.com/vigil-fraud/vigil/models/features"
)

func newStore(t *testing.T) (*Store, *redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testinfra.RedisAddr(t)})
	ctx := context.Background()
	prefix := testinfra.UniqueName("test:") + ":"
	t.Cleanup(func() {
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return New(rdb, prefix, features.DefaultConfig()), rdb, prefix
}

// account returns the state of an account after a few events, through the feature package.
func account(t *testing.T, id string, n int) *features.Account {
	t.Helper()
	a := &features.Account{}
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range n {
		features.Apply(features.DefaultConfig(), a, features.NewMemShared(), features.Event{AccountID: id, CardToken: "c-" + id,
			MerchantID: fmt.Sprint("m", i%3), Country: "FR", AmountMinor: int64(100 * (i + 1)), EventTime: t0.Add(time.Duration(i) * time.Hour)})
	}
	return a
}

// encode is what the pipeline hands Flush: each account's MarshalBinary.
func encode(t *testing.T, accts map[string]*features.Account) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte, len(accts))
	for id, a := range accts {
		b, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out[id] = b
	}
	return out
}

// TestFlushFetchRoundTrip: a checkpoint writes accounts, terminal and device deltas and the
// checkpoint atomically, Fetch reads them back, and a checkpoint from a stale writer is refused
// without changing anything.
func TestFlushFetchRoundTrip(t *testing.T) {
	t.Parallel()
	s, rdb, _ := newStore(t)
	ctx := context.Background()
	snap, err := s.Fetch(ctx, Request{Checkpoints: []string{"tx/0"}, Accounts: []string{"a1"}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Checkpoints["tx/0"] != NoCheckpoint || !reflect.DeepEqual(snap.Accounts["a1"], &features.Account{}) {
		t.Fatalf("empty store: %+v", snap)
	}
	d := Delta{Partition: "tx/0", From: NoCheckpoint, To: 10,
		Accounts:  encode(t, map[string]*features.Account{"a1": account(t, "a1", 5), "a2": account(t, "a2", 2)}),
		Terminals: map[string]map[int64]TerminalDelta{"T": {100: {Tx: 3, PruneBelow: 50}, 101: {Tx: 1, PruneBelow: 50}}},
		Devices:   map[string]map[string]DeviceSeen{"D": {"a1": {Ms: 1000}, "a2": {Ms: 2000}, "a3": {Ms: 500}}},
	}
	errs, err := s.Flush(ctx, []Delta{d})
	if err != nil || errs[0] != nil {
		t.Fatalf("flush: %v %v", err, errs)
	}
	// A second writer that still believes the partition was never checkpointed is refused.
	stale := d
	stale.Accounts = encode(t, map[string]*features.Account{"a1": {}})
	errs, err = s.Flush(ctx, []Delta{stale})
	if err != nil || !errors.Is(errs[0], ErrConflict) {
		t.Fatalf("stale flush: %v %v", err, errs)
	}
	// The next checkpoint adds to the terminal, moves a device's account forward and prunes
	// the accounts that are still old (a1 was seen again since the caller judged it old).
	d2 := Delta{Partition: "tx/0", From: 10, To: 12,
		Terminals:   map[string]map[int64]TerminalDelta{"T": {101: {Tx: 2, PruneBelow: 50}}},
		Devices:     map[string]map[string]DeviceSeen{"D": {"a1": {Ms: 3000}}},
		DevicePrune: map[string]map[string]int64{"D": {"a1": 1500, "a3": 1500}}}
	if errs, err := s.Flush(ctx, []Delta{d2}); err != nil || errs[0] != nil {
		t.Fatalf("flush 2: %v %v", err, errs)
	}
	if _, _, err := s.ApplyLabels(ctx, []features.Label{{TransactionID: "x", TerminalID: "T", Fraud: true,
		TransactionTime: time.UnixMilli(101 * features.TerminalTile.Milliseconds()), KnownAt: time.UnixMilli(101 * features.TerminalTile.Milliseconds())}}); err != nil {
		t.Fatal(err)
	}
	snap, err = s.Fetch(ctx, Request{Checkpoints: []string{"tx/0", "tx/1"}, Accounts: []string{"a1", "a2"},
		Terminals: map[string]Tiles{"T": {Lo: 99, Hi: 101}}, Devices: []string{"D"}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Checkpoints["tx/0"] != 12 || snap.Checkpoints["tx/1"] != NoCheckpoint {
		t.Errorf("checkpoints %v", snap.Checkpoints)
	}
	for id, want := range d.Accounts {
		got, err := snap.Accounts[id].MarshalBinary()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("account %s: got %+v (%v), want it encoded as %v", id, snap.Accounts[id], err, want)
		}
	}
	if got := snap.Terminals["T"]; len(got) != 2 || *got[100] != [2]int64{3, 0} || *got[101] != [2]int64{3, 1} {
		t.Errorf("terminal tiles %v %v", got[100], got[101])
	}
	if got := snap.Devices["D"]; len(got) != 2 || got["a1"] != 3000 || got["a2"] != 2000 {
		t.Errorf("device %v", got)
	}
	// TTLs are set on everything written.
	for _, k := range []string{s.accountKey("a1"), s.terminalKey("T"), s.deviceKey("D")} {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("%s has no TTL (%v)", k, ttl)
		}
	}
}

// TestFlushAfterScriptCacheLoss: Redis restarts lose loaded scripts; the store reloads them.
func TestFlushAfterScriptCacheLoss(t *testing.T) {
	t.Parallel()
	s, rdb, _ := newStore(t)
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	errs, err := s.Flush(ctx, []Delta{{Partition: "p/3", From: NoCheckpoint, To: 1}})
	if err != nil || errs[0] != nil {
		t.Fatalf("flush after SCRIPT FLUSH: %v %v", err, errs)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if applied, _, err := s.ApplyLabels(ctx, []features.Label{{TransactionID: "y"}}); err != nil || applied != 1 {
		t.Fatalf("labels after SCRIPT FLUSH: %d %v", applied, err)
	}
}

func TestApplyLabelsOnce(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	fraud := features.Label{TransactionID: "t1", TerminalID: "T", Fraud: true, TransactionTime: t0, KnownAt: t0.Add(time.Hour)}
	late := features.Label{TransactionID: "t2", TerminalID: "T", Fraud: true, TransactionTime: t0, KnownAt: t0.Add(8 * 24 * time.Hour)}
	applied, dup, err := s.ApplyLabels(ctx, []features.Label{fraud, fraud, late})
	if err != nil || applied != 2 || dup != 1 {
		t.Fatalf("applied %d, duplicates %d, %v", applied, dup, err)
	}
	tile := features.TileIndex(t0, features.TerminalTile)
	snap, err := s.Fetch(ctx, Request{Terminals: map[string]Tiles{"T": {Lo: tile, Hi: tile}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Terminals["T"][tile]; got == nil || got[1] != 1 {
		t.Fatalf("fraud count %v, want 1 (the late label does not count)", got)
	}
}
