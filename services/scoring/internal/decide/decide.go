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
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
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
	// ReasonDegraded marks a decision made from rules and lists only.
	ReasonDegraded = "DEGRADED"
	// The codes below carry metadata the Decision message has no field for (yet): the account
	// window the rules saw (JSON), the shadow model's version and score, and the input hash.
	ReasonWindow      = "ACCOUNT_WINDOW"
	ReasonShadowScore = "SHADOW_SCORE"
	ReasonInputHash   = "INPUT_HASH"
)

// Contribution is one feature's share of a linear model's logit.
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
	feats := make(map[string]float64, len(fv.GetNames()))
	for i, n := range fv.GetNames() {
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
func InputHash(in Input) (string, error) {
	etb, err := proto.MarshalOptions{Deterministic: true}.Marshal(in.ET)
	if err != nil {
		return "", fmt.Errorf("marshal input: %w", err)
	}
	h := sha256.New()
	h.Write([]byte("vigil-decision-input-v1\x00"))
	h.Write(strconv.AppendInt(nil, int64(len(etb)), 10))
	h.Write([]byte{0})
	h.Write(etb)
	w := "-"
	if in.WindowOK {
		b, _ := json.Marshal(in.Window)
		w = string(b)
	}
	hits, _ := json.Marshal(in.Hits)
	fmt.Fprintf(h, "\x00window=%s\x00hits=%s\x00model_ok=%t", w, hits, in.Model.OK)
	return hex.EncodeToString(h.Sum(nil)), nil
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
	var causes []string
	if !in.Model.OK {
		causes = append(causes, "model")
	}
	if !in.WindowOK {
		causes = append(causes, "decision windows")
	}
	if len(causes) > 0 {
		add(ReasonDegraded, strings.Join(causes, ", ")+" unavailable: rules and lists only", 0)
	}
	if in.WindowOK {
		b, _ := json.Marshal(in.Window)
		add(ReasonWindow, string(b), 0)
	}
	if in.Shadow != nil {
		add(ReasonShadowScore, in.Shadow.Version, in.Shadow.Score)
	}
	hash, err := InputHash(in)
	if err != nil {
		return nil, err
	}
	add(ReasonInputHash, hash, 0)
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

// WindowOf parses the ACCOUNT_WINDOW reason back; ok is false for a degraded decision.
func WindowOf(d *fraudv1.Decision) (rules.Window, bool, error) {
	r, ok := Reason(d, ReasonWindow)
	if !ok {
		return rules.Window{}, false, nil
	}
	var w rules.Window
	if err := json.Unmarshal([]byte(r.GetDescription()), &w); err != nil {
		return w, false, fmt.Errorf("decision %s: window reason: %w", d.GetDecisionId(), err)
	}
	return w, true, nil
}

// HitsOf returns the list hits recorded in d's reasons.
func HitsOf(d *fraudv1.Decision) []lists.Hit {
	var hits []lists.Hit
	for _, r := range d.GetReasons() {
		for _, l := range []lists.List{lists.Block, lists.Allow} {
			for _, k := range lists.Kinds {
				h := lists.Hit{List: l, Kind: k, Reason: r.GetDescription()}
				if r.GetCode() == h.Code() {
					hits = append(hits, h)
				}
			}
		}
	}
	return hits
}

// Finite reports whether v can be recorded as a score.
func Finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
