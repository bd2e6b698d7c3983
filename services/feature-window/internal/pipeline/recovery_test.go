package pipeline

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// genLog is a two-partition tx.v1 with accounts, cards, terminals and devices that stay within
// a partition (so the offline recomputation, partition by partition, is exact), spanning 40
// days with late events and a few undecodable records.
func genLog(t *testing.T, n int, seed uint64) (memLog, map[string][]float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	log := memLog{}
	off := map[int32]*features.Offline{0: features.NewOffline(), 1: features.NewOffline()}
	want := map[string][]float64{}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		p := int32(rng.IntN(2))
		at = at.Add(time.Duration(rng.ExpFloat64() * float64(40*24*time.Hour) / float64(n)))
		ts := at
		if rng.Float64() < 0.05 {
			ts = at.Add(-time.Duration(rng.IntN(3*60)) * time.Minute)
		}
		var r *kgo.Record
		if rng.Float64() < 0.01 {
			r = &kgo.Record{Topic: "tx.v1", Partition: p, Value: []byte{0xff}}
		} else {
			acct := fmt.Sprintf("p%d-a%d", p, rng.IntN(20))
			tx := &fraudv1.Transaction{Id: fmt.Sprint("tx-", i), AccountId: acct, Card: &fraudv1.Card{Token: "tok-" + acct},
				AmountMinor: 1 + rng.Int64N(40000), Currency: "EUR", MerchantId: fmt.Sprint("m", rng.IntN(9)),
				TerminalId: fmt.Sprintf("p%d-t%d", p, rng.IntN(6)), DeviceId: fmt.Sprintf("p%d-d%d", p, rng.IntN(8)),
				Country: []string{"FR", "DE"}[rng.IntN(2)], Channel: fraudv1.Channel_CHANNEL_ECOMMERCE, EventTime: timestamppb.New(ts)}
			var err error
			if r, err = kafka.NewRecord("tx.v1", acct, tx); err != nil {
				t.Fatal(err)
			}
			r.Partition = p
			if v := off[p].Next(features.FromTransaction(tx)); v != nil {
				want[tx.Id] = v
			}
			if rng.Float64() < 0.02 { // a client retry whose first attempt was written anyway
				dup, err := kafka.NewRecord("tx.v1", acct, tx)
				if err != nil {
					t.Fatal(err)
				}
				dup.Partition = p
				r.Offset = int64(len(log[p]))
				log[p] = append(log[p], r)
				r = dup
				if off[p].Next(features.FromTransaction(tx)) != nil {
					t.Fatal("offline did not see the duplicate")
				}
			}
		}
		r.Offset = int64(len(log[p]))
		log[p] = append(log[p], r)
	}
	return log, want
}

// emitted yields the transaction id and feature values of each features.v1 record of out.
func emitted(t *testing.T, out []*kgo.Record) iter.Seq2[string, []float64] {
	t.Helper()
	return func(yield func(string, []float64) bool) {
		for _, r := range out {
			if r.Topic != "features.v1" {
				continue
			}
			var et fraudv1.EnrichedTransaction
			if err := kafka.Decode(r, &et); err != nil {
				t.Fatal(err)
			}
			if !yield(et.GetTransaction().GetId(), et.GetFeatures().GetValues()) {
				return
			}
		}
	}
}

// crash stands for the process dying: a background checkpoint write it started has landed
// (writes that never started are the crashes before Committed).
func crash(p *Pipeline) { _ = p.settle(true) }

// fault is what happens to one poll of the simulated loop.
type fault int

const (
	commit            fault = iota
	abort                   // transform ran, transaction aborted: Aborted, same input again
	crashBeforeCommit       // process dies after the transform: a new instance, same input
	crashAfterCommit        // committed, process dies before the checkpoint: a new instance
	flushFails              // committed, the checkpoint fails (Redis down)
	zombieFlush             // committed; meanwhile another instance took the partitions over
)

