package store

// The sink's encoding as it was before the hand-written JSON (commit d7b615b), kept verbatim
// but for the names: TestColumnsMatchReference compares every column of the two.

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
)

// referenceTextArray is the Postgres literal of a text[].
func referenceTextArray(vals []string) string {
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

// referenceMetadataColumns are the decision's metadata fields as column values: account_window (nil
// when the windows were unavailable), list_hits, degraded_causes, shadow version and score
// (nil without a shadow).
func referenceMetadataColumns(dec *fraudv1.Decision) (window, hits []byte, causes []string, shadowVersion *string, shadowScore *float64, err error) {
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

// referenceColumns decodes recs into column arrays, skipping (and logging) undecodable records.
func (d *Decisions) referenceColumns(recs []*kgo.Record) (c columns, n int, _ error) {
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
		window, hits, causes, shadowVersion, shadowScore, err := referenceMetadataColumns(dec)
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
		c.action = append(c.action, decide.ActionName(dec.GetAction()))
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
		c.causes = append(c.causes, referenceTextArray(causes))
		n++
	}
	return c, n, nil
}
