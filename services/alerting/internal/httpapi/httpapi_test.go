package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/services/alerting/internal/auth"
	"github.com/vigil-fraud/vigil/services/alerting/internal/cases"
	"github.com/vigil-fraud/vigil/services/alerting/internal/store"
	"github.com/vigil-fraud/vigil/services/alerting/internal/webhook"
)

const serviceToken = "s3cret-service-token"

type fakeCases struct {
	alerts  []store.Alert
	err     error
	changes []store.Change
	version int64
}

func (f *fakeCases) Open(context.Context, int) ([]store.Alert, error) { return f.alerts, f.err }
func (f *fakeCases) Queue(context.Context, cases.Filter) ([]store.Case, error) {
	return []store.Case{{CaseID: "cas_1", AccountID: "acct-<b>", Status: "open", TopAction: "review", MaxScore: .7, Version: 1, CreatedAt: time.Now()}}, f.err
}
func (f *fakeCases) Case(_ context.Context, id string) (store.CaseDetail, error) {
	if id != "cas_1" {
		return store.CaseDetail{}, cases.ErrNotFound
	}
	return store.CaseDetail{Case: store.Case{CaseID: "cas_1", AccountID: "acct-<script>", Status: "open", TopAction: "review", Version: 1}}, f.err
}
func (f *fakeCases) Change(_ context.Context, id string, ch store.Change) (store.Case, error) {
	if err := store.ValidateChange(ch); err != nil {
		return store.Case{}, err
	}
	if id != "cas_1" {
		return store.Case{}, cases.ErrNotFound
	}
	if f.version != 0 && ch.Version != f.version {
		return store.Case{}, cases.ErrConflict
	}
	f.changes = append(f.changes, ch)
	return store.Case{CaseID: id, Version: ch.Version + 1}, nil
}
func (f *fakeCases) Overview(context.Context) (store.Overview, error) {
	return store.Overview{AlertsToday: 150, DecisionsByAction: map[string]int64{"review": 150}, DecisionsPerSecond: map[string]float64{"review": 2.5}}, f.err
}

type fakeAccounts struct{}

var sessions = map[string]auth.Session{
	"analyst-token": {User: auth.User{ID: "u1", Email: "ana@example.com", Role: auth.RoleAnalyst}, CSRF: "csrf-ana"},
	"admin-token":   {User: auth.User{ID: "u2", Email: "adm@example.com", Role: auth.RoleAdmin}, CSRF: "csrf-adm"},
}

func (fakeAccounts) Login(_ context.Context, email, password string) (string, auth.Session, error) {
	if email == "ana@example.com" && password == "correct horse battery" {
		return "analyst-token", sessions["analyst-token"], nil
	}
	return "", auth.Session{}, auth.ErrBadCredentials
}
func (fakeAccounts) Session(_ context.Context, token string) (auth.Session, bool, error) {
	s, ok := sessions[token]
	return s, ok, nil
}
func (fakeAccounts) Logout(context.Context, string) error { return nil }
func (fakeAccounts) CreateUser(_ context.Context, email, _, role string) (auth.User, error) {
	return auth.User{ID: "u3", Email: email, Role: role}, nil
}
func (fakeAccounts) Users(context.Context) ([]auth.User, error) { return nil, nil }

type fakeHooks struct{}

func (fakeHooks) Create(_ context.Context, _, u string, ev []string) (webhook.Subscription, string, error) {
	if err := (webhook.Policy{}).CheckURL(u); err != nil {
		return webhook.Subscription{}, "", errors.Join(webhook.ErrInvalid, err)
	}
	return webhook.Subscription{ID: "whs_1", URL: u, EventTypes: ev}, "whsec_x", nil
}
func (fakeHooks) List(context.Context) ([]webhook.Subscription, error)     { return nil, nil }
func (fakeHooks) Attempts(context.Context, int) ([]webhook.Attempt, error) { return nil, nil }

