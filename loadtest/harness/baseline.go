package harness

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// Baselines are the raw costs of the parts the pipeline is built from, measured in the same
// run on the same broker, Redis and Postgres with messages of the same size.
type Baselines struct {
	MessageBytes         int      `json:"message_bytes"`
	ProduceConsumeRate   float64  `json:"produce_consume_rec_per_s"` // as fast as it goes
	ProduceConsumeLat    Summary  `json:"produce_consume_latency"`   // paced at the run's rate
	ProduceConsumeRateAt float64  `json:"produce_consume_paced_rate"`
	EOSRelayRate         float64  `json:"eos_relay_rec_per_s"`
	RedisPipelinedOps    float64  `json:"redis_pipelined_ops_per_s"`
	PostgresCopyRows     float64  `json:"postgres_copy_rows_per_s"`
	Errors               []string `json:"errors,omitempty"`
}

// TxMessageSize is the size of a tx.v1 record value as ingest would publish w's first
// transaction (tokenized card, received time set).
func TxMessageSize(w *Workload) int {
	t := w.Sample(0)
	now := timestamppb.Now()
	tx := &fraudv1.Transaction{Id: "load0:" + ClientID("L0000000", 123456), Source: "load0", ClientTransactionId: ClientID("L0000000", 123456),
		AccountId: "cust-" + strconv.Itoa(t.CustomerID), Card: &fraudv1.Card{Token: fmt.Sprintf("%064x", t.CustomerID), TokenKeyId: "k1", Bin: "400000", Last4: "1234"},
		AmountMinor: int64(t.Amount * 100), Currency: "EUR", MerchantId: "merch-1", TerminalId: "term-" + strconv.Itoa(t.TerminalID),
		Mcc: "5411", Country: "FR", Channel: fraudv1.Channel_CHANNEL_CARD_PRESENT, DeviceId: "pos-1", Ip: "10.0.0.1",
		EventTime: now, ReceivedTime: now}
	rec, err := kafka.NewRecord("x", tx.GetAccountId(), tx)
	if err != nil {
		return 200
	}
	return len(rec.Value)
}

func payload(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// ProduceConsume produces n records of size bytes with ingest's producer options to a fresh
// topic while a read-committed consumer reads them. rate > 0 paces the producer open-loop
// and reports latency from each intended send to its consumption; rate 0 goes flat out and
// reports records per second from the first produce to the last consume.
func ProduceConsume(ctx context.Context, brokers []string, topic string, partitions, n, size int, rate float64) (float64, *Histogram, error) {
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, nil, err
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, partitions, topic); err != nil {
		return 0, nil, err
	}
	defer func() { _, _ = kadm.NewClient(admin).DeleteTopics(context.WithoutCancel(ctx), topic) }()
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(20*time.Millisecond))
	if err != nil {
		return 0, nil, err
	}
	defer cons.Close()
	prod, err := kgo.NewClient(kafka.ProducerOptions(brokers)...)
	if err != nil {
		return 0, nil, err
	}
	defer prod.Close()
	sent := make([]time.Time, n)
	var mu sync.Mutex
	h := NewHistogram()
	cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var lastConsumed time.Time
	consume := func() {
		got := 0
		for got < n {
			f := cons.PollFetches(cctx)
			if cctx.Err() != nil {
				done <- fmt.Errorf("raw produce→consume: %d of %d records consumed: %w", got, n, cctx.Err())
				return
			}
			now := time.Now()
			f.EachRecord(func(r *kgo.Record) {
				i, _ := strconv.Atoi(string(r.Key))
				mu.Lock()
				at := sent[i]
				mu.Unlock()
				h.Record(now.Sub(at))
				got++
			})
			lastConsumed = now
		}
		done <- nil
	}
	value := payload(size)
	// Warm up until every partition has delivered: a fresh topic's metadata can reach the
	// consumer partition by partition, which would otherwise show up as second-long tails.
	warm := make([]*kgo.Record, 16*partitions)
	for j := range warm {
		warm[j] = &kgo.Record{Topic: topic, Key: []byte("warm-" + strconv.Itoa(j)), Value: value}
	}
	if err := prod.ProduceSync(ctx, warm...).FirstErr(); err != nil {
		return 0, nil, err
	}
	seen := map[int32]bool{}
	for got := 0; got < len(warm) || len(seen) < partitions; {
		f := cons.PollFetches(cctx)
		if cctx.Err() != nil {
			return 0, nil, fmt.Errorf("raw produce→consume warm-up: %d partitions seen: %w", len(seen), cctx.Err())
		}
		f.EachRecord(func(r *kgo.Record) { seen[r.Partition] = true; got++ })
		if got >= len(warm) {
			break // keys did not cover every partition; good enough
		}
	}
	go consume()
	start := time.Now()
	for i := range n {
		at := time.Now()
		if rate > 0 {
			at = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if w := time.Until(at); w > 0 {
				time.Sleep(w)
			}
		}
		mu.Lock()
		sent[i] = at
		mu.Unlock()
		prod.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: value}, nil)
	}
	if err := <-done; err != nil {
		return 0, nil, err
	}
	return float64(n) / lastConsumed.Sub(start).Seconds(), h, nil
}

