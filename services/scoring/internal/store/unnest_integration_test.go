package store

import (
	"context"
	"fmt"
	"log/slog"
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

var tenth = 0.1 // a variable: 0.1 + 0.2 in constants would be exactly 0.3

func fullDecision(tb testing.TB, txID string, offset int64) *kgo.Record {
	tb.Helper()
	now := timestamppb.New(time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC))
	r, err := kafka.NewRecord("decisions.v1", "acct", &fraudv1.Decision{
		DecisionId: "dec_" + txID, TransactionId: txID, AccountId: "acct", Action: fraudv1.Action_ACTION_DECLINE, Score: 0.97,
		Reasons:      []*fraudv1.Reason{{Code: "MODEL_SCORE", Description: `score "0.97" \ high`, Weight: 0.5}},
		ModelVersion: "m1", RuleSetVersion: "r1", FeatureSchemaVersion: "fs-2", ReviewThreshold: 0.8, DeclineThreshold: 0.95,
		AmountMinor: 99, Currency: "EUR", ReceivedTime: now, DecidedTime: now, InputHash: "h-" + txID, Degraded: true,
		ShadowModelVersion: "m2", ShadowScore: 0.25,
		AccountWindow:  &fraudv1.AccountWindow{Reviews_1H: 1, Declines_24H: 2, MaxScore_24H: tenth + 0.2},
		ListHits:       []*fraudv1.ListHit{{List: "blocked", Kind: "terminal", Reason: "seen", ValueHash: "ab"}},
		DegradedCauses: []fraudv1.DegradedCause{fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL, fraudv1.DegradedCause_DEGRADED_CAUSE_DECISION_WINDOWS},
		Input:          &fraudv1.EnrichedTransaction{Features: &fraudv1.FeatureVector{Names: []string{"amount", "is_night"}, Values: []float64{0.99, 1}}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	r.Offset = offset
	return r
}

// TestApplyStoresEveryColumn: the one-statement insert keeps every column of the decision,
// NULLs included, and a duplicate inside one batch is inserted once.
func TestApplyStoresEveryColumn(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	ctx := context.Background()
	h := NewDecisions(slog.New(slog.DiscardHandler))
	bare := decisionRecord(t, "s:bare", fraudv1.Action_ACTION_APPROVE, 3) // no shadow, window, hits or causes
	batch := []*kgo.Record{fullDecision(t, "s:full", 7), fullDecision(t, "s:full", 8), bare}
	if err := postgres.InTx(ctx, pool, func(tx pgx.Tx) error { return h.Apply(ctx, tx, batch) }); err != nil {
		t.Fatal(err)
	}
	var (
		n                                   int
		action, reasons, window, hits, feat string
		causes                              []string
		shadowV                             *string
		shadowS                             *float64
		degraded                            bool
		offset                              int64
		received                            time.Time
		input                               []byte
	)
	if err := pool.QueryRow(ctx, `SELECT count(*) OVER (), action, reasons::text, account_window::text, list_hits::text,
		features::text, degraded_causes, shadow_model_version, shadow_score, degraded, kafka_offset, received_at, input
		FROM decisions WHERE transaction_id = 's:full'`).Scan(&n, &action, &reasons, &window, &hits, &feat, &causes,
		&shadowV, &shadowS, &degraded, &offset, &received, &input); err != nil {
		t.Fatal(err)
	}
	if n != 1 || action != "decline" || offset != 7 || !degraded || shadowV == nil || *shadowV != "m2" || shadowS == nil || *shadowS != 0.25 {
		t.Errorf("row: n %d action %s offset %d degraded %v shadow %v %v", n, action, offset, degraded, shadowV, shadowS)
	}
	if fmt.Sprint(causes) != "[model decision_windows]" || !contains(reasons, `score \"0.97\" \\ high`) ||
		!contains(window, `"max_score_24h": 0.30000000000000004`) || !contains(hits, `"value_hash": "ab"`) ||
		feat != `{"amount": 0.99, "is_night": 1}` || len(input) == 0 || !received.Equal(time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC)) {
		t.Errorf("columns: causes %v reasons %s window %s hits %s features %s input %d B received %v", causes, reasons, window, hits, feat, len(input), received)
	}
	var w, sv *string
	var c []string
	if err := pool.QueryRow(ctx, `SELECT account_window::text, shadow_model_version, degraded_causes FROM decisions WHERE transaction_id = 's:bare'`).Scan(&w, &sv, &c); err != nil {
		t.Fatal(err)
	}
	if w != nil || sv != nil || len(c) != 0 {
		t.Errorf("bare decision: window %v shadow %v causes %v", w, sv, c)
	}
}

// BenchmarkApply compares the one-statement insert with a pipelined batch of single-row
// INSERTs (what it replaced) on the same database: decisions per second for 500-row batches.
func BenchmarkApply(b *testing.B) {
	pool, _ := testinfra.NewDatabase(b)
	ctx := context.Background()
	h := NewDecisions(slog.New(slog.DiscardHandler))
	const size = 500
	run := 0
	batch := func() []*kgo.Record {
		run++
		recs := make([]*kgo.Record, size)
		for i := range recs {
			recs[i] = fullDecision(b, fmt.Sprintf("b%d:%d", run, i), int64(i))
		}
		return recs
	}
	b.Run("unnest", func(b *testing.B) {
		for range b.N {
			recs := batch()
			if err := postgres.InTx(ctx, pool, func(tx pgx.Tx) error { return h.Apply(ctx, tx, recs) }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "decisions/s")
	})
	b.Run("batch-of-inserts", func(b *testing.B) {
		for range b.N {
			recs := batch()
			if err := postgres.InTx(ctx, pool, func(tx pgx.Tx) error { return applyRowByRow(ctx, tx, recs) }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "decisions/s")
	})
}

// applyRowByRow is the baseline: the same rows and columns, one INSERT each, sent as one
// pipelined pgx batch (what Apply did before).
func applyRowByRow(ctx context.Context, tx pgx.Tx, recs []*kgo.Record) error {
	c, n, err := NewDecisions(slog.New(slog.DiscardHandler)).columns(recs)
	if err != nil {
		return err
	}
	pb := &pgx.Batch{}
	for i := range n {
		pb.Queue(`INSERT INTO decisions (decision_id, transaction_id, account_id, action, score, reasons, model_version,
			rule_set_version, feature_schema_version, review_threshold, decline_threshold, amount_minor, currency, features,
			received_at, decided_at, kafka_partition, kafka_offset, input_hash, input, degraded, shadow_model_version,
			shadow_score, account_window, list_hits, degraded_causes)
			VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7,$8,$9,$10,$11,$12,$13,$14::jsonb,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24::jsonb,$25::jsonb,$26::text[])
			ON CONFLICT DO NOTHING`, c.decisionID[i], c.transactionID[i], c.accountID[i], c.action[i], c.score[i], c.reasons[i],
			c.modelVersion[i], c.ruleSet[i], c.schema[i], c.reviewT[i], c.declineT[i], c.amount[i], c.currency[i], c.features[i],
			c.received[i], c.decided[i], c.partition[i], c.offset[i], c.inputHash[i], c.input[i], c.degraded[i],
			c.shadowVersion[i], c.shadowScore[i], c.window[i], c.hits[i], c.causes[i])
	}
	return tx.SendBatch(ctx, pb).Close()
}
