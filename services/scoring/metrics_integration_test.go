package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/metrics"
	"github.com/vigil-fraud/vigil/services/scoring/internal/modelset"
	"github.com/vigil-fraud/vigil/services/scoring/internal/pipeline"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
)

// TestIntegrationDecisionMetricsCountCommits runs the real exactly-once loop on the broker with
// the metrics wired as serve.go wires them, aborts one transaction after its transform
// succeeded, and scrapes: vigil_decisions_total counts each transaction once although the
// pipeline decided the aborted batch twice.
func TestIntegrationDecisionMetricsCountCommits(t *testing.T) {
	brokers := testinfra.KafkaBrokers(t)
	run := testinfra.UniqueName("scmetrics")
	in, out := run+".features.v1", run+".decisions.v1"
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, admin, 1, in, out, kafka.DLQ(in)); err != nil {
		t.Fatal(err)
	}
	const n = 60
	base := time.Now().Add(-time.Minute)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = enrichedRecord(t, in, i, base)
	}
	if err := admin.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.DiscardHandler)
	models, err := modelset.NewHolder("", "", features.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	rs, _, err := rulesFile("")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(rs, decide.DefaultPolicy().Params(), features.Names)
	if err != nil {
		t.Fatal(err)
	}
	met := metrics.New()
	reg := prometheus.NewRegistry()
	if err := met.Register(reg); err != nil {
		t.Fatal(err)
	}
	pipe := pipeline.New(pipeline.Deps{
		Models: models.Current, Rules: func() *rules.Set { return set }, Lists: func() *lists.Snapshot { return lists.NewSnapshot(nil) },
		Recorder: met,
	}, decide.DefaultPolicy(), pipeline.Budgets{}, out, time.Now, log)
	var failed atomic.Bool
	transform := func(ctx context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
		res, err := pipe.Transform(ctx, recs)
		if err == nil && failed.CompareAndSwap(false, true) {
			return nil, errors.New("injected: abort after the batch was decided")
		}
		return res, err
	}
	loop, err := kafka.NewEOS(kafka.EOSConfig{Brokers: brokers, Group: run + "-sc", TransactionalID: run + "-sc-0",
		InputTopics: []string{in}, MaxPollRecords: 10, RetryBackoff: 10 * time.Millisecond, Metrics: reg}, transform, log)
	if err != nil {
		t.Fatal(err)
	}
	met.SetOutcome(func() (int64, int64) { return loop.Stats.Committed.Load(), loop.Stats.Aborted.Load() })
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- loop.Run(lctx) }()
	for loop.Stats.Records.Load() < n {
		if ctx.Err() != nil {
			t.Fatalf("committed %d of %d records", loop.Stats.Records.Load(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A scrape settles the last batch.
	total := scrapeSum(t, reg, "vigil_decisions_total")
	attempts := pipe.Stats.Decisions.Load()
	if loop.Stats.Aborted.Load() < 1 || attempts <= n {
		t.Fatalf("no abort happened: aborted %d, decided %d", loop.Stats.Aborted.Load(), attempts)
	}
	if total != n {
		t.Fatalf("vigil_decisions_total %v, want %d (the pipeline decided %d times, the aborted batch included)", total, n, attempts)
	}
	if got := testutil.CollectAndCount(met, "vigil_score"); got != 1 {
		t.Errorf("vigil_score series %d, want the baseline model's", got)
	}
	t.Logf("%d decisions committed in %d transactions (%d aborted); pipeline decided %d; vigil_decisions_total %v",
		n, loop.Stats.Committed.Load(), loop.Stats.Aborted.Load(), attempts, total)
}

// scrapeSum gathers reg, as a scrape does, and sums the counter name over its label sets.
func scrapeSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