func newTestServer(t testing.TB, c *fakeCases) http.Handler {
	t.Helper()
	api := New(c, fakeAccounts{}, fakeHooks{}, &fakeScoring{}, Options{ServiceToken: serviceToken, DailyAlertBudget: 100,
		LoginLimiter: auth.NewLimiter(3, time.Minute, time.Now)}, slog.New(slog.DiscardHandler))
	return api.Routes(httpserver.NewHealth(nil))
}

type who int

const (
	anonymous who = iota
	service
	analyst
	admin
)

func request(h http.Handler, method, path, body string, as who, csrf bool) *httptest.ResponseRecorder {
	var r *http.Request
	if form, ok := strings.CutPrefix(body, "form:"); ok {
		r = httptest.NewRequest(method, path, strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	switch as {
	case service:
		r.Header.Set("Authorization", "Bearer "+serviceToken)
	case analyst:
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: "analyst-token"})
		if csrf {
			r.Header.Set("X-CSRF-Token", "csrf-ana")
		}
	case admin:
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: "admin-token"})
		if csrf {
			r.Header.Set("X-CSRF-Token", "csrf-adm")
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestAuthz: every protected endpoint refuses anonymous callers (401) and the role below the
// one it needs (403), and admits the needed role.
func TestAuthz(t *testing.T) {
	t.Parallel()
	type ep struct {
		method, path, body string
		need               who
	}
	eps := []ep{
		{"GET", "/v1/alerts", "", service},
		{"GET", "/v1/cases", "", service},
		{"GET", "/v1/cases/cas_1", "", service},
		{"POST", "/v1/cases/cas_1/claim", `{"version":1}`, analyst},
		{"POST", "/v1/cases/cas_1/label", `{"version":1,"label":"fraud"}`, analyst},
		{"POST", "/v1/cases/bulk", `{"action":"close","items":[{"case_id":"cas_1","version":1}]}`, analyst},
		{"GET", "/v1/overview", "", analyst},
		{"POST", "/logout", "", analyst},
		{"GET", "/ui/queue", "", analyst},
		{"GET", "/ui/queue/rows", "", analyst},
		{"GET", "/ui/cases/cas_1", "", analyst},
		{"GET", "/ui/overview", "", analyst},
		{"GET", "/v1/users", "", admin},
		{"POST", "/v1/users", `{"email":"x@example.com","password":"long enough password","role":"analyst"}`, admin},
		{"GET", "/v1/webhooks", "", admin},
		{"POST", "/v1/webhooks", `{"url":"https://hooks.example.com/x","event_types":["alert.created"]}`, admin},
		{"GET", "/v1/webhooks/attempts", "", admin},
		{"GET", "/ui/admin/webhooks", "", admin},
		{"GET", "/ui/admin/users", "", admin},
		{"GET", "/v1/admin/rules", "", admin},
		{"POST", "/v1/admin/rules", `{"rule_id":"big","base_version":1,"expression":"tx.amount_minor > 100","action":"review","reason_code":"BIG"}`, admin},
		{"POST", "/v1/admin/rules/big/enable", `{"version":1}`, admin},
		{"POST", "/v1/admin/rules/big/disable", `{"version":1}`, admin},
		{"GET", "/v1/admin/lists", "", admin},
		{"POST", "/v1/admin/lists", `{"list":"block","kind":"card","value":"tok_1"}`, admin},
		{"POST", "/v1/admin/lists/remove", `{"list":"block","kind":"card","value":"tok_1"}`, admin},
		{"POST", "/v1/admin/lists/expire", `{"list":"block","kind":"card","value":"tok_1"}`, admin},
		{"GET", "/ui/admin/rules", "", admin},
		{"GET", "/ui/admin/rules?edit=big", "", admin},
		{"POST", "/ui/admin/rules", "form:rule_id=big&base_version=1&expression=score+%3E+0.5&action=review&reason_code=BIG&priority=1&enabled=on", admin},
		{"POST", "/ui/admin/rules/big/enabled", "form:version=1&enabled=false", admin},
		{"GET", "/ui/admin/lists", "", admin},
		{"POST", "/ui/admin/lists", "form:list=block&kind=card&value=tok_1&expires_in=24h", admin},
		{"POST", "/ui/admin/lists/remove", "form:list=block&kind=card&value=tok_1", admin},
		{"POST", "/ui/admin/lists/expire", "form:list=block&kind=card&value=tok_1", admin},
	}
	for _, e := range eps {
		t.Run(e.method+" "+e.path, func(t *testing.T) {
			t.Parallel()
			h := newTestServer(t, &fakeCases{})
			if w := request(h, e.method, e.path, e.body, anonymous, false); w.Code != http.StatusUnauthorized {
				t.Errorf("anonymous: %d, want 401", w.Code)
			}
			if e.need > service {
				if w := request(h, e.method, e.path, e.body, e.need-1, true); w.Code != http.StatusForbidden {
					t.Errorf("role below %d: %d, want 403", e.need, w.Code)
				}
			}
			w := request(h, e.method, e.path, e.body, e.need, true)
			if w.Code >= 400 {
				t.Errorf("needed role: %d %s", w.Code, w.Body)
			}
			if e.method == "POST" && e.need >= analyst {
				if w := request(h, e.method, e.path, e.body, e.need, false); w.Code != http.StatusForbidden {
					t.Errorf("without CSRF token: %d, want 403", w.Code)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"bad limit", "GET", "/v1/alerts?limit=0", "", 400, "limit"},
		{"bad status", "GET", "/v1/cases?status=maybe", "", 400, "status"},
		{"bad score", "GET", "/v1/cases?min_score=2", "", 400, "min_score"},
		{"bad age", "GET", "/v1/cases?max_age=yesterday", "", 400, "max_age"},
		{"unknown filter", "GET", "/v1/cases?colour=red", "", 400, "colour"},
		{"bad sort", "GET", "/v1/cases?sort=random", "", 400, "sort"},
		{"bad cursor", "GET", "/v1/cases?cursor=bm9wZQ", "", 400, "cursor"},
		{"unknown case", "GET", "/v1/cases/cas_nope", "", 404, ""},
		{"unknown case change", "POST", "/v1/cases/cas_nope/claim", `{"version":1}`, 404, ""},
		{"unknown action", "POST", "/v1/cases/cas_1/explode", `{"version":1}`, 404, ""},
		{"bad label", "POST", "/v1/cases/cas_1/label", `{"version":1,"label":"maybe"}`, 400, "label"},
		{"missing version", "POST", "/v1/cases/cas_1/close", `{}`, 400, "version"},
		{"wrong type", "POST", "/v1/cases/cas_1/close", `{"version":"one"}`, 400, "version"},
		{"unknown field", "POST", "/v1/cases/cas_1/close", `{"version":1,"colour":1}`, 400, "colour"},
		{"not json", "POST", "/v1/cases/cas_1/close", `nope`, 400, "body"},
		{"stale version", "POST", "/v1/cases/cas_1/close", `{"version":3}`, 409, ""},
		{"bulk bad action", "POST", "/v1/cases/bulk", `{"action":"nuke","items":[]}`, 400, "action"},
		{"bulk no items", "POST", "/v1/cases/bulk", `{"action":"close","items":[]}`, 400, "items"},
		{"bulk bad version", "POST", "/v1/cases/bulk", `{"action":"close","items":[{"case_id":"cas_1","version":0}]}`, 400, "items/0/version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newTestServer(t, &fakeCases{version: 1})
			w := request(h, tc.method, tc.path, tc.body, analyst, true)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			if tc.field != "" {
				var p httpserver.Problem
				_ = json.Unmarshal(w.Body.Bytes(), &p)
				if len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
					t.Fatalf("problem %+v does not name %q", p, tc.field)
				}
			}
		})
	}
}

func TestBulkReportsEachCase(t *testing.T) {
	t.Parallel()
	h := newTestServer(t, &fakeCases{version: 1})
	w := request(h, "POST", "/v1/cases/bulk", `{"action":"close","items":[{"case_id":"cas_1","version":1},{"case_id":"cas_x","version":1},{"case_id":"cas_1","version":7}]}`, analyst, true)
	var out struct {
		Results []bulkResult `json:"results"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	got := []int{out.Results[0].Status, out.Results[1].Status, out.Results[2].Status}
	if got[0] != 200 || got[1] != 404 || got[2] != 409 {
		t.Fatalf("statuses %v, want [200 404 409]", got)
	}
}

func TestServiceTokenIsReadOnly(t *testing.T) {
	t.Parallel()
	h := newTestServer(t, &fakeCases{})
	if w := request(h, "POST", "/v1/cases/cas_1/claim", `{"version":1}`, service, false); w.Code != http.StatusForbidden {
		t.Fatalf("service token claim: %d, want 403", w.Code)
	}
	w := request(h, "GET", "/v1/alerts?limit=500", "", service, false)
	var body map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || string(body["alerts"]) != "[]" {
		t.Fatalf("alerts body %s (%v)", w.Body, err)
	}
	r := httptest.NewRequest("GET", "/v1/alerts", nil)
	r.Header.Set("Authorization", "Bearer wrong")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 401 {
		t.Fatalf("wrong token: %d", rec.Code)
	}
}

func TestLoginRateLimitAndCookie(t *testing.T) {
	t.Parallel()
	h := newTestServer(t, &fakeCases{})
	login := func(pw string) *httptest.ResponseRecorder {
		return request(h, "POST", "/login", `{"email":"ana@example.com","password":"`+pw+`"}`, anonymous, false)
	}
	w := login("correct horse battery")
	if w.Code != 200 {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	c := w.Result().Cookies()[0]
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie flags: %+v", c)
	}
	r := httptest.NewRequest("POST", "/login", strings.NewReader(`{"email":"ana@example.com","password":"correct horse battery"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Origin", "https://evil.example")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("cross-origin login: %d, want 403", rec.Code)
	}
	if w := login("wrong"); w.Code != 401 {
		t.Fatalf("wrong password: %d", w.Code)
	}
	login("wrong")
	if w := login("correct horse battery"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("4th attempt in a minute: %d, want 429", w.Code)
	}
}

func TestSecurityHeadersAndEscaping(t *testing.T) {
	t.Parallel()
	h := newTestServer(t, &fakeCases{})
	w := request(h, "GET", "/ui/cases/cas_1", "", analyst, false)
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	if w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("Referrer-Policy") != "same-origin" {
		t.Fatalf("frame/referrer headers: %v", w.Header())
	}
	body, _ := io.ReadAll(w.Body)
	if strings.Contains(string(body), "<script>") || !strings.Contains(string(body), "acct-&lt;script&gt;") {
		t.Fatalf("account id not escaped")
	}
	w = request(h, "GET", "/ui/overview", "", analyst, false)
	if !strings.Contains(w.Body.String(), "daily budget of 100") || !strings.Contains(w.Body.String(), "150%") || !strings.Contains(w.Body.String(), "2.50") {
		t.Fatalf("overview page: %s", w.Body)
	}
	if w := request(h, "GET", "/openapi.json", "", anonymous, false); w.Code != 200 || !json.Valid(w.Body.Bytes()) {
		t.Fatalf("openapi: %d", w.Code)
	}
	if w := request(h, "GET", "/static/htmx.min.js", "", anonymous, false); w.Code != 200 || w.Body.Len() < 10000 {
		t.Fatalf("htmx: %d", w.Code)
	}
}
