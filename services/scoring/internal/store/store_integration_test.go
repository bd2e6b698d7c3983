package store

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

func decisionRecord(t *testing.T, txID string, action fraudv1.Action, offset int64) *kgo.Record {
	t.Helper()
	now := timestamppb.New(time.Now())
	r, err := kafka.NewRecord("decisions.v1", "acct", &fraudv1.Decision{
		DecisionId: "dec_" + txID, TransactionId: txID, AccountId: "acct", Action: action, Score: 0.5,
		Reasons:      []*fraudv1.Reason{{Code: "AMOUNT_OVER_REVIEW_LIMIT", Description: "amount 150000 ≥ 100000"}},
		ModelVersion: "m1", RuleSetVersion: "r1", FeatureSchemaVersion: "fs-1", ReviewThreshold: 0.8, DeclineThreshold: 0.95,
		AmountMinor: 150_000, Currency: "EUR", ReceivedTime: now, DecidedTime: now,
		Input: &fraudv1.EnrichedTransaction{Features: &fraudv1.FeatureVector{Names: []string{"amount"}, Values: []float64{1500}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Offset = offset
	return r
}

func TestApplyIsIdempotentAndKeepsTheFirstDecision(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	ctx := context.Background()
	h := NewDecisions(slog.New(slog.DiscardHandler))
	batch := []*kgo.Record{
		decisionRecord(t, "s:1", fraudv1.Action_ACTION_REVIEW, 0),
		{Topic: "decisions.v1", Value: []byte("junk"), Offset: 1}, // skipped, not fatal
		decisionRecord(t, "s:2", fraudv1.Action_ACTION_APPROVE, 2),
	}
	for i := 0; i < 2; i++ { // the second apply is a replay
		if err := postgres.InTx(ctx, pool, func(tx pgx.Tx) error { return h.Apply(ctx, tx, batch) }); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var action, reasons string
	var amount float64
	if err := pool.QueryRow(ctx, `SELECT count(*) OVER (), action, reasons::text, (features->>'amount')::float8
		FROM decisions WHERE transaction_id = 's:1'`).Scan(&n, &action, &reasons, &amount); err != nil {
		t.Fatal(err)
	}
	var total int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM decisions`).Scan(&total)
	if total != 2 || action != "review" || amount != 1500 {
		t.Fatalf("total %d, action %s, amount %v", total, action, amount)
	}
	if want := `"code": "AMOUNT_OVER_REVIEW_LIMIT"`; !contains(reasons, want) {
		t.Fatalf("reasons %s lack %s", reasons, want)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
