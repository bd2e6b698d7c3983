package window

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/testinfra"
)

// BenchmarkAddAndCount measures the window update of one 500-record poll against the real
// Redis; BenchmarkRawPipelinedZAdd is the floor: the same number of bare ZADDs in one pipeline.
// Compare ns/event of the two.
func BenchmarkAddAndCount(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: testinfra.RedisAddr(b)})
	defer rdb.Close()
	s := New(rdb, testinfra.UniqueName("bench:")+":", time.Hour)
	ctx := context.Background()
	t0 := time.Now()
	const batch = 500
	events := make([]Event, batch)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range events {
			n := i*batch + j
			events[j] = Event{AccountID: fmt.Sprintf("a%d", n%5000), TransactionID: fmt.Sprintf("t%d", n), EventTime: t0.Add(time.Duration(n) * time.Millisecond)}
		}
		if _, err := s.AddAndCount(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
}

func BenchmarkRawPipelinedZAdd(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: testinfra.RedisAddr(b)})
	b.Cleanup(func() { _ = rdb.Close() })
	prefix := testinfra.UniqueName("bench-raw:") + ":"
	ctx := context.Background()
	b.Cleanup(func() { // the bare keys have no TTL: remove them
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	const batch = 500
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pipe := rdb.Pipeline()
		for j := 0; j < batch; j++ {
			n := i*batch + j
			pipe.ZAdd(ctx, fmt.Sprintf("%sa%d", prefix, n%5000), redis.Z{Score: float64(n), Member: n})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
}
