package idempotency

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/testinfra"
)

func TestStoreOnRedis(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: testinfra.RedisAddr(t)})
	defer rdb.Close()
	prefix := testinfra.UniqueName("idem-test-") + ":"
	ctx := context.Background()
	s := New(rdb, prefix, time.Hour, 200*time.Millisecond)
	key := s.Key("acme", "order 1/ü")
	t.Cleanup(func() { rdb.Del(context.Background(), key) })

	claim, prev, err := s.Begin(ctx, key, "fp1")
	if err != nil || claim == nil || prev != nil {
		t.Fatalf("first Begin: %v %v %v", claim, prev, err)
	}
	if _, prev, _ := s.Begin(ctx, key, "fp1"); prev == nil || prev.Done || prev.Fingerprint != "fp1" {
		t.Fatalf("second Begin sees %+v, want the in-flight marker", prev)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 200*time.Millisecond {
		t.Errorf("in-flight TTL %v, want the lock TTL", ttl)
	}
	if err := s.Complete(ctx, claim, Record{Fingerprint: "fp1", Status: 202, ContentType: "application/json", Body: []byte(`{"id":"acme:1"}`)}); err != nil {
		t.Fatal(err)
	}
	_, prev, err = s.Begin(ctx, key, "fp2")
	if err != nil || prev == nil || !prev.Done || prev.Status != 202 || string(prev.Body) != `{"id":"acme:1"}` || prev.Owner != "" {
		t.Fatalf("after Complete: %+v %v", prev, err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl < 59*time.Minute {
		t.Errorf("record TTL %v, want the record TTL", ttl)
	}

	// A claim that expired and was taken by another request must not overwrite its marker.
	key2 := s.Key("acme", "order 2")
	t.Cleanup(func() { rdb.Del(context.Background(), key2) })
	stale, _, _ := s.Begin(ctx, key2, "fp")
	time.Sleep(300 * time.Millisecond)
	fresh, _, _ := s.Begin(ctx, key2, "fp")
	if fresh == nil {
		t.Fatal("the expired marker was not released")
	}
	if err := s.Abandon(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if _, prev, _ := s.Begin(ctx, key2, "fp"); prev == nil {
		t.Error("a stale Abandon removed another request's marker")
	}
	if s.Key("acme", "k") == s.Key("globex", "k") {
		t.Error("keys are not scoped per source")
	}
}
