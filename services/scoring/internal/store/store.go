// Package store writes decisions to Postgres. It is the handler of the decision sink
// (libs/sink), which supplies the transaction and stores the Kafka offsets in it.
package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
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
	return []any{texts(c.decisionID), texts(c.transactionID), texts(c.accountID), texts(c.action), c.score,
		texts(c.reasons), texts(c.modelVersion), texts(c.ruleSet), texts(c.schema), c.reviewT, c.declineT, c.amount,
		texts(c.currency), texts(c.features), c.received, c.decided, c.partition, c.offset, texts(c.inputHash), c.input,
		c.degraded, nullableTexts(c.shadowVersion), c.shadowScore, nullableTexts(c.window), texts(c.hits), texts(c.causes)}
}

// Decisions is the sink handler.
type Decisions struct {
	log *slog.Logger
	// current writes the features of the current schema, whose names records leave out.
	current *featureLayout
	// textPerRow and inputPerRow size the next batch's buffers from the last one, so they are
	// allocated once instead of grown by copying.
	textPerRow, inputPerRow atomic.Int64
}

// NewDecisions returns the handler.
func NewDecisions(log *slog.Logger) *Decisions {
	return &Decisions{log: log, current: newFeatureLayout(features.Names)}
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

// rowText locates one row's text columns in the batch's text buffer.
type rowText struct {
	reasons, features, window, hits, causes [2]int
	hasWindow                               bool
}

// columns decodes recs into column arrays, skipping (and logging) undecodable records.
//
// The text columns of the whole batch are written into one buffer that becomes one string,
// which the column values slice; the inputs likewise share one byte buffer.
func (d *Decisions) columns(recs []*kgo.Record) (c columns, n int, _ error) {
	c = makeColumns(len(recs))
	text := make([]byte, 0, int(max(d.textPerRow.Load(), 2048))*len(recs))
	inputs := make([]byte, 0, int(max(d.inputPerRow.Load(), 1024))*len(recs))
	rows := make([]rowText, 0, len(recs))
	marshal := proto.MarshalOptions{Deterministic: true}
	span := func(from int) [2]int { return [2]int{from, len(text)} }
	for _, r := range recs {
		dec := &fraudv1.Decision{}
		if err := kafka.Decode(r, dec); err != nil {
			// Retrying cannot fix it; the offset still advances so the sink does not wedge.
			d.log.Error("skipping undecodable decision", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		var row rowText
		var err error
		from := len(text)
		if text, err = appendReasons(text, dec.GetReasons()); err != nil {
			return c, 0, fmt.Errorf("encode reasons of %s: %w", dec.GetDecisionId(), err)
		}
		row.reasons = span(from)
		from = len(text)
		if text, err = d.appendFeatures(text, dec.GetInput().GetFeatures()); err != nil {
			return c, 0, fmt.Errorf("encode features of %s: %w", dec.GetDecisionId(), err)
		}
		row.features = span(from)
		var input []byte // NULL without an input, as proto.Marshal gave
		if dec.GetInput() != nil {
			from = len(inputs)
			if inputs, err = marshal.MarshalAppend(inputs, dec.GetInput()); err != nil {
				return c, 0, fmt.Errorf("encode input of %s: %w", dec.GetDecisionId(), err)
			}
			input = inputs[from:len(inputs):len(inputs)]
		}
		if w := dec.GetAccountWindow(); w != nil {
			from = len(text)
			if text, err = appendWindow(text, w); err != nil {
				return c, 0, fmt.Errorf("encode account window of %s: %w", dec.GetDecisionId(), err)
			}
			row.window, row.hasWindow = span(from), true
		}
		from = len(text)
		text = appendHits(text, dec.GetListHits())
		row.hits = span(from)
		from = len(text)
		text = appendCauses(text, dec.GetDegradedCauses())
		row.causes = span(from)
		rows = append(rows, row)

		var shadowVersion *string
		var shadowScore *float64
		if v := dec.GetShadowModelVersion(); v != "" {
			sc := dec.GetShadowScore()
			shadowVersion, shadowScore = &v, &sc
		}
		c.decisionID = append(c.decisionID, dec.GetDecisionId())
		c.transactionID = append(c.transactionID, dec.GetTransactionId())
		c.accountID = append(c.accountID, dec.GetAccountId())
		c.action = append(c.action, decide.ActionName(dec.GetAction()))
		c.score = append(c.score, dec.GetScore())
		c.modelVersion = append(c.modelVersion, dec.GetModelVersion())
		c.ruleSet = append(c.ruleSet, dec.GetRuleSetVersion())
		c.schema = append(c.schema, dec.GetFeatureSchemaVersion())
		c.reviewT = append(c.reviewT, dec.GetReviewThreshold())
		c.declineT = append(c.declineT, dec.GetDeclineThreshold())
		c.amount = append(c.amount, dec.GetAmountMinor())
		c.currency = append(c.currency, dec.GetCurrency())
		c.received = append(c.received, dec.GetReceivedTime().AsTime())
		c.decided = append(c.decided, dec.GetDecidedTime().AsTime())
		c.partition = append(c.partition, r.Partition)
		c.offset = append(c.offset, r.Offset)
		c.inputHash = append(c.inputHash, dec.GetInputHash())
		c.input = append(c.input, input)
		c.degraded = append(c.degraded, dec.GetDegraded())
		c.shadowVersion = append(c.shadowVersion, shadowVersion)
		c.shadowScore = append(c.shadowScore, shadowScore)
		n++
	}
	if n > 0 {
		d.textPerRow.Store(int64(len(text)/n + 64))
		d.inputPerRow.Store(int64(len(inputs)/n + 64))
	}
	all := string(text)
	at := func(s [2]int) string { return all[s[0]:s[1]] }
	for _, row := range rows {
		c.reasons = append(c.reasons, at(row.reasons))
		c.features = append(c.features, at(row.features))
		var w *string
		if row.hasWindow {
			s := at(row.window)
			w = &s
		}
		c.window = append(c.window, w)
		c.hits = append(c.hits, at(row.hits))
		c.causes = append(c.causes, at(row.causes))
	}
	return c, n, nil
}

// appendFeatures writes the features jsonb object of fv: each value under its name, as
// json.Marshal wrote the map[string]float64 of them.
func (d *Decisions) appendFeatures(dst []byte, fv *fraudv1.FeatureVector) ([]byte, error) {
	names := features.NamesOf(fv.GetSchemaVersion(), fv.GetSchemaHash(), fv.GetNames())
	values := fv.GetValues()
	layout := d.current
	// NamesOf returns features.Names exactly when no names are carried and it returns any.
	if len(fv.GetNames()) > 0 || names == nil || len(values) < layout.names {
		layout = newFeatureLayout(names[:min(len(names), len(values))])
	}
	return layout.appendJSON(dst, values)
}

func makeColumns(n int) columns {
	return columns{
		decisionID: make([]string, 0, n), transactionID: make([]string, 0, n), accountID: make([]string, 0, n),
		action: make([]string, 0, n), score: make([]float64, 0, n), reasons: make([]string, 0, n),
		modelVersion: make([]string, 0, n), ruleSet: make([]string, 0, n), schema: make([]string, 0, n),
		reviewT: make([]float64, 0, n), declineT: make([]float64, 0, n), amount: make([]int64, 0, n),
		currency: make([]string, 0, n), features: make([]string, 0, n), received: make([]time.Time, 0, n),
		decided: make([]time.Time, 0, n), partition: make([]int32, 0, n), offset: make([]int64, 0, n),
		inputHash: make([]string, 0, n), input: make([][]byte, 0, n), degraded: make([]bool, 0, n),
		shadowVersion: make([]*string, 0, n), shadowScore: make([]*float64, 0, n), window: make([]*string, 0, n),
		hits: make([]string, 0, n), causes: make([]string, 0, n),
	}
}
