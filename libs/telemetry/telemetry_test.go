package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

func TestNewLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "ingest", Config{})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", "k", 1)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not JSON: %q", buf.String())
	}
	if line["service"] != "ingest" || line["msg"] != "hello" {
		t.Fatalf("line = %v", line)
	}
	if _, err := NewLogger(&buf, "x", Config{Level: "loud"}); err == nil {
		t.Fatal("want error for a bad level")
	}
	if _, err := NewLogger(&buf, "x", Config{Format: "xml"}); err == nil {
		t.Fatal("want error for a bad format")
	}
}

func TestTraceContextRoundTripsThroughHeaders(t *testing.T) {
	t.Parallel()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	r := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "vigil-type", Value: []byte("x")}}}
	Inject(ctx, r)
	Inject(ctx, r) // idempotent: no duplicate headers
	if n := len(r.Headers); n != 2 {
		t.Fatalf("headers = %d, want 2", n)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), r))
	if got.TraceID() != tid || got.SpanID() != sid {
		t.Fatalf("extracted %v", got)
	}
}
