package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// FeatureTimes reads the committed records of the features topic and returns, per stored
// transaction id of the run prefix, when feature-window produced its features (the record's
// create time, taken by feature-window's producer right after its transform). It splits receipt
// → decision into feature-window's hop and scoring's. Call it once the phase's decisions are in:
// it reads until the topic has been quiet for a second.
func FeatureTimes(ctx context.Context, brokers []string, topic, prefix string) (map[string]time.Time, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, fmt.Errorf("features reader: %w", err)
	}
	defer cl.Close()
	mark := ":" + prefix + "-"
	out := map[string]time.Time{}
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		if err := fetches.Err0(); err != nil && pctx.Err() == nil && ctx.Err() == nil {
			return nil, fmt.Errorf("read %s: %w", topic, err)
		}
		recs := fetches.Records()
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			var et fraudv1.EnrichedTransaction
			if kafka.Decode(r, &et) != nil {
				continue
			}
			if id := et.GetTransaction().GetId(); strings.Contains(id, mark) {
				out[id] = r.Timestamp
			}
		}
	}
	return out, ctx.Err()
}
