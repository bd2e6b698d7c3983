// Package decide maps a transaction, its features, a model score, the account's decision
// windows and list hits to a decision: the action, the reasons and every version and threshold
// involved, so an analyst can see why and `scoring explain` can recompute it.
package decide

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/jsonenc"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
)

// Policy holds the score thresholds and the parameters the rules read.
type Policy struct {
	ReviewThreshold    float64 // score at or above: review
	DeclineThreshold   float64 // score at or above: decline
	ReviewAmountMinor  int64   // params.review_amount_minor
	DeclineAmountMinor int64   // params.decline_amount_minor
	VelocityReview     float64 // params.velocity_review_1h
	// TopFeatures is how many contributing features are recorded as reasons.
	TopFeatures int
}

// ActionName is the action's lower-case name, stored in Postgres (decisions.action) and used as
// a metric label: approve, review, decline, and for any other value its enum name without
// ACTION_ ("unspecified", or the number of a value this build does not know).
func ActionName(a fraudv1.Action) string {
	switch a { // the names below, without building them for every row
	case fraudv1.Action_ACTION_APPROVE:
		return "approve"
	case fraudv1.Action_ACTION_REVIEW:
		return "review"
	case fraudv1.Action_ACTION_DECLINE:
		return "decline"
	}
	return strings.ToLower(strings.TrimPrefix(a.String(), "ACTION_"))
}

// DefaultPolicy is what the service runs with unless configured otherwise.
func DefaultPolicy() Policy {
	return Policy{
		ReviewThreshold:    0.8,
		DeclineThreshold:   0.95,
		ReviewAmountMinor:  100_000,
		DeclineAmountMinor: 500_000,
		VelocityReview:     10,
		TopFeatures:        3,
	}
}

// Params are the rule parameters derived from the policy.
func (p Policy) Params() map[string]float64 {
	return map[string]float64{
		"review_amount_minor":  float64(p.ReviewAmountMinor),
		"decline_amount_minor": float64(p.DeclineAmountMinor),
		"velocity_review_1h":   p.VelocityReview,
	}
}

// Validate names the first inconsistent setting.
func (p Policy) Validate() error {
	switch {
	case p.ReviewThreshold < 0 || p.ReviewThreshold > 1:
		return fmt.Errorf("review threshold %g outside [0, 1]", p.ReviewThreshold)
	case p.DeclineThreshold < p.ReviewThreshold || p.DeclineThreshold > 1:
		return fmt.Errorf("decline threshold %g must be within [review threshold %g, 1]", p.DeclineThreshold, p.ReviewThreshold)
	case p.ReviewAmountMinor <= 0 || p.DeclineAmountMinor < p.ReviewAmountMinor:
		return fmt.Errorf("amount limits review %d / decline %d must be positive and ordered", p.ReviewAmountMinor, p.DeclineAmountMinor)
	}
	return nil
}

// Reason codes set by this package. Rules bring their own codes.
const (
	ReasonScoreDecline = "MODEL_SCORE_HIGH"
	ReasonScoreReview  = "MODEL_SCORE_ELEVATED"
	// ReasonFeaturePrefix + feature name: a top contributing feature, weight = contribution.
	ReasonFeaturePrefix = "FEATURE:"
)

// Legacy pseudo reason codes: decisions made before Decision had fields for this metadata
// carried it as reasons. Only LegacyMetadata reads them, so explain still reproduces those rows.
const (
	legacyDegraded    = "DEGRADED"
	legacyWindow      = "ACCOUNT_WINDOW"
	legacyShadowScore = "SHADOW_SCORE"
	legacyInputHash   = "INPUT_HASH"
)

// Contribution is one feature's share of the model's logit (lr: weight × standardized value; gbt:
// the tree paths' changes at its splits).
type Contribution struct {
	Name  string
	Value float64
	Logit float64
}

