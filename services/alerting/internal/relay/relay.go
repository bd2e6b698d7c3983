// Package relay publishes the label outbox to labels.v1 exactly once per outbox row.
//
// Why a transactional producer and not just an idempotent one: the idempotent producer only
// de-duplicates its own retries within one producer session. If the relay crashes after Kafka
// acknowledged a batch but before Postgres marked it sent, a restarted relay would publish the
// batch again. Here the relay (1) claims the batch in Postgres under a fresh batch id, (2)
// publishes it in one Kafka transaction whose records carry that batch id in a header, (3) marks
// it sent. After a crash between (2) and (3), the restarted relay first initialises its producer
// with the same transactional id — which fences any zombie and aborts a transaction left open —
// and then reads the tail of labels.v1 read-committed: if the claimed batch is there, it only
// marks it sent; if not (aborted or never produced), it publishes it again. Read-committed
// consumers therefore see every outbox row exactly once.
//
// One relay per deployment: a second one with the same transactional id fences the first.
package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/startup"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// HeaderBatch names the outbox batch a record was published in.
const HeaderBatch = "vigil-outbox-batch"

// Config of the relay.
type Config struct {
	Brokers         []string
	Topic           string
	TransactionalID string
	PollInterval    time.Duration
	BatchSize       int
	// TailWindow is how many offsets per partition recovery reads back looking for a batch.
	TailWindow int64
}

// Relay moves label_outbox rows to Kafka.
type Relay struct {
	cfg  Config
	pool *pgxpool.Pool
	log  *slog.Logger
	cl   *kgo.Client
	// afterCommit, when set (tests), runs between the Kafka commit and the Postgres mark; an
	// error simulates a crash there.
	afterCommit func() error
}

// New builds the relay's transactional producer.
func New(cfg Config, pool *pgxpool.Pool, log *slog.Logger) (*Relay, error) {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.TailWindow <= 0 {
		cfg.TailWindow = 5000
	}
	opts := append(kafka.ProducerOptions(cfg.Brokers),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.TransactionTimeout(30*time.Second))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("label relay producer: %w", err)
	}
	return &Relay{cfg: cfg, pool: pool, log: log.With("relay", "labels"), cl: cl}, nil
}

// Close releases the producer.
func (r *Relay) Close() { r.cl.Close() }

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	// Fence older producers with our transactional id and abort what they left open, so the
	// recovery read below sees the final state of their batches.
	// A broker that is down (or restarting) at start is waited for, not a reason to exit: the
	// rest of alerting serves meanwhile and labels wait in the outbox.
	err := startup.Wait(ctx, time.Duration(math.MaxInt64), "kafka", func(ctx context.Context) error {
		_, _, err := r.cl.ProducerID(ctx)
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed):
			return startup.Permanent(err)
		default:
			r.log.Warn("label relay waiting for the broker", "err", err)
		}
		return err
	})
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("label relay init: %w", err)
	}
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		if _, err := r.Once(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("label relay round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once recovers any batch a previous run left claimed, then relays one batch. It returns how
// many rows it published.
func (r *Relay) Once(ctx context.Context) (int, error) {
	if err := r.recover(ctx); err != nil {
		return 0, err
	}
	batch := newBatchID()
	rows, err := r.pool.Query(ctx, `UPDATE label_outbox SET batch_id = $1 WHERE outbox_id IN (
		SELECT outbox_id FROM label_outbox WHERE sent_at IS NULL AND batch_id IS NULL ORDER BY outbox_id LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING outbox_id, account_id, payload`, batch, r.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("claim labels: %w", err)
	}
	type row struct {
		id      int64
		account string
		payload []byte
	}
	claimed, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (row, error) {
		var x row
		err := cr.Scan(&x.id, &x.account, &x.payload)
		return x, err
	})
	if err != nil {
		return 0, fmt.Errorf("claim labels: %w", err)
	}
	if len(claimed) == 0 {
		return 0, nil
	}
	recs := make([]*kgo.Record, 0, len(claimed))
	for _, c := range claimed {
		msg := &fraudv1.Label{}
		if err := proto.Unmarshal(c.payload, msg); err != nil {
			return 0, fmt.Errorf("outbox row %d: %w", c.id, err)
		}
		rec, err := kafka.NewRecord(r.cfg.Topic, c.account, msg)
		if err != nil {
			return 0, err
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderBatch, Value: []byte(batch)})
		recs = append(recs, rec)
	}
	if err := r.publish(ctx, recs); err != nil {
		return 0, err
	}
	if r.afterCommit != nil {
		if err := r.afterCommit(); err != nil {
			return 0, err
		}
	}
	if err := r.markSent(ctx, batch); err != nil {
		return 0, err
	}
	return len(recs), nil
}

