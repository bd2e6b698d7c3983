// Package httpapi serves the analyst API. Until analyst accounts exist (alerting issue), it is
// guarded by one bearer token.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/services/alerting/internal/alerts"
)

// Lister reads the alert queue.
type Lister interface {
	Open(ctx context.Context, limit int) ([]alerts.Alert, error)
}

// API holds the handlers' dependencies.
type API struct {
	alerts    Lister
	tokenHash [32]byte
	log       *slog.Logger
}

// New returns the API; token is the bearer token analysts' tools present.
func New(l Lister, token string, log *slog.Logger) *API {
	return &API{alerts: l, tokenHash: sha256.Sum256([]byte(token)), log: log}
}

// Routes mounts the API and the health endpoints.
func (a *API) Routes(h *httpserver.Health) http.Handler {
	r := chi.NewRouter()
	r.Get("/livez", h.Live())
	r.Get("/readyz", h.Ready())
	r.Group(func(r chi.Router) {
		r.Use(a.authenticate)
		r.Get("/v1/alerts", a.listAlerts())
	})
	return r
}

func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(sum[:], a.tokenHash[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-alerting"`)
			httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusUnauthorized, Detail: "a valid bearer token is required"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) listAlerts() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit := 50
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 500 {
				httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusBadRequest,
					Errors: []httpserver.FieldError{{Field: "limit", Detail: "must be an integer in [1, 500]"}}})
				return
			}
			limit = n
		}
		list, err := a.alerts.Open(r.Context(), limit)
		if err != nil {
			a.log.Error("list alerts", "err", err)
			httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusInternalServerError})
			return
		}
		if list == nil {
			list = []alerts.Alert{}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"alerts": list})
	}
}
