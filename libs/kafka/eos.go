package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Transform turns one poll's input records into the records to produce, all in one Kafka
// transaction. It must be deterministic and its side effects outside Kafka replay-safe: after an
// abort the same input comes again. An error aborts the transaction and the input is retried;
// input that can never succeed should become a DeadLetter record instead of an error.
type Transform func(ctx context.Context, in []*kgo.Record) ([]*kgo.Record, error)

// Emit produces one output record in the open transaction at once. It is safe to call from
// several goroutines while the StreamTransform runs, and only then.
type Emit func(*kgo.Record)

// StreamTransform is a Transform that hands each output to emit as soon as it is ready (a
// partition's records while the next partition is computed, say), so the produce round trips
// overlap the work instead of all starting after it. Its contract is Transform's; records
// emitted before an error are aborted with the transaction.
type StreamTransform func(ctx context.Context, in []*kgo.Record, emit Emit) error

// ErrRebalanced is what a transform returns when partitions were revoked or lost since the
// transaction began: the transaction cannot commit (the session aborts it at End anyway), and
// state a transform rebuilt mid-transaction would treat the transaction's earlier, uncommitted
// polls as committed. The loop aborts at once, without the failure pause, and logs it as the
// rebalance it is.
var ErrRebalanced = errors.New("partitions were revoked or lost during the transaction")

// EOSConfig configures one exactly-once consume-transform-produce loop.
type EOSConfig struct {
	Brokers []string
	Group   string
	// TransactionalID must be stable for one process instance and unique among instances.
	TransactionalID string
	InputTopics     []string
	// MaxPollRecords bounds one poll (one Transform call).
	MaxPollRecords int
	// CommitInterval keeps a transaction open across polls until it is this old (0: commit
	// every poll). Longer intervals mean fewer commits (throughput) and later visibility to
	// read-committed consumers (latency): Kafka Streams' commit.interval.ms.
	CommitInterval time.Duration
	// MaxTransactionRecords ends a transaction early once it holds this many input records
	// (default 10 × MaxPollRecords).
	MaxTransactionRecords int
	// RetryBackoff is the pause after a failed transform before the input is retried.
	RetryBackoff time.Duration
	// ExtraOpts are appended to the client options (tests, tuning).
	ExtraOpts []kgo.Opt
	// Metrics, when set, receives the loop's Prometheus series.
	Metrics prometheus.Registerer

	// Committed, when set, runs after each committed transaction with its input records, in the
	// loop's goroutine before the next poll: where a transform checkpoints state it derived from
	// committed input.
	Committed func(ctx context.Context, in []*kgo.Record)
	// Aborted, when set, runs in the loop's goroutine after each transaction that did not
	// commit and when a session ends: state derived from input since the last commit is void.
	Aborted func()
	// Revoked, when set, runs when partitions are revoked or lost, from the client's goroutine.
	Revoked func()
}

// EOSStats counts what the loop did; read with Load.
type EOSStats struct {
	Committed atomic.Int64 // transactions committed
	Aborted   atomic.Int64 // transactions aborted (transform error, produce error, rebalance)
	Records   atomic.Int64 // input records committed
}

// EOS runs a Transform inside Kafka transactions: read-committed input, outputs and input
// offsets committed atomically, so each input record's outputs appear exactly once.
type EOS struct {
	cfg       EOSConfig
	transform StreamTransform
	log       *slog.Logger
	metrics   *eosMetrics
	Stats     EOSStats
}

// NewEOS validates cfg and returns a loop; nothing connects until Run.
func NewEOS(cfg EOSConfig, transform Transform, log *slog.Logger) (*EOS, error) {
	return NewStreamEOS(cfg, func(ctx context.Context, in []*kgo.Record, emit Emit) error {
		out, err := transform(ctx, in)
		if err != nil {
			return err
		}
		for _, r := range out {
			emit(r)
		}
		return nil
	}, log)
}

// NewStreamEOS is NewEOS for a StreamTransform.
func NewStreamEOS(cfg EOSConfig, transform StreamTransform, log *slog.Logger) (*EOS, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("eos: no brokers")
	case cfg.Group == "":
		return nil, errors.New("eos: no consumer group")
	case cfg.TransactionalID == "":
		return nil, errors.New("eos: no transactional id")
	case len(cfg.InputTopics) == 0:
		return nil, errors.New("eos: no input topics")
	}
	if cfg.MaxPollRecords <= 0 {
		cfg.MaxPollRecords = 500
	}
	if cfg.MaxTransactionRecords <= 0 {
		cfg.MaxTransactionRecords = 10 * cfg.MaxPollRecords
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 500 * time.Millisecond
	}
	return &EOS{cfg: cfg, transform: transform, log: log.With("group", cfg.Group), metrics: newEOSMetrics(cfg.Metrics, cfg.Group)}, nil
}

func (e *EOS) newSession() (*kgo.GroupTransactSession, error) {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(e.cfg.Brokers...),
		kgo.TransactionalID(e.cfg.TransactionalID),
		kgo.TransactionTimeout(60 * time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumerGroup(e.cfg.Group),
		kgo.ConsumeTopics(e.cfg.InputTopics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
	}, e.cfg.ExtraOpts...)
	if e.cfg.Revoked != nil {
		revoked := func(context.Context, *kgo.Client, map[string][]int32) { e.cfg.Revoked() }
		opts = append(opts, kgo.OnPartitionsRevoked(revoked), kgo.OnPartitionsLost(revoked))
	}
	return kgo.NewGroupTransactSession(opts...)
}

