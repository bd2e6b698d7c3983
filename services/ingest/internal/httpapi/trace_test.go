package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-fraud/vigil/libs/httpserver"
)

// TestSubmitSpanNestsUnderServerSpan runs the API behind the middleware every service uses:
// the submit span must be the child of otelhttp's server span (itself the child of the caller's
// traceparent), not its sibling. Not parallel: it installs the process-global tracer provider.
func TestSubmitSpanNestsUnderServerSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	h := newHarness(t, nil)
	handler := httpserver.WithMetrics(prometheus.NewRegistry(), "ingest", h.handler)
	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req := httptest.NewRequest(http.MethodPost, "/v1/transactions", strings.NewReader(encode(t, validBody())))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	resp := httptest.NewRecorder()
	handler.ServeHTTP(resp, req)
	if resp.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.Code, resp.Body)
	}

	var server, submit sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != traceID {
			t.Errorf("span %q left the caller's trace", s.Name())
		}
		if s.SpanKind() == trace.SpanKindServer && s.Parent().IsRemote() {
			server = s
		} else {
			submit = s
		}
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), testPAN) {
				t.Errorf("span %q attribute %s carries the card number", s.Name(), kv.Key)
			}
		}
	}
	if server == nil || submit == nil {
		t.Fatalf("want the server span and the submit span, got %d spans", len(rec.Ended()))
	}
	if server.Parent().SpanID().String() != callerSpan {
		t.Errorf("server span parent %s, want the caller's %s", server.Parent().SpanID(), callerSpan)
	}
	if submit.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("submit span %q parent %s, want the server span %s", submit.Name(), submit.Parent().SpanID(), server.SpanContext().SpanID())
	}
	if got := trace.SpanContextFromContext(h.pub.ctxs[0]).SpanID(); got != submit.SpanContext().SpanID() {
		t.Errorf("publisher got span %s, want the submit span", got)
	}
}
