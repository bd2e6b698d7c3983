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
)

const insertDecision = `INSERT INTO decisions (
	decision_id, transaction_id, account_id, action, score, reasons, model_version, rule_set_version,
	feature_schema_version, review_threshold, decline_threshold, amount_minor, currency, features,
	received_at, decided_at, kafka_partition, kafka_offset, input_hash, input, degraded, shadow_model_version, shadow_score,
	account_window, list_hits, degraded_causes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)
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

// WindowRow is decisions.account_window. Go's shortest float formatting and jsonb's exact
// numeric keep max_score_24h bit for bit, which explain relies on.
type WindowRow struct {
	Reviews1h   int32   `json:"reviews_1h"`
	Declines1h  int32   `json:"declines_1h"`
	Reviews24h  int32   `json:"reviews_24h"`
	Declines24h int32   `json:"declines_24h"`
	MaxScore24h float64 `json:"max_score_24h"`
}

// HitRow is one element of decisions.list_hits.
type HitRow struct {
	List      string `json:"list"`
	Kind      string `json:"kind"`
	Reason    string `json:"reason,omitempty"`
	ValueHash string `json:"value_hash,omitempty"`
}

// Degraded causes as stored in decisions.degraded_causes.
const (
	CauseModel           = "model"
	CauseDecisionWindows = "decision_windows"
)

func causeName(c fraudv1.DegradedCause) string {
	switch c {
	case fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL:
		return CauseModel
	case fraudv1.DegradedCause_DEGRADED_CAUSE_DECISION_WINDOWS:
		return CauseDecisionWindows
	}
	return strings.ToLower(strings.TrimPrefix(c.String(), "DEGRADED_CAUSE_"))
}

// CauseFromName is the inverse of the stored name; unknown names are UNSPECIFIED.
func CauseFromName(s string) fraudv1.DegradedCause {
	switch s {
	case CauseModel:
		return fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL
	case CauseDecisionWindows:
		return fraudv1.DegradedCause_DEGRADED_CAUSE_DECISION_WINDOWS
	}
	return fraudv1.DegradedCause_DEGRADED_CAUSE_UNSPECIFIED
}

// metadataColumns are the decision's metadata fields as column values: account_window (nil
// when the windows were unavailable), list_hits, degraded_causes, shadow version and score
// (nil without a shadow).
func metadataColumns(dec *fraudv1.Decision) (window, hits []byte, causes []string, shadowVersion *string, shadowScore *float64, err error) {
	if w := dec.GetAccountWindow(); w != nil {
		if window, err = json.Marshal(WindowRow{w.GetReviews_1H(), w.GetDeclines_1H(), w.GetReviews_24H(), w.GetDeclines_24H(), w.GetMaxScore_24H()}); err != nil {
			return nil, nil, nil, nil, nil, fmt.Errorf("encode account window of %s: %w", dec.GetDecisionId(), err)
		}
	}
	hr := make([]HitRow, 0, len(dec.GetListHits()))
	for _, h := range dec.GetListHits() {
		hr = append(hr, HitRow{List: h.GetList(), Kind: h.GetKind(), Reason: h.GetReason(), ValueHash: h.GetValueHash()})
	}
	if hits, err = json.Marshal(hr); err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("encode list hits of %s: %w", dec.GetDecisionId(), err)
	}
	causes = make([]string, 0, len(dec.GetDegradedCauses()))
	for _, c := range dec.GetDegradedCauses() {
		causes = append(causes, causeName(c))
	}
	if v := dec.GetShadowModelVersion(); v != "" {
		sc := dec.GetShadowScore()
		shadowVersion, shadowScore = &v, &sc
	}
	return window, hits, causes, shadowVersion, shadowScore, nil
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
		window, hits, causes, shadowVersion, shadowScore, err := metadataColumns(dec)
		if err != nil {
			return err
		}
		batch.Queue(insertDecision,
			dec.GetDecisionId(), dec.GetTransactionId(), dec.GetAccountId(), ActionName(dec.GetAction()), dec.GetScore(),
			rj, dec.GetModelVersion(), dec.GetRuleSetVersion(), dec.GetFeatureSchemaVersion(),
			dec.GetReviewThreshold(), dec.GetDeclineThreshold(), dec.GetAmountMinor(), dec.GetCurrency(), fj,
			dec.GetReceivedTime().AsTime(), dec.GetDecidedTime().AsTime(), r.Partition, r.Offset,
			dec.GetInputHash(), input, dec.GetDegraded(), shadowVersion, shadowScore, window, hits, causes)
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("insert %d decisions: %w", batch.Len(), err)
	}
	return nil
}
