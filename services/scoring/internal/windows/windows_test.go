package windows

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/testinfra"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
)

func TestCompute(t *testing.T) {
	t.Parallel()
	at := int64(10 * day)
	es := []Entry{
		{Action: 'd', Score: 0.9, AtMs: at - hour + 1}, // in 1h
		{Action: 'd', Score: 0.2, AtMs: at - hour},     // exactly 1h ago: 24h only
		{Action: 'r', Score: 0.5, AtMs: at},            // same instant counts
		{Action: 'r', Score: 0.99, AtMs: at - day},     // exactly 24h ago: out
		{Action: 'a', Score: 0.95, AtMs: at + 1},       // later event: out
		{Action: 'a', Score: 0.3, AtMs: at - 2*hour},   // approve: only the max score
		{Action: 'r', Score: 0.1, AtMs: at - 23*hour},  // 24h review
	}
	got := Compute(es, at)
	want := rules.Window{Reviews1h: 1, Declines1h: 1, Reviews24h: 2, Declines24h: 2, MaxScore24h: 0.9}
	if got != want {
		t.Fatalf("Compute = %+v, want %+v", got, want)
	}
}

func TestMemberRoundTrip(t *testing.T) {
	t.Parallel()
	e := Entry{Partition: 3, Offset: 12345, DecisionID: "dec_abc", Action: 'r', Score: 0.1 + 0.2, AtMs: 1700000000123}
	back, ok := parseMember(e.member(), float64(e.AtMs))
	if !ok || back != e {
		t.Fatalf("round trip %+v → %+v", e, back)
	}
	for _, bad := range []string{"", "1:2:3", "x:1:d:r:0.5", "1:1:d:rr:0.5", "1:1:d:r:nan?"} {
		if _, ok := parseMember(bad, 0); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

// TestRealRedisReplaySafe records a batch twice (an aborted transaction replayed) and reads it
// back with the watermark the replayed batch would use.
func TestRealRedisReplaySafe(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: testinfra.RedisAddr(t)})
	defer rdb.Close()
	prefix := testinfra.UniqueName("test-dw-") + ":"
	s := NewStore(rdb, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Cleanup(func() { rdb.Del(context.Background(), s.key("a"), s.key("b"), s.key("a")+":ids", s.key("b")+":ids") })

	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	earlier := map[string][]Entry{"a": {{Partition: 0, Offset: 5, DecisionID: "d5", Action: 'd', Score: 0.9, AtMs: at - 10}}}
	batch := map[string][]Entry{
		"a": {{Partition: 0, Offset: 10, DecisionID: "d10", Action: 'r', Score: 0.5, AtMs: at}, {Partition: 0, Offset: 11, DecisionID: "d11", Action: 'd', Score: 0.7, AtMs: at + 1}},
		"b": {{Partition: 1, Offset: 3, DecisionID: "d3", Action: 'r', Score: 0.4, AtMs: at}},
	}
	for _, b := range []map[string][]Entry{earlier, batch, batch} {
		if err := s.Record(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if n := rdb.ZCard(ctx, s.key("a")).Val(); n != 3 {
		t.Fatalf("account a holds %d members after a replayed write, want 3", n)
	}
	// The replayed batch starts at offset 10: what it wrote before the abort is invisible.
	got, err := s.Load(ctx, []Request{{Account: "a", Partition: 0, Watermark: 10, SinceMs: at - day}, {Account: "b", Partition: 1, Watermark: 3, SinceMs: at - day}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got["a"]) != 1 || got["a"][0].DecisionID != "d5" || len(got["b"]) != 0 {
		t.Fatalf("replay sees %+v", got)
	}
	// A later batch sees everything.
	got, _ = s.Load(ctx, []Request{{Account: "a", Partition: 0, Watermark: 12, SinceMs: at - day}})
	if w := Compute(got["a"], at+1); w.Declines1h != 2 || w.Reviews1h != 1 || w.MaxScore24h != 0.9 {
		t.Fatalf("window after the batch %+v", w)
	}
	if ttl := rdb.PTTL(ctx, s.key("a")).Val(); ttl <= 0 {
		t.Fatalf("no expiry on the window key: %s", ttl)
	}

	// A replay that decided differently (degraded the first time) replaces, never adds.
	changed := map[string][]Entry{"a": {{Partition: 0, Offset: 11, DecisionID: "d11", Action: 'r', Score: 0.2, AtMs: at + 1}}}
	if err := s.Record(ctx, changed); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Load(ctx, []Request{{Account: "a", Partition: 0, Watermark: 12, SinceMs: at - day}})
	if w := Compute(got["a"], at+1); len(got["a"]) != 3 || w.Declines1h != 1 || w.Reviews1h != 2 {
		t.Fatalf("after a changed replay: %d entries, window %+v", len(got["a"]), w)
	}

	// Entries more than 25 h before the newest are trimmed from the set and the id index.
	late := map[string][]Entry{"a": {{Partition: 0, Offset: 20, DecisionID: "d20", Action: 'a', Score: 0.1, AtMs: at + 2*day}}}
	if err := s.Record(ctx, late); err != nil {
		t.Fatal(err)
	}
	if n, h := rdb.ZCard(ctx, s.key("a")).Val(), rdb.HLen(ctx, s.key("a")+":ids").Val(); n != 1 || h != 1 {
		t.Fatalf("after trim: %d members, %d ids; want 1 and 1", n, h)
	}
}