// ModelResult is the primary model's output for one transaction.
type ModelResult struct {
	Version string
	Score   float64
	// OK is false when the model missed its deadline or failed: the decision is degraded.
	OK            bool
	Contributions []Contribution
}

// Shadow is the challenger model's score: recorded, never acting.
type Shadow struct {
	Version string
	Score   float64
}

// Input is everything a decision depends on. Two equal Inputs with the same rule set and
// policy give the same decision (apart from DecidedTime).
type Input struct {
	ET     *fraudv1.EnrichedTransaction
	Model  ModelResult
	Window rules.Window
	// WindowOK is false when the decision windows missed their deadline.
	WindowOK bool
	Hits     []lists.Hit
	Shadow   *Shadow
}

// DecisionID is derived from the transaction id, so a replayed transaction gets the same id and
// every store can deduplicate on it.
func DecisionID(transactionID string) string {
	sum := sha256.Sum256([]byte("decision:" + transactionID))
	return "dec_" + hex.EncodeToString(sum[:12])
}

// RuleEnv builds what the rules see.
func RuleEnv(in Input) rules.Env {
	tx := in.ET.GetTransaction()
	fv := in.ET.GetFeatures()
	names := features.NamesOf(fv.GetSchemaVersion(), fv.GetSchemaHash(), fv.GetNames())
	feats := make(map[string]float64, len(names))
	for i, n := range names {
		if i < len(fv.GetValues()) {
			feats[n] = fv.GetValues()[i]
		}
	}
	channel := strings.ToLower(strings.TrimPrefix(tx.GetChannel().String(), "CHANNEL_"))
	env := rules.Env{
		Tx: rules.Tx{
			ID: tx.GetId(), AccountID: tx.GetAccountId(), Source: tx.GetSource(), AmountMinor: tx.GetAmountMinor(),
			Currency: tx.GetCurrency(), MerchantID: tx.GetMerchantId(), TerminalID: tx.GetTerminalId(), MCC: tx.GetMcc(),
			Country: tx.GetCountry(), Channel: channel, DeviceID: tx.GetDeviceId(), IP: tx.GetIp(),
			CardBIN: tx.GetCard().GetBin(), HourUTC: tx.GetEventTime().AsTime().UTC().Hour(),
		},
		Features: feats,
		Degraded: !in.Model.OK || !in.WindowOK,
	}
	if in.Model.OK {
		env.Score = in.Model.Score
	}
	if in.WindowOK {
		env.Account = in.Window
	}
	return env
}

// ListKeys are the values of et that lists match on.
func ListKeys(et *fraudv1.EnrichedTransaction) lists.Keys {
	tx := et.GetTransaction()
	return lists.Keys{
		lists.KindAccount: tx.GetAccountId(), lists.KindCard: tx.GetCard().GetToken(), lists.KindTerminal: tx.GetTerminalId(),
		lists.KindDevice: tx.GetDeviceId(), lists.KindIP: tx.GetIp(), lists.KindCountry: tx.GetCountry(),
	}
}

// InputHash is the hex sha256 of the canonical inputs: the enriched transaction (deterministic
// protobuf), the window the rules saw, the list hits and whether the model answered. Model,
// rule set and feature schema versions are recorded beside it, not in it.
//
// The window and hits are hashed as the JSON encoding/json gave them (a window it could not
// encode, with a NaN or infinite max score, as nothing), written without reflection.
func InputHash(in Input) (string, error) {
	etb, err := proto.MarshalOptions{Deterministic: true}.Marshal(in.ET)
	if err != nil {
		return "", fmt.Errorf("marshal input: %w", err)
	}
	h := sha256.New()
	buf := make([]byte, 0, 256)
	buf = append(buf, "vigil-decision-input-v1\x00"...)
	buf = strconv.AppendInt(buf, int64(len(etb)), 10)
	buf = append(buf, 0)
	h.Write(buf)
	h.Write(etb)
	buf = append(buf[:0], "\x00window="...)
	if in.WindowOK {
		buf = appendWindowJSON(buf, in.Window)
	} else {
		buf = append(buf, '-')
	}
	buf = appendHitsJSON(append(buf, "\x00hits="...), in.Hits)
	buf = strconv.AppendBool(append(buf, "\x00model_ok="...), in.Model.OK)
	h.Write(buf)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])), nil
}

