package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/services/alerting/internal/alerts"
)

type fakeLister struct {
	list []alerts.Alert
	err  error
	got  int
}

func (f *fakeLister) Open(_ context.Context, limit int) ([]alerts.Alert, error) {
	f.got = limit
	return f.list, f.err
}

func TestListAlerts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		auth   string
		query  string
		err    error
		status int
	}{
		{"anonymous", "", "", nil, http.StatusUnauthorized},
		{"wrong token", "Bearer nope", "", nil, http.StatusUnauthorized},
		{"ok", "Bearer s3cret", "?limit=5", nil, http.StatusOK},
		{"bad limit", "Bearer s3cret", "?limit=0", nil, http.StatusBadRequest},
		{"store down", "Bearer s3cret", "", errors.New("pg down"), http.StatusInternalServerError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := &fakeLister{list: []alerts.Alert{{AlertID: "alr_1", Action: "review"}}, err: tc.err}
			h := New(l, "s3cret", slog.New(slog.DiscardHandler)).Routes(httpserver.NewHealth(nil))
			req := httptest.NewRequest(http.MethodGet, "/v1/alerts"+tc.query, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusOK {
				var body struct{ Alerts []alerts.Alert }
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Alerts) != 1 || l.got != 5 {
					t.Fatalf("body %s, limit %d", rec.Body, l.got)
				}
			}
			if tc.status == http.StatusInternalServerError && rec.Body.String() != "" {
				var p httpserver.Problem
				_ = json.Unmarshal(rec.Body.Bytes(), &p)
				if p.Detail != "" {
					t.Fatalf("internal error leaked: %q", p.Detail)
				}
			}
		})
	}
}
