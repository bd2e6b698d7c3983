package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
)

// insertValues stores each record's value; value is the primary key, so a record applied
// twice fails the batch loudly instead of hiding as a duplicate.
func insertValues(failEvery int64) Handler {
	var calls atomic.Int64
	return func(ctx context.Context, tx pgx.Tx, recs []*kgo.Record) error {
		if failEvery > 0 && calls.Add(1)%failEvery == 0 {
			return errors.New("injected failure")
		}
		rows := make([][]any, len(recs))
		for i, r := range recs {
			rows[i] = []any{string(r.Value), r.Partition, r.Offset}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"sink_test"}, []string{"value", "partition", "kafka_offset"}, pgx.CopyFromRows(rows))
		return err
	}
}

func runUntil(t *testing.T, s *Sink, stop func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for !stop() {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("sink did not finish; applied %d", s.Applied.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM sink_test`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// setupSinkTest makes a sink_test table in a fresh database and a topic of partitions
// partitions; produce(from, to) writes values v<from>..v<to-1> to it.
func setupSinkTest(t *testing.T, prefix string, partitions int) (brokers []string, pool *pgxpool.Pool, topic, name string, cl *kgo.Client, produce func(from, to int)) {
	t.Helper()
	brokers = testinfra.KafkaBrokers(t)
	pool, _ = testinfra.NewDatabase(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE sink_test (value text PRIMARY KEY, partition int, kafka_offset bigint)`); err != nil {
		t.Fatal(err)
	}
	topic, name = testinfra.UniqueName(prefix), testinfra.UniqueName(prefix+"group-")
	cl, err := kgo.NewClient(kafka.ProducerOptions(brokers)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := kafka.EnsureTopics(ctx, cl, partitions, topic); err != nil {
		t.Fatal(err)
	}
	produce = func(from, to int) {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%11), Value: fmt.Appendf(nil, "v%05d", i)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return brokers, pool, topic, name, cl, produce
}

func TestSinkAppliesEachRecordOnceAcrossRestartsAndRewinds(t *testing.T) {
	t.Parallel()
	brokers, pool, topic, name, cl, produce := setupSinkTest(t, "sink-", 3)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	newSink := func(failEvery int64, async bool) *Sink {
		s, err := New(Config{Brokers: brokers, Name: name, Topics: []string{topic}, MaxPoll: 50, RetryBackoff: 5 * time.Millisecond,
			AsyncCommit: async},
			pool, insertValues(failEvery), log)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	produce(0, 1000)
	// First run with failing batches (rolled back and retried), stopped once all are in.
	runUntil(t, newSink(4, false), func() bool { return count(t, pool) >= 1000 })

	// Rewind the group's Kafka offsets to the start, as an operator mistake or a lost commit
	// would: the offsets in Postgres must win and nothing is applied twice.
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteGroup(ctx, name); err != nil {
		t.Fatal(err)
	}
	produce(1000, 1500)
	second := newSink(0, true) // synchronous_commit off: the same guarantees

	runUntil(t, second, func() bool { return count(t, pool) >= 1500 })
	time.Sleep(500 * time.Millisecond)
	if n := count(t, pool); n != 1500 {
		t.Fatalf("rows = %d, want 1500", n)
	}
	if got := second.Applied.Load(); got != 500 {
		t.Fatalf("second run applied %d records, want only the 500 new ones", got)
	}
	var stored int64
	if err := pool.QueryRow(ctx, `SELECT sum(next_offset) FROM kafka_offsets WHERE consumer = $1 AND topic = $2`, name, topic).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 1500 {
		t.Fatalf("stored offsets sum to %d, want 1500", stored)
	}
	// The group's Kafka offsets (committed asynchronously, for lag tools) caught up too.
	var kafkaSum int64
	for range 50 {
		offs, err := adm.FetchOffsets(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		kafkaSum = 0
		offs.Each(func(o kadm.OffsetResponse) { kafkaSum += o.At })
		if kafkaSum == 1500 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if kafkaSum != 1500 {
		t.Fatalf("group offsets in Kafka sum to %d, want 1500", kafkaSum)
	}
}

// TestSinkRewindsWhenPostgresLosesCommits: with synchronous_commit off, a Postgres crash can
// lose the last commits it acknowledged — rows and stored offsets together. A sink that kept
// its in-memory position would carry on past those rows (found by `make chaos`: 31 decisions
// without a row after restart-postgres faults). Here the loss is made by hand while the sink
// runs: the sink must notice that Postgres holds less than it committed, re-read from there,
// and end with every record applied once.
func TestSinkRewindsWhenPostgresLosesCommits(t *testing.T) {
	t.Parallel()
	brokers, pool, topic, name, _, produce := setupSinkTest(t, "sink-lost-", 2)
	ctx := context.Background()
	s, err := New(Config{Brokers: brokers, Name: name, Topics: []string{topic}, MaxPoll: 50, RetryBackoff: 5 * time.Millisecond, AsyncCommit: true},
		pool, insertValues(0), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitRows := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for count(t, pool) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d rows, want %d", count(t, pool), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	produce(0, 600)
	waitRows(600)
	conn, err := pool.Acquire(ctx) // one session for the temporary table
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// "The crash": the last 40 rows of each partition and their offsets are gone.
	for _, q := range []string{
		`CREATE TEMP TABLE keep AS SELECT partition, max(kafka_offset) - 40 AS last FROM sink_test GROUP BY partition`,
		`DELETE FROM sink_test t USING keep k WHERE t.partition = k.partition AND t.kafka_offset > k.last`,
		`UPDATE kafka_offsets o SET next_offset = k.last + 1 FROM keep k WHERE o.consumer = '` + name + `' AND o.partition = k.partition`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, pool); n != 600-80 {
		t.Fatalf("%d rows after the simulated loss, want %d", n, 600-80)
	}
	produce(600, 700)
	waitRows(700)
	time.Sleep(500 * time.Millisecond)
	if n := count(t, pool); n != 700 {
		t.Fatalf("rows = %d, want 700", n)
	}
	if got := testutil.ToFloat64(s.rewinds); got < 1 {
		t.Errorf("rewinds = %v, want at least 1", got)
	}
}
