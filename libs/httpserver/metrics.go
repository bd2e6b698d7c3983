package httpserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Instrument returns chi middleware recording request counts and latency by route pattern
// (never by raw path: ids in paths would explode the series) and, when tracing is set up
// (telemetry.SetupTracing ran before, installing the SDK provider), a server span per request
// whose name is the route, continuing a caller's W3C trace context.
func Instrument(reg prometheus.Registerer, service string) func(http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_http_requests_total", Help: "HTTP requests by route, method and status code.",
		ConstLabels: prometheus.Labels{"service": service},
	}, []string{"route", "method", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vigil_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
		ConstLabels: prometheus.Labels{"service": service},
		Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	reg.MustRegister(requests, latency)
	return func(next http.Handler) http.Handler {
		counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(sw, r)
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			// Named by route only after routing; the raw path may carry ids.
			trace.SpanFromContext(r.Context()).SetName(r.Method + " " + route)
			requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
			latency.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
		})
		// Without an SDK tracer provider (tracing not configured) every span would be a no-op:
		// skip otelhttp's per-request work (propagation, wrappers, attributes) altogether.
		if _, sdk := otel.GetTracerProvider().(*sdktrace.TracerProvider); !sdk {
			return counted
		}
		// otelhttp names the span again after the handler when r.Pattern is set, and chi sets it
		// to the full route pattern: name it by the route there too, not by the method alone.
		return otelhttp.NewHandler(counted, service, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Method + " " + r.Pattern
			}
			return r.Method
		}))
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer (flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WithMetrics serves h instrumented by Instrument, plus the registry at /metrics. Every
// service mounts its router through it, so all expose the same series and endpoint.
func WithMetrics(reg *prometheus.Registry, service string, h http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Use(Instrument(reg, service))
	r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	r.Mount("/", h)
	return r
}