// appendWindowJSON appends what json.Marshal gave for w, or nothing where it failed.
func appendWindowJSON(dst []byte, w rules.Window) []byte {
	start := len(dst)
	dst = strconv.AppendInt(append(dst, `{"reviews_1h":`...), int64(w.Reviews1h), 10)
	dst = strconv.AppendInt(append(dst, `,"declines_1h":`...), int64(w.Declines1h), 10)
	dst = strconv.AppendInt(append(dst, `,"reviews_24h":`...), int64(w.Reviews24h), 10)
	dst = strconv.AppendInt(append(dst, `,"declines_24h":`...), int64(w.Declines24h), 10)
	dst, err := jsonenc.AppendFloat(append(dst, `,"max_score_24h":`...), w.MaxScore24h)
	if err != nil {
		return dst[:start]
	}
	return append(dst, '}')
}

// appendHitsJSON appends what json.Marshal gave for hits: null for none, ValueHash left out.
func appendHitsJSON(dst []byte, hits []lists.Hit) []byte {
	if hits == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, h := range hits {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonenc.AppendString(append(dst, `{"list":`...), string(h.List))
		dst = jsonenc.AppendString(append(dst, `,"kind":`...), string(h.Kind))
		if h.Reason != "" {
			dst = jsonenc.AppendString(append(dst, `,"reason":`...), h.Reason)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// Decide returns the decision for in under rule set rs and policy p.
//
// Precedence: a block-list hit declines; otherwise an allow-list hit approves; otherwise the
// highest-priority fired rule, if it is an approve rule, approves; otherwise the strictest of
// the fired review/decline rules and the score thresholds (skipped when degraded) wins.
func Decide(in Input, rs *rules.Set, p Policy, now time.Time) (*fraudv1.Decision, error) {
	if in.ET == nil || rs == nil {
		return nil, errors.New("decide: input and rule set are required")
	}
	tx := in.ET.GetTransaction()
	action := fraudv1.Action_ACTION_APPROVE
	var reasons []*fraudv1.Reason
	add := func(code, desc string, w float64) {
		reasons = append(reasons, &fraudv1.Reason{Code: code, Description: desc, Weight: w})
	}
	blocked, allowed := false, false
	for _, h := range in.Hits {
		add(h.Code(), h.Reason, 0)
		blocked = blocked || h.List == lists.Block
		allowed = allowed || h.List == lists.Allow
	}
	fired, err := rs.Evaluate(RuleEnv(in))
	if err != nil {
		return nil, fmt.Errorf("rule set %s: %w", rs.Version(), err)
	}
	for _, f := range fired {
		add(f.Reason, fmt.Sprintf("rule %s v%d → %s", f.ID, f.Version, f.Action), 0)
	}
	switch {
	case blocked:
		action = fraudv1.Action_ACTION_DECLINE
	case allowed:
		action = fraudv1.Action_ACTION_APPROVE
	case len(fired) > 0 && fired[0].Action == rules.ActionApprove:
		action = fraudv1.Action_ACTION_APPROVE
	default:
		for _, f := range fired {
			action = max(action, toAction(f.Action))
		}
		if in.Model.OK {
			switch s := in.Model.Score; {
			case s >= p.DeclineThreshold:
				add(ReasonScoreDecline, fmt.Sprintf("score %.4f ≥ %.4f", s, p.DeclineThreshold), 0)
				action = fraudv1.Action_ACTION_DECLINE
			case s >= p.ReviewThreshold:
				add(ReasonScoreReview, fmt.Sprintf("score %.4f ≥ %.4f", s, p.ReviewThreshold), 0)
				action = max(action, fraudv1.Action_ACTION_REVIEW)
			}
		}
	}
	if in.Model.OK {
		for _, c := range top(in.Model.Contributions, p.TopFeatures) {
			add(ReasonFeaturePrefix+c.Name, "value "+strconv.FormatFloat(c.Value, 'g', -1, 64), c.Logit)
		}
	}
	var causes []fraudv1.DegradedCause
	if !in.Model.OK {
		causes = append(causes, fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL)
	}
	if !in.WindowOK {
		causes = append(causes, fraudv1.DegradedCause_DEGRADED_CAUSE_DECISION_WINDOWS)
	}
	var window *fraudv1.AccountWindow
	if in.WindowOK {
		window = WindowToProto(in.Window)
	}
	var shadowVersion string
	var shadowScore float64
	if in.Shadow != nil {
		shadowVersion, shadowScore = in.Shadow.Version, in.Shadow.Score
	}
	hash, err := InputHash(in)
	if err != nil {
		return nil, err
	}
	score := 0.0
	if in.Model.OK {
		score = in.Model.Score
	}
	return &fraudv1.Decision{
		DecisionId:           DecisionID(tx.GetId()),
		TransactionId:        tx.GetId(),
		AccountId:            tx.GetAccountId(),
		Action:               action,
		Score:                score,
		Reasons:              reasons,
		ModelVersion:         in.Model.Version,
		RuleSetVersion:       rs.Version(),
		FeatureSchemaVersion: in.ET.GetFeatures().GetSchemaVersion(),
		ReviewThreshold:      p.ReviewThreshold,
		DeclineThreshold:     p.DeclineThreshold,
		AmountMinor:          tx.GetAmountMinor(),
		Currency:             tx.GetCurrency(),
		Input:                in.ET,
		ReceivedTime:         tx.GetReceivedTime(),
		DecidedTime:          timestamppb.New(now),
		InputHash:            hash,
		Degraded:             len(causes) > 0,
		DegradedCauses:       causes,
		ShadowModelVersion:   shadowVersion,
		ShadowScore:          shadowScore,
		AccountWindow:        window,
		ListHits:             HitsToProto(in.Hits),
	}, nil
}

func toAction(a rules.Action) fraudv1.Action {
	switch a {
	case rules.ActionDecline:
		return fraudv1.Action_ACTION_DECLINE
	case rules.ActionReview:
		return fraudv1.Action_ACTION_REVIEW
	}
	return fraudv1.Action_ACTION_APPROVE
}

// top returns the n largest positive contributions, largest first, ties by name.
func top(cs []Contribution, n int) []Contribution {
	var pos []Contribution
	for _, c := range cs {
		if c.Logit > 0 {
			pos = append(pos, c)
		}
	}
	for i := 1; i < len(pos); i++ {
		for j := i; j > 0 && (pos[j].Logit > pos[j-1].Logit || pos[j].Logit == pos[j-1].Logit && pos[j].Name < pos[j-1].Name); j-- {
			pos[j], pos[j-1] = pos[j-1], pos[j]
		}
	}
	if len(pos) > n {
		pos = pos[:n]
	}
	return pos
}

// Reason returns the first reason with code, if any.
func Reason(d *fraudv1.Decision, code string) (*fraudv1.Reason, bool) {
	for _, r := range d.GetReasons() {
		if r.GetCode() == code {
			return r, true
		}
	}
	return nil, false
}

// WindowToProto is the window as recorded on the decision.
func WindowToProto(w rules.Window) *fraudv1.AccountWindow {
	return &fraudv1.AccountWindow{
		Reviews_1H: int32(w.Reviews1h), Declines_1H: int32(w.Declines1h),
		Reviews_24H: int32(w.Reviews24h), Declines_24H: int32(w.Declines24h), MaxScore_24H: w.MaxScore24h,
	}
}

// WindowOf returns the window recorded on d; ok is false when the windows were unavailable.
func WindowOf(d *fraudv1.Decision) (w rules.Window, ok bool) {
	pw := d.GetAccountWindow()
	if pw == nil {
		return rules.Window{}, false
	}
	return rules.Window{
		Reviews1h: int(pw.GetReviews_1H()), Declines1h: int(pw.GetDeclines_1H()),
		Reviews24h: int(pw.GetReviews_24H()), Declines24h: int(pw.GetDeclines_24H()), MaxScore24h: pw.GetMaxScore_24H(),
	}, true
}

// HitsToProto is the list hits as recorded on the decision.
func HitsToProto(hits []lists.Hit) []*fraudv1.ListHit {
	if len(hits) == 0 {
		return nil
	}
	out := make([]*fraudv1.ListHit, len(hits))
	for i, h := range hits {
		out[i] = &fraudv1.ListHit{List: string(h.List), Kind: string(h.Kind), Reason: h.Reason, ValueHash: h.ValueHash}
	}
	return out
}

// HitsOf returns the list hits recorded on d.
func HitsOf(d *fraudv1.Decision) []lists.Hit {
	var hits []lists.Hit
	for _, h := range d.GetListHits() {
		hits = append(hits, lists.Hit{List: lists.List(h.GetList()), Kind: lists.Kind(h.GetKind()), Reason: h.GetReason(), ValueHash: h.GetValueHash()})
	}
	return hits
}

// ModelOK reports whether the primary model answered for d.
func ModelOK(d *fraudv1.Decision) bool {
	return !slices.Contains(d.GetDegradedCauses(), fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL)
}

// LegacyMetadata moves the metadata that decisions made before Decision had fields for carried
// as pseudo reasons (INPUT_HASH, DEGRADED, ACCOUNT_WINDOW, SHADOW_SCORE, list hits only as
// LIST_* reasons) into the fields, and drops those pseudo reasons, so such a decision compares
// with a recomputation. A decision without an INPUT_HASH reason is returned unchanged.
func LegacyMetadata(d *fraudv1.Decision) (*fraudv1.Decision, error) {
	if _, ok := Reason(d, legacyInputHash); !ok {
		return d, nil
	}
	out := proto.CloneOf(d)
	out.Reasons = nil
	for _, r := range d.GetReasons() {
		switch r.GetCode() {
		case legacyInputHash:
			out.InputHash = r.GetDescription()
		case legacyDegraded:
			out.Degraded = true
			if strings.HasPrefix(r.GetDescription(), "model") {
				out.DegradedCauses = append(out.DegradedCauses, fraudv1.DegradedCause_DEGRADED_CAUSE_MODEL)
			}
			if strings.Contains(r.GetDescription(), "decision windows") {
				out.DegradedCauses = append(out.DegradedCauses, fraudv1.DegradedCause_DEGRADED_CAUSE_DECISION_WINDOWS)
			}
		case legacyWindow:
			var w rules.Window
			if err := json.Unmarshal([]byte(r.GetDescription()), &w); err != nil {
				return nil, fmt.Errorf("decision %s: legacy %s reason: %w", d.GetDecisionId(), legacyWindow, err)
			}
			out.AccountWindow = WindowToProto(w)
		case legacyShadowScore:
			out.ShadowModelVersion, out.ShadowScore = r.GetDescription(), r.GetWeight()
		default:
			out.Reasons = append(out.Reasons, r)
			for _, l := range []lists.List{lists.Block, lists.Allow} {
				for _, k := range lists.Kinds {
					if h := (lists.Hit{List: l, Kind: k}); r.GetCode() == h.Code() {
						out.ListHits = append(out.ListHits, &fraudv1.ListHit{List: string(l), Kind: string(k), Reason: r.GetDescription()})
					}
				}
			}
		}
	}
	return out, nil
}

// Finite reports whether v can be recorded as a score.
func Finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
