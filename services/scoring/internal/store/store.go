// Package store writes decisions to Postgres. It is the handler of the decision sink
// (libs/sink), which supplies the transaction and stores the Kafka offsets in it.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/kafka"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
)

const insertDecision = `INSERT INTO decisions (
	decision_id, transaction_id, account_id, action, score, reasons, model_version, rule_set_version,
	feature_schema_version, review_threshold, decline_threshold, amount_minor, currency, features,
	received_at, decided_at, kafka_partition, kafka_offset, input_hash, input, degraded, shadow_model_version, shadow_score)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
ON CONFLICT DO NOTHING`

// Decisions is the sink handler.
type Decisions struct{ log *slog.Logger }

// NewDecisions returns the handler.
func NewDecisions(log *slog.Logger) *Decisions { return &Decisions{log: log} }

// ActionName is the lower-case action stored in Postgres.
func ActionName(a fraudv1.Action) string {
	return strings.ToLower(strings.TrimPrefix(a.String(), "ACTION_"))
}

type reasonRow struct {
	Code        string  `json:"code"`
	Description string  `json:"description,omitempty"`
	Weight      float64 `json:"weight,omitempty"`
}

// Apply inserts the batch in one round trip. A decision already stored (same decision id or
// transaction id) is left as it is: the first one wins, so replays never duplicate.
func (d *Decisions) Apply(ctx context.Context, tx pgx.Tx, recs []*kgo.Record) error {
	batch := &pgx.Batch{}
	for _, r := range recs {
		dec := &fraudv1.Decision{}
		if err := kafka.Decode(r, dec); err != nil {
			// Retrying cannot fix it; the offset still advances so the sink does not wedge.
			d.log.Error("skipping undecodable decision", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		reasons := make([]reasonRow, 0, len(dec.GetReasons()))
		for _, rs := range dec.GetReasons() {
			reasons = append(reasons, reasonRow{Code: rs.GetCode(), Description: rs.GetDescription(), Weight: rs.GetWeight()})
		}
		rj, err := json.Marshal(reasons)
		if err != nil {
			return fmt.Errorf("encode reasons of %s: %w", dec.GetDecisionId(), err)
		}
		feats := map[string]float64{}
		fv := dec.GetInput().GetFeatures()
		for i, n := range fv.GetNames() {
			if i < len(fv.GetValues()) {
				feats[n] = fv.GetValues()[i]
			}
		}
		fj, err := json.Marshal(feats)
		if err != nil {
			return fmt.Errorf("encode features of %s: %w", dec.GetDecisionId(), err)
		}
		input, err := proto.MarshalOptions{Deterministic: true}.Marshal(dec.GetInput())
		if err != nil {
			return fmt.Errorf("encode input of %s: %w", dec.GetDecisionId(), err)
		}
		var hash string
		var degraded bool
		var shadowVersion *string
		var shadowScore *float64
		for _, rs := range dec.GetReasons() {
			switch rs.GetCode() {
			case decide.ReasonInputHash:
				hash = rs.GetDescription()
			case decide.ReasonDegraded:
				degraded = true
			case decide.ReasonShadowScore:
				v, sc := rs.GetDescription(), rs.GetWeight()
				shadowVersion, shadowScore = &v, &sc
			}
		}
		batch.Queue(insertDecision,
			dec.GetDecisionId(), dec.GetTransactionId(), dec.GetAccountId(), ActionName(dec.GetAction()), dec.GetScore(),
			rj, dec.GetModelVersion(), dec.GetRuleSetVersion(), dec.GetFeatureSchemaVersion(),
			dec.GetReviewThreshold(), dec.GetDeclineThreshold(), dec.GetAmountMinor(), dec.GetCurrency(), fj,
			dec.GetReceivedTime().AsTime(), dec.GetDecidedTime().AsTime(), r.Partition, r.Offset,
			hash, input, degraded, shadowVersion, shadowScore)
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("insert %d decisions: %w", batch.Len(), err)
	}
	return nil
}
