package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/testinfra"
)

// These tests run against the real broker: transactions, read-committed fetches and group
// offsets committed inside transactions are exactly what a fake would get wrong.

func setupTopics(t *testing.T, brokers []string, partitions int, names ...string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(ProducerOptions(brokers)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, cl, partitions, names...); err != nil {
		t.Fatal(err)
	}
	return cl
}

func produceInputs(t *testing.T, cl *kgo.Client, topic string, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "acct-%d", i%17), Value: fmt.Appendf(nil, "v%05d", i)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readCommitted reads topic from the start until it has seen want records or quiet passes
// without new ones, and returns value counts.
func readCommitted(t *testing.T, brokers []string, topic string, want int) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	total := 0
	deadline := time.Now().Add(60 * time.Second)
	quietUntil := time.Time{}
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
		if total >= want {
			// Keep reading briefly: duplicates would show up after the count is reached.
			if quietUntil.IsZero() {
				quietUntil = time.Now().Add(2 * time.Second)
			}
			if time.Now().After(quietUntil) {
				break
			}
		}
	}
	return seen
}

func copyTransform(out string, fail func(call int64) error) Transform {
	var calls atomic.Int64
	return func(_ context.Context, in []*kgo.Record) ([]*kgo.Record, error) {
		if err := fail(calls.Add(1)); err != nil {
			return nil, err
		}
		res := make([]*kgo.Record, len(in))
		for i, r := range in {
			res[i] = &kgo.Record{Topic: out, Key: r.Key, Value: r.Value}
		}
		return res, nil
	}
}

func assertExactlyOnce(t *testing.T, seen map[string]int, n int) {
	t.Helper()
	if len(seen) != n {
		t.Fatalf("saw %d distinct outputs, want %d", len(seen), n)
	}
	for v, c := range seen {
		if c != 1 {
			t.Fatalf("output %s seen %d times", v, c)
		}
	}
}

func TestEOSCopiesExactlyOnceAcrossAbortsAndRestarts(t *testing.T) {
	t.Parallel()
	brokers := testinfra.KafkaBrokers(t)
	in, out := testinfra.UniqueName("eos-in-"), testinfra.UniqueName("eos-out-")
	group := testinfra.UniqueName("eos-group-")
	cl := setupTopics(t, brokers, 3, in, out)
	const n = 3000
	produceInputs(t, cl, in, n)
	log := slog.New(slog.DiscardHandler)

	// First instance: every third transform fails (aborts and retries), and it is stopped
	// part-way through, like a crash or a deploy.
	first, err := NewEOS(EOSConfig{Brokers: brokers, Group: group, TransactionalID: group + "-a", InputTopics: []string{in},
		MaxPollRecords: 100, RetryBackoff: 10 * time.Millisecond},
		copyTransform(out, func(call int64) error {
			if call%3 == 0 {
				return errors.New("injected failure")
			}
			return nil
		}), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	for first.Stats.Records.Load() < n/3 {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if first.Stats.Aborted.Load() == 0 {
		t.Fatal("expected aborted transactions")
	}

	// Second instance (new transactional id, same group) finishes the input.
	reg := prometheus.NewRegistry()
	second, err := NewEOS(EOSConfig{Brokers: brokers, Group: group, TransactionalID: group + "-b", InputTopics: []string{in},
		MaxPollRecords: 500, Metrics: reg}, copyTransform(out, func(int64) error { return nil }), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	secondStart := time.Now()
	go func() { done <- second.Run(ctx2) }()
	seen := readCommitted(t, brokers, out, n)
	cancel2()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, seen, n)
	if got := testutil.ToFloat64(second.metrics.records); got != float64(second.Stats.Records.Load()) || got == 0 {
		t.Fatalf("vigil_kafka_records_total = %v, stats say %d", got, second.Stats.Records.Load())
	}
	// Every stage of the loop took time, and together no more than the loop ran.
	var loop float64
	for stage, c := range map[string]prometheus.Counter{"poll": second.metrics.poll, "transform": second.metrics.transform, "end": second.metrics.end} {
		v := testutil.ToFloat64(c)
		if v <= 0 {
			t.Errorf("vigil_kafka_loop_seconds_total{stage=%q} = %v, want > 0", stage, v)
		}
		loop += v
	}
	if ran := time.Since(secondStart).Seconds(); loop > ran {
		t.Errorf("loop stages add up to %.3fs, more than the %.3fs the loop ran", loop, ran)
	}
	// The group has consumed everything: the lag collector reports zero on every partition.
	lag := NewLagCollector(cl, group)
	lreg := prometheus.NewRegistry()
	lreg.MustRegister(lag)
	if n, err := testutil.GatherAndCount(lreg, "vigil_kafka_consumer_lag"); err != nil || n != 3 {
		t.Fatalf("lag series = %d, %v; want 3", n, err)
	}
	if total := testutil.ToFloat64(sumLag{lag}); total != 0 {
		t.Fatalf("lag after draining = %v", total)
	}
	t.Logf("first run: %d committed, %d aborted; second: %d records", first.Stats.Committed.Load(), first.Stats.Aborted.Load(), second.Stats.Records.Load())
}

func TestEOSAbortedOutputsAreInvisible(t *testing.T) {
	t.Parallel()
	brokers := testinfra.KafkaBrokers(t)
	in, out := testinfra.UniqueName("eos-in-"), testinfra.UniqueName("eos-out-")
	group := testinfra.UniqueName("eos-group-")
	cl := setupTopics(t, brokers, 1, in, out)
	const n = 50
	produceInputs(t, cl, in, n)

	// The first transaction produces its outputs and one record to a topic that does not
	// exist: the failed produce aborts the whole transaction, outputs included.
	var calls atomic.Int64
	transform := func(_ context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
		res := make([]*kgo.Record, 0, len(recs)+1)
		for _, r := range recs {
			res = append(res, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value})
		}
		if calls.Add(1) == 1 {
			res = append(res, &kgo.Record{Topic: testinfra.UniqueName("missing-"), Value: []byte("x")})
		}
		return res, nil
	}
	loop, err := NewEOS(EOSConfig{Brokers: brokers, Group: group, TransactionalID: group, InputTopics: []string{in},
		ExtraOpts: []kgo.Opt{kgo.UnknownTopicRetries(1), kgo.RecordDeliveryTimeout(5 * time.Second)}},
		transform, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx) }()
	seen := readCommitted(t, brokers, out, n)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, seen, n)
	if loop.Stats.Aborted.Load() == 0 {
		t.Fatal("expected the first transaction to abort")
	}
}

