package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestTraceHandlerAddsIDsOnlyInsideASpan(t *testing.T) {
	t.Parallel()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	inSpan := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	tests := []struct {
		name      string
		ctx       context.Context
		wantTrace string
		wantSpan  string
	}{
		{"in a span", inSpan, tid.String(), sid.String()},
		{"no span", context.Background(), "", ""},
		{"invalid span context", trace.ContextWithSpanContext(context.Background(), trace.SpanContext{}), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log, err := NewLogger(&buf, "scoring", Config{})
			if err != nil {
				t.Fatal(err)
			}
			log.With("k", "v").InfoContext(tc.ctx, "scored", "n", 1)
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("not JSON: %q", buf.String())
			}
			got := func(k string) string { s, _ := line[k].(string); return s }
			if got("trace_id") != tc.wantTrace || got("span_id") != tc.wantSpan {
				t.Errorf("trace_id %q span_id %q, want %q %q", got("trace_id"), got("span_id"), tc.wantTrace, tc.wantSpan)
			}
			if got("service") != "scoring" || got("k") != "v" || line["n"] != 1.0 {
				t.Errorf("lost attributes: %v", line)
			}
		})
	}
}

func TestTraceHandlerKeepsLevelFiltering(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(NewTraceHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.InfoContext(context.Background(), "dropped")
	if buf.Len() != 0 {
		t.Fatalf("info logged at warn level: %q", buf.String())
	}
}
