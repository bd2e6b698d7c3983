package window

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/testinfra"
)

func TestAddAndCountRealRedis(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: testinfra.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	prefix := testinfra.UniqueName("test:") + ":"
	s := New(rdb, prefix, time.Hour)
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	batch := []Event{
		{"a", "t1", t0},
		{"a", "t2", t0.Add(30 * time.Minute)},
		{"b", "t3", t0.Add(30 * time.Minute)},
		{"a", "t4", t0.Add(61 * time.Minute)}, // t1 is out of its window
	}
	got, err := s.AddAndCount(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{1, 2, 1, 2}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("counts = %v, want %v", got, want)
		}
	}
	// Replaying the batch (an aborted transaction) neither double counts nor changes the answer.
	again, err := s.AddAndCount(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if again[i] != want[i] {
			t.Fatalf("replayed counts = %v, want %v", again, want)
		}
	}
	n, err := rdb.ZCard(ctx, s.key("a")).Result()
	if err != nil || n != 3 {
		t.Fatalf("members of a = %d, %v; want 3", n, err)
	}
	if ttl, _ := rdb.PTTL(ctx, s.key("a")).Result(); ttl <= 0 || ttl > 2*time.Hour {
		t.Fatalf("ttl = %s", ttl)
	}
}