// sumLag folds the per-partition lag series into one gauge for testutil.ToFloat64.
type sumLag struct{ c *LagCollector }

func (s sumLag) Describe(ch chan<- *prometheus.Desc) { s.c.Describe(ch) }
func (s sumLag) Collect(ch chan<- prometheus.Metric) {
	inner := make(chan prometheus.Metric, 64)
	go func() { s.c.Collect(inner); close(inner) }()
	total := 0.0
	for m := range inner {
		total += testutil.ToFloat64(constCollector{m})
	}
	ch <- prometheus.MustNewConstMetric(s.c.desc, prometheus.GaugeValue, total, "all", "all", "all")
}

type constCollector struct{ m prometheus.Metric }

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

// TestEOSCommitIntervalSpansPolls: with a commit interval, one transaction holds several
// polls (fewer commits than polls), a failure in a later poll aborts the whole transaction,
// the hooks see every committed record once, and the output is still exactly once.
func TestEOSCommitIntervalSpansPolls(t *testing.T) {
	t.Parallel()
	brokers := testinfra.KafkaBrokers(t)
	in, out := testinfra.UniqueName("eos-in-"), testinfra.UniqueName("eos-out-")
	group := testinfra.UniqueName("eos-group-")
	cl := setupTopics(t, brokers, 3, in, out)
	const n = 2000
	var polls, aborts atomic.Int64
	var hooked sync.Map
	var hookDup atomic.Int64
	loop, err := NewEOS(EOSConfig{Brokers: brokers, Group: group, TransactionalID: group, InputTopics: []string{in},
		MaxPollRecords: 50, CommitInterval: 300 * time.Millisecond, RetryBackoff: 10 * time.Millisecond,
		Committed: func(_ context.Context, recs []*kgo.Record) {
			for _, r := range recs {
				if _, dup := hooked.LoadOrStore(string(r.Value), true); dup {
					hookDup.Add(1)
				}
			}
		},
		Aborted: func() { aborts.Add(1) },
	}, copyTransform(out, func(call int64) error {
		polls.Add(1)
		if call == 7 {
			return errors.New("injected failure in a later poll of a transaction")
		}
		return nil
	}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx) }()
	for i := 0; i < n; i += 100 { // a trickle, so transactions would otherwise be one poll each
		recs := make([]*kgo.Record, 100)
		for j := range recs {
			recs[j] = &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "acct-%d", j%17), Value: fmt.Appendf(nil, "v%05d", i+j)}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	seen := readCommitted(t, brokers, out, n)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, seen, n)
	committed := loop.Stats.Committed.Load()
	if committed == 0 || committed >= polls.Load() || aborts.Load() == 0 {
		t.Fatalf("%d commits for %d polls, %d aborts: want fewer commits than polls and the injected abort", committed, polls.Load(), aborts.Load())
	}
	if hookDup.Load() != 0 {
		t.Fatalf("Committed saw %d records twice", hookDup.Load())
	}
	t.Logf("%d polls, %d commits, %d aborts", polls.Load(), committed, aborts.Load())
}
