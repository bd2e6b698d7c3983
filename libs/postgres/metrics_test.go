package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/testinfra"
)

func TestOp(t *testing.T) {
	t.Parallel()
	tests := []struct{ sql, want string }{
		{"SELECT 1", "select"},
		{"  \n\tinsert into t values ($1)", "insert"},
		{"UPDATE t SET a = 1", "update"},
		{"delete from t", "delete"},
		{"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "with"},
		{"begin", "begin"},
		{"commit", "commit"},
		{"-- ping\nSELECT 1", "select"},
		{"/* app */ (SELECT 1) UNION (SELECT 2)", "select"},
		{"select\n1", "select"},
		{"SELECT pg_advisory_lock($1)", "select"},
		{"", "other"},
		{"-- only a comment", "other"},
		{"/* unterminated", "other"},
		{"VACUUM FULL", "other"},
		{"DROP TABLE students; --", "drop"},
		{"4111111111111111", "other"}, // literals never become labels
	}
	for _, tc := range tests {
		if got := postgres.Op(tc.sql); got != tc.want {
			t.Errorf("Op(%q) = %q, want %q", tc.sql, got, tc.want)
		}
	}
}

func sampleCounts(t *testing.T, reg *prometheus.Registry) map[string]uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_postgres_call_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
		}
	}
	return out
}

func TestCallTracerWithoutDatabase(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	tr, err := postgres.NewCallTracer(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tr.TraceQueryEnd(tr.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "SELECT 1"}), nil, pgx.TraceQueryEndData{})
	bctx := tr.TraceBatchStart(ctx, nil, pgx.TraceBatchStartData{})
	tr.TraceBatchQuery(bctx, nil, pgx.TraceBatchQueryData{SQL: "INSERT INTO t VALUES (1)"})
	tr.TraceBatchQuery(bctx, nil, pgx.TraceBatchQueryData{SQL: "INSERT INTO t VALUES (2)"})
	tr.TraceBatchEnd(bctx, nil, pgx.TraceBatchEndData{})
	tr.TraceCopyFromEnd(tr.TraceCopyFromStart(ctx, nil, pgx.TraceCopyFromStartData{}), nil, pgx.TraceCopyFromEndData{})
	tr.TraceQueryEnd(ctx, nil, pgx.TraceQueryEndData{}) // an end without start observes nothing

	// A second tracer on the same registry (a second pool) shares the series.
	tr2, err := postgres.NewCallTracer(reg)
	if err != nil {
		t.Fatal(err)
	}
	tr2.TraceQueryEnd(tr2.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "select 2"}), nil, pgx.TraceQueryEndData{})

	got := sampleCounts(t, reg)
	want := map[string]uint64{"select": 2, "batch": 1, "copy": 1}
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

func TestWithMetricsOnRealPostgres(t *testing.T) {
	t.Parallel()
	_, url := testinfra.NewDatabase(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	pool, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2}, postgres.WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	var one int
	if err := pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatal(err)
	}
	err = postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO kafka_offsets (consumer, topic, partition, next_offset) VALUES ('c', 't', 0, 1)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE kafka_offsets SET next_offset = 2 WHERE consumer = 'c'`)
	b.Queue(`SELECT next_offset FROM kafka_offsets`)
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}

	got := sampleCounts(t, reg)
	for op, n := range map[string]uint64{"select": 1, "begin": 1, "insert": 1, "commit": 1, "batch": 1} {
		if got[op] != n {
			t.Errorf("op %s: %d samples, want %d (all: %v)", op, got[op], n, got)
		}
	}
	if got["update"] != 0 {
		t.Errorf("a batched statement was timed alone: %v", got)
	}
}

// TestCallTracerSharesASeriesRegisteredElsewhere: a service that registered the histogram
// itself (scoring times some calls by hand) and also installs the tracer gets one series set.
func TestCallTracerSharesASeriesRegisteredElsewhere(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	own := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vigil_postgres_call_duration_seconds", Help: postgres.CallDurationHelp,
	}, []string{"op"})
	reg.MustRegister(own)
	tr, err := postgres.NewCallTracer(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tr.TraceQueryEnd(tr.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "SELECT 1"}), nil, pgx.TraceQueryEndData{})
	own.WithLabelValues("rules_active").Observe(0.01)
	if got := sampleCounts(t, reg); got["select"] != 1 || got["rules_active"] != 1 {
		t.Fatalf("samples %v", got)
	}
}
