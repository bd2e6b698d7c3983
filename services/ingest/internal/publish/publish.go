// Package publish produces accepted transactions to Kafka.
package publish

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

const tracerName = "github.com/vigil-fraud/vigil/services/ingest/internal/publish"

// Producer writes transactions to one topic with an idempotent, acks=all client.
type Producer struct {
	cl    *kgo.Client
	topic string
}

// New returns a producer for topic. The client connects lazily; call Ping to find out whether
// the brokers answer.
func New(brokers []string, topic string, opts ...kgo.Opt) (*Producer, error) {
	cl, err := kgo.NewClient(append(kafka.ProducerOptions(brokers), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &Producer{cl: cl, topic: topic}, nil
}

// Publish produces tx keyed by its account id, so one account's transactions stay ordered on
// one partition, and returns nil once every in-sync replica has it: the caller's 202 is a
// promise that the transaction will be scored. The record carries the trace context of a
// producer span, child of ctx's.
//
// It returns an error when ctx ends first, even if the record is still in flight: an
// idempotent producer will not give up a record whose request may have reached a dead broker
// (it waits to retry it with the same sequence number), and the caller must not hang with it.
// Such a record may still be written once the broker is back; the error only promises that no
// ack was seen. The producer's buffer bound (MaxBufferedRecords) caps what it keeps meanwhile.
func (p *Producer) Publish(ctx context.Context, tx *fraudv1.Transaction) error {
	return p.PublishAll(ctx, []*fraudv1.Transaction{tx})[0]
}

// startSpan starts the producer span of tx and puts its context in rec's headers, so
// feature-window's span of this record is its child.
func (p *Producer) startSpan(ctx context.Context, rec *kgo.Record, tx *fraudv1.Transaction) (context.Context, trace.Span) {
	ctx, span := telemetry.StartProducerSpan(ctx, tracerName, rec, "publish "+p.topic)
	span.SetAttributes(telemetry.TransactionID(tx.GetId()))
	return ctx, span
}

func (p *Producer) endSpan(span trace.Span, rec *kgo.Record, err error) {
	if err == nil && span.IsRecording() {
		span.SetAttributes(telemetry.RecordAttributes(rec)...)
	}
	telemetry.EndSpan(span, err)
}

// PublishAll produces txs concurrently and returns one error per transaction (nil when acked),
// with Publish's semantics for each. Batching them in flight lets franz-go pack them into few
// produce requests. A full producer buffer fails a record at once rather than blocking.
func (p *Producer) PublishAll(ctx context.Context, txs []*fraudv1.Transaction) []error {
	if len(txs) == 0 {
		return nil
	}
	var (
		mu      sync.Mutex
		errs    = make([]error, len(txs))
		settled = make([]bool, len(txs))
		pending = len(txs)
		done    = make(chan struct{})
	)
	settle := func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		errs[i], settled[i] = err, true
		if pending--; pending == 0 {
			close(done)
		}
	}
	for i, tx := range txs {
		rec, err := kafka.NewRecord(p.topic, tx.GetAccountId(), tx)
		if err != nil {
			settle(i, err)
			continue
		}
		sctx, span := p.startSpan(ctx, rec, tx)
		p.cl.TryProduce(sctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				err = fmt.Errorf("produce transaction %s to %s: %w", tx.GetId(), p.topic, err)
			}
			p.endSpan(span, rec, err)
			settle(i, err)
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	out := make([]error, len(txs))
	for i := range txs {
		out[i] = errs[i]
		if !settled[i] {
			out[i] = fmt.Errorf("produce transaction %s to %s: no ack before the deadline: %w", txs[i].GetId(), p.topic, context.Cause(ctx))
		}
	}
	return out
}

// Ping checks that the cluster answers, for /readyz.
func (p *Producer) Ping(ctx context.Context) error { return kafka.Ping(ctx, p.cl) }

// WaitReady pings until the cluster answers or ctx ends, so the service reports ready only
// once it can actually accept transactions.
func (p *Producer) WaitReady(ctx context.Context) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := p.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka not reachable: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Close flushes what is still buffered (bounded by ctx) and closes the client. Publish waits
// for acks, so after the HTTP server drained there is normally nothing left to flush.
func (p *Producer) Close(ctx context.Context) error {
	err := p.cl.Flush(ctx)
	p.cl.Close()
	if err != nil {
		return fmt.Errorf("flush kafka producer: %w", err)
	}
	return nil
}
