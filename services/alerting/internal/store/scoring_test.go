package store

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/alerting/internal/cases"
	"github.com/vigil-fraud/vigil/services/alerting/internal/lists"
	"github.com/vigil-fraud/vigil/services/alerting/internal/rules"
)

// TestIntegrationRuleVersions: every change is a new row; old versions stay as they were, the
// newest is what scoring's Active query (DISTINCT ON rule_id, version DESC) reads, and each
// change is audited.
func TestIntegrationRuleVersions(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	s := New(pool, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	r := rules.Rule{ID: "big_amount", Expression: "tx.amount_minor > 100000", Action: "review", Reason: "AMOUNT_HIGH", Priority: 5, Enabled: true}
	if _, err := s.SaveRule(ctx, "adm@example.com", r, 0); !errors.Is(err, cases.ErrConflict) {
		t.Fatalf("rule before scoring seeded: %v, want conflict", err)
	}
	// What scoring's Seed does on its first start.
	if _, err := pool.Exec(ctx, `INSERT INTO scoring_rules (rule_id, version, expression, action, reason_code) VALUES ('seed', 1, 'score > 0.99', 'decline', 'SEED')`); err != nil {
		t.Fatal(err)
	}
	v1, err := s.SaveRule(ctx, "adm@example.com", r, 0)
	if err != nil || v1.Version != 1 {
		t.Fatalf("new rule: %+v %v", v1, err)
	}
	if _, err := s.SaveRule(ctx, "adm@example.com", r, 0); !errors.Is(err, cases.ErrConflict) {
		t.Fatalf("second create of the same id: %v, want conflict", err)
	}
	r.Expression = "tx.amount_minor > 200000"
	v2, err := s.SaveRule(ctx, "adm@example.com", r, 1)
	if err != nil || v2.Version != 2 {
		t.Fatalf("new version: %+v %v", v2, err)
	}
	if _, err := s.SaveRule(ctx, "other@example.com", r, 1); !errors.Is(err, cases.ErrConflict) {
		t.Fatalf("edit of a stale version: %v, want conflict", err)
	}
	v3, err := s.SetRuleEnabled(ctx, "adm@example.com", "big_amount", 2, false)
	if err != nil || v3.Version != 3 || v3.Enabled || v3.Expression != r.Expression {
		t.Fatalf("disable: %+v %v", v3, err)
	}
	if _, err := s.SetRuleEnabled(ctx, "adm@example.com", "nope", 1, true); !errors.Is(err, cases.ErrNotFound) {
		t.Fatalf("unknown rule: %v", err)
	}
	var bad *cases.InvalidError
	if _, err := s.SaveRule(ctx, "adm@example.com", rules.Rule{ID: "x", Expression: "features.nope > 1", Action: "review", Reason: "X"}, 0); !errors.As(err, &bad) {
		t.Fatalf("bad expression stored: %v", err)
	}

	var old string
	if err := pool.QueryRow(ctx, `SELECT expression FROM scoring_rules WHERE rule_id = 'big_amount' AND version = 1`).Scan(&old); err != nil || old != "tx.amount_minor > 100000" {
		t.Fatalf("version 1 changed: %q %v", old, err)
	}
	cur, err := s.Rules(ctx)
	if err != nil || len(cur) != 2 || cur[0].ID != "big_amount" || cur[0].Version != 3 || cur[0].Enabled {
		t.Fatalf("current rules %+v %v", cur, err)
	}
	var audits int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE entity = 'scoring_rule' AND entity_id = 'big_amount'`).Scan(&audits); err != nil || audits != 3 {
		t.Fatalf("audit rows %d %v", audits, err)
	}
}

func TestIntegrationListEntries(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	s := New(pool, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	exp := time.Now().Add(24 * time.Hour)
	if _, err := s.PutEntry(ctx, "adm@example.com", lists.Entry{List: "block", Kind: "card", Value: "tok_abc", Reason: "chargeback", ExpiresAt: &exp}); err != nil {
		t.Fatal(err)
	}
	var bad *cases.InvalidError
	if _, err := s.PutEntry(ctx, "adm@example.com", lists.Entry{List: "block", Kind: "card", Value: "4111111111111111"}); !errors.As(err, &bad) || bad.Fields[0].Field != "value" {
		t.Fatalf("PAN stored: %v", err)
	}
	if err := s.ExpireEntry(ctx, "adm@example.com", "block", "card", "tok_abc"); err != nil {
		t.Fatal(err)
	}
	// Scoring's Unexpired query must no longer see it.
	var live int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM scoring_list_entries WHERE expires_at IS NULL OR expires_at > now()`).Scan(&live); err != nil || live != 0 {
		t.Fatalf("unexpired entries %d %v", live, err)
	}
	if err := s.RemoveEntry(ctx, "adm@example.com", "block", "card", "tok_abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveEntry(ctx, "adm@example.com", "block", "card", "tok_abc"); !errors.Is(err, cases.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	au, err := s.ScoringAudit(ctx, 10)
	if err != nil || len(au) != 3 || au[0].Action != "list.remove" || au[2].Action != "list.put" {
		t.Fatalf("audit %+v %v", au, err)
	}
	var panInAudit int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE before::text LIKE '%4111%' OR after::text LIKE '%4111%'`).Scan(&panInAudit); err != nil || panInAudit != 0 {
		t.Fatalf("PAN in audit: %d %v", panInAudit, err)
	}
}

// TestIntegrationCaseHidesMetadataReasons: old rows carry DEGRADED/INPUT_HASH/... as reason
// codes, new rows the degraded column; both show as the degraded flag and neither lists the
// pseudo codes.
func TestIntegrationCaseHidesMetadataReasons(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	s := New(pool, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	ins := func(id, reasons string, degraded bool) {
		if _, err := pool.Exec(ctx, `INSERT INTO decisions (decision_id, transaction_id, account_id, action, score, reasons,
			model_version, rule_set_version, feature_schema_version, review_threshold, decline_threshold, amount_minor, currency, features,
			received_at, decided_at, kafka_partition, kafka_offset, degraded) VALUES ($1, 'tx-' || $1, 'acct-deg', 'review', 0.6, $2,
			'm1', 'r1', 'f1', 0.5, 0.9, 100, 'EUR', '{}', now(), now(), 0, 0, $3)`, id, reasons, degraded); err != nil {
			t.Fatal(err)
		}
	}
	ins("old", `[{"code":"AMOUNT_HIGH"},{"code":"DEGRADED","description":"model unavailable: rules and lists only"},
		{"code":"ACCOUNT_WINDOW","description":"{}"},{"code":"SHADOW_SCORE","description":"lr-2","weight":0.3},{"code":"INPUT_HASH","description":"ab12"}]`, false)
	ins("new", `[{"code":"AMOUNT_HIGH"}]`, true)
	ins("plain", `[{"code":"MODEL_SCORE_ELEVATED"},{"code":"INPUT_HASH","description":"cd34"}]`, false)
	apply(t, pool, s, decisionRecord(t, "old", "acct-deg", fraudv1.Action_ACTION_REVIEW, 0.6), decisionRecord(t, "new", "acct-deg", fraudv1.Action_ACTION_REVIEW, 0.6), decisionRecord(t, "plain", "acct-deg", fraudv1.Action_ACTION_REVIEW, 0.6))
	var caseID string
	if err := pool.QueryRow(ctx, `SELECT case_id FROM cases WHERE account_id = 'acct-deg'`).Scan(&caseID); err != nil {
		t.Fatal(err)
	}
	d, err := s.Case(ctx, caseID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]CaseAlert{}
	for _, a := range d.Alerts {
		got[a.DecisionID] = a
		for _, r := range a.Reasons {
			if r.Code == "DEGRADED" || r.Code == "INPUT_HASH" || r.Code == "ACCOUNT_WINDOW" || r.Code == "SHADOW_SCORE" {
				t.Errorf("%s lists pseudo reason %s", a.DecisionID, r.Code)
			}
		}
	}
	if a := got["old"]; !a.Degraded || a.DegradedWhy == "" || len(a.Reasons) != 1 {
		t.Errorf("old row: %+v", a)
	}
	if a := got["new"]; !a.Degraded || len(a.Reasons) != 1 {
		t.Errorf("new row: %+v", a)
	}
	if a := got["plain"]; a.Degraded || len(a.Reasons) != 1 {
		t.Errorf("plain row: %+v", a)
	}
}

// TestIntegrationQueueKeyset pages through the queue with next_cursor in every sort order and
// finds each case exactly once, in the order of one unpaged query, ties on score included.
func TestIntegrationQueueKeyset(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	s := New(pool, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	// 37 cases, scores with many ties, created_at with ties too.
	if _, err := pool.Exec(ctx, `INSERT INTO cases (case_id, account_id, top_action, max_score, alert_count, created_at)
		SELECT 'cas_' || lpad(i::text, 3, '0'), 'acct-' || i, 'review', (i % 5) / 10.0 + 0.5, 1,
		       timestamptz '2026-11-25 10:00:00+00' + ((i % 7) * interval '1 minute')
		FROM generate_series(1, 37) i`); err != nil {
		t.Fatal(err)
	}
	for _, sort := range []string{"score_desc", "score_asc", "age_desc", "age_asc"} {
		all, err := s.Queue(ctx, cases.Filter{Status: "open", MaxScore: 1, Sort: sort, Limit: 500})
		if err != nil || len(all) != 37 {
			t.Fatalf("%s: all %d %v", sort, len(all), err)
		}
		f := cases.Filter{Status: "open", MaxScore: 1, Sort: sort, Limit: 5}
		var paged []string
		for pages := 0; pages < 20; pages++ {
			page, err := s.Queue(ctx, f)
			if err != nil {
				t.Fatalf("%s: %v", sort, err)
			}
			for _, c := range page {
				paged = append(paged, c.CaseID)
			}
			next := NextCursor(f, page)
			if next == "" {
				break
			}
			if f.After, err = cases.ParseCursor(next, sort); err != nil {
				t.Fatal(err)
			}
		}
		if len(paged) != len(all) {
			t.Fatalf("%s: paged %d cases, want %d", sort, len(paged), len(all))
		}
		for i := range all {
			if paged[i] != all[i].CaseID {
				t.Fatalf("%s: position %d is %s, want %s", sort, i, paged[i], all[i].CaseID)
			}
		}
	}
}
