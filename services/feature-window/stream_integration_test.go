package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/labels"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/pipeline"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/window"
)

const partitions = 3

// env is one test's isolated topics, groups and Redis prefix on the shared broker and Redis.
type env struct {
	brokers          []string
	redisAddr        string
	topics           kafka.Topics
	group, prefix    string
	tx               []*kgo.Record // what was produced, in produce order
	labels           []*kgo.Record
	garbage          int
	wantTx           []*fraudv1.Transaction
	wantLabelsBefore []features.Label
}

func newEnv(t *testing.T) *env {
	t.Helper()
	run := testinfra.UniqueName("fwtest-")
	e := &env{
		brokers:   testinfra.KafkaBrokers(t),
		redisAddr: testinfra.RedisAddr(t),
		topics:    kafka.Topics{Tx: run + ".tx", Features: run + ".features", Decisions: run + ".decisions", Labels: run + ".labels"},
		group:     run,
		prefix:    run + ":",
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(context.Background(), cl, partitions, e.topics.All()...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rdb := redis.NewClient(&redis.Options{Addr: e.redisAddr})
		defer rdb.Close()
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return e
}

func partitionOf(account string) int32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	return int32(h.Sum32() % partitions)
}

// generate builds n transactions over about two weeks of event time: 40 accounts, cards per
// account, devices and terminals shared by the accounts of one partition (so the cross-account
// features are deterministic whatever the partitions' relative progress), 10% out of order
// (some beyond the allowed lateness), garbage records, and labels for a third of them.
func (e *env) generate(t *testing.T, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	span := 14 * 24 * time.Hour
	for i := range n {
		clock = clock.Add(time.Duration(rng.Int64N(int64(2 * span / time.Duration(n)))))
		at := clock
		if rng.IntN(10) == 0 {
			at = at.Add(-time.Duration(rng.IntN(150)) * time.Minute)
		}
		acct := fmt.Sprint("acct-", rng.IntN(40))
		p := partitionOf(acct)
		term := fmt.Sprintf("T-%d-%d", p, rng.IntN(6))
		country := "FR"
		if rng.IntN(10) == 0 {
			country = []string{"DE", "ES", "US"}[rng.IntN(3)]
		}
		tx := &fraudv1.Transaction{
			Id: fmt.Sprintf("sim:%d-%d", seed, i), AccountId: acct, Card: &fraudv1.Card{Token: "tok-" + acct},
			AmountMinor: int64(math.Exp(math.Log(5000)+rng.NormFloat64())) + 1, Currency: "EUR",
			MerchantId: "m-" + term, TerminalId: term, Country: country, Channel: fraudv1.Channel(1 + rng.IntN(5)),
			DeviceId: fmt.Sprintf("dev-%d-%d", p, rng.IntN(4)), EventTime: timestamppb.New(at),
		}
		r, err := kafka.NewRecord(e.topics.Tx, acct, tx)
		if err != nil {
			t.Fatal(err)
		}
		r.Partition = p
		e.tx = append(e.tx, r)
		e.wantTx = append(e.wantTx, tx)
		if rng.IntN(100) == 0 {
			e.tx = append(e.tx, &kgo.Record{Topic: e.topics.Tx, Key: []byte(acct), Partition: p, Value: []byte{0xff, 0x00}})
			e.garbage++
		}
		if rng.IntN(3) == 0 {
			v := fraudv1.LabelValue_LABEL_VALUE_LEGITIMATE
			if rng.IntN(4) == 0 {
				v = fraudv1.LabelValue_LABEL_VALUE_FRAUD
			}
			l := &fraudv1.Label{LabelId: "l-" + tx.Id, TransactionId: tx.Id, AccountId: acct, TerminalId: term, Value: v,
				TransactionTime: tx.EventTime, LabelledTime: timestamppb.New(at.Add(time.Duration(rng.IntN(9*24)) * time.Hour))}
			lr, err := kafka.NewRecord(e.topics.Labels, acct, l)
			if err != nil {
				t.Fatal(err)
			}
			e.labels = append(e.labels, lr)
			fl, _, _ := labels.Convert(l)
			e.wantLabelsBefore = append(e.wantLabelsBefore, fl)
		}
	}
}

func (e *env) producer(t *testing.T) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(kafka.ProducerOptions(e.brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(t *testing.T, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// offline recomputes every transaction's vector with features.Offline, each partition's
// records in offset order, all labels known first (equivalent: a label only matters to events
// at least a day after it is known).
func (e *env) offline() map[string][]float64 {
	o := features.NewOffline()
	for _, l := range e.wantLabelsBefore {
		o.AddLabel(l)
	}
	want := map[string][]float64{}
	for _, tx := range e.wantTx { // produce order is offset order within a partition
		want[tx.Id] = o.Next(features.FromTransaction(tx))
	}
	return want
}

// readFeatures reads features.v1 read-committed until it holds n records or the deadline.
func (e *env) readFeatures(t *testing.T, n int, deadline time.Duration) (map[string][]float64, map[string]int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(e.topics.Features),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	got, seen := map[string][]float64{}, map[string]int{}
	total := 0
	for total < n && ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachRecord(func(r *kgo.Record) {
			var et fraudv1.EnrichedTransaction
			if err := kafka.Decode(r, &et); err != nil {
				t.Errorf("features.v1 record at %d/%d: %v", r.Partition, r.Offset, err)
				return
			}
			id := et.GetTransaction().GetId()
			got[id] = et.GetFeatures().GetValues()
			seen[id]++
			total++
		})
	}
	if total < n {
		t.Fatalf("features.v1 holds %d records after %s, want %d", total, deadline, n)
	}
	return got, seen
}

func (e *env) check(t *testing.T, got map[string][]float64, seen map[string]int) {
	t.Helper()
	want := e.offline()
	bad := 0
	for id, w := range want {
		if seen[id] != 1 {
			t.Errorf("%s appears %d times in features.v1", id, seen[id])
		}
		if !slices.Equal(got[id], w) && bad < 5 {
			bad++
			for i := range w {
				if i < len(got[id]) && got[id][i] != w[i] {
					t.Errorf("%s: %s stream %v, offline %v", id, features.Names[i], got[id][i], w[i])
				}
			}
		}
	}
	// The generated stream must exercise every kind of feature, or equality proves little.
	for _, name := range []string{"terminal_fraud_ratio_30d", "terminal_count_1d", "account_amount_ratio_30d", "device_distinct_accounts_1d",
		"country_mismatch", "account_distinct_countries_1d", "account_count_10m"} {
		trivial := 0.0 // the value of a transaction with nothing before it
		switch name {
		case "account_count_10m":
			trivial = 1
		case "account_amount_ratio_30d":
			trivial = 1
		}
		nonzero := 0
		for _, w := range want {
			if v := w[features.Index(name)]; v != 0 && v != trivial {
				nonzero++
			}
		}
		if nonzero == 0 {
			t.Errorf("no transaction has a non-trivial %s", name)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("features.v1 has %d distinct transactions, want %d", len(seen), len(want))
	}
}

func (e *env) dlqCount(t *testing.T) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(kafka.DLQ(e.topics.Tx)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := 0
	for n < e.garbage && ctx.Err() == nil {
		f := cl.PollFetches(ctx)
		f.EachRecord(func(r *kgo.Record) {
			if kafka.Header(r, kafka.HeaderError) == "" {
				t.Error("dead letter without error header")
			}
			n++
		})
	}
	return n
}

// instance is one in-process feature-window: EOS loop plus labels consumer.
type instance struct {
	cancel context.CancelFunc
	done   chan struct{}
	pipe   *pipeline.Pipeline
	lab    *labels.Applier
}

func (e *env) start(t *testing.T, txID string, maxPoll int) *instance {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: e.redisAddr})
	cfg := features.DefaultConfig()
	store := window.New(rdb, e.prefix, cfg)
	pipe := pipeline.New(store, pipeline.KafkaReader(e.brokers, time.Minute), cfg, e.topics.Features, time.Now)
	lab := &labels.Applier{Windows: store}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	loop, err := kafka.NewStreamEOS(kafka.EOSConfig{Brokers: e.brokers, Group: e.group, TransactionalID: txID,
		InputTopics: []string{e.topics.Tx}, MaxPollRecords: maxPoll,
		Committed: pipe.Committed, Aborted: pipe.Aborted, Revoked: pipe.Reset}, pipe.TransformStream, log)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := labels.NewConsumer(e.brokers, e.group+"-labels", e.topics.Labels, lab, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan struct{}), pipe: pipe, lab: lab}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = loop.Run(ctx) }()
	go func() { defer wg.Done(); _ = lc.Run(ctx) }()
	go func() { wg.Wait(); _ = rdb.Close(); close(in.done) }()
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() {
	in.cancel()
	<-in.done
}

// TestStreamEqualsOffline: a generated stream through the real EOS pipeline; every emitted
// vector equals features.Offline's recomputation, bad records are dead-lettered.
func TestStreamEqualsOffline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.generate(t, 1500, 1)
	pr := e.producer(t)
	// Labels first and applied before the transactions flow: see offline().
	produce(t, pr, e.labels)
	in := e.start(t, e.group+"-0", 200)
	waitFor(t, 20*time.Second, func() bool {
		return in.lab.Stats.Applied.Load()+in.lab.Stats.Duplicates.Load() >= int64(len(e.labels))
	})
	produce(t, pr, e.tx)
	got, seen := e.readFeatures(t, len(e.wantTx), 45*time.Second)
	e.check(t, got, seen)
	if n := e.dlqCount(t); n != e.garbage {
		t.Errorf("dead letters %d, want %d", n, e.garbage)
	}
	if in.pipe.Stats.Late.Load() == 0 {
		t.Error("the stream had no late event: lateness untested")
	}
	t.Logf("tx %d, garbage %d, labels %d, late %d", len(e.wantTx), e.garbage, len(e.labels), in.pipe.Stats.Late.Load())
}

