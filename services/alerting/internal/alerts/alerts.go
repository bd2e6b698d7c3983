// Package alerts turns review and decline decisions into alert rows, idempotently, and reads
// the alert queue.
package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// AlertID is derived from the decision id: a replayed decision maps to the same alert.
func AlertID(decisionID string) string {
	sum := sha256.Sum256([]byte("alert:" + decisionID))
	return "alr_" + hex.EncodeToString(sum[:12])
}

// Raises reports whether a decision needs an analyst.
func Raises(a fraudv1.Action) bool {
	return a == fraudv1.Action_ACTION_REVIEW || a == fraudv1.Action_ACTION_DECLINE
}

const insertAlert = `INSERT INTO alerts (alert_id, decision_id, transaction_id, account_id, action, score)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (decision_id) DO NOTHING`

// Sink is the handler of the alert sink (libs/sink).
type Sink struct{ log *slog.Logger }

// NewSink returns the handler.
func NewSink(log *slog.Logger) *Sink { return &Sink{log: log} }

// Apply inserts an alert for each review or decline decision in the batch.
func (s *Sink) Apply(ctx context.Context, tx pgx.Tx, recs []*kgo.Record) error {
	batch := &pgx.Batch{}
	for _, r := range recs {
		d := &fraudv1.Decision{}
		if err := kafka.Decode(r, d); err != nil {
			s.log.Error("skipping undecodable decision", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if !Raises(d.GetAction()) {
			continue
		}
		action := "review"
		if d.GetAction() == fraudv1.Action_ACTION_DECLINE {
			action = "decline"
		}
		batch.Queue(insertAlert, AlertID(d.GetDecisionId()), d.GetDecisionId(), d.GetTransactionId(), d.GetAccountId(), action, d.GetScore())
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("insert %d alerts: %w", batch.Len(), err)
	}
	return nil
}

// Alert is one row of the queue.
type Alert struct {
	AlertID       string    `json:"alert_id"`
	DecisionID    string    `json:"decision_id"`
	TransactionID string    `json:"transaction_id"`
	AccountID     string    `json:"account_id"`
	Action        string    `json:"action"`
	Score         float64   `json:"score"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
}

// Queue reads alerts from Postgres.
type Queue struct{ pool *pgxpool.Pool }

// NewQueue returns the reader.
func NewQueue(pool *pgxpool.Pool) *Queue { return &Queue{pool: pool} }

// Open lists open alerts, highest score first.
func (q *Queue) Open(ctx context.Context, limit int) ([]Alert, error) {
	rows, err := q.pool.Query(ctx, `SELECT alert_id, decision_id, transaction_id, account_id, action, score, status, created_at
		FROM alerts WHERE status = 'open' ORDER BY score DESC, created_at LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Alert, error) {
		var a Alert
		err := row.Scan(&a.AlertID, &a.DecisionID, &a.TransactionID, &a.AccountID, &a.Action, &a.Score, &a.Status, &a.CreatedAt)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}
