// Package decide maps a transaction, its features and a model score to a decision: the action,
// the reasons and every version and threshold involved, so an analyst can see why.
package decide

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// Policy holds the thresholds and the walking-skeleton rules. The scoring issue replaces the
// rules with a versioned rule set from Postgres.
type Policy struct {
	RuleSetVersion     string
	ReviewThreshold    float64 // score at or above: review
	DeclineThreshold   float64 // score at or above: decline
	ReviewAmountMinor  int64   // amount at or above: review
	DeclineAmountMinor int64   // amount at or above: decline
	VelocityReview     float64 // account transactions in the last hour at or above: review
}

// DefaultPolicy is what the service runs with unless configured otherwise.
func DefaultPolicy() Policy {
	return Policy{
		RuleSetVersion:     "skeleton-1",
		ReviewThreshold:    0.8,
		DeclineThreshold:   0.95,
		ReviewAmountMinor:  100_000,
		DeclineAmountMinor: 500_000,
		VelocityReview:     10,
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

// Reason codes of the skeleton rules and the model.
const (
	ReasonAmountDecline = "AMOUNT_OVER_DECLINE_LIMIT"
	ReasonAmountReview  = "AMOUNT_OVER_REVIEW_LIMIT"
	ReasonScoreDecline  = "MODEL_SCORE_HIGH"
	ReasonScoreReview   = "MODEL_SCORE_ELEVATED"
	ReasonVelocity      = "ACCOUNT_VELOCITY_1H"
)

// DecisionID is derived from the transaction id, so a replayed transaction gets the same id and
// every store can deduplicate on it.
func DecisionID(transactionID string) string {
	sum := sha256.Sum256([]byte("decision:" + transactionID))
	return "dec_" + hex.EncodeToString(sum[:12])
}

// Decide returns the decision for et given its model score.
func Decide(et *fraudv1.EnrichedTransaction, score float64, modelVersion string, p Policy, now time.Time) *fraudv1.Decision {
	tx := et.GetTransaction()
	action := fraudv1.Action_ACTION_APPROVE
	var reasons []*fraudv1.Reason
	fire := func(a fraudv1.Action, code, desc string) {
		reasons = append(reasons, &fraudv1.Reason{Code: code, Description: desc})
		if a > action {
			action = a
		}
	}
	amount := tx.GetAmountMinor()
	switch {
	case amount >= p.DeclineAmountMinor:
		fire(fraudv1.Action_ACTION_DECLINE, ReasonAmountDecline, fmt.Sprintf("amount %d ≥ %d", amount, p.DeclineAmountMinor))
	case amount >= p.ReviewAmountMinor:
		fire(fraudv1.Action_ACTION_REVIEW, ReasonAmountReview, fmt.Sprintf("amount %d ≥ %d", amount, p.ReviewAmountMinor))
	}
	switch {
	case score >= p.DeclineThreshold:
		fire(fraudv1.Action_ACTION_DECLINE, ReasonScoreDecline, fmt.Sprintf("score %.4f ≥ %.4f", score, p.DeclineThreshold))
	case score >= p.ReviewThreshold:
		fire(fraudv1.Action_ACTION_REVIEW, ReasonScoreReview, fmt.Sprintf("score %.4f ≥ %.4f", score, p.ReviewThreshold))
	}
	if v, ok := feature(et.GetFeatures(), "account_count_1h"); ok && p.VelocityReview > 0 && v >= p.VelocityReview {
		fire(fraudv1.Action_ACTION_REVIEW, ReasonVelocity, fmt.Sprintf("%g transactions in 1h ≥ %g", v, p.VelocityReview))
	}
	return &fraudv1.Decision{
		DecisionId:           DecisionID(tx.GetId()),
		TransactionId:        tx.GetId(),
		AccountId:            tx.GetAccountId(),
		Action:               action,
		Score:                score,
		Reasons:              reasons,
		ModelVersion:         modelVersion,
		RuleSetVersion:       p.RuleSetVersion,
		FeatureSchemaVersion: et.GetFeatures().GetSchemaVersion(),
		ReviewThreshold:      p.ReviewThreshold,
		DeclineThreshold:     p.DeclineThreshold,
		AmountMinor:          amount,
		Currency:             tx.GetCurrency(),
		Input:                et,
		ReceivedTime:         tx.GetReceivedTime(),
		DecidedTime:          timestamppb.New(now),
	}
}

func feature(fv *fraudv1.FeatureVector, name string) (float64, bool) {
	for i, n := range fv.GetNames() {
		if n == name && i < len(fv.GetValues()) {
			return fv.GetValues()[i], true
		}
	}
	return 0, false
}

// BaselineScorer stands in when no trained model is configured: a smooth function of the amount
// alone, so thresholds behave sensibly in a demo. It is versioned like a model so decisions say
// which one produced their score.
type BaselineScorer struct {
	Schema      string
	AmountIndex int
}

// Version names the baseline.
func (BaselineScorer) Version() string { return "baseline-amount-1" }

// FeatureSchema is the feature schema the amount index refers to.
func (b BaselineScorer) FeatureSchema() string { return b.Schema }

// Score maps amount (major units) a to a/(a+1000).
func (b BaselineScorer) Score(vectors [][]float64) ([]float64, error) {
	out := make([]float64, len(vectors))
	for i, v := range vectors {
		if b.AmountIndex < 0 || b.AmountIndex >= len(v) {
			return nil, fmt.Errorf("vector %d has no amount at index %d", i, b.AmountIndex)
		}
		a := math.Max(v[b.AmountIndex], 0)
		out[i] = a / (a + 1000)
	}
	return out, nil
}
