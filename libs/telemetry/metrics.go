package telemetry

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process collectors and a
// vigil_build_info gauge naming the service, so every service exposes the same basics.
func NewRegistry(service, version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vigil_build_info",
		Help: "Always 1; labels name the service and its version.",
	}, []string{"service", "version"})
	info.WithLabelValues(service, version).Set(1)
	reg.MustRegister(info)
	return reg
}

// MetricsHandler serves reg in the Prometheus text format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// LatencyBuckets suit request and transaction latencies from 0.5 ms to 10 s.
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// RegisterOrReuse registers h with reg, or returns the histogram registered before under the
// same name, labels and help, so several clients, pools or packages of one service can share
// one series set (the Redis and Postgres call-latency histograms are registered this way).
func RegisterOrReuse(reg prometheus.Registerer, h *prometheus.HistogramVec) (*prometheus.HistogramVec, error) {
	err := reg.Register(h)
	if err == nil {
		return h, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
			return existing, nil
		}
	}
	return nil, err
}
