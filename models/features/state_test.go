package features

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkOffline: the features of a stream of 1,000 accounts at 200 terminals, one event
// per 10 s (Compute and Apply per event, Offline's in-memory shared state).
func BenchmarkOffline(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]Event, 50_000)
	for i := range evs {
		a := rng.IntN(1000)
		evs[i] = Event{TransactionID: fmt.Sprint("tx-", i), AccountID: fmt.Sprint("acct-", a), CardToken: fmt.Sprint("card-", a),
			MerchantID: fmt.Sprint("m-", rng.IntN(300)), TerminalID: fmt.Sprint("T-", rng.IntN(200)), Country: "FR",
			DeviceID: fmt.Sprintf("dev-%d", a), AmountMinor: 100 + rng.Int64N(50_000), EventTime: t0.Add(time.Duration(i) * 10 * time.Second)}
	}
	b.ResetTimer()
	for b.Loop() {
		off := NewOffline()
		for _, ev := range evs {
			off.Next(ev)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

// TestTilesAddSum: tiles added in any order (late events land below the newest) keep their
// order, and sums over any range equal a walk over every tile added.
func TestTilesAddSum(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 9))
	for round := range 200 {
		var ts tiles
		var all []tile
		for range 1 + rng.IntN(40) {
			d := tile{I: rng.Int64N(30), C: 1, S: rng.Int64N(1000), A: rng.Int64N(2), X: rng.Int64N(5000)}
			if rng.IntN(4) > 0 && len(all) > 0 { // mostly at or after the newest, as live traffic
				d.I = all[len(all)-1].I + rng.Int64N(2)
			}
			ts.add(d)
			all = append(all, d)
		}
		for i := 1; i < len(ts); i++ {
			if ts[i-1].I >= ts[i].I {
				t.Fatalf("round %d: tiles out of order: %v", round, ts)
			}
		}
		for range 20 {
			lo := rng.Int64N(40) - 5
			hi := lo + rng.Int64N(40) - 3
			var want tile
			for _, d := range all {
				if d.I >= lo && d.I <= hi {
					want.C, want.S, want.A, want.X = want.C+d.C, want.S+d.S, want.A+d.A, max(want.X, d.X)
				}
			}
			if got := ts.sum(lo, hi); got != want {
				t.Fatalf("round %d: sum(%d, %d) = %+v, want %+v", round, lo, hi, got, want)
			}
		}
	}
}
