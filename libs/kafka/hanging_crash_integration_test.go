package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/testinfra"
)

// TestIntegrationHangingTransactionAfterBrokerCrash reproduces what the chaos harness found:
// kill -9 a one-node (combined broker and controller) Kafka right after transactions commit,
// restart it, and Kafka may skip the commit markers while its stale registration is fenced,
// leaving the transactions open on their partitions for good (read-committed consumers stop
// there). The guard must close each with its coordinator's outcome: afterwards every
// partition's last stable offset reaches its end, every transaction acknowledged as committed
// is visible in full, and none is visible in part.
func TestIntegrationHangingTransactionAfterBrokerCrash(t *testing.T) {
	t.Parallel()
	testinfra.KafkaBrokers(t) // fail like every integration test when the infrastructure is missing
	p := testinfra.StartPrivate(t, "kafka-hanging-test", "VIGIL_KAFKA_HANGING_TEST_VAR_DIR")
	brokers := []string{p.Brokers()}
	const partitions, producers = 60, 4
	topic := "hanging"
	setupTopics(t, brokers, partitions, topic)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Several transactions over many partitions each: their markers take a while to write, so
	// the kill lands among them.
	clients := make([]*kgo.Client, producers)
	for i := range clients {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(fmt.Sprintf("hang-%d", i)),
			kgo.TransactionTimeout(10*time.Second), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = cl
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for part := range int32(partitions) {
			recs = append(recs, &kgo.Record{Partition: part, Value: fmt.Appendf(nil, "hang-%d/%d", i, part)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	committed := make([]bool, producers)
	var kill sync.Once
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Go(func() {
			ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := cl.EndTransaction(ectx, kgo.TryCommit); err == nil {
				committed[i] = true
				kill.Do(func() { p.Kill9Kafka(t) })
			}
		})
	}
	wg.Wait()
	kill.Do(func() { p.Kill9Kafka(t) })
	for _, cl := range clients {
		cl.Close()
	}
	t.Logf("killed the broker; commits acknowledged: %v", committed)
	p.Run(t, "up")

	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	// What the guard does every interval, here every second until every partition is stable.
	var closed []Hanging
	for {
		if ctx.Err() != nil {
			t.Fatalf("partitions still unstable when the test timed out; closed %d hanging transactions", len(closed))
		}
		time.Sleep(time.Second)
		hs, err := FindHanging(ctx, adm, []string{topic}, 0, time.Now())
		if err != nil {
			continue // the broker is still starting
		}
		c, err := CloseHanging(ctx, adm, hs)
		if err != nil {
			t.Logf("closing: %v", err)
		}
		closed = append(closed, c...)
		if stable(ctx, adm, topic) {
			break
		}
	}
	if len(closed) == 0 {
		t.Logf("Kafka wrote every marker this time: nothing was left hanging")
	} else {
		txns := map[string]string{}
		for _, h := range closed {
			txns[h.TxnID] = h.Outcome
		}
		t.Logf("closed %d hanging partitions of transactions %v", len(closed), txns)
	}

	seen := map[string]int{}
	for v := range readCommitted(t, brokers, topic, partitions*producers) {
		seen[strings.Split(v, "/")[0]]++
	}
	for i, ok := range committed {
		n := seen[fmt.Sprintf("hang-%d", i)]
		switch {
		case ok && n != partitions:
			t.Errorf("transaction hang-%d was acknowledged as committed but %d of its %d records are visible", i, n, partitions)
		case n != 0 && n != partitions:
			t.Errorf("transaction hang-%d is visible in part: %d of %d records", i, n, partitions)
		}
	}
}

// stable says whether every partition of topic has its last stable offset at its end.
func stable(ctx context.Context, adm *kadm.Client, topic string) bool {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	lsos, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return false
	}
	ok := true
	ends.Each(func(e kadm.ListedOffset) {
		l, found := lsos.Lookup(e.Topic, e.Partition)
		if e.Err != nil || !found || l.Err != nil || l.Offset != e.Offset {
			ok = false
		}
	})
	return ok
}
