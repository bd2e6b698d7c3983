package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/alerting/internal/cases"
)

func decisionRecord(t testing.TB, id, account string, action fraudv1.Action, score float64) *kgo.Record {
	t.Helper()
	r, err := kafka.NewRecord("decisions.v1", account, &fraudv1.Decision{DecisionId: id, TransactionId: "tx-" + id,
		AccountId: account, Action: action, Score: score})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func apply(t testing.TB, pool *pgxpool.Pool, s *Store, recs ...*kgo.Record) {
	t.Helper()
	if err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error { return s.Apply(context.Background(), tx, recs) }); err != nil {
		t.Fatal(err)
	}
}

// seedDecision stores the decision row the detail page joins (the decision sink's job in prod).
func seedDecision(t testing.TB, pool *pgxpool.Pool, id, account, action string, score float64) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO decisions (decision_id, transaction_id, account_id, action, score, reasons,
		model_version, rule_set_version, feature_schema_version, review_threshold, decline_threshold, amount_minor, currency, features,
		received_at, decided_at, kafka_partition, kafka_offset) VALUES ($1, 'tx-' || $1, $2, $3, $4,
		'[{"code":"MODEL_SCORE_ELEVATED","description":"score 0.7"},{"code":"FEATURE:account_count_1h","weight":0.4}]',
		'm1', 'r1', 'f1', 0.5, 0.9, 12345, 'EUR', '{"account_count_1h": 4}', now(), now(), 0, 0)`, id, account, action, score)
	if err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationAlertsGroupIntoCases(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	s := New(pool, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	recs := []*kgo.Record{
		decisionRecord(t, "d1", "acct-1", fraudv1.Action_ACTION_REVIEW, 0.6),
		decisionRecord(t, "d2", "acct-1", fraudv1.Action_ACTION_DECLINE, 0.95),
		decisionRecord(t, "d3", "acct-2", fraudv1.Action_ACTION_REVIEW, 0.7),
		decisionRecord(t, "d4", "acct-2", fraudv1.Action_ACTION_APPROVE, 0.1),
	}
	apply(t, pool, s, recs...)
	apply(t, pool, s, recs...) // a replay changes nothing
	var nAlerts, nCases, count1 int
	var top1 string
	var max1 float64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM cases),
		alert_count, top_action, max_score FROM cases WHERE account_id = 'acct-1'`).Scan(&nAlerts, &nCases, &count1, &top1, &max1); err != nil {
		t.Fatal(err)
	}
	if nAlerts != 3 || nCases != 2 || count1 != 2 || top1 != "decline" || max1 != 0.95 {
		t.Fatalf("alerts %d cases %d; acct-1 case: %d alerts, %s, %.2f", nAlerts, nCases, count1, top1, max1)
	}
	q, err := s.Queue(ctx, cases.Filter{Status: "open", MaxScore: 1, Sort: "score_desc", Limit: 10})
	if err != nil || len(q) != 2 || q[0].AccountID != "acct-1" {
		t.Fatalf("queue %+v %v", q, err)
	}
	// Every filter reaches SQL that Postgres accepts and that selects what it says.
	for _, tc := range []struct {
		f    cases.Filter
		want int
	}{
		{cases.Filter{Status: "open", Action: "decline", MaxScore: 1, Sort: "age_desc", Limit: 10}, 1},
		{cases.Filter{Status: "open", MinScore: 0.8, MaxScore: 1, Sort: "score_asc", Limit: 10}, 1},
		{cases.Filter{Status: "open", MaxScore: 0.8, Sort: "age_asc", Limit: 10}, 1},
		{cases.Filter{MaxAge: time.Hour, MaxScore: 1, Limit: 10}, 2},
		{cases.Filter{MinAge: time.Hour, MaxScore: 1, Limit: 10}, 0},
		{cases.Filter{Assignee: "none", MaxScore: 1, Limit: 10}, 2},
		{cases.Filter{Assignee: "x@y", MaxScore: 1, Limit: 10}, 0},
		{cases.Filter{Status: "closed", MaxScore: 1, Limit: 10, Offset: 1}, 0},
	} {
		got, err := s.Queue(ctx, tc.f)
		if err != nil || len(got) != tc.want {
			t.Errorf("queue %+v: %d cases (%v), want %d", tc.f, len(got), err, tc.want)
		}
	}
	// After the case closes, the next alert of the account opens a new case.
	c := q[0]
	if _, err := s.Change(ctx, c.CaseID, Change{Kind: "close", Actor: "a@x", Version: c.Version}); err != nil {
		t.Fatal(err)
	}
	apply(t, pool, s, decisionRecord(t, "d5", "acct-1", fraudv1.Action_ACTION_REVIEW, 0.55))
	var open, closed int
	_ = pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'open'), count(*) FILTER (WHERE status = 'closed') FROM cases WHERE account_id = 'acct-1'`).Scan(&open, &closed)
	if open != 1 || closed != 1 {
		t.Fatalf("acct-1: %d open, %d closed cases", open, closed)
	}
	alerts, err := s.Open(ctx, 500)
	if err != nil || len(alerts) != 2 { // d3 and d5; d1, d2 closed with their case
		t.Fatalf("open alerts %d %v", len(alerts), err)
	}
}

func TestIntegrationCaseChanges(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	s := New(pool, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	seedDecision(t, pool, "d1", "acct-1", "review", 0.7)
	apply(t, pool, s, decisionRecord(t, "d1", "acct-1", fraudv1.Action_ACTION_REVIEW, 0.7))
	var id string
	if err := pool.QueryRow(ctx, `SELECT case_id FROM cases`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	c, err := s.Change(ctx, id, Change{Kind: "claim", Actor: "ana@x", Version: 1})
	if err != nil || c.Assignee != "ana@x" || c.Version != 2 {
		t.Fatalf("claim: %+v %v", c, err)
	}
	// Two analysts label at version 2: the second gets a conflict.
	if _, err := s.Change(ctx, id, Change{Kind: "label", Actor: "ana@x", Version: 2, Label: "fraud", Note: "card testing"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Change(ctx, id, Change{Kind: "label", Actor: "bob@x", Version: 2, Label: "legitimate"}); !errors.Is(err, cases.ErrConflict) {
		t.Fatalf("stale label: %v, want conflict", err)
	}
	if _, err := s.Change(ctx, "cas_nope", Change{Kind: "close", Actor: "ana@x", Version: 1}); !errors.Is(err, cases.ErrNotFound) {
		t.Fatalf("unknown case: %v", err)
	}
	d, err := s.Case(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Label != "fraud" || len(d.Alerts) != 1 || d.Alerts[0].Features["account_count_1h"] != 4 || len(d.Alerts[0].Reasons) != 2 ||
		d.Alerts[0].Reasons[1].Words == "" || len(d.RecentDecisions) != 1 || len(d.Audit) != 2 {
		t.Fatalf("detail %+v", d)
	}
	if string(d.Audit[1].Before) == "" || string(d.Audit[1].After) == "" || d.Audit[1].Actor != "ana@x" || d.Audit[1].Action != "label" {
		t.Fatalf("audit %+v", d.Audit[1])
	}
	var labels, outbox int
	_ = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM labels), (SELECT count(*) FROM label_outbox WHERE sent_at IS NULL)`).Scan(&labels, &outbox)
	if labels != 1 || outbox != 1 {
		t.Fatalf("labels %d outbox %d", labels, outbox)
	}
	o, err := s.Overview(ctx)
	if err != nil || o.LabelledCases != 1 || o.FraudCases != 1 || o.Precision != 1 || o.DecisionsByAction["review"] != 1 ||
		o.AlertsToday != 1 || o.AlertRate != 1 || o.OpenCases != 1 {
		t.Fatalf("overview %+v %v", o, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE audit_log SET actor = 'mallory'`); err == nil {
		t.Fatal("audit log accepted an update")
	}
	var n int
	err = s.ExportLabels(ctx, func(tid, acc, v, an string, _, _ time.Time) error {
		n++
		if tid != "tx-d1" || v != "fraud" || an != "ana@x" {
			return fmt.Errorf("exported %s %s %s", tid, v, an)
		}
		return nil
	})
	if err != nil || n != 1 {
		t.Fatalf("export: %d %v", n, err)
	}
}

func TestValidateChange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ch    Change
		field string
	}{
		{Change{Kind: "claim", Version: 1}, ""},
		{Change{Kind: "claim", Version: 0}, "version"},
		{Change{Kind: "assign", Version: 1, Assignee: "nobody"}, "assignee"},
		{Change{Kind: "label", Version: 1, Label: "spam"}, "label"},
		{Change{Kind: "label", Version: 1, Label: "unsure"}, ""},
		{Change{Kind: "delete", Version: 1}, "action"},
	}
	for _, tc := range tests {
		err := ValidateChange(tc.ch)
		var inv *cases.InvalidError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%+v: %v", tc.ch, err)
		case tc.field != "" && (!errors.As(err, &inv) || inv.Fields[0].Field != tc.field):
			t.Errorf("%+v: %v, want field %s", tc.ch, err, tc.field)
		}
	}
}

func TestIntegrationWebhookOutboxWithAlert(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	s := New(pool, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO webhook_subscriptions (subscription_id, url, secret, event_types) VALUES
		('whs_a', 'https://a.example.com/', 's', '{alert.created}'), ('whs_off', 'https://b.example.com/', 's', '{alert.created}')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE webhook_subscriptions SET active = false WHERE subscription_id = 'whs_off'`); err != nil {
		t.Fatal(err)
	}
	rec := decisionRecord(t, "d1", "acct-1", fraudv1.Action_ACTION_DECLINE, 0.97)
	// A batch that fails after the alert rolls back its deliveries too: one transaction.
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := s.Apply(ctx, tx, []*kgo.Record{rec}); err != nil {
			return err
		}
		return errors.New("crash before commit")
	})
	if err == nil {
		t.Fatal("expected the simulated crash")
	}
	var n int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d deliveries survived a rolled-back alert", n)
	}
	apply(t, pool, s, rec)
	apply(t, pool, s, rec) // replay
	var sub, payload string
	if err := pool.QueryRow(ctx, `SELECT count(*), min(subscription_id), min(payload->>'action') FROM webhook_deliveries`).Scan(&n, &sub, &payload); err != nil {
		t.Fatal(err)
	}
	if n != 1 || sub != "whs_a" || payload != "decline" {
		t.Fatalf("deliveries: %d to %s (%s), want 1 to whs_a (decline)", n, sub, payload)
	}
}
