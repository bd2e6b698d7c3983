package pipeline

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/models/features"
)

// useRecorder installs a recording tracer provider. Tests using it are not parallel: the
// provider is process-global, as in the service.
func useRecorder(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	return rec
}

// withParent injects an ingest-side span context into r and returns it.
func withParent(t *testing.T, r *kgo.Record, traceHex, spanHex string) trace.SpanContext {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceHex)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex(spanHex)
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	telemetry.Inject(trace.ContextWithSpanContext(context.Background(), sc), r)
	return sc
}

func TestTransformSpanPerRecordIsParentOfOutput(t *testing.T) {
	rec := useRecorder(t)
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	in := []*kgo.Record{
		txRecord(t, "s:1", "acct-1", t0, 1000),
		{Topic: "tx.v1", Key: []byte("acct-9"), Value: []byte{0xff, 0x01}},
		txRecord(t, "s:2", "acct-2", t0, 2500),
	}
	setOffsets(in)
	parents := []trace.SpanContext{
		withParent(t, in[0], "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
		withParent(t, in[1], "5bf92f3577b34da6a3ce929d0e0e4736", "10f067aa0ba902b7"),
		withParent(t, in[2], "6bf92f3577b34da6a3ce929d0e0e4736", "20f067aa0ba902b7"),
	}
	var logs bytes.Buffer
	log, err := telemetry.NewLogger(&logs, "feature-window", telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := New(newMemStore(), noReader, features.DefaultConfig(), "features.v1", func() time.Time { return t0 }, WithLogger(log))
	out, err := p.Transform(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != len(in) {
		t.Fatalf("%d spans, want one per input record (%d)", len(spans), len(in))
	}
	byTrace := map[trace.TraceID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byTrace[s.SpanContext().TraceID()] = s
		if s.Name() != SpanName || s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
		}
		for _, kv := range s.Attributes() {
			if v := kv.Value.Emit(); strings.Contains(v, "acct-") {
				t.Errorf("span attribute %s carries the account id %q", kv.Key, v)
			}
		}
	}
	for _, parent := range parents {
		s := byTrace[parent.TraceID()]
		if s == nil {
			t.Fatalf("no span in trace %s", parent.TraceID())
		}
		if s.Parent().SpanID() != parent.SpanID() {
			t.Errorf("trace %s: span parent %s, want the ingest span %s", parent.TraceID(), s.Parent().SpanID(), parent.SpanID())
		}
	}
	if len(out) != len(in) {
		t.Fatalf("%d output records", len(out))
	}
	// Each output record (features.v1 or the dead letter) continues from this hop's span.
	for _, r := range out {
		got := trace.SpanContextFromContext(telemetry.Extract(context.Background(), r))
		s := byTrace[got.TraceID()]
		if s == nil || got.SpanID() != s.SpanContext().SpanID() {
			t.Errorf("output on %s carries %s/%s, not a span of this hop", r.Topic, got.TraceID(), got.SpanID())
		}
	}
	dead := byTrace[parents[1].TraceID()]
	if dead.Status().Code != codes.Error {
		t.Errorf("dead-lettered record's span status %v", dead.Status())
	}
	ok := byTrace[parents[0].TraceID()]
	found := false
	for _, kv := range ok.Attributes() {
		if kv.Key == telemetry.TransactionIDKey && kv.Value.AsString() == "s:1" {
			found = true
		}
	}
	if !found {
		t.Errorf("span lacks the transaction id: %v", ok.Attributes())
	}
	if line := logs.String(); !strings.Contains(line, `"trace_id":"`+parents[1].TraceID().String()+`"`) ||
		!strings.Contains(line, `"span_id":"`+dead.SpanContext().SpanID().String()+`"`) {
		t.Errorf("dead-letter log line lacks its trace: %s", line)
	}
}

func TestTransformStoreFailureEndsSpansWithError(t *testing.T) {
	rec := useRecorder(t)
	p := New(&memStore{err: errors.New("redis down")}, noReader, features.DefaultConfig(), "features.v1", time.Now)
	in := []*kgo.Record{txRecord(t, "s:1", "a", time.Now(), 1), txRecord(t, "s:2", "b", time.Now(), 1)}
	if _, err := p.Transform(context.Background(), in); err == nil {
		t.Fatal("want the store error")
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want 2", len(spans))
	}
	for _, s := range spans {
		if s.Status().Code != codes.Error {
			t.Errorf("span status %v, want error", s.Status())
		}
	}
}

func TestFeatureFreshness(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	in := []*kgo.Record{
		txRecord(t, "s:1", "acct-1", now.Add(-1500*time.Millisecond), 1),
		txRecord(t, "s:2", "acct-2", now.Add(-2*time.Hour), 1),
		txRecord(t, "s:3", "acct-3", now.Add(time.Minute), 1), // clock skew: counted as fresh, not negative
		{Topic: "tx.v1", Value: []byte{0xff}},                 // dead letter: no transaction, no sample
	}
	setOffsets(in)
	reg := prometheus.NewRegistry()
	p := New(newMemStore(), noReader, features.DefaultConfig(), "features.v1", func() time.Time { return now }, WithMetrics(reg))
	if _, err := p.Transform(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	families := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		families[mf.GetName()] = mf
	}
	// Each step of the transform is timed.
	steps := map[string]float64{}
	for _, m := range families["vigil_feature_window_transform_seconds_total"].GetMetric() {
		steps[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	for _, step := range []string{"decode", "read", "compute"} {
		if steps[step] <= 0 {
			t.Errorf("vigil_feature_window_transform_seconds_total{step=%q} = %v, want > 0 (all: %v)", step, steps[step], steps)
		}
	}
	fresh := families["vigil_feature_freshness_seconds"]
	if fresh == nil {
		t.Fatalf("no vigil_feature_freshness_seconds in %v", mfs)
	}
	h := fresh.GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() != 1.5+7200 {
		t.Fatalf("count %d sum %v, want 3 and %v", h.GetSampleCount(), h.GetSampleSum(), 1.5+7200)
	}
	var under2s uint64
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == 2.5 {
			under2s = b.GetCumulativeCount()
		}
	}
	if under2s != 2 {
		t.Errorf("%d samples ≤ 2.5 s, want 2 (the 1.5 s one and the clock-skewed one)", under2s)
	}
}
