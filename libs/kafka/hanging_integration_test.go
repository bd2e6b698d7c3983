package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/testinfra"
)

// On the real broker the guard must leave healthy transactions alone: one still open (its
// coordinator is Ongoing, however long it has been open) and one committed. The repair itself
// (a transaction whose markers Kafka skipped) cannot be provoked on demand; it is shown on the
// broker the chaos harness left behind (services/README and the session notes) and by
// TestFindHanging's table against the coordinator states that broker reported.
func TestFindHangingLeavesLiveTransactionsAlone(t *testing.T) {
	t.Parallel()
	brokers := testinfra.KafkaBrokers(t)
	topic := testinfra.UniqueName("hang-")
	setupTopics(t, brokers, 2, topic)
	txnID := testinfra.UniqueName("hang-txn-")
	pr, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if err := pr.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := pr.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	// The transaction is open on partition 1 and older than the minimum age...
	ps, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {1: {}}})
	if err != nil {
		t.Fatal(err)
	}
	var open int
	ps.EachProducer(func(p kadm.DescribedProducer) {
		if p.CurrentTxnStartOffset >= 0 {
			open++
		}
	})
	if open != 1 {
		t.Fatalf("%d open transactions on %s/1, want 1", open, topic)
	}
	// ...but its coordinator is still in it: not hanging.
	hs, err := FindHanging(ctx, adm, []string{topic}, time.Second, time.Now())
	if err != nil || len(hs) != 0 {
		t.Fatalf("open transaction: FindHanging = %v, %v; want nothing", hs, err)
	}
	if err := pr.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	hs, err = FindHanging(ctx, adm, []string{topic, OffsetsTopic}, time.Second, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Topic == topic {
			t.Fatalf("committed transaction reported hanging: %v", h)
		}
	}
}
