package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys of the trace context, the names Grafana's log-to-trace links look for.
const (
	LogTraceIDKey = "trace_id"
	LogSpanIDKey  = "span_id"
)

// NewTraceHandler wraps h so that every record logged with a context carrying a valid span
// (log.InfoContext(ctx, ...)) gets trace_id and span_id attributes: a log line leads to its
// trace. Records logged without a context, or outside any span, pass through unchanged.
//
// The attributes join the handler's innermost group, like any attribute added at log time;
// Vigil's loggers use no groups.
func NewTraceHandler(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ next slog.Handler }

func (h traceHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		// r is the handler's own copy and slog clips its attribute slice, so adding is safe.
		r.AddAttrs(slog.String(LogTraceIDKey, sc.TraceID().String()), slog.String(LogSpanIDKey, sc.SpanID().String()))
	}
	return h.next.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.next.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.next.WithGroup(name)}
}
