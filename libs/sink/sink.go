// Package sink consumes Kafka topics into Postgres exactly once: each batch's effects and the
// next offsets are written in one Postgres transaction, and consumption resumes from the offsets
// stored there. Kafka's own committed offsets are only updated for lag monitoring.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/telemetry"
)

const tracerName = "github.com/vigil-fraud/vigil/libs/sink"

// Handler applies records inside tx. It only ever sees records not applied before. An error
// rolls the batch back and it is retried; records that can never apply must be handled (dead
// letter, skip with a log) rather than returned as errors.
type Handler func(ctx context.Context, tx pgx.Tx, recs []*kgo.Record) error

// Config of one sink.
type Config struct {
	Brokers []string
	// Name identifies the sink: its consumer group and its rows in kafka_offsets.
	Name         string
	Topics       []string
	MaxPoll      int
	RetryBackoff time.Duration
	ExtraOpts    []kgo.Opt
	// Metrics, when set, receives the sink's Prometheus series.
	Metrics prometheus.Registerer
	// AsyncCommit commits each batch's Postgres transaction without waiting for its WAL flush
	// (synchronous_commit = off for that transaction only). Exactly-once still holds: the rows
	// and the offsets beside them are lost together when the server crashes before the flush
	// (at most wal_writer_delay, 200 ms, of batches), and the sink then reads them from Kafka
	// again. A reader may in that case see a row vanish until the replay restores it.
	AsyncCommit bool
}

// Sink is one running consumer.
type Sink struct {
	cfg     Config
	pool    *pgxpool.Pool
	handler Handler
	log     *slog.Logger
	cl      *kgo.Client
	// Applied counts records applied (committed in Postgres).
	Applied atomic.Int64

	applied  prometheus.Counter
	failures prometheus.Counter
	rewinds  prometheus.Counter
	batchDur prometheus.Histogram

	// expected is, per partition, the next offset this sink last committed to Postgres. A
	// stored offset below it means Postgres lost commits it had acknowledged (a crash with
	// synchronous_commit off, a failover to a lagging replica): the sink rewinds to what is
	// stored instead of carrying on past the lost rows.
	mu       sync.Mutex
	expected map[tp]int64
}

// rewindError asks Run to re-read partitions from these offsets.
type rewindError struct {
	to   map[string]map[int32]kgo.EpochOffset
	lost []string
}

func (e *rewindError) Error() string {
	return fmt.Sprintf("postgres lost acknowledged commits of %v: rewinding", e.lost)
}

// New builds the consumer; it connects lazily.
func New(cfg Config, pool *pgxpool.Pool, h Handler, log *slog.Logger) (*Sink, error) {
	if cfg.Name == "" || len(cfg.Topics) == 0 || len(cfg.Brokers) == 0 {
		return nil, errors.New("sink: name, topics and brokers are required")
	}
	if cfg.MaxPoll <= 0 {
		cfg.MaxPoll = 1000
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 500 * time.Millisecond
	}
	s := &Sink{cfg: cfg, pool: pool, handler: h, log: log.With("sink", cfg.Name), expected: map[tp]int64{}}
	labels := prometheus.Labels{"sink": cfg.Name}
	s.applied = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_sink_records_total",
		Help: "Records applied to Postgres (with their offsets) by the sink.", ConstLabels: labels})
	s.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_sink_batch_failures_total",
		Help: "Sink batches rolled back and retried.", ConstLabels: labels})
	s.rewinds = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_sink_rewinds_total",
		Help: "Times Postgres held older offsets than the sink had committed (acknowledged commits lost) and the sink re-read from them.", ConstLabels: labels})
	s.batchDur = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_sink_batch_duration_seconds",
		Help: "Time to apply one batch in Postgres.", ConstLabels: labels,
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}})
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(s.applied, s.failures, s.rewinds, s.batchDur)
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Name),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		// Rebalances wait until the batch in hand is committed to Postgres.
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(s.offsetsFromPostgres),
	}, cfg.ExtraOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("sink %s client: %w", cfg.Name, err)
	}
	s.cl = cl
	return s, nil
}

// offsetsFromPostgres replaces the group's offsets for newly assigned partitions with the ones
// stored beside the data.
func (s *Sink) offsetsFromPostgres(ctx context.Context, in map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	rows, err := s.pool.Query(ctx, `SELECT topic, partition, next_offset FROM kafka_offsets WHERE consumer = $1`, s.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("load offsets of %s: %w", s.cfg.Name, err)
	}
	defer rows.Close()
	s.mu.Lock()
	for topic, parts := range in {
		for p := range parts {
			delete(s.expected, tp{topic, p}) // Postgres's offsets are the start again
		}
	}
	s.mu.Unlock()
	for rows.Next() {
		var topic string
		var p int32
		var next int64
		if err := rows.Scan(&topic, &p, &next); err != nil {
			return nil, err
		}
		if parts, ok := in[topic]; ok {
			if _, ok := parts[p]; ok {
				parts[p] = kgo.NewOffset().At(next)
			}
		}
	}
	return in, rows.Err()
}

