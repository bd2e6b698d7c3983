package httpserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInstrumentLabelsByRoutePattern(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	r := chi.NewRouter()
	r.Use(Instrument(reg, "test"))
	r.Get("/v1/things/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for _, id := range []string{"a", "b", "c"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/things/"+id, nil))
	}
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/nope", nil))
	want := `
# HELP vigil_http_requests_total HTTP requests by route, method and status code.
# TYPE vigil_http_requests_total counter
vigil_http_requests_total{code="404",method="GET",route="unmatched",service="test"} 1
vigil_http_requests_total{code="418",method="GET",route="/v1/things/{id}",service="test"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vigil_http_requests_total"); err != nil {
		t.Fatal(err)
	}
}

func TestWithMetricsServesRegistryAndKeepsInnerRoutes(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	inner := chi.NewRouter()
	inner.Get("/v1/x/{id}", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("x")) })
	h := WithMetrics(reg, "svc", inner)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/x/42", nil))
	if rec.Body.String() != "x" {
		t.Fatalf("inner route: %d %q", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `vigil_http_requests_total{code="200",method="GET",route="/v1/x/{id}",service="svc"} 1`) {
		t.Fatalf("metrics body lacks the inner route's series:\n%s", rec.Body)
	}
}