func (r *Relay) publish(ctx context.Context, recs []*kgo.Record) error {
	if err := r.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin label transaction: %w", err)
	}
	if err := r.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		_ = r.cl.AbortBufferedRecords(context.WithoutCancel(ctx))
		_ = r.cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort)
		return fmt.Errorf("produce labels: %w", err)
	}
	if err := r.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit labels: %w", err)
	}
	return nil
}

func (r *Relay) markSent(ctx context.Context, batch string) error {
	if _, err := r.pool.Exec(ctx, `UPDATE label_outbox SET sent_at = now() WHERE batch_id = $1 AND sent_at IS NULL`, batch); err != nil {
		return fmt.Errorf("mark batch %s sent: %w", batch, err)
	}
	return nil
}

// recover settles batches claimed but not marked sent: sent if Kafka has them committed,
// released for a new claim otherwise.
func (r *Relay) recover(ctx context.Context) error {
	rows, err := r.pool.Query(ctx, `SELECT DISTINCT batch_id FROM label_outbox WHERE sent_at IS NULL AND batch_id IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("pending batches: %w", err)
	}
	batches, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pending batches: %w", err)
	}
	if len(batches) == 0 {
		return nil
	}
	found, err := r.committedBatches(ctx)
	if err != nil {
		return err
	}
	for _, b := range batches {
		if found[b] {
			r.log.Info("label batch was committed before a crash; marking it sent", "batch", b)
			if err := r.markSent(ctx, b); err != nil {
				return err
			}
			continue
		}
		r.log.Info("label batch was not committed; publishing it again", "batch", b)
		if _, err := r.pool.Exec(ctx, `UPDATE label_outbox SET batch_id = NULL WHERE batch_id = $1 AND sent_at IS NULL`, b); err != nil {
			return fmt.Errorf("release batch %s: %w", b, err)
		}
	}
	return nil
}

// committedBatches reads the last TailWindow offsets of every partition read-committed and
// returns the batch ids seen.
func (r *Relay) committedBatches(ctx context.Context) (map[string]bool, error) {
	adm := kadm.NewClient(r.cl)
	ends, err := adm.ListEndOffsets(ctx, r.cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", r.cfg.Topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, r.cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s: %w", r.cfg.Topic, err)
	}
	want := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		start := int64(0)
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && s.Err == nil {
			start = s.Offset
		}
		if o.Offset <= start {
			return
		}
		from := max(start, o.Offset-r.cfg.TailWindow)
		offsets[o.Partition] = kgo.NewOffset().At(from)
		want[o.Partition] = o.Offset
	})
	seen := map[string]bool{}
	if len(offsets) == 0 {
		return seen, nil
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(r.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.cfg.Topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, fmt.Errorf("tail reader: %w", err)
	}
	defer cons.Close()
	// A partition is done when a fetch reaches its end offset measured above; the transaction
	// markers at the end have offsets but no records, so a quiet poll also ends the read.
	for len(want) > 0 {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fetches := cons.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if fetches.Empty() {
			break
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = err
			}
		})
		if ferr != nil {
			return nil, fmt.Errorf("read %s tail: %w", r.cfg.Topic, ferr)
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, rec := range p.Records {
				if b := kafka.Header(rec, HeaderBatch); b != "" {
					seen[b] = true
				}
			}
			if len(p.Records) > 0 && p.Records[len(p.Records)-1].Offset+1 >= want[p.Partition] {
				delete(want, p.Partition)
			}
		})
	}
	return seen, nil
}

func newBatchID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "lbb_" + hex.EncodeToString(b)
}