// Run consumes until ctx ends.
func (s *Sink) Run(ctx context.Context) error {
	defer s.cl.Close()
	// Offsets go to Kafka asynchronously while running; the last ones synchronously on the
	// way out, so lag tools do not see a stopped sink as behind.
	applied := map[string]map[int32]kgo.EpochOffset{}
	defer func() {
		if len(applied) > 0 {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			s.commitFinal(cctx, applied)
			cancel()
		}
	}()
	for {
		fetches := s.cl.PollRecords(ctx, s.cfg.MaxPoll)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			s.cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			s.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		})
		recs := fetches.Records()
		if len(recs) > 0 {
			err := s.applyWithRetry(ctx, recs)
			if rw := (*rewindError)(nil); errors.As(err, &rw) {
				s.rewinds.Inc()
				s.log.Error("postgres lost commits it had acknowledged; re-reading from its offsets", "partitions", rw.lost)
				s.cl.SetOffsets(rw.to)
				s.cl.AllowRebalance()
				continue
			}
			if err != nil {
				s.cl.AllowRebalance()
				return nil // ctx ended
			}
			// Best effort and asynchronous: lets lag tools see progress; Postgres holds the truth.
			next := nextOffsets(recs)
			s.cl.CommitOffsets(ctx, next, nil)
			for t, ps := range next {
				if applied[t] == nil {
					applied[t] = map[int32]kgo.EpochOffset{}
				}
				for p, o := range ps {
					applied[t][p] = o
				}
			}
		}
		s.cl.AllowRebalance()
	}
}

// commitFinal commits the last applied offsets to Kafka, retrying a failed commit (a
// rebalance or coordinator move at shutdown) until ctx ends. A failure only makes lag tools
// see the sink behind: Postgres holds the offsets that count.
func (s *Sink) commitFinal(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) {
	for {
		var failed error
		s.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				failed = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						failed = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
					}
				}
			}
		})
		if failed == nil {
			return
		}
		select {
		case <-ctx.Done():
			s.log.Warn("final Kafka offset commit failed (Postgres has the offsets)", "err", failed)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Sink) applyWithRetry(ctx context.Context, recs []*kgo.Record) error {
	for {
		began := time.Now()
		n, err := s.apply(ctx, recs)
		if rw := (*rewindError)(nil); errors.As(err, &rw) {
			return err
		}
		if err == nil {
			s.batchDur.Observe(time.Since(began).Seconds())
			s.Applied.Add(int64(n))
			s.applied.Add(float64(n))
			return nil
		}
		s.failures.Inc()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Error("apply batch failed; retrying", "records", len(recs), "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.cfg.RetryBackoff):
		}
	}
}

// nextOffsets is, per partition, the offset after the last of recs.
func nextOffsets(recs []*kgo.Record) map[string]map[int32]kgo.EpochOffset {
	out := map[string]map[int32]kgo.EpochOffset{}
	for _, r := range recs {
		if out[r.Topic] == nil {
			out[r.Topic] = map[int32]kgo.EpochOffset{}
		}
		if cur, ok := out[r.Topic][r.Partition]; !ok || r.Offset+1 > cur.Offset {
			out[r.Topic][r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		}
	}
	return out
}

type tp struct {
	topic     string
	partition int32
}

// apply writes one batch and its offsets in one transaction. Records below the stored offsets
// (a replay after a crash between Postgres commit and anything else) are dropped first, under a
// row lock, so two consumers racing on one partition cannot both apply them.
func (s *Sink) apply(ctx context.Context, recs []*kgo.Record) (applied int, err error) {
	var spans []trace.Span
	var committed map[tp]int64
	// One span per record written, ended once the Postgres transaction settled.
	defer func() {
		for _, span := range spans {
			telemetry.EndSpan(span, err)
		}
	}()
	err = postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if s.cfg.AsyncCommit {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
				return fmt.Errorf("async commit: %w", err)
			}
		}
		next, err := s.lockOffsets(ctx, tx, recs)
		if err != nil {
			return err
		}
		if rw := s.lostCommits(recs, next); rw != nil {
			return rw
		}
		committed = next
		fresh := make([]*kgo.Record, 0, len(recs))
		for _, r := range recs {
			k := tp{r.Topic, r.Partition}
			if r.Offset < next[k] {
				continue
			}
			fresh = append(fresh, r)
			next[k] = r.Offset + 1
		}
		if len(fresh) == 0 {
			return nil
		}
		for _, r := range fresh {
			_, span := telemetry.StartConsumerSpan(ctx, tracerName, r, s.cfg.Name+" apply")
			spans = append(spans, span)
		}
		if err := s.handler(ctx, tx, fresh); err != nil {
			return err
		}
		if err := s.storeOffsets(ctx, tx, next); err != nil {
			return err
		}
		applied = len(fresh)
		return nil
	})
	if err == nil {
		s.mu.Lock()
		for k, off := range committed {
			if off >= 0 {
				s.expected[k] = off
			}
		}
		s.mu.Unlock()
	}
	return applied, err
}

