// Package store writes decisions to Postgres. It is the handler of the decision sink
// (libs/sink), which supplies the transaction and stores the Kafka offsets in it.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// insertDecisions inserts a whole batch in one statement: one array per column, zipped by
// unnest. jsonb and text[] values travel as text and are cast per row.
const insertDecisions = `INSERT INTO decisions (
	decision_id, transaction_id, account_id, action, score, reasons, model_version, rule_set_version,
	feature_schema_version, review_threshold, decline_threshold, amount_minor, currency, features,
	received_at, decided_at, kafka_partition, kafka_offset, input_hash, input, degraded, shadow_model_version, shadow_score,
	account_window, list_hits, degraded_causes)
SELECT d, t, a, act, sc, r::jsonb, mv, rsv, fsv, rt, dt, am, cur, f::jsonb, ra, da, kp, ko, ih, inp, deg, smv, ss,
	aw::jsonb, lh::jsonb, dc::text[]
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::text[], $8::text[],
	$9::text[], $10::float8[], $11::float8[], $12::int8[], $13::text[], $14::text[], $15::timestamptz[],
	$16::timestamptz[], $17::int4[], $18::int8[], $19::text[], $20::bytea[], $21::bool[], $22::text[], $23::float8[],
	$24::text[], $25::text[], $26::text[])
	AS u(d, t, a, act, sc, r, mv, rsv, fsv, rt, dt, am, cur, f, ra, da, kp, ko, ih, inp, deg, smv, ss, aw, lh, dc)
ON CONFLICT DO NOTHING`

// columns holds one batch as column arrays for insertDecisions.
type columns struct {
	decisionID, transactionID, accountID, action []string
	score                                        []float64
	reasons, modelVersion, ruleSet, schema       []string
	reviewT, declineT                            []float64
	amount                                       []int64
	currency, features                           []string
	received, decided                            []time.Time
	partition                                    []int32
	offset                                       []int64
	inputHash                                    []string
	input                                        [][]byte
	degraded                                     []bool
	shadowVersion                                []*string
	shadowScore                                  []*float64
	window                                       []*string
	hits, causes                                 []string
}

func (c *columns) args() []any {
	return []any{c.decisionID, c.transactionID, c.accountID, c.action, c.score, c.reasons, c.modelVersion, c.ruleSet,
		c.schema, c.reviewT, c.declineT, c.amount, c.currency, c.features, c.received, c.decided, c.partition, c.offset,
		c.inputHash, c.input, c.degraded, c.shadowVersion, c.shadowScore, c.window, c.hits, c.causes}
}

// textArray is the Postgres literal of a text[].
func textArray(vals []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

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
	c, n, err := d.columns(recs)
	if err != nil || n == 0 {
		return err
	}
	if _, err := tx.Exec(ctx, insertDecisions, c.args()...); err != nil {
		return fmt.Errorf("insert %d decisions: %w", n, err)
	}
	return nil
}

// columns decodes recs into column arrays, skipping (and logging) undecodable records.
func (d *Decisions) columns(recs []*kgo.Record) (c columns, n int, _ error) {
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
			return c, 0, fmt.Errorf("encode reasons of %s: %w", dec.GetDecisionId(), err)
		}
		feats := map[string]float64{}
		fv := dec.GetInput().GetFeatures()
		for i, n := range features.NamesOf(fv.GetSchemaVersion(), fv.GetSchemaHash(), fv.GetNames()) {
			if i < len(fv.GetValues()) {
				feats[n] = fv.GetValues()[i]
			}
		}
		fj, err := json.Marshal(feats)
		if err != nil {
			return c, 0, fmt.Errorf("encode features of %s: %w", dec.GetDecisionId(), err)
		}
		input, err := proto.MarshalOptions{Deterministic: true}.Marshal(dec.GetInput())
		if err != nil {
			return c, 0, fmt.Errorf("encode input of %s: %w", dec.GetDecisionId(), err)
		}
		window, hits, causes, shadowVersion, shadowScore, err := metadataColumns(dec)
		if err != nil {
			return c, 0, err
		}
		var w *string
		if window != nil {
			s := string(window)
			w = &s
		}
		c.decisionID = append(c.decisionID, dec.GetDecisionId())
		c.transactionID = append(c.transactionID, dec.GetTransactionId())
		c.accountID = append(c.accountID, dec.GetAccountId())
		c.action = append(c.action, ActionName(dec.GetAction()))
		c.score = append(c.score, dec.GetScore())
		c.reasons = append(c.reasons, string(rj))
		c.modelVersion = append(c.modelVersion, dec.GetModelVersion())
		c.ruleSet = append(c.ruleSet, dec.GetRuleSetVersion())
		c.schema = append(c.schema, dec.GetFeatureSchemaVersion())
		c.reviewT = append(c.reviewT, dec.GetReviewThreshold())
		c.declineT = append(c.declineT, dec.GetDeclineThreshold())
		c.amount = append(c.amount, dec.GetAmountMinor())
		c.currency = append(c.currency, dec.GetCurrency())
		c.features = append(c.features, string(fj))
		c.received = append(c.received, dec.GetReceivedTime().AsTime())
		c.decided = append(c.decided, dec.GetDecidedTime().AsTime())
		c.partition = append(c.partition, r.Partition)
		c.offset = append(c.offset, r.Offset)
		c.inputHash = append(c.inputHash, dec.GetInputHash())
		c.input = append(c.input, input)
		c.degraded = append(c.degraded, dec.GetDegraded())
		c.shadowVersion = append(c.shadowVersion, shadowVersion)
		c.shadowScore = append(c.shadowScore, shadowScore)
		c.window = append(c.window, w)
		c.hits = append(c.hits, string(hits))
		c.causes = append(c.causes, textArray(causes))
		n++
	}
	return c, n, nil
}
