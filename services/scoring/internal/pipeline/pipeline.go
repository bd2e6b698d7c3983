// Package pipeline turns features.v1 records into decisions.v1 records inside the exactly-once
// loop: decode, check the feature schema, score the batch, decide, encode.
package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
)

// Scorer scores feature vectors of one feature schema; models/model.Model satisfies it.
type Scorer interface {
	Version() string
	FeatureSchema() string
	Score(vectors [][]float64) ([]float64, error)
}

// Pipeline holds the transform's dependencies.
type Pipeline struct {
	scorer   Scorer
	policy   decide.Policy
	outTopic string
	now      func() time.Time
}

// New returns a pipeline writing decisions to outTopic.
func New(s Scorer, p decide.Policy, outTopic string, now func() time.Time) *Pipeline {
	return &Pipeline{scorer: s, policy: p, outTopic: outTopic, now: now}
}

// Transform is a kafka.Transform. Undecodable records and records of another feature schema go
// to the dead-letter topic with the reason; a scorer failure aborts the transaction.
func (p *Pipeline) Transform(ctx context.Context, in []*kgo.Record) ([]*kgo.Record, error) {
	out := make([]*kgo.Record, 0, len(in))
	ets := make([]*fraudv1.EnrichedTransaction, 0, len(in))
	srcs := make([]*kgo.Record, 0, len(in))
	vectors := make([][]float64, 0, len(in))
	for _, r := range in {
		et := &fraudv1.EnrichedTransaction{}
		if err := kafka.Decode(r, et); err != nil {
			out = append(out, kafka.DeadLetter(r, err))
			continue
		}
		if err := p.check(et); err != nil {
			out = append(out, kafka.DeadLetter(r, err))
			continue
		}
		ets = append(ets, et)
		srcs = append(srcs, r)
		vectors = append(vectors, et.GetFeatures().GetValues())
	}
	scores, err := p.scorer.Score(vectors)
	if err != nil {
		return nil, fmt.Errorf("score %d vectors with %s: %w", len(vectors), p.scorer.Version(), err)
	}
	now := p.now()
	for i, et := range ets {
		d := decide.Decide(et, scores[i], p.scorer.Version(), p.policy, now)
		rec, err := kafka.NewRecord(p.outTopic, d.GetAccountId(), d)
		if err != nil {
			return nil, err
		}
		telemetry.Inject(telemetry.Extract(ctx, srcs[i]), rec)
		out = append(out, rec)
	}
	return out, nil
}

func (p *Pipeline) check(et *fraudv1.EnrichedTransaction) error {
	fv := et.GetFeatures()
	switch {
	case et.GetTransaction().GetId() == "" || et.GetTransaction().GetAccountId() == "":
		return fmt.Errorf("%w: enriched transaction without id or account", kafka.ErrDecode)
	case fv.GetSchemaVersion() != p.scorer.FeatureSchema():
		return fmt.Errorf("feature schema %q, model %s expects %q", fv.GetSchemaVersion(), p.scorer.Version(), p.scorer.FeatureSchema())
	case len(fv.GetValues()) != len(fv.GetNames()):
		return fmt.Errorf("%w: %d feature values for %d names", kafka.ErrDecode, len(fv.GetValues()), len(fv.GetNames()))
	}
	return nil
}