// lockOffsets reads and row-locks the stored next offset of every partition of recs (-1 where
// none is stored) in one round trip, in (topic, partition) order so two consumers of one name
// lock in the same order.
func (s *Sink) lockOffsets(ctx context.Context, tx pgx.Tx, recs []*kgo.Record) (map[tp]int64, error) {
	next := map[tp]int64{}
	var topics []string
	var parts []int32
	for _, r := range recs {
		k := tp{r.Topic, r.Partition}
		if _, ok := next[k]; ok {
			continue
		}
		next[k] = -1
		topics, parts = append(topics, r.Topic), append(parts, r.Partition)
	}
	rows, err := tx.Query(ctx, `SELECT o.topic, o.partition, o.next_offset FROM kafka_offsets o
		JOIN unnest($2::text[], $3::int4[]) AS p(topic, partition) ON o.topic = p.topic AND o.partition = p.partition
		WHERE o.consumer = $1 ORDER BY o.topic, o.partition FOR UPDATE OF o`, s.cfg.Name, topics, parts)
	if err != nil {
		return nil, fmt.Errorf("lock offsets of %d partitions: %w", len(parts), err)
	}
	defer rows.Close()
	for rows.Next() {
		var k tp
		var stored int64
		if err := rows.Scan(&k.topic, &k.partition, &stored); err != nil {
			return nil, fmt.Errorf("lock offsets: %w", err)
		}
		next[k] = stored
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock offsets of %d partitions: %w", len(parts), err)
	}
	return next, nil
}

// storeOffsets upserts the next offsets (those ≥ 0) in one statement.
func (s *Sink) storeOffsets(ctx context.Context, tx pgx.Tx, next map[tp]int64) error {
	var topics []string
	var parts []int32
	var offs []int64
	for k, off := range next {
		if off >= 0 {
			topics, parts, offs = append(topics, k.topic), append(parts, k.partition), append(offs, off)
		}
	}
	if len(offs) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO kafka_offsets (consumer, topic, partition, next_offset)
		SELECT $1, t, p, o FROM unnest($2::text[], $3::int4[], $4::int8[]) AS u(t, p, o)
		ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()`,
		s.cfg.Name, topics, parts, offs); err != nil {
		return fmt.Errorf("store offsets of %d partitions: %w", len(offs), err)
	}
	return nil
}

// lostCommits compares the offsets stored in Postgres with those this sink committed. Where
// Postgres holds less, it returns where to re-read: the stored offset for those partitions (the
// log start when none is stored), and every other partition of recs from its first record,
// since the whole batch is dropped.
func (s *Sink) lostCommits(recs []*kgo.Record, stored map[tp]int64) *rewindError {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rw *rewindError
	for k, off := range stored {
		if exp, ok := s.expected[k]; ok && off < exp {
			if rw == nil {
				rw = &rewindError{to: map[string]map[int32]kgo.EpochOffset{}}
			}
			rw.lost = append(rw.lost, fmt.Sprintf("%s/%d (stored %d, committed %d)", k.topic, k.partition, off, exp))
		}
	}
	if rw == nil {
		return nil
	}
	for _, r := range recs {
		k := tp{r.Topic, r.Partition}
		if rw.to[r.Topic] == nil {
			rw.to[r.Topic] = map[int32]kgo.EpochOffset{}
		}
		if _, ok := rw.to[r.Topic][r.Partition]; ok {
			continue
		}
		at := r.Offset
		if exp, ok := s.expected[k]; ok && stored[k] < exp {
			at = max(stored[k], 0)
			delete(s.expected, k)
		}
		rw.to[r.Topic][r.Partition] = kgo.EpochOffset{Epoch: -1, Offset: at}
	}
	return rw
}
