package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/libs/telemetry"
)

// Option adjusts the pool Open builds.
type Option func(*pgxpool.Config) error

// WithMetrics records every statement, batch and COPY in
// vigil_postgres_call_duration_seconds{op} on reg (see CallTracer).
func WithMetrics(reg prometheus.Registerer) Option {
	return func(pc *pgxpool.Config) error {
		t, err := NewCallTracer(reg)
		if err != nil {
			return err
		}
		if pc.ConnConfig.Tracer != nil {
			pc.ConnConfig.Tracer = multitracer.New(pc.ConnConfig.Tracer, t)
		} else {
			pc.ConnConfig.Tracer = t
		}
		return nil
	}
}

// CallDurationHelp is the help of vigil_postgres_call_duration_seconds. A service registering
// the histogram itself must use it (and telemetry.LatencyBuckets): the registry then shares one
// series set instead of refusing the second registration.
const CallDurationHelp = "Postgres round trips by op: first SQL keyword of a statement, batch or copy; errors included."

// CallTracer is a pgx tracer timing each call by a low-cardinality op: the statement's first
// SQL keyword (select, insert, begin, commit, ...; "other" for anything unexpected), "batch"
// for a whole SendBatch and "copy" for CopyFrom. Never the SQL text: it would explode the
// series and could carry literals.
type CallTracer struct{ latency *prometheus.HistogramVec }

// NewCallTracer registers the histogram with reg, or reuses the one registered before, so
// several pools of one service share the series.
func NewCallTracer(reg prometheus.Registerer) (*CallTracer, error) {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vigil_postgres_call_duration_seconds",
		Help: CallDurationHelp,
		// The shared buckets: every service's series of this name must aggregate by le.
		Buckets: telemetry.LatencyBuckets,
	}, []string{"op"})
	latency, err := telemetry.RegisterOrReuse(reg, latency)
	if err != nil {
		return nil, fmt.Errorf("register postgres metrics: %w", err)
	}
	return &CallTracer{latency: latency}, nil
}

type callKey struct{}

type call struct {
	op    string
	start time.Time
}

func (t *CallTracer) begin(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, callKey{}, call{op: op, start: time.Now()})
}

func (t *CallTracer) end(ctx context.Context) {
	if c, ok := ctx.Value(callKey{}).(call); ok {
		t.latency.WithLabelValues(c.op).Observe(time.Since(c.start).Seconds())
	}
}

// TraceQueryStart implements pgx.QueryTracer (Exec, Query, QueryRow, and so Begin/Commit).
func (t *CallTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return t.begin(ctx, Op(data.SQL))
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *CallTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	t.end(ctx)
}

// TraceBatchStart implements pgx.BatchTracer: a batch is one round trip, timed as a whole.
func (t *CallTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return t.begin(ctx, "batch")
}

// TraceBatchQuery implements pgx.BatchTracer; the batch's statements are not timed alone.
func (t *CallTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (t *CallTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	t.end(ctx)
}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (t *CallTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	return t.begin(ctx, "copy")
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (t *CallTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromEndData) {
	t.end(ctx)
}

// sqlOps are the op label values a statement may get; anything else is "other".
var sqlOps = map[string]bool{
	"select": true, "insert": true, "update": true, "delete": true, "with": true, "values": true,
	"begin": true, "commit": true, "rollback": true, "savepoint": true, "release": true,
	"copy": true, "lock": true, "set": true, "show": true, "call": true, "do": true,
	"create": true, "alter": true, "drop": true, "truncate": true, "notify": true, "listen": true,
}

// Op is the label of a statement: its first keyword, lower-cased, after leading whitespace,
// comments and parentheses; "other" when it is not a known SQL command.
func Op(sql string) string {
	s := sql
	for {
		s = strings.TrimLeft(s, " \t\r\n(")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return "other"
			}
			s = s[i+1:]
			continue
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s, "*/")
			if i < 0 {
				return "other"
			}
			s = s[i+2:]
			continue
		}
		break
	}
	end := strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') })
	if end < 0 {
		end = len(s)
	}
	if op := strings.ToLower(s[:end]); sqlOps[op] {
		return op
	}
	return "other"
}
