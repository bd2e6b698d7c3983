package decide

import (
	"testing"
	"time"

	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

func enriched(amount int64, count1h float64) *fraudv1.EnrichedTransaction {
	return &fraudv1.EnrichedTransaction{
		Transaction: &fraudv1.Transaction{Id: "src:1", AccountId: "a", AmountMinor: amount, Currency: "EUR"},
		Features: &fraudv1.FeatureVector{
			SchemaVersion: "fs-1", Names: []string{"amount", "account_count_1h"}, Values: []float64{float64(amount) / 100, count1h},
		},
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	tests := []struct {
		name    string
		amount  int64
		count   float64
		score   float64
		want    fraudv1.Action
		reasons []string
	}{
		{"small amount approves", 1_000, 1, 0.1, fraudv1.Action_ACTION_APPROVE, nil},
		{"review amount", 100_000, 1, 0.1, fraudv1.Action_ACTION_REVIEW, []string{ReasonAmountReview}},
		{"decline amount", 500_000, 1, 0.1, fraudv1.Action_ACTION_DECLINE, []string{ReasonAmountDecline}},
		{"elevated score", 1_000, 1, 0.85, fraudv1.Action_ACTION_REVIEW, []string{ReasonScoreReview}},
		{"high score", 1_000, 1, 0.99, fraudv1.Action_ACTION_DECLINE, []string{ReasonScoreDecline}},
		{"velocity", 1_000, 10, 0.1, fraudv1.Action_ACTION_REVIEW, []string{ReasonVelocity}},
		{"strongest action wins, all reasons kept", 100_000, 12, 0.99, fraudv1.Action_ACTION_DECLINE,
			[]string{ReasonAmountReview, ReasonScoreDecline, ReasonVelocity}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := Decide(enriched(tc.amount, tc.count), tc.score, "m1", p, time.Unix(0, 0))
			if d.GetAction() != tc.want {
				t.Errorf("action = %v, want %v", d.GetAction(), tc.want)
			}
			var codes []string
			for _, r := range d.GetReasons() {
				codes = append(codes, r.GetCode())
			}
			if len(codes) != len(tc.reasons) {
				t.Fatalf("reasons = %v, want %v", codes, tc.reasons)
			}
			for i := range codes {
				if codes[i] != tc.reasons[i] {
					t.Fatalf("reasons = %v, want %v", codes, tc.reasons)
				}
			}
			if d.GetDecisionId() != DecisionID("src:1") || d.GetModelVersion() != "m1" || d.GetRuleSetVersion() != p.RuleSetVersion ||
				d.GetFeatureSchemaVersion() != "fs-1" || d.GetReviewThreshold() != p.ReviewThreshold {
				t.Errorf("versions/ids not recorded: %+v", d)
			}
		})
	}
}

func TestDecisionIDIsDeterministic(t *testing.T) {
	t.Parallel()
	if DecisionID("a:1") != DecisionID("a:1") || DecisionID("a:1") == DecisionID("a:2") {
		t.Fatal("decision ids must be a function of the transaction id")
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	bad := DefaultPolicy()
	bad.DeclineThreshold = 0.5
	if bad.Validate() == nil {
		t.Fatal("decline below review must be rejected")
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBaselineScorer(t *testing.T) {
	t.Parallel()
	s := BaselineScorer{AmountIndex: 0}
	got, err := s.Score([][]float64{{0}, {1000}, {9000}})
	if err != nil || got[0] != 0 || got[1] != 0.5 || got[2] != 0.9 {
		t.Fatalf("scores %v, %v", got, err)
	}
	if _, err := s.Score([][]float64{{}}); err == nil {
		t.Fatal("want error for a short vector")
	}
}