// EOSRelay pre-fills a topic with n records of size bytes, then times a franz-go
// GroupTransactSession copying them to another topic (the options of libs/kafka's EOS loop,
// no work), from the first output seen to the last: the ceiling for any EOS stage.
func EOSRelay(ctx context.Context, brokers []string, run string, partitions, n, size int) (float64, error) {
	in, out := run+".relay-in", run+".relay-out"
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, partitions, in, out); err != nil {
		return 0, err
	}
	defer func() { _, _ = kadm.NewClient(admin).DeleteTopics(context.WithoutCancel(ctx), in, out) }()
	prod, err := kgo.NewClient(kafka.ProducerOptions(brokers)...)
	if err != nil {
		return 0, err
	}
	value := payload(size)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: in, Key: []byte("acct-" + strconv.Itoa(i%5000)), Value: value}
	}
	err = prod.ProduceSync(ctx, recs...).FirstErr()
	prod.Close()
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay(rctx, brokers, run, in, out) }()
	defer func() { cancel(); <-relayDone }()
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(20*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	actx, acancel := context.WithTimeout(ctx, 90*time.Second)
	defer acancel()
	var first time.Time
	got, firstN := 0, 0
	for got < n {
		f := cons.PollFetches(actx)
		if actx.Err() != nil {
			return 0, fmt.Errorf("raw EOS relay: %d of %d records: %w", got, n, actx.Err())
		}
		select {
		case err := <-relayDone:
			relayDone <- err
			if err != nil {
				return 0, fmt.Errorf("raw EOS relay: %w", err)
			}
		default:
		}
		k := len(f.Records())
		if k > 0 && first.IsZero() {
			first, firstN = time.Now(), k
		}
		got += k
	}
	if got == firstN {
		return 0, fmt.Errorf("raw EOS relay: everything arrived in one poll; raise the record count")
	}
	return float64(got-firstN) / time.Since(first).Seconds(), nil
}

func relay(ctx context.Context, brokers []string, run, in, out string) error {
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(brokers...), kgo.TransactionalID(run+"-relay"), kgo.TransactionTimeout(60*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumerGroup(run+"-relay"), kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()), kgo.Balancers(kgo.CooperativeStickyBalancer()))
	if err != nil {
		return err
	}
	defer sess.Close()
	for {
		fetches := sess.PollRecords(ctx, 500)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return err
		}
		tctx := context.WithoutCancel(ctx)
		promise := kgo.AbortingFirstErrPromise(sess.Client())
		for _, r := range recs {
			sess.Produce(tctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value}, promise.Promise())
		}
		if _, err := sess.End(tctx, kgo.TransactionEndTry(promise.Err() == nil)); err != nil {
			return err
		}
	}
}

// RedisPipelined runs pipelines of 100 commands (HINCRBY + PEXPIRE on per-account hashes,
// the shape of a window update, values of size bytes in a SET) for d and returns commands
// per second. Keys live under prefix and are deleted afterwards.
func RedisPipelined(ctx context.Context, addr, prefix string, size int, d time.Duration) (float64, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	value := payload(size)
	ops := 0
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		pipe := rdb.Pipeline()
		for j := range 33 {
			k := prefix + "acct:" + strconv.Itoa((i*33+j)%5000)
			pipe.HIncrBy(ctx, k, "count", 1)
			pipe.PExpire(ctx, k, time.Minute)
			pipe.Set(ctx, k+":last", value, time.Minute)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, fmt.Errorf("redis pipeline: %w", err)
		}
		ops += 99
	}
	rate := float64(ops) / time.Since(start).Seconds()
	_, _ = deletePrefix(ctx, rdb, prefix)
	return rate, nil
}

// DeleteRedisPrefix unlinks every key under prefix and returns how many it unlinked.
func DeleteRedisPrefix(ctx context.Context, addr, prefix string) (int, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	return deletePrefix(ctx, rdb, prefix)
}

func deletePrefix(ctx context.Context, rdb *redis.Client, prefix string) (int, error) {
	var cursor uint64
	n := 0
	for {
		keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return n, fmt.Errorf("scan %s*: %w", prefix, err)
		}
		if len(keys) > 0 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return n, fmt.Errorf("unlink %s*: %w", prefix, err)
			}
			n += len(keys)
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// PostgresCopy COPYs n decision-shaped rows into a temporary table and returns rows per
// second: the floor of what the decision sink can write.
func PostgresCopy(ctx context.Context, url string, n int) (float64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("postgres copy: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE bench_copy (LIKE decisions INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`); err != nil {
		return 0, fmt.Errorf("postgres copy: %w", err)
	}
	now := time.Now()
	cols := []string{"decision_id", "transaction_id", "account_id", "action", "score", "model_version", "rule_set_version",
		"feature_schema_version", "review_threshold", "decline_threshold", "amount_minor", "currency", "received_at", "decided_at",
		"kafka_partition", "kafka_offset"}
	start := time.Now()
	const batch = 1000
	for off := 0; off < n; off += batch {
		rows := make([][]any, 0, batch)
		for i := off; i < min(off+batch, n); i++ {
			id := strconv.Itoa(i)
			rows = append(rows, []any{"d-" + id, "load0:copy-" + id, "cust-" + strconv.Itoa(i%5000), "approve", 0.1, "m1", "r1", "f1",
				0.8, 0.95, int64(1234), "EUR", now, now, int32(i % 6), int64(i)})
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"bench_copy"}, cols, pgx.CopyFromRows(rows)); err != nil {
			return 0, fmt.Errorf("postgres copy: %w", err)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