// Run processes until ctx ends, then returns nil after the open transaction ended. A session
// whose End failed (fenced, coordinator trouble) is closed and replaced.
func (e *EOS) Run(ctx context.Context) error {
	for {
		sess, err := e.newSession()
		if err != nil {
			return fmt.Errorf("eos session: %w", err)
		}
		err = e.runSession(ctx, sess)
		sess.Close()
		e.aborted()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			return nil
		}
		e.log.Warn("eos session failed; starting a new one", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(e.cfg.RetryBackoff):
		}
	}
}

// txn is a session's open transaction: the input polled into it and its produce results.
type txn struct {
	began   time.Time
	ctx     context.Context // bounds the transaction's produce and end calls
	cancel  context.CancelFunc
	in      []*kgo.Record
	mu      sync.Mutex // guards out while a StreamTransform emits from several goroutines
	out     []*kgo.Record
	promise *kgo.FirstErrPromise
}

// runSession returns nil when ctx ends, an error when the session must be replaced.
func (e *EOS) runSession(ctx context.Context, sess *kgo.GroupTransactSession) error {
	var t *txn
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if t != nil { // an open transaction waits for more input only until it is due
			pctx, cancel = context.WithDeadline(ctx, t.began.Add(e.cfg.CommitInterval))
		}
		start := time.Now()
		fetches := sess.PollRecords(pctx, e.cfg.MaxPollRecords)
		cancel()
		e.metrics.poll.Add(time.Since(start).Seconds())
		if fetches.IsClientClosed() || ctx.Err() != nil {
			if t != nil { // finish what was processed: an abandoned transaction blocks readers
				return e.end(ctx, sess, t)
			}
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				e.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		if recs := fetches.Records(); len(recs) > 0 {
			if t == nil {
				if err := sess.Begin(); err != nil {
					return fmt.Errorf("begin transaction: %w", err)
				}
				tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second+e.cfg.CommitInterval)
				t = &txn{began: time.Now(), ctx: tctx, cancel: tcancel, promise: kgo.AbortingFirstErrPromise(sess.Client())}
			}
			tx := t
			start := time.Now()
			terr := e.transform(ctx, recs, func(r *kgo.Record) {
				sess.Produce(tx.ctx, r, tx.promise.Promise())
				tx.mu.Lock()
				tx.out = append(tx.out, r)
				tx.mu.Unlock()
			})
			e.metrics.transform.Add(time.Since(start).Seconds())
			t.in = append(t.in, recs...)
			if terr != nil {
				// Abort rewinds the session to the committed offsets: the same input comes again.
				rebalanced := errors.Is(terr, ErrRebalanced)
				switch {
				case ctx.Err() != nil:
				case rebalanced:
					e.log.Info("partitions revoked during the transaction; aborting it", "records", len(t.in))
				default:
					e.log.Error("transform failed; aborting and retrying", "records", len(t.in), "err", terr)
				}
				err := e.abort(ctx, sess, t, !rebalanced)
				t = nil
				if err != nil {
					return err
				}
				continue
			}
		}
		if t != nil && (e.cfg.CommitInterval <= 0 || time.Since(t.began) >= e.cfg.CommitInterval || len(t.in) >= e.cfg.MaxTransactionRecords) {
			err := e.end(ctx, sess, t)
			t = nil
			if err != nil {
				return err
			}
		}
	}
}

// abort ends t by aborting it after a failed transform, then (with pause) waits RetryBackoff
// before the input comes again.
func (e *EOS) abort(ctx context.Context, sess *kgo.GroupTransactSession, t *txn, pause bool) error {
	defer t.cancel()
	start := time.Now()
	_, err := sess.End(t.ctx, kgo.TryAbort)
	e.metrics.end.Add(time.Since(start).Seconds())
	if err != nil {
		e.aborted()
		return fmt.Errorf("abort transaction: %w", err)
	}
	e.Stats.Aborted.Add(1)
	e.aborted()
	e.metrics.observe(false, len(t.in), nil, time.Since(t.began))
	if !pause {
		return nil
	}
	select {
	case <-ctx.Done():
	case <-time.After(e.cfg.RetryBackoff):
	}
	return nil
}

// end commits t (aborts it if a produce failed or the session lost its partitions). Once begun,
// a transaction is finished even when ctx ends (shutdown): an abandoned one would hold back
// read-committed consumers until it times out.
func (e *EOS) end(ctx context.Context, sess *kgo.GroupTransactSession, t *txn) error {
	defer t.cancel()
	produceErr := t.promise.Err()
	start := time.Now()
	committed, err := sess.End(t.ctx, kgo.TransactionEndTry(produceErr == nil))
	e.metrics.end.Add(time.Since(start).Seconds())
	if err != nil {
		e.aborted()
		return fmt.Errorf("end transaction: %w", err)
	}
	e.metrics.observe(committed, len(t.in), t.out, time.Since(t.began))
	if !committed {
		e.Stats.Aborted.Add(1)
		e.aborted()
		e.log.Warn("transaction aborted; input will be reprocessed", "records", len(t.in), "produce_err", produceErr)
		return nil
	}
	e.Stats.Committed.Add(1)
	e.Stats.Records.Add(int64(len(t.in)))
	if e.cfg.Committed != nil {
		e.cfg.Committed(ctx, t.in)
	}
	return nil
}

func (e *EOS) aborted() {
	if e.cfg.Aborted != nil {
		e.cfg.Aborted()
	}
}
