package pipeline

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/window"
)

func txRecord(t *testing.T, id, account string, at time.Time, amount int64) *kgo.Record {
	t.Helper()
	r, err := kafka.NewRecord("tx.v1", account, &fraudv1.Transaction{
		Id: id, AccountId: account, AmountMinor: amount, Currency: "EUR", EventTime: timestamppb.New(at),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// offsetRecord is tx as a tx.v1 record keyed by its account, at offset *offset (then advanced).
func offsetRecord(t *testing.T, tx *fraudv1.Transaction, offset *int64) *kgo.Record {
	t.Helper()
	r, err := kafka.NewRecord("tx.v1", tx.GetAccountId(), tx)
	if err != nil {
		t.Fatal(err)
	}
	r.Offset = *offset
	*offset++
	return r
}

// transformTxs runs one poll of txs (keyed by account, at offsets from *offset on) through p
// and returns each output's feature values.
func transformTxs(t *testing.T, p *Pipeline, offset *int64, txs ...*fraudv1.Transaction) [][]float64 {
	t.Helper()
	in := make([]*kgo.Record, len(txs))
	for i, tx := range txs {
		in[i] = offsetRecord(t, tx, offset)
	}
	out, err := p.Transform(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([][]float64, len(out))
	for i, r := range out {
		var et fraudv1.EnrichedTransaction
		if err := kafka.Decode(r, &et); err != nil {
			t.Fatal(err)
		}
		vals[i] = et.GetFeatures().GetValues()
	}
	return vals
}

func TestTransform(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	garbage := &kgo.Record{Topic: "tx.v1", Key: []byte("a"), Value: []byte{0xff, 0x01}}
	in := []*kgo.Record{
		txRecord(t, "s:1", "acct-1", t0, 1000),
		garbage,
		txRecord(t, "s:2", "acct-1", t0.Add(10*time.Minute), 2500),
		txRecord(t, "s:3", "acct-2", t0.Add(10*time.Minute), 100),
		txRecord(t, "s:4", "acct-1", t0.Add(2*time.Hour), 100), // the first two fell out of its hour
	}
	setOffsets(in)
	p := New(newMemStore(), noReader, features.DefaultConfig(), "features.v1", func() time.Time { return t0 })
	out, err := p.Transform(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 5 {
		t.Fatalf("got %d records, want 5", len(out))
	}
	if out[0].Topic != "tx.v1.dlq" || kafka.Header(out[0], kafka.HeaderError) == "" {
		t.Fatalf("garbage not dead-lettered: %+v", out[0])
	}
	countIdx := features.Index("account_count_1h")
	want := map[string]float64{"s:1": 1, "s:2": 2, "s:3": 1, "s:4": 1}
	for _, r := range out[1:] {
		if r.Topic != "features.v1" {
			t.Fatalf("topic %s", r.Topic)
		}
		var et fraudv1.EnrichedTransaction
		if err := kafka.Decode(r, &et); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != et.GetTransaction().GetAccountId() {
			t.Errorf("key %q, account %q", r.Key, et.GetTransaction().GetAccountId())
		}
		if et.GetFeatures().GetSchemaVersion() != features.SchemaVersion || len(et.GetFeatures().GetValues()) != len(features.Names) {
			t.Errorf("feature vector %+v", et.GetFeatures())
		}
		id := et.GetTransaction().GetId()
		if got := et.GetFeatures().GetValues()[countIdx]; got != want[id] {
			t.Errorf("%s: account_count_1h = %v, want %v", id, got, want[id])
		}
	}
}

func TestTransformAfterAbortGivesSameFeatures(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	in := []*kgo.Record{txRecord(t, "s:1", "a", t0, 1), txRecord(t, "s:2", "a", t0.Add(time.Minute), 1)}
	setOffsets(in)
	p := New(newMemStore(), noReader, features.DefaultConfig(), "features.v1", func() time.Time { return t0 })
	first, err := p.Transform(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	p.Aborted()
	again, err := p.Transform(context.Background(), in) // the same input after the abort
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if string(first[i].Value) != string(again[i].Value) {
			t.Fatalf("record %d differs after the abort", i)
		}
	}
}

func TestTransformStoreFailureAborts(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	st.err = errors.New("redis down")
	p := New(st, noReader, features.DefaultConfig(), "features.v1", time.Now)
	if _, err := p.Transform(context.Background(), []*kgo.Record{txRecord(t, "s:1", "a", time.Now(), 1)}); err == nil {
		t.Fatal("want error so the transaction aborts")
	}
}

func setOffsets(in []*kgo.Record) {
	for i, r := range in {
		r.Offset = int64(i)
	}
}

func TestTransformMarksLateEvents(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	in := []*kgo.Record{
		txRecord(t, "s:1", "a", t0, 1),
		txRecord(t, "s:2", "a", t0.Add(-30*time.Minute), 1), // within the default hour
		txRecord(t, "s:3", "a", t0.Add(-2*time.Hour), 1),    // beyond it
	}
	setOffsets(in)
	p := New(newMemStore(), noReader, features.DefaultConfig(), "features.v1", time.Now)
	out, err := p.Transform(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"", "", "1"} {
		if got := kafka.Header(out[i], HeaderLate); got != want {
			t.Errorf("record %d: late header %q, want %q", i, got, want)
		}
	}
	if p.Stats.Late.Load() != 1 {
		t.Errorf("late count %d", p.Stats.Late.Load())
	}
}

// TestAccountsReadOnlyWhenRedisMayHoldThem: a partition built from no checkpoint holds every
// account it has, so new accounts are not read from Redis (and stale account keys without a
// checkpoint are not trusted); from a checkpoint, or once accounts were evicted, they are read.
func TestAccountsReadOnlyWhenRedisMayHoldThem(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	stale, err := (&features.Account{Last: t0.UnixMilli(), HasLast: true}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		checkpoint  bool // a checkpoint at offset 0: Redis may hold the partition's accounts
		staleKey    bool // acct-1 in Redis without a checkpoint
		maxAccounts int
		wantReads   int // accounts read for the second poll
	}{
		{"no checkpoint", false, false, 100, 0},
		{"no checkpoint, stale account key ignored", false, true, 100, 0},
		{"checkpoint", true, false, 100, 2},
		{"accounts evicted", false, false, 1, 2},
	}
	sincePrev := features.Index("account_seconds_since_prev")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := newMemStore()
			if tc.checkpoint {
				st.ckpt["tx.v1/0"] = 0
			}
			if tc.staleKey {
				st.accounts["acct-1"] = stale
			}
			p := New(st, noReader, features.DefaultConfig(), "features.v1", func() time.Time { return t0 }, WithMaxAccounts(tc.maxAccounts))
			first := []*kgo.Record{txRecord(t, "s:0", "acct-0", t0, 1), txRecord(t, "s:9", "acct-9", t0, 1)}
			setOffsets(first)
			if _, err := p.Transform(context.Background(), first); err != nil {
				t.Fatal(err)
			}
			p.Committed(context.Background(), first)
			_ = p.settle(true) // the checkpoint runs in the background; eviction follows it
			st.accountReads = 0
			second := []*kgo.Record{txRecord(t, "s:1", "acct-1", t0.Add(time.Minute), 1), txRecord(t, "s:2", "acct-2", t0.Add(time.Minute), 1)}
			for i, r := range second {
				r.Offset = int64(len(first) + i)
			}
			out, err := p.Transform(context.Background(), second)
			if err != nil {
				t.Fatal(err)
			}
			if st.accountReads != tc.wantReads {
				t.Errorf("%d accounts read, want %d", st.accountReads, tc.wantReads)
			}
			var et fraudv1.EnrichedTransaction
			if err := kafka.Decode(out[0], &et); err != nil {
				t.Fatal(err)
			}
			if got, want := et.GetFeatures().GetValues()[sincePrev], (30 * 24 * time.Hour).Seconds(); got != want {
				t.Errorf("acct-1 seconds since previous = %v, want %v (a new account)", got, want)
			}
		})
	}
}

// TestDeviceRefreshInBackground: a device seen before whose cached accounts got older than the
// refresh interval is served from the cache (this instance's updates are all in it) while a
// background read brings another instance's accounts in for a later poll.
func TestDeviceRefreshInBackground(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	now := t0
	st := newMemStore()
	p := New(st, noReader, features.DefaultConfig(), "features.v1", func() time.Time { return now }, WithDeviceRefresh(time.Second))
	devIdx := features.Index("device_distinct_accounts_1d")
	offset := int64(0)
	poll := func(account string) float64 {
		t.Helper()
		tx := &fraudv1.Transaction{Id: fmt.Sprint("s:", offset), AccountId: account, AmountMinor: 1, Currency: "EUR",
			DeviceId: "dev", EventTime: timestamppb.New(t0.Add(time.Duration(offset) * time.Minute))}
		return transformTxs(t, p, &offset, tx)[0][devIdx]
	}
	if got := poll("a1"); got != 1 {
		t.Fatalf("first poll: device accounts %v, want 1", got)
	}
	// Another instance's account on the device reaches Redis.
	st.mu.Lock()
	st.devices["dev"] = map[string]int64{"other": t0.UnixMilli()}
	st.mu.Unlock()
	now = now.Add(2 * time.Second) // the cached copy is stale now
	fetches := func() int {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.fetches
	}
	before := fetches()
	if got := poll("a2"); got != 2 { // a1, a2: the stale copy, other not in it yet
		t.Fatalf("stale poll: device accounts %v, want 2", got)
	}
	r := <-p.refreshed // wait for the background read and hand it back
	p.refreshed <- r
	if got := fetches() - before; got != 1 {
		t.Errorf("%d store reads for the stale poll, want 1 (the background one)", got)
	}
	if got := poll("a3"); got != 4 { // a1, a2, other and a3
		t.Errorf("after the refresh: device accounts %v, want 4", got)
	}
}

// TestTransformStreamEmitsWhatTransformReturns: the streaming form emits (from the workers,
// partition by partition) exactly the records Transform returns, each partition's in order.
func TestTransformStreamEmitsWhatTransformReturns(t *testing.T) {
	t.Parallel()
	log, _ := genLog(t, 600, 7)
	var in []*kgo.Record
	for _, part := range []int32{0, 1} {
		in = append(in, log[part][:200]...)
	}
	cfg := features.DefaultConfig()
	want, err := New(newMemStore(), log.read, cfg, "features.v1", time.Now).Transform(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []*kgo.Record
	p := New(newMemStore(), log.read, cfg, "features.v1", time.Now, WithParallelism(2))
	if err := p.TransformStream(context.Background(), in, func(r *kgo.Record) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
	}); err != nil {
		t.Fatal(err)
	}
	byPartition := func(recs []*kgo.Record) map[string][]string {
		m := map[string][]string{}
		for _, r := range recs {
			k := fmt.Sprintf("%s/%s", r.Topic, r.Key)
			var et fraudv1.EnrichedTransaction
			id := "dead letter"
			if r.Topic == "features.v1" {
				if err := kafka.Decode(r, &et); err != nil {
					t.Fatal(err)
				}
				id = fmt.Sprint(et.GetTransaction().GetId(), et.GetFeatures().GetValues())
			}
			m[k] = append(m[k], id)
		}
		return m
	}
	if len(got) != len(want) || !reflect.DeepEqual(byPartition(got), byPartition(want)) {
		t.Fatalf("streamed %d records, Transform returned %d, or they differ", len(got), len(want))
	}
}

// TestTerminalReadsOnlyNewTiles: once a terminal's tiles are cached, an event that moved on to
// newer tiles reads only those and the terminalSettleTiles newest cached ones again; every tile
// is read again once the copy is older than the terminal refresh. By design the features then
// differ from a whole read: a label that reached an older cached tile late is not seen until
// the refresh.
func TestTerminalReadsOnlyNewTiles(t *testing.T) {
	t.Parallel()
	cfg := features.DefaultConfig()
	t0 := time.Date(2026, 5, 4, 12, 30, 0, 0, time.UTC)
	now := t0
	st := newMemStore()
	lo0, hi0 := features.TerminalTilesRead(cfg, t0)
	st.terminals["T"] = map[int64]*[2]int64{}
	for x := lo0; x <= hi0+2; x++ {
		st.terminals["T"][x] = &[2]int64{2, 0} // two transactions in every tile
	}
	p := New(st, noReader, cfg, "features.v1", func() time.Time { return now }, WithTerminalRefresh(10*time.Minute))
	count30, ratio30 := features.Index("terminal_count_30d"), features.Index("terminal_fraud_ratio_30d")
	offset := int64(0)
	poll := func(at time.Time) (count, ratio float64) {
		t.Helper()
		tx := &fraudv1.Transaction{Id: fmt.Sprint("s:", offset), AccountId: "a", AmountMinor: 1, Currency: "EUR",
			TerminalId: "T", EventTime: timestamppb.New(at)}
		v := transformTxs(t, p, &offset, tx)[0]
		return v[count30], v[ratio30]
	}
	reads := func() []window.Tiles {
		st.mu.Lock()
		defer st.mu.Unlock()
		r := st.tileReads["T"]
		st.tileReads["T"] = nil
		return r
	}
	label := func(tile int64) {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.terminals["T"][tile][1]++
	}
	if c, r := poll(t0); c != 480 || r != 0 {
		t.Fatalf("first event: count %v ratio %v, want 480, 0", c, r)
	}
	if got, want := reads(), []window.Tiles{{Lo: lo0, Hi: hi0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first event read %v, want %v", got, want)
	}
	if poll(t0.Add(time.Hour)); len(reads()) != 0 { // same tiles: cached
		t.Fatal("an event reading cached tiles read Redis")
	}
	// Labels reach Redis: one in an old tile (late beyond the settle tiles), one in the newest
	// cached tile, one in the tile the next event reads first.
	label(lo0 + 100)
	label(hi0)
	label(hi0 + 1)
	now = now.Add(time.Minute)
	c, r := poll(t0.Add(3 * time.Hour)) // one tile on
	if got, want := reads(), []window.Tiles{{Lo: hi0 - terminalSettleTiles + 1, Hi: hi0 + 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("event one tile on read %v, want %v", got, want)
	}
	if c != 480 || r != 2.0/480 { // the old tile's label is not seen yet
		t.Fatalf("one tile on: count %v ratio %v, want 480, %v", c, r, 2.0/480)
	}
	now = now.Add(10 * time.Minute) // the copy is older than the refresh
	c, r = poll(t0.Add(6 * time.Hour))
	if got, want := reads(), []window.Tiles{{Lo: lo0 + 2, Hi: hi0 + 2}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("event after the refresh read %v, want %v", got, want)
	}
	if c != 480 || r != 3.0/480 {
		t.Fatalf("after the refresh: count %v ratio %v, want 480, %v", c, r, 3.0/480)
	}
}

// TestSharedCacheBoundKeepsFeatures: at the cache bound the terminals a poll finds cached are
// dropped before its reads are worked out, so they are read again rather than missing.
func TestSharedCacheBoundKeepsFeatures(t *testing.T) {
	t.Parallel()
	cfg := features.DefaultConfig()
	t0 := time.Date(2026, 5, 4, 12, 30, 0, 0, time.UTC)
	st := newMemStore()
	lo, _ := features.TerminalTilesRead(cfg, t0)
	for _, term := range []string{"T1", "T2", "T3"} {
		st.terminals[term] = map[int64]*[2]int64{lo: {5, 1}}
	}
	p := New(st, noReader, cfg, "features.v1", func() time.Time { return t0 })
	p.maxShared = 2
	count30 := features.Index("terminal_count_30d")
	offset := int64(0)
	poll := func(terminals ...string) []float64 {
		t.Helper()
		var txs []*fraudv1.Transaction
		for i, term := range terminals {
			txs = append(txs, &fraudv1.Transaction{Id: fmt.Sprint("s:", offset+int64(i)), AccountId: "a", AmountMinor: 1,
				Currency: "EUR", TerminalId: term, EventTime: timestamppb.New(t0.Add(time.Duration(offset+int64(i)) * time.Second))})
		}
		var counts []float64
		for _, v := range transformTxs(t, p, &offset, txs...) {
			counts = append(counts, v[count30])
		}
		return counts
	}
	if got := poll("T1", "T2"); !reflect.DeepEqual(got, []float64{5, 5}) {
		t.Fatalf("first poll: terminal counts %v, want [5 5]", got)
	}
	// T1 is cached, T3 is not, and the cache is at its bound.
	if got := poll("T1", "T3"); !reflect.DeepEqual(got, []float64{5, 5}) {
		t.Fatalf("poll at the cache bound: terminal counts %v, want [5 5]", got)
	}
}