// TestRecoveryEqualsOffline runs the pipeline as the EOS loop would, injecting aborts, crashes
// before and after commit, failed checkpoints and a zombie's late checkpoint: the committed
// output holds every transaction once, with the features of the offline recomputation.
func TestRecoveryEqualsOffline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		seed     uint64
		interval time.Duration
	}{{1, 0}, {2, 0}, {3, 0}, {4, time.Hour}, {5, time.Hour}} {
		seed := tc.seed
		// interval 0 checkpoints after every commit; an hour only on catch-ups: the unflushed
		// deltas then live in memory across many polls.
		t.Run(fmt.Sprintf("seed%d-interval%s", seed, tc.interval), func(t *testing.T) {
			t.Parallel()
			log, want := genLog(t, 1500, seed)
			rng := rand.New(rand.NewPCG(seed, 2))
			st := newMemStore()
			cfg := features.DefaultConfig()
			newPipe := func() *Pipeline {
				return New(st, log.read, cfg, "features.v1", time.Now, WithCheckpointInterval(tc.interval))
			}
			p := newPipe()
			pos := map[int32]int64{0: 0, 1: 0}
			got := map[string][]float64{}
			count := map[string]int{}
			faults := map[fault]int{}
			for pos[0] < int64(len(log[0])) || pos[1] < int64(len(log[1])) {
				var in []*kgo.Record
				for _, part := range []int32{0, 1} {
					k := int64(1 + rng.IntN(40))
					in = append(in, log[part][pos[part]:min(pos[part]+k, int64(len(log[part])))]...)
				}
				out, err := p.Transform(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				f := commit
				if r := rng.Float64(); r < 0.3 {
					f = fault(1 + rng.IntN(5))
				}
				faults[f]++
				switch f {
				case abort:
					p.Aborted()
					continue
				case crashBeforeCommit:
					crash(p)
					p = newPipe()
					continue
				}
				for id, v := range emitted(t, out) {
					got[id] = v
					count[id]++
				}
				for _, r := range in {
					pos[r.Partition] = r.Offset + 1
				}
				switch f {
				case commit:
					p.Committed(context.Background(), in)
				case crashAfterCommit:
					crash(p)
					p = newPipe()
				case flushFails:
					st.mu.Lock()
					st.err = errors.New("redis down")
					st.mu.Unlock()
					p.FlushAll(context.Background())
					st.mu.Lock()
					st.err = nil
					st.mu.Unlock()
				case zombieFlush:
					// A second instance takes over (catching up from the checkpoint) and
					// checkpoints first; the old one's checkpoint must be refused.
					crash(p) // its earlier background write is done; it lives on as a zombie
					next := newPipe()
					if _, err := next.Transform(context.Background(), nil); err != nil {
						t.Fatal(err)
					}
					for _, part := range []int32{0, 1} {
						if _, err := next.CatchUpTo(context.Background(), "tx.v1", part, pos[part]); err != nil {
							t.Fatal(err)
						}
					}
					p.FlushAll(context.Background())
					if p.Stats.Conflicts.Load() == 0 {
						for k, pt := range p.parts {
							t.Logf("%s flushed %d next %d pending %v pos %v ckpt %v", k, pt.flushed, pt.next, pt.pending(), pos, st.ckpt)
						}
						t.Fatal("the zombie's checkpoint was accepted")
					}
					p = next
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d transactions committed, want %d", len(got), len(want))
			}
			for id, w := range want {
				if count[id] != 1 {
					t.Errorf("%s committed %d times", id, count[id])
				}
				if !slices.Equal(got[id], w) {
					for i := range w {
						if got[id][i] != w[i] {
							t.Errorf("%s: %s = %v, offline %v", id, features.Names[i], got[id][i], w[i])
						}
					}
				}
			}
			t.Logf("faults: %v", faults)
		})
	}
}

// TestRedisLossIsNotReadAsNewAccounts: a partition held from a checkpoint reads the accounts it
// does not hold from Redis. When Redis lost everything (FLUSHALL) meanwhile, such an account
// must not be taken for a new one: the read sees the checkpoint gone and fails, and the retry
// rebuilds the partition from tx.v1, with the features of an uninterrupted run.
func TestRedisLossIsNotReadAsNewAccounts(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	log := memLog{}
	off := features.NewOffline()
	var want []float64
	add := func(acct string, i int) {
		r := txRecord(t, fmt.Sprint("tx-", i), acct, t0.Add(time.Duration(i)*time.Minute), int64(100+i))
		r.Offset = int64(len(log[0]))
		log[0] = append(log[0], r)
		tx := &fraudv1.Transaction{}
		if err := kafka.Decode(r, tx); err != nil {
			t.Fatal(err)
		}
		want = off.Next(features.FromTransaction(tx))
	}
	for i := range 10 {
		add([]string{"A", "B"}[i%2], i)
	}
	for i := 10; i < 20; i++ {
		add("A", i)
	}
	add("B", 20) // want: B's features after its five earlier transactions
	st := newMemStore()
	cfg := features.DefaultConfig()
	run := func(p *Pipeline, from, to int) ([]*kgo.Record, error) {
		out, err := p.Transform(context.Background(), log[0][from:to])
		if err == nil {
			p.FlushAll(context.Background())
		}
		return out, err
	}
	if _, err := run(New(st, log.read, cfg, "features.v1", time.Now), 0, 10); err != nil {
		t.Fatal(err)
	}
	p := New(st, log.read, cfg, "features.v1", time.Now) // a restart: held from checkpoint 10
	if _, err := run(p, 10, 20); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.ckpt, st.accounts = map[string]int64{}, map[string][]byte{} // FLUSHALL
	st.terminals, st.devices = map[string]map[int64]*[2]int64{}, map[string]map[string]int64{}
	st.mu.Unlock()
	if _, err := p.Transform(context.Background(), log[0][20:21]); !errors.Is(err, ErrCheckpointMoved) {
		t.Fatalf("Transform after Redis lost the partition: %v, want ErrCheckpointMoved", err)
	}
	p.Aborted()
	out, err := p.Transform(context.Background(), log[0][20:21])
	if err != nil {
		t.Fatal(err)
	}
	var et fraudv1.EnrichedTransaction
	if err := kafka.Decode(out[0], &et); err != nil {
		t.Fatal(err)
	}
	if got := et.GetFeatures().GetValues(); !slices.Equal(got, want) {
		t.Errorf("B after the rebuild: %v, offline %v", got, want)
	}
}

// TestRevokedMidTransaction: with a commit interval a transaction spans polls. Partitions
// revoked between two of them must fail the next poll (the transaction cannot commit), not
// reload the partition and catch up over the first poll as if it were committed: that wrote
// Redis ahead of Kafka, and after the abort the first poll's transactions were counted twice
// (make chaos, 2026-12-06). After the abort the input comes again and equals offline.
func TestRevokedMidTransaction(t *testing.T) {
	t.Parallel()
	log, want := genLog(t, 400, 11)
	st := newMemStore()
	cfg := features.DefaultConfig()
	p := New(st, log.read, cfg, "features.v1", time.Now)
	first, second := log[0][:60], log[0][60:120]
	if _, err := p.Transform(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	p.Reset() // the rebalance, while the transaction holding first is still open
	if _, err := p.Transform(context.Background(), second); !errors.Is(err, kafka.ErrRebalanced) {
		t.Fatalf("Transform after Reset: %v, want kafka.ErrRebalanced", err)
	}
	st.mu.Lock()
	ckpt, ok := st.ckpt["tx.v1/0"]
	st.mu.Unlock()
	if ok && ckpt > first[0].Offset {
		t.Fatalf("checkpoint %d is ahead of the committed offset %d", ckpt, first[0].Offset)
	}
	p.Aborted() // the loop aborts; the session rewinds to the committed offsets
	for _, in := range [][]*kgo.Record{first, second} {
		out, err := p.Transform(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for id, v := range emitted(t, out) {
			if !slices.Equal(v, want[id]) {
				t.Errorf("%s: features differ from offline", id)
			}
		}
		p.Committed(context.Background(), in)
	}
	if n := p.Stats.Stale.Load(); n != 0 {
		t.Errorf("%d records processed from later state", n)
	}
}
