package harness

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// FeatureTimes keeps the run prefix's transactions, with their records' create times, and
// skips other runs' records and records it cannot decode.
func TestFeatureTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the broker")
	}
	brokers := testinfra.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := testinfra.UniqueName("vl-features-")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, 2, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = kadm.NewClient(cl).DeleteTopics(context.Background(), topic) })

	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i, id := range []string{"src:Lrun0-1", "src:Lrun0-2", "src:Lother0-1"} {
		r, err := kafka.NewRecord(topic, "acct", &fraudv1.EnrichedTransaction{
			Transaction: &fraudv1.Transaction{Id: id, EventTime: timestamppb.New(at)},
		})
		if err != nil {
			t.Fatal(err)
		}
		r.Timestamp = at.Add(time.Duration(i) * time.Second)
		recs = append(recs, r)
	}
	recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("acct"), Value: []byte("not a protobuf")})
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	got, err := FeatureTimes(ctx, brokers, topic, "Lrun0")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"src:Lrun0-1": at, "src:Lrun0-2": at.Add(time.Second)}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for id, w := range want {
		if !got[id].Equal(w) {
			t.Errorf("%s: %s, want %s", id, got[id], w)
		}
	}
}
