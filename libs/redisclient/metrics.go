package redisclient

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/libs/telemetry"
)

// CallDurationHelp is the help of vigil_redis_call_duration_seconds. A service registering the
// histogram itself must use it (and telemetry.LatencyBuckets): the registry then shares one
// series set instead of refusing the second registration.
const CallDurationHelp = "Redis round trips by command (op) or pipeline, errors included."

// Hooker is what Instrument needs of a client: *redis.Client, *redis.ClusterClient and
// redis.UniversalClient all have it.
type Hooker interface{ AddHook(redis.Hook) }

// Instrument records every command's round trip in vigil_redis_call_duration_seconds{op}, op
// being the command name (get, evalsha, ...) or "pipeline" for a whole pipeline. Call it once
// per client before use; several clients may share one registry.
func Instrument(rdb Hooker, reg prometheus.Registerer) error {
	h, err := NewHook(reg)
	if err != nil {
		return err
	}
	rdb.AddHook(h)
	return nil
}

// Hook is the go-redis hook behind Instrument.
type Hook struct{ latency *prometheus.HistogramVec }

// NewHook registers the histogram with reg, or reuses the one registered before.
func NewHook(reg prometheus.Registerer) (*Hook, error) {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vigil_redis_call_duration_seconds",
		Help: CallDurationHelp,
		// The shared buckets: every service's series of this name must aggregate by le.
		Buckets: telemetry.LatencyBuckets,
	}, []string{"op"})
	latency, err := telemetry.RegisterOrReuse(reg, latency)
	if err != nil {
		return nil, fmt.Errorf("register redis metrics: %w", err)
	}
	return &Hook{latency: latency}, nil
}

// DialHook leaves connecting alone: dials are rare and not what the histogram is about.
func (h *Hook) DialHook(next redis.DialHook) redis.DialHook {
	return next
}

// ProcessHook times one command.
func (h *Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		// Command names come from code, never from input: a bounded label set.
		h.latency.WithLabelValues(cmd.Name()).Observe(time.Since(start).Seconds())
		return err
	}
}

// ProcessPipelineHook times one pipeline (or MULTI/EXEC transaction) as a single round trip.
func (h *Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.latency.WithLabelValues("pipeline").Observe(time.Since(start).Seconds())
		return err
	}
}
