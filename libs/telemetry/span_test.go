package telemetry

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// useRecorder installs a recording tracer provider for one test. Not parallel: the provider
// is process-global, as in the services.
func useRecorder(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	return rec
}

func remoteParent(t *testing.T) trace.SpanContext {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestConsumerSpanContinuesRecordTraceAndHandsOnItsOwn(t *testing.T) {
	rec := useRecorder(t)
	parent := remoteParent(t)
	in := &kgo.Record{Topic: "tx.v1", Partition: 3, Offset: 42}
	Inject(trace.ContextWithSpanContext(context.Background(), parent), in)

	ctx, span := StartConsumerSpan(context.Background(), "test", in, "svc process")
	span.SetAttributes(TransactionID("acme:t-1"))
	out := &kgo.Record{Topic: "features.v1"}
	Inject(ctx, out)
	EndSpan(span, nil)

	ended := rec.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want 1", len(ended))
	}
	s := ended[0]
	if s.Parent().SpanID() != parent.SpanID() || s.SpanContext().TraceID() != parent.TraceID() {
		t.Errorf("parent %v / trace %v, want the record's %v", s.Parent().SpanID(), s.SpanContext().TraceID(), parent)
	}
	if s.SpanKind() != trace.SpanKindConsumer || s.Name() != "svc process" {
		t.Errorf("kind %v name %q", s.SpanKind(), s.Name())
	}
	a := attrs(s)
	for k, want := range map[attribute.Key]string{
		"messaging.system": "kafka", "messaging.destination.name": "tx.v1",
		"messaging.destination.partition.id": "3", "vigil.transaction_id": "acme:t-1",
	} {
		if got := a[k].Emit(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := a["messaging.kafka.message.offset"].AsInt64(); got != 42 {
		t.Errorf("offset attribute %d", got)
	}
	// The output record names this span as parent, not the previous hop's.
	got := trace.SpanContextFromContext(Extract(context.Background(), out))
	if got.SpanID() != s.SpanContext().SpanID() || got.TraceID() != parent.TraceID() {
		t.Errorf("output record carries %v, want span %v", got.SpanID(), s.SpanContext().SpanID())
	}
}

func TestConsumerSpanWithoutProviderPassesTraceThrough(t *testing.T) {
	// Not parallel: reads the global provider, which other tests in this package swap.
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(noop.NewTracerProvider())
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	parent := remoteParent(t)
	in := &kgo.Record{Topic: "tx.v1"}
	Inject(trace.ContextWithSpanContext(context.Background(), parent), in)
	ctx, span := StartConsumerSpan(context.Background(), "test", in, "svc process")
	defer span.End()
	out := &kgo.Record{}
	Inject(ctx, out)
	if got := trace.SpanContextFromContext(Extract(context.Background(), out)); got.TraceID() != parent.TraceID() {
		t.Fatalf("untraced hop broke the trace: %v", got)
	}
}

func TestProducerSpanInjectsItselfAndRecordsErrors(t *testing.T) {
	rec := useRecorder(t)
	r := &kgo.Record{Topic: "tx.v1"}
	_, span := StartProducerSpan(context.Background(), "test", r, "publish tx.v1")
	EndSpan(span, errors.New("broker down"))
	s := rec.Ended()[0]
	if s.SpanKind() != trace.SpanKindProducer || s.Status().Code != codes.Error || len(s.Events()) != 1 {
		t.Errorf("kind %v status %v events %d", s.SpanKind(), s.Status(), len(s.Events()))
	}
	if got := trace.SpanContextFromContext(Extract(context.Background(), r)); got.SpanID() != s.SpanContext().SpanID() {
		t.Errorf("record carries %v, want the producer span %v", got.SpanID(), s.SpanContext().SpanID())
	}
}
