package publish_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/ingest/internal/publish"
)

// TestPublishProducerSpans checks that each produced record carries its own producer span,
// child of the request's, which knows where the record landed. Not parallel: it installs the
// process-global tracer provider.
func TestPublishProducerSpans(t *testing.T) {
	brokers := testinfra.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	topic := testinfra.UniqueName("ingest-test-spans-")
	if err := kafka.EnsureTopics(ctx, admin, 2, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		if _, err := kadm.NewClient(admin).DeleteTopics(dctx, topic); err != nil {
			t.Errorf("delete topic %s: %v", topic, err)
		}
	})
	p, err := publish.New(brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()

	rctx, request := tp.Tracer("test").Start(ctx, "POST /v1/transactions")
	if err := p.Publish(rctx, &fraudv1.Transaction{Id: "acme:s-1", AccountId: "acct-1"}); err != nil {
		t.Fatal(err)
	}
	for _, err := range p.PublishAll(rctx, []*fraudv1.Transaction{{Id: "acme:s-2", AccountId: "acct-2"}, {Id: "acme:s-3", AccountId: "acct-3"}}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	request.End()

	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanKind() != trace.SpanKindProducer {
			continue
		}
		a := map[string]string{}
		for _, kv := range s.Attributes() {
			a[string(kv.Key)] = kv.Value.Emit()
		}
		if s.Parent().SpanID() != request.SpanContext().SpanID() {
			t.Errorf("producer span parent %s, want the request span", s.Parent().SpanID())
		}
		if a["messaging.destination.name"] != topic || a["messaging.destination.partition.id"] == "" || a["messaging.kafka.message.offset"] == "" {
			t.Errorf("producer span attributes %v lack topic, partition or offset", a)
		}
		byID[a[string(telemetry.TransactionIDKey)]] = s
	}
	if len(byID) != 3 {
		t.Fatalf("producer spans for %d transactions, want 3", len(byID))
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := 0
	for seen < 3 {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 3 records", seen)
		}
		for _, r := range fetches.Records() {
			var tx fraudv1.Transaction
			if err := kafka.Decode(r, &tx); err != nil {
				t.Fatal(err)
			}
			got := trace.SpanContextFromContext(telemetry.Extract(context.Background(), r))
			if s := byID[tx.GetId()]; s == nil || got.SpanID() != s.SpanContext().SpanID() {
				t.Errorf("record %s carries span %s, not its producer span", tx.GetId(), got.SpanID())
			}
			seen++
		}
	}
}
