package store

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/sink"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/alerting/internal/cases"
)

// BenchmarkAlertsFromKafka measures alerts created per second end to end on the real broker
// and Postgres: decisions.v1 → libs/sink → alerts + cases + webhook outbox. The baseline in the
// same run is the pre-cases handler (one plain INSERT per alert) over the same records.
//
//	go test -run '^$' -bench AlertsFromKafka -benchtime 1x ./internal/store/
func BenchmarkAlertsFromKafka(b *testing.B) {
	const n = 20000
	brokers := testinfra.KafkaBrokers(b)
	ctx := context.Background()
	topic := testinfra.UniqueName("decisions-bench-")
	cl, err := kgo.NewClient(kafka.ProducerOptions(brokers)...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, 6, topic); err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		acct := fmt.Sprintf("acct-%05d", i%4000)
		r, _ := kafka.NewRecord(topic, acct, &fraudv1.Decision{DecisionId: fmt.Sprintf("bd-%06d", i), TransactionId: fmt.Sprintf("bt-%06d", i),
			AccountId: acct, Action: fraudv1.Action_ACTION_REVIEW, Score: float64(i%1000) / 1000})
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	run := func(name string, handler func(*pgxpool.Pool) sink.Handler) float64 {
		pool, _ := testinfra.NewDatabase(b)
		s, err := sink.New(sink.Config{Brokers: brokers, Name: testinfra.UniqueName("bench-"), Topics: []string{topic}}, pool, handler(pool), log)
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		done := make(chan error, 1)
		began := time.Now()
		go func() { done <- s.Run(rctx) }()
		for s.Applied.Load() < n && rctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		elapsed := time.Since(began)
		cancel()
		<-done
		var alerts int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM alerts`).Scan(&alerts)
		if alerts != n {
			b.Fatalf("%s: %d alerts, want %d", name, alerts, n)
		}
		rate := float64(n) / elapsed.Seconds()
		b.Logf("%-28s %6d alerts in %7s = %8.0f alerts/s", name, n, elapsed.Round(time.Millisecond), rate)
		return rate
	}
	b.ResetTimer()
	for range b.N {
		base := run("baseline: plain INSERT", func(*pgxpool.Pool) sink.Handler { return plainInsert })
		full := run("alerts+cases", func(p *pgxpool.Pool) sink.Handler { return New(p, log).Apply })
		hooked := run("alerts+cases+1 webhook sub", func(p *pgxpool.Pool) sink.Handler {
			if _, err := p.Exec(ctx, `INSERT INTO webhook_subscriptions (subscription_id, url, secret, event_types)
				VALUES ('whs_b', 'https://hooks.example.com/x', 's', '{alert.created}')`); err != nil {
				b.Fatal(err)
			}
			return New(p, log).Apply
		})
		b.ReportMetric(full, "alerts/s")
		b.ReportMetric(hooked, "alerts+webhook/s")
		b.ReportMetric(base, "baseline-alerts/s")
	}
}

func plainInsert(ctx context.Context, tx pgx.Tx, recs []*kgo.Record) error {
	batch := &pgx.Batch{}
	for _, r := range recs {
		d := &fraudv1.Decision{}
		if kafka.Decode(r, d) != nil || !Raises(d.GetAction()) {
			continue
		}
		batch.Queue(`INSERT INTO alerts (alert_id, decision_id, transaction_id, account_id, action, score) VALUES ($1, $2, $3, $4, 'review', $5)
			ON CONFLICT (decision_id) DO NOTHING`, AlertID(d.GetDecisionId()), d.GetDecisionId(), d.GetTransactionId(), d.GetAccountId(), d.GetScore())
	}
	return tx.SendBatch(ctx, batch).Close()
}

// BenchmarkQueueP99 fills Postgres with 1M alerts in 200k cases (10% open, a quarter of
// those assigned) and reports p50/p99 of the queue queries against SELECT 1 (the round-trip
// floor) in the same run.
//
//	go test -run '^$' -bench QueueP99 -benchtime 1x ./internal/store/
func BenchmarkQueueP99(b *testing.B) {
	pool, _ := testinfra.NewDatabase(b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	began := time.Now()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		// Bulk load without per-row FK triggers (the rows are consistent by construction).
		`SET session_replication_role = replica`,
		// Secondary indexes are built once after the load: a sort beats 1M incremental inserts.
		`DROP INDEX alerts_queue_idx`, `DROP INDEX alerts_case_idx`, `DROP INDEX alerts_open_score_idx`,
		`INSERT INTO cases (case_id, account_id, status, assignee, top_action, max_score, alert_count, created_at)
		 SELECT 'cas_' || g, 'acct-' || g, CASE WHEN g % 10 = 0 THEN 'open' ELSE 'closed' END,
		        CASE WHEN g % 40 = 0 THEN 'analyst' || (g % 7) || '@example.com' END,
		        CASE WHEN g % 3 = 0 THEN 'decline' ELSE 'review' END, (g::bigint * 7919 % 1000) / 1000.0, 5,
		        now() - (g % 43200) * interval '1 minute'
		 FROM generate_series(1, 200000) g`,
		`INSERT INTO alerts (alert_id, decision_id, transaction_id, account_id, action, score, status, case_id, created_at)
		 SELECT 'alr_' || g, 'dec_' || g, 'tx_' || g, 'acct-' || (g % 200000 + 1), 'review', (g::bigint * 7919 % 1000) / 1000.0,
		        CASE WHEN (g % 200000 + 1) % 10 = 0 THEN 'open' ELSE 'closed' END, 'cas_' || (g % 200000 + 1), now() - (g % 43200) * interval '1 minute'
		 FROM generate_series(1, 1000000) g`,
		`SET session_replication_role = DEFAULT`,
		`CREATE INDEX alerts_queue_idx ON alerts (status, created_at)`,
		`CREATE INDEX alerts_case_idx ON alerts (case_id, created_at)`,
		`CREATE INDEX alerts_open_score_idx ON alerts (score DESC, created_at) WHERE status = 'open'`,
		`ANALYZE cases`, `ANALYZE alerts`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("generated 1M alerts / 200k cases in %s", time.Since(began).Round(time.Millisecond))
	conn.Release()
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := New(pool, slog.New(slog.DiscardHandler))
	measure := func(name string, f func() error) {
		const runs = 200
		ds := make([]time.Duration, 0, runs)
		for range runs {
			t0 := time.Now()
			if err := f(); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t0))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		p99 := ds[runs*99/100]
		b.Logf("%-52s p50 %8s  p99 %8s", name, ds[runs/2].Round(time.Microsecond), p99.Round(time.Microsecond))
	}
	b.ResetTimer()
	for range b.N {
		measure("baseline SELECT 1", func() error { _, err := pool.Exec(ctx, `SELECT 1`); return err })
		f := cases.Filter{Status: "open", MaxScore: 1, Sort: "score_desc", Limit: 50}
		q := func(f cases.Filter) func() error {
			return func() error { _, err := s.Queue(ctx, f); return err }
		}
		measure("queue open, score desc, 50", q(f))
		g := f
		g.Sort = "age_desc"
		measure("queue open, oldest first, 50", q(g))
		g = f
		g.Action, g.MinScore = "decline", 0.8
		measure("queue open decline score>=0.8", q(g))
		g = f
		g.Assignee = "analyst3@example.com"
		measure("queue assignee=analyst3", q(g))
		g = f
		g.Offset = 5000
		measure("queue open, score desc, offset 5000", q(g))
		// The same page by keyset: the cursor of row 5000.
		g.Offset, g.Limit = 4999, 1
		row, err := s.Queue(ctx, g)
		if err != nil || len(row) != 1 {
			b.Fatalf("row 5000: %v", err)
		}
		g = f
		g.After = &cases.Cursor{Sort: f.Sort, Score: row[0].MaxScore, CreatedAt: row[0].CreatedAt, CaseID: row[0].CaseID}
		measure("queue open, score desc, keyset after row 5000", q(g))
		g = f
		g.Status = ""
		g.MaxAge = time.Hour
		measure("queue any status, last hour", q(g))
		measure("GET /v1/alerts equivalent (open, 500)", func() error { _, err := s.Open(ctx, 500); return err })
	}
}
