package window

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/testinfra"
	"github.com/vigil-fraud/vigil/models/features"
)

const benchPoll = 100

func benchClient(b *testing.B) (*redis.Client, string) {
	rdb := redis.NewClient(&redis.Options{Addr: testinfra.RedisAddr(b)})
	prefix := testinfra.UniqueName("bench:") + ":"
	b.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

func benchEvent(n int, t0 time.Time) features.Event {
	return features.Event{AccountID: fmt.Sprint("a", n%5000), CardToken: fmt.Sprint("c", n%5000), TerminalID: fmt.Sprint("t", n%500),
		MerchantID: fmt.Sprint("m", n%500), DeviceID: fmt.Sprint("d", n%3000), Country: "FR", AmountMinor: 1234,
		EventTime: t0.Add(time.Duration(n) * 100 * time.Millisecond)}
}

// BenchmarkApply: one op is one transaction's plan, applied in polls of benchPoll (one
// pipelined EVALSHA each). BenchmarkRawPipelinedHIncrBy is the floor: per transaction, the ten
// tile counters it increments as bare pipelined HINCRBYs, no reads, no script. Compare ns/op.
func BenchmarkApply(b *testing.B) {
	rdb, prefix := benchClient(b)
	s := New(rdb, prefix)
	ctx := context.Background()
	t0 := time.Now()
	cfg := features.DefaultConfig()
	plans := make([]features.Plan, 0, benchPoll)
	flush := func() {
		if _, err := s.Apply(ctx, plans); err != nil {
			b.Fatal(err)
		}
		plans = plans[:0]
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		plans = append(plans, WithMark(features.TxPlan(cfg, benchEvent(i, t0)), "p/0", int64(i), time.Hour))
		if len(plans) == benchPoll {
			flush()
		}
	}
	flush()
	b.ReportMetric(float64(s.RoundTrips.Load())/float64(b.N), "roundtrips/op")
}

func BenchmarkRawPipelinedHIncrBy(b *testing.B) {
	rdb, prefix := benchClient(b)
	ctx := context.Background()
	pipe := rdb.Pipeline()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := prefix + fmt.Sprint("a", i%5000)
		for _, w := range []string{":10m", ":1h", ":1d", ":7d", ":30d"} {
			pipe.HIncrBy(ctx, a+w, "1:c", 1)
			pipe.HIncrBy(ctx, a+w, "1:s", 1234)
		}
		if (i+1)%benchPoll == 0 || i == b.N-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPlanEncode is the Go side of one transaction: build its plan and encode it.
func BenchmarkPlanEncode(b *testing.B) {
	cfg := features.DefaultConfig()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := encode(WithMark(features.TxPlan(cfg, benchEvent(i, t0)), "p/0", int64(i), time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}
