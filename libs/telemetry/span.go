package telemetry

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// TransactionIDKey names the Vigil transaction id ("<source>:<client id>") on spans. It is
// the only business identifier spans carry: never card data, account ids or amounts.
const TransactionIDKey = attribute.Key("vigil.transaction_id")

// TransactionID is the span attribute naming the transaction a span worked on.
func TransactionID(id string) attribute.KeyValue { return TransactionIDKey.String(id) }

// StartConsumerSpan starts the span of processing record r: a consumer span whose parent is the
// trace context in r's headers (or ctx's span when r carries none). Inject the returned
// context into the records produced for r, so the next hop continues from this span rather
// than from the previous service's. With no tracer provider installed the span records
// nothing and still carries the parent's context, so the trace passes through unbroken.
func StartConsumerSpan(ctx context.Context, tracerName string, r *kgo.Record, name string) (context.Context, trace.Span) {
	ctx, span := otel.Tracer(tracerName).Start(Extract(ctx, r), name, trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		span.SetAttributes(append(RecordAttributes(r), semconv.MessagingOperationTypeDeliver)...)
	}
	return ctx, span
}

// StartProducerSpan starts a producer span for publishing r and injects its context into r's
// headers, so the consumer's span becomes its child. End it when the broker acknowledged r
// (EndSpan), after which RecordAttributes(r) also knows the partition and offset.
func StartProducerSpan(ctx context.Context, tracerName string, r *kgo.Record, name string) (context.Context, trace.Span) {
	ctx, span := otel.Tracer(tracerName).Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingSystemKafka, semconv.MessagingDestinationName(r.Topic), semconv.MessagingOperationTypePublish)
	}
	Inject(ctx, r)
	return ctx, span
}

// RecordAttributes are the semantic-convention attributes locating r: system, topic,
// partition and offset. Keys and values are left out on purpose: keys are account ids.
func RecordAttributes(r *kgo.Record) []attribute.KeyValue {
	return []attribute.KeyValue{
		semconv.MessagingSystemKafka,
		semconv.MessagingDestinationName(r.Topic),
		semconv.MessagingDestinationPartitionID(strconv.Itoa(int(r.Partition))),
		semconv.MessagingKafkaMessageOffset(int(r.Offset)),
	}
}

// EndSpan marks span failed when err is not nil, then ends it. Only the error's message is
// recorded: callers must not wrap errors around card data (they never do; see STYLE.md).
func EndSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
