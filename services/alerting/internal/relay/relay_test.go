package relay

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// readCommitted returns every label on topic, as a read-committed consumer sees it.
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
	// Read until want records arrived, then one more quiet poll to catch duplicates.
	for quiet := 0; quiet < 2; {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		f := cl.PollFetches(ctx)
		cancel()
		if f.NumRecords() == 0 {
			if total >= want {
				quiet++
			} else if ctx.Err() != nil && total < want {
				quiet++ // give up after two empty polls; the assertion below reports it
			}
			continue
		}
		f.EachRecord(func(r *kgo.Record) {
			l := &fraudv1.Label{}
			if err := kafka.Decode(r, l); err != nil {
				t.Errorf("decode: %v", err)
				return
			}
			if string(r.Key) != l.GetAccountId() {
				t.Errorf("key %q, want account %q", r.Key, l.GetAccountId())
			}
			seen[l.GetLabelId()]++
			total++
		})
	}
	return seen
}

func seedOutbox(t *testing.T, ctx context.Context, r *Relay, ids ...string) {
	t.Helper()
	for _, id := range ids {
		b, _ := proto.Marshal(&fraudv1.Label{LabelId: id, TransactionId: "tx-" + id, AccountId: "acct-" + id, Value: fraudv1.LabelValue_LABEL_VALUE_FRAUD})
		if _, err := r.pool.Exec(ctx, `INSERT INTO cases (case_id, account_id, top_action, max_score) VALUES ('c-' || $1, 'acct-' || $1, 'review', 0.5)`, id); err != nil {
			t.Fatal(err)
		}
		if _, err := r.pool.Exec(ctx, `INSERT INTO labels (label_id, case_id, case_version, transaction_id, account_id, value, analyst, transaction_time)
			VALUES ($1, 'c-' || $1, 1, 'tx-' || $1, 'acct-' || $1, 'fraud', 'a@x', now())`, id); err != nil {
			t.Fatal(err)
		}
		if _, err := r.pool.Exec(ctx, `INSERT INTO label_outbox (label_id, account_id, payload) VALUES ($1, 'acct-' || $1, $2)`, id, b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIntegrationRelayExactlyOnce crashes the relay at the two dangerous points — after the
// Kafka commit but before Postgres marks the batch sent, and before the Kafka commit — and
// checks a read-committed consumer sees every label exactly once.
func TestIntegrationRelayExactlyOnce(t *testing.T) {
	t.Parallel()
	brokers := testinfra.KafkaBrokers(t)
	pool, _ := testinfra.NewDatabase(t)
	ctx := context.Background()
	topic := testinfra.UniqueName("labels-test-")
	txnID := testinfra.UniqueName("relay-test-")
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, 3, topic); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	cfg := Config{Brokers: brokers, Topic: topic, TransactionalID: txnID}

	// Run 1: commits to Kafka, then "crashes" before marking sent.
	r1, err := New(cfg, pool, log)
	if err != nil {
		t.Fatal(err)
	}
	seedOutbox(t, ctx, r1, "a", "b", "c")
	r1.afterCommit = func() error { return errors.New("crash after commit") }
	if _, err := r1.Once(ctx); err == nil {
		t.Fatal("expected the simulated crash")
	}
	r1.Close()

	// Run 2: a new relay with the same transactional id recovers: the batch is on Kafka, so it
	// is only marked sent. Then it publishes d, e normally.
	r2, err := New(cfg, pool, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r2.cl.ProducerID(ctx); err != nil {
		t.Fatal(err)
	}
	seedOutbox(t, ctx, r2, "d", "e")
	n, err := r2.Once(ctx)
	if err != nil || n != 2 {
		t.Fatalf("run 2 published %d (%v), want 2 (d, e)", n, err)
	}

	// Run 3: claims f and "crashes" inside the Kafka transaction, before committing it.
	seedOutbox(t, ctx, r2, "f")
	var batch string
	if err := pool.QueryRow(ctx, `UPDATE label_outbox SET batch_id = 'lbb_crashed' WHERE label_id = 'f' RETURNING batch_id`).Scan(&batch); err != nil {
		t.Fatal(err)
	}
	if err := r2.cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	rec, _ := kafka.NewRecord(topic, "acct-f", &fraudv1.Label{LabelId: "f", AccountId: "acct-f"})
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderBatch, Value: []byte(batch)})
	if err := r2.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r2.cl.Close() // no EndTransaction: the new producer's init aborts it

	r3, err := New(cfg, pool, log)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if _, _, err := r3.cl.ProducerID(ctx); err != nil {
		t.Fatal(err)
	}
	n, err = r3.Once(ctx)
	if err != nil || n != 1 {
		t.Fatalf("run 3 published %d (%v), want 1 (f again)", n, err)
	}
	var pending int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM label_outbox WHERE sent_at IS NULL`).Scan(&pending)
	if pending != 0 {
		t.Fatalf("%d outbox rows still pending", pending)
	}
	seen := readCommitted(t, brokers, topic, 6)
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		if seen[id] != 1 {
			t.Errorf("label %s seen %d times, want exactly once (all: %v)", id, seen[id], seen)
		}
	}
	if len(seen) != 6 {
		t.Errorf("labels seen: %v", seen)
	}
}