// TestRebalanceTwoInstances: a second instance joins mid-run and the first leaves abruptly
// later; the result is the same as one uninterrupted instance's.
func TestRebalanceTwoInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.generate(t, 1500, 2)
	pr := e.producer(t)
	produce(t, pr, e.labels)
	a := e.start(t, e.group+"-a", 25)
	waitFor(t, 20*time.Second, func() bool {
		return a.lab.Stats.Applied.Load()+a.lab.Stats.Duplicates.Load() >= int64(len(e.labels))
	})
	third := len(e.tx) / 3
	produce(t, pr, e.tx[:third])
	waitFor(t, 20*time.Second, func() bool { return processed(a) > int64(third/4) })
	b := e.start(t, e.group+"-b", 25)
	produce(t, pr, e.tx[third:2*third])
	waitFor(t, 20*time.Second, func() bool { return processed(b) > 0 })
	a.stop() // leaves mid-run: its partitions move to b, uncommitted work is replayed there
	produce(t, pr, e.tx[2*third:])
	got, seen := e.readFeatures(t, len(e.wantTx), 45*time.Second)
	e.check(t, got, seen)
	t.Logf("caught up after rebalance: a %d, b %d; checkpoint conflicts a %d, b %d", a.pipe.Stats.CaughtUp.Load(), b.pipe.Stats.CaughtUp.Load(),
		a.pipe.Stats.Conflicts.Load(), b.pipe.Stats.Conflicts.Load())
}

