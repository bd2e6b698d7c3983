package telemetry

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

func TestTracingEnabled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}, false},
	}
	for _, tc := range tests {
		if got := TracingEnabled(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("%v: got %v", tc.env, got)
		}
	}
}

func TestSetupTracingOffByDefault(t *testing.T) {
	// Not parallel: reads the process environment and sets the global tracer provider.
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	shutdown, err := SetupTracing(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Off, the service still passes the trace on: a record it produces while handling one
	// carries the incoming trace.
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	in := &kgo.Record{Topic: "tx.v1", Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(parent)}}}
	ctx, span := StartConsumerSpan(context.Background(), "test", in, "process")
	if span.IsRecording() {
		t.Error("tracing is off, yet the span records")
	}
	out := &kgo.Record{Topic: "features.v1"}
	_, pspan := StartProducerSpan(ctx, "test", out, "publish")
	pspan.End()
	span.End()
	var got string
	for _, h := range out.Headers {
		if h.Key == "traceparent" {
			got = string(h.Value)
		}
	}
	if !strings.Contains(got, "0af7651916cd43dd8448eb211c80319c") {
		t.Errorf("outgoing traceparent %q, want the incoming trace 0af7651916cd43dd8448eb211c80319c", got)
	}
}

func TestSetupTracingWhenConfigured(t *testing.T) {
	// Not parallel: sets the process environment and the global tracer provider.
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1") // never dialled: no span is ended
	t.Setenv("OTEL_SERVICE_NAME", "")
	shutdown, err := SetupTracing(context.Background(), "feature-window")
	if err != nil {
		t.Fatalf("configured tracing does not start: %v", err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestResourceNamesTheServiceUnlessOverridden(t *testing.T) {
	// Not parallel: sets the process environment.
	for _, tc := range []struct{ env, want string }{{"", "scoring"}, {"scoring-canary", "scoring-canary"}} {
		t.Setenv("OTEL_SERVICE_NAME", tc.env)
		res, err := newResource(context.Background(), "scoring")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := res.Set().Value(semconv.ServiceNameKey)
		if got.AsString() != tc.want {
			t.Errorf("OTEL_SERVICE_NAME=%q: service.name %q, want %q", tc.env, got.AsString(), tc.want)
		}
	}
}
