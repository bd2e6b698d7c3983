package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
)

type fakeScorer struct {
	score float64
	err   error
}

func (fakeScorer) Version() string       { return "fake-1" }
func (fakeScorer) FeatureSchema() string { return "fs-1" }
func (f fakeScorer) Score(v [][]float64) ([]float64, error) {
	if f.err != nil {
		return nil, f.err
	}
	out := make([]float64, len(v))
	for i := range out {
		out[i] = f.score
	}
	return out, nil
}

func featureRecord(t *testing.T, id string, amount int64, schema string) *kgo.Record {
	t.Helper()
	r, err := kafka.NewRecord("features.v1", "acct", &fraudv1.EnrichedTransaction{
		Transaction: &fraudv1.Transaction{Id: id, AccountId: "acct", AmountMinor: amount},
		Features:    &fraudv1.FeatureVector{SchemaVersion: schema, Names: []string{"amount", "account_count_1h"}, Values: []float64{float64(amount) / 100, 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTransform(t *testing.T) {
	t.Parallel()
	p := New(fakeScorer{score: 0.1}, decide.DefaultPolicy(), "decisions.v1", time.Now)
	in := []*kgo.Record{
		featureRecord(t, "s:1", 1_000, "fs-1"),
		featureRecord(t, "s:2", 200_000, "fs-1"),
		featureRecord(t, "s:3", 1_000, "fs-0"), // wrong schema
		{Topic: "features.v1", Value: []byte("junk")},
	}
	out, err := p.Transform(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var decisions []*fraudv1.Decision
	dlq := 0
	for _, r := range out {
		switch r.Topic {
		case "decisions.v1":
			d := &fraudv1.Decision{}
			if err := kafka.Decode(r, d); err != nil {
				t.Fatal(err)
			}
			if string(r.Key) != d.GetAccountId() {
				t.Errorf("key %q", r.Key)
			}
			decisions = append(decisions, d)
		case "features.v1.dlq":
			dlq++
			if kafka.Header(r, kafka.HeaderError) == "" {
				t.Error("dead letter without a reason")
			}
		default:
			t.Fatalf("unexpected topic %s", r.Topic)
		}
	}
	if len(decisions) != 2 || dlq != 2 {
		t.Fatalf("decisions %d, dead letters %d", len(decisions), dlq)
	}
	if decisions[0].GetAction() != fraudv1.Action_ACTION_APPROVE || decisions[1].GetAction() != fraudv1.Action_ACTION_REVIEW {
		t.Fatalf("actions %v %v", decisions[0].GetAction(), decisions[1].GetAction())
	}
	if decisions[0].GetModelVersion() != "fake-1" {
		t.Fatalf("model version %q", decisions[0].GetModelVersion())
	}
}

func TestTransformScorerFailureAborts(t *testing.T) {
	t.Parallel()
	p := New(fakeScorer{err: errors.New("model stalled")}, decide.DefaultPolicy(), "decisions.v1", time.Now)
	if _, err := p.Transform(context.Background(), []*kgo.Record{featureRecord(t, "s:1", 1, "fs-1")}); err == nil {
		t.Fatal("want error")
	}
}
