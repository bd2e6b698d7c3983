package redisclient_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/redisclient"
	"github.com/vigil-fraud/vigil/libs/testinfra"
)

// counts returns the histogram's sample count per op.
func counts(t *testing.T, reg *prometheus.Registry) map[string]uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_redis_call_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
		}
	}
	return out
}

func TestHookObservesCommandsAndPipelines(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h, err := redisclient.NewHook(reg)
	if err != nil {
		t.Fatal(err)
	}
	failing := errors.New("down")
	process := h.ProcessHook(func(context.Context, redis.Cmder) error { return nil })
	processErr := h.ProcessHook(func(context.Context, redis.Cmder) error { return failing })
	pipeline := h.ProcessPipelineHook(func(context.Context, []redis.Cmder) error { return nil })
	ctx := context.Background()

	_ = process(ctx, redis.NewStringCmd(ctx, "GET", "k"))
	_ = process(ctx, redis.NewStringCmd(ctx, "get", "k2"))
	if err := processErr(ctx, redis.NewCmd(ctx, "evalsha", "abc", 0)); !errors.Is(err, failing) {
		t.Fatalf("hook changed the error: %v", err)
	}
	_ = pipeline(ctx, []redis.Cmder{redis.NewStatusCmd(ctx, "set", "a", 1), redis.NewStatusCmd(ctx, "set", "b", 2)})

	want := map[string]uint64{"get": 2, "evalsha": 1, "pipeline": 1}
	got := counts(t, reg)
	if len(got) != len(want) {
		t.Fatalf("ops %v, want %v", got, want)
	}
	for op, n := range want {
		if got[op] != n {
			t.Errorf("op %s: %d samples, want %d", op, got[op], n)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestNewHookSharesARegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a, err := redisclient.NewHook(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := redisclient.NewHook(reg) // a second client of the same service
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = a.ProcessHook(func(context.Context, redis.Cmder) error { return nil })(ctx, redis.NewCmd(ctx, "ping"))
	_ = b.ProcessHook(func(context.Context, redis.Cmder) error { return nil })(ctx, redis.NewCmd(ctx, "ping"))
	if got := counts(t, reg)["ping"]; got != 2 {
		t.Fatalf("ping samples %d, want 2 in one series", got)
	}
}

func TestInstrumentOnRealRedis(t *testing.T) {
	t.Parallel()
	addr := testinfra.RedisAddr(t)
	ctx := context.Background()
	rdb, err := redisclient.Open(ctx, redisclient.Config{Addr: addr, PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	reg := prometheus.NewRegistry()
	if err := redisclient.Instrument(rdb, reg); err != nil {
		t.Fatal(err)
	}
	key := testinfra.UniqueName("vigil-test:redis-metrics:")
	if err := rdb.Set(ctx, key, "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	defer rdb.Del(context.WithoutCancel(ctx), key)
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, key)
		p.Get(ctx, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := counts(t, reg)
	// A fresh pool connection may add its own handshake (hello, a setinfo pipeline): >= 1.
	if got["set"] != 1 || got["pipeline"] < 1 || got["incr"] != 0 || got["get"] != 0 {
		t.Fatalf("samples by op %v, want set=1, pipeline>=1 and no per-command samples inside the pipeline", got)
	}
}
