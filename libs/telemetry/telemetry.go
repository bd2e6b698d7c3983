// Package telemetry builds the logger every service uses and carries trace context across Kafka.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Config selects the log format and level; from VIGIL_LOG_FORMAT and VIGIL_LOG_LEVEL.
type Config struct {
	Format string // json (default) or text
	Level  string // debug, info (default), warn, error
}

// NewLogger returns a JSON (or text) logger tagged with the service name. Records logged with
// a context inside a span carry its trace_id and span_id (NewTraceHandler).
func NewLogger(w io.Writer, service string, cfg Config) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(orDefault(cfg.Level, "info"))); err != nil {
		return nil, fmt.Errorf("VIGIL_LOG_LEVEL: %q is not debug, info, warn or error", cfg.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(orDefault(cfg.Format, "json")) {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("VIGIL_LOG_FORMAT: %q is not json or text", cfg.Format)
	}
	return slog.New(NewTraceHandler(h)).With("service", service), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Propagator is the W3C trace-context propagator used on HTTP and Kafka.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

func init() { otel.SetTextMapPropagator(Propagator) }

// RecordCarrier adapts a Kafka record's headers to the OpenTelemetry carrier interface, so a
// trace started at ingest continues in every stream hop.
type RecordCarrier struct{ R *kgo.Record }

// Get returns the last value of a header.
func (c RecordCarrier) Get(key string) string {
	for i := len(c.R.Headers) - 1; i >= 0; i-- {
		if c.R.Headers[i].Key == key {
			return string(c.R.Headers[i].Value)
		}
	}
	return ""
}

// Set replaces a header.
func (c RecordCarrier) Set(key, value string) {
	for i := range c.R.Headers {
		if c.R.Headers[i].Key == key {
			c.R.Headers[i].Value = []byte(value)
			return
		}
	}
	c.R.Headers = append(c.R.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// Keys lists header keys.
func (c RecordCarrier) Keys() []string {
	keys := make([]string, 0, len(c.R.Headers))
	for _, h := range c.R.Headers {
		keys = append(keys, h.Key)
	}
	return keys
}

// Inject writes ctx's trace context into the record's headers.
func Inject(ctx context.Context, r *kgo.Record) { Propagator.Inject(ctx, RecordCarrier{r}) }

// Extract returns ctx carrying the trace context found in the record's headers.
func Extract(ctx context.Context, r *kgo.Record) context.Context {
	return Propagator.Extract(ctx, RecordCarrier{r})
}
