package telemetry

import (
	"context"
	"testing"

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
	// Not parallel: reads the process environment.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	shutdown, err := SetupTracing(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
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
