package window

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/testinfra"
	"github.com/vigil-fraud/vigil/models/features"
)

// TestLuaMatchesMemStore runs one random history (out-of-order and late events, labels,
// replayed batches) through plan.lua in the real Redis and through MemStore: every result must
// be the same, which is what lets Offline stand in for the stream.
func TestLuaMatchesMemStore(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: testinfra.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	prefix := testinfra.UniqueName("test:") + ":"
	s := New(rdb, prefix)
	t.Cleanup(func() {
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	mem := features.NewMemStore()
	cfg := features.Config{LabelDelay: 2 * 24 * time.Hour, AllowedLateness: 20 * time.Minute}
	rng := rand.New(rand.NewPCG(7, 7))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var offset int64
	clock := t0
	var batch []features.Plan
	var done []features.Event
	statuses := map[features.Status]int{}
	flush := func() {
		got, err := s.Apply(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range batch {
			want := mem.Exec(p)
			if got[i].Status != want.Status || got[i].Replayed != want.Replayed || !slices.Equal(got[i].Reads, want.Reads) {
				t.Fatalf("plan %d (%v): redis %+v, memstore %+v", i, p.Keys[:1], got[i], want)
			}
			statuses[got[i].Status]++
			if got[i].Replayed {
				statuses["replayed"]++
			}
		}
		batch = batch[:0]
	}
	for i := range 3000 {
		clock = clock.Add(time.Duration(rng.IntN(600)) * time.Second)
		at := clock
		if rng.IntN(10) == 0 { // out of order, sometimes beyond the lateness
			at = at.Add(-time.Duration(rng.IntN(40)) * time.Minute)
		}
		acct := fmt.Sprint("a", rng.IntN(20))
		ev := features.Event{TransactionID: fmt.Sprint("t", i), AccountID: acct, CardToken: "c" + acct,
			MerchantID: fmt.Sprint("m", rng.IntN(8)), TerminalID: fmt.Sprint("T", rng.IntN(5)), DeviceID: fmt.Sprint("d", rng.IntN(10)),
			Country: []string{"FR", "DE", "FR", "FR"}[rng.IntN(4)], Channel: "ecommerce", AmountMinor: rng.Int64N(100000) - 1000, EventTime: at}
		batch = append(batch, WithMark(features.TxPlan(cfg, ev), "tx/0", offset, time.Hour))
		offset++
		done = append(done, ev)
		if rng.IntN(4) == 0 && len(done) > 0 { // a label, sometimes twice, sometimes too late
			l := done[rng.IntN(len(done))]
			known := l.EventTime.Add(time.Duration(rng.IntN(3*24)) * time.Hour)
			batch = append(batch, features.LabelPlan(cfg, features.Label{TransactionID: l.TransactionID, TerminalID: l.TerminalID,
				Fraud: rng.IntN(3) > 0, TransactionTime: l.EventTime, KnownAt: known}))
		}
		if len(batch) >= 50 {
			replay := slices.Clone(batch[:len(batch)/2])
			flush()
			batch = append(batch, replay...) // as after an aborted transaction
			flush()
		}
	}
	flush()
	t.Logf("statuses: %v", statuses)
	if statuses[features.StatusLate] == 0 || statuses["replayed"] == 0 || statuses[features.StatusDuplicate] == 0 {
		t.Fatalf("history did not exercise late, replayed and duplicate plans: %v", statuses)
	}
	// Keys carry TTLs.
	ttl, err := rdb.PTTL(ctx, prefix+"fw:a:a1:1h").Result()
	if err != nil || ttl <= 0 || ttl > 3*time.Hour {
		t.Fatalf("ttl of an account tile = %v, %v", ttl, err)
	}
}
