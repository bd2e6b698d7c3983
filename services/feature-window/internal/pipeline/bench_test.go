package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// benchPolls is fwbench's workload (5,000 accounts, 500 terminals, 3,000 devices, one
// transaction per 100 ms) on 3 partitions, cut into polls of 500 records.
func benchPolls(b *testing.B, n int) [][]*kgo.Record {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var polls [][]*kgo.Record
	var poll []*kgo.Record
	offsets := map[int32]int64{}
	for i := range n {
		acct := fmt.Sprint("acct-", rng.IntN(5000))
		term := fmt.Sprint("T-", rng.IntN(500))
		tx := &fraudv1.Transaction{Id: fmt.Sprint("bench:", i), AccountId: acct, Card: &fraudv1.Card{Token: "tok-" + acct},
			AmountMinor: 100 + rng.Int64N(50000), Currency: "EUR", MerchantId: "m-" + term, TerminalId: term, Country: "FR",
			Channel: fraudv1.Channel_CHANNEL_ECOMMERCE, DeviceId: fmt.Sprint("dev-", rng.IntN(3000)),
			EventTime: timestamppb.New(t0.Add(time.Duration(i) * 100 * time.Millisecond))}
		r, err := kafka.NewRecord("tx.v1", acct, tx)
		if err != nil {
			b.Fatal(err)
		}
		r.Partition = int32(len(acct) % 3) // any fixed account → partition map
		r.Offset = offsets[r.Partition]
		offsets[r.Partition]++
		poll = append(poll, r)
		if len(poll) == 500 {
			polls = append(polls, poll)
			poll = nil
		}
	}
	return polls
}

// BenchmarkTransform measures the transform of warm partitions (every account in memory, as in
// a steady stream), without Kafka or Redis: ns/tx (wall), cpu-ns/tx (the process's CPU time,
// GC included: steadier than wall time on a shared box), allocs/tx and B/tx are per
// transaction.
func BenchmarkTransform(b *testing.B) {
	polls := benchPolls(b, 40_000)
	warm := len(polls) / 2
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprint("workers=", workers), func(b *testing.B) {
			ctx := context.Background()
			var tx int
			var ms0, ms1 runtime.MemStats
			var mallocs, bytes uint64
			var cpu time.Duration
			for range b.N {
				b.StopTimer()
				p := New(newMemStore(), noReader, features.DefaultConfig(), "features.v1", time.Now, WithParallelism(workers))
				for _, in := range polls[:warm] {
					if _, err := p.Transform(ctx, in); err != nil {
						b.Fatal(err)
					}
					p.Committed(ctx, in)
				}
				runtime.ReadMemStats(&ms0)
				cpu0 := cpuTime(b)
				b.StartTimer()
				for _, in := range polls[warm:] {
					if _, err := p.Transform(ctx, in); err != nil {
						b.Fatal(err)
					}
					tx += len(in)
				}
				b.StopTimer()
				cpu += cpuTime(b) - cpu0
				runtime.ReadMemStats(&ms1)
				mallocs += ms1.Mallocs - ms0.Mallocs
				bytes += ms1.TotalAlloc - ms0.TotalAlloc
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(tx), "ns/tx")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(tx), "cpu-ns/tx")
			b.ReportMetric(float64(mallocs)/float64(tx), "allocs/tx")
			b.ReportMetric(float64(bytes)/float64(tx), "B/tx")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