func processed(in *instance) int64 { return in.pipe.Stats.Transactions.Load() }

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKillNineExactlyOnce runs the built binary and kill -9s it at random moments, at least
// ten times, while the stream is produced; features.v1 read-committed must hold each
// transaction once with the offline features.
func TestKillNineExactlyOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.generate(t, 3000, 3)
	bin := filepath.Join(t.TempDir(), "feature-window")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pr := e.producer(t)
	produce(t, pr, e.labels)
	envv := append(os.Environ(),
		"VIGIL_KAFKA_BROKERS="+e.brokers[0], "VIGIL_REDIS_ADDR="+e.redisAddr, "VIGIL_REDIS_KEY_PREFIX="+e.prefix,
		"VIGIL_TOPIC_TX="+e.topics.Tx, "VIGIL_TOPIC_FEATURES="+e.topics.Features, "VIGIL_TOPIC_LABELS="+e.topics.Labels,
		"VIGIL_TOPIC_DECISIONS="+e.topics.Decisions, "VIGIL_FEATURE_WINDOW_ADDR=127.0.0.1:0",
		"VIGIL_FEATURE_WINDOW_GROUP="+e.group, "VIGIL_FEATURE_WINDOW_TRANSACTIONAL_ID="+e.group+"-0",
		"VIGIL_FEATURE_WINDOW_MAX_POLL_RECORDS=50", "VIGIL_LOG_LEVEL=warn",
		"VIGIL_FEATURE_WINDOW_INSTANCE_ID="+e.group+"-0", "VIGIL_FEATURE_WINDOW_SESSION_TIMEOUT=6s")
	startProc := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = envv
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// Labels are applied by the first process before any transaction is produced.
	cmd := startProc()
	rdb := redis.NewClient(&redis.Options{Addr: e.redisAddr})
	defer rdb.Close()
	waitFor(t, 20*time.Second, func() bool {
		n, _ := rdb.Keys(context.Background(), e.prefix+"fw:l:*").Result()
		return len(n) >= distinctLabels(e.labels)
	})
	stopProduce := make(chan struct{})
	go func() { // the stream keeps coming while the service dies and restarts
		defer close(stopProduce)
		for i := 0; i < len(e.tx); i += 100 {
			produce(t, pr, e.tx[i:min(i+100, len(e.tx))])
			time.Sleep(700 * time.Millisecond)
		}
	}()
	rng := rand.New(rand.NewPCG(5, 5))
	kills := 0
	for kills < 12 {
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
		_ = cmd.Process.Kill() // SIGKILL: no shutdown, the open transaction is left behind
		_ = cmd.Wait()
		kills++
		cmd = startProc()
	}
	<-stopProduce
	// Generous: on a shared 2-core CI box the last process may still be catching up; the
	// assertion is exactly-once and equality, not speed.
	got, seen := e.readFeatures(t, len(e.wantTx), 150*time.Second)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	e.check(t, got, seen)
	t.Logf("%d kills", kills)
}

func distinctLabels(recs []*kgo.Record) int { return len(recs) }

// TestRebuildAfterRedisLoss: the windows are wiped mid-stream, `rebuild` re-derives them from
// the topics, and the rest of the stream still gets exactly the offline features.
func TestRebuildAfterRedisLoss(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.generate(t, 900, 4)
	pr := e.producer(t)
	produce(t, pr, e.labels)
	a := e.start(t, e.group+"-0", 200)
	waitFor(t, 20*time.Second, func() bool {
		return a.lab.Stats.Applied.Load()+a.lab.Stats.Duplicates.Load() >= int64(len(e.labels))
	})
	half := len(e.tx) / 2
	produce(t, pr, e.tx[:half])
	e.readFeatures(t, half-countGarbage(e.tx[:half]), 30*time.Second)
	a.stop()

	rdb := redis.NewClient(&redis.Options{Addr: e.redisAddr})
	defer rdb.Close()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) { // Redis lost everything
		rdb.Del(ctx, iter.Val())
	}
	cfg, err := loadConfig(configFor(e))
	if err != nil {
		t.Fatal(err)
	}
	store := window.New(rdb, e.prefix, cfg.Features)
	pipe := pipeline.New(store, pipeline.KafkaReader(e.brokers, time.Minute), cfg.Features, "unused", time.Now)
	if err := rebuild(ctx, cfg, pipe, &labels.Applier{Windows: store}, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if pipe.Stats.CaughtUp.Load() < int64(half-countGarbage(e.tx[:half])) {
		t.Fatalf("rebuild folded %d transactions, want %d", pipe.Stats.CaughtUp.Load(), half-countGarbage(e.tx[:half]))
	}
	e.start(t, e.group+"-1", 200)
	produce(t, pr, e.tx[half:])
	got, seen := e.readFeatures(t, len(e.wantTx), 30*time.Second)
	e.check(t, got, seen)
}

func countGarbage(recs []*kgo.Record) int {
	n := 0
	for _, r := range recs {
		if len(r.Headers) == 0 {
			n++
		}
	}
	return n
}

func configFor(e *env) *config.Env {
	return config.FromMap(map[string]string{
		"VIGIL_KAFKA_BROKERS": e.brokers[0], "VIGIL_REDIS_ADDR": e.redisAddr, "VIGIL_REDIS_KEY_PREFIX": e.prefix,
		"VIGIL_TOPIC_TX": e.topics.Tx, "VIGIL_TOPIC_FEATURES": e.topics.Features, "VIGIL_TOPIC_LABELS": e.topics.Labels,
		"VIGIL_FEATURE_WINDOW_GROUP": e.group,
	})
}
