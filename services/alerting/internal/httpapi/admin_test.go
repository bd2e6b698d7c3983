package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/services/alerting/internal/cases"
	"github.com/vigil-fraud/vigil/services/alerting/internal/lists"
	"github.com/vigil-fraud/vigil/services/alerting/internal/metrics"
	"github.com/vigil-fraud/vigil/services/alerting/internal/rules"
	"github.com/vigil-fraud/vigil/services/alerting/internal/store"
)

// fakeScoring keeps rules and entries in memory with the store's validation and version rules.
type fakeScoring struct {
	mu      sync.Mutex
	rules   map[string]rules.Rule
	entries map[string]lists.Entry
	audit   []string
}

func (f *fakeScoring) init() {
	if f.rules == nil {
		f.rules = map[string]rules.Rule{"big": {ID: "big", Version: 1, Expression: "tx.amount_minor > 100", Action: "review", Reason: "BIG", Enabled: true}}
		f.entries = map[string]lists.Entry{"block:card:tok_1": {List: "block", Kind: "card", Value: "tok_1", CreatedAt: time.Now()}}
	}
}

func invalidOf(fs []cases.FieldError) error {
	if len(fs) == 0 {
		return nil
	}
	return &cases.InvalidError{Fields: fs}
}

func (f *fakeScoring) Rules(context.Context) ([]rules.Rule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	var out []rules.Rule
	for _, r := range f.rules {
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeScoring) SaveRule(_ context.Context, actor string, r rules.Rule, base int) (rules.Rule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	var bad []cases.FieldError
	for _, e := range rules.Validate(r) {
		bad = append(bad, cases.FieldError{Field: e.Field, Detail: e.Detail})
	}
	if err := invalidOf(bad); err != nil {
		return r, err
	}
	if f.rules[r.ID].Version != base {
		return r, cases.ErrConflict
	}
	r.Version = base + 1
	f.rules[r.ID] = r
	f.audit = append(f.audit, actor+" rule.save "+r.ID)
	return r, nil
}

func (f *fakeScoring) SetRuleEnabled(_ context.Context, actor, id string, version int, enabled bool) (rules.Rule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	r, ok := f.rules[id]
	if !ok {
		return r, cases.ErrNotFound
	}
	if r.Version != version {
		return r, cases.ErrConflict
	}
	r.Version++
	r.Enabled = enabled
	f.rules[id] = r
	f.audit = append(f.audit, actor+" rule.enabled "+id)
	return r, nil
}

func (f *fakeScoring) ScoringAudit(context.Context, int) ([]store.AuditEntry, error) { return nil, nil }

func (f *fakeScoring) Entries(context.Context, int) ([]lists.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	var out []lists.Entry
	for _, e := range f.entries {
		out = append(out, e)
	}
	return out, nil
}

func (f *fakeScoring) PutEntry(_ context.Context, actor string, e lists.Entry) (lists.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	var bad []cases.FieldError
	for _, x := range lists.Validate(e, time.Now()) {
		bad = append(bad, cases.FieldError{Field: x.Field, Detail: x.Detail})
	}
	if err := invalidOf(bad); err != nil {
		return e, err
	}
	f.entries[e.List+":"+e.Kind+":"+e.Value] = e
	f.audit = append(f.audit, actor+" list.put")
	return e, nil
}

func (f *fakeScoring) end(list, kind, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	var bad []cases.FieldError
	for _, x := range lists.ValidateKey(list, kind, value) {
		bad = append(bad, cases.FieldError{Field: x.Field, Detail: x.Detail})
	}
	if err := invalidOf(bad); err != nil {
		return err
	}
	if _, ok := f.entries[list+":"+kind+":"+value]; !ok {
		return cases.ErrNotFound
	}
	return nil
}

func (f *fakeScoring) RemoveEntry(_ context.Context, _, list, kind, value string) error {
	return f.end(list, kind, value)
}

func (f *fakeScoring) ExpireEntry(_ context.Context, _, list, kind, value string) error {
	return f.end(list, kind, value)
}

func TestAdminBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"expression does not compile", "/v1/admin/rules", `{"rule_id":"x","expression":"tx.amount_minor >","action":"review","reason_code":"X"}`, 400, "expression"},
		{"unknown feature", "/v1/admin/rules", `{"rule_id":"x","expression":"features.nope > 1","action":"review","reason_code":"X"}`, 400, "expression"},
		{"bad action", "/v1/admin/rules", `{"rule_id":"x","expression":"score > 0.5","action":"block","reason_code":"X"}`, 400, "action"},
		{"stale base version", "/v1/admin/rules", `{"rule_id":"big","base_version":0,"expression":"score > 0.5","action":"review","reason_code":"X"}`, 409, ""},
		{"unknown field", "/v1/admin/rules", `{"rule_id":"x","colour":1}`, 400, "colour"},
		{"toggle unknown rule", "/v1/admin/rules/nope/disable", `{"version":1}`, 404, ""},
		{"toggle stale", "/v1/admin/rules/big/disable", `{"version":7}`, 409, ""},
		{"pan as card token", "/v1/admin/lists", `{"list":"block","kind":"card","value":"4111111111111111"}`, 400, "value"},
		{"bad kind", "/v1/admin/lists", `{"list":"block","kind":"email","value":"a@b"}`, 400, "kind"},
		{"past expiry", "/v1/admin/lists", `{"list":"block","kind":"ip","value":"10.0.0.1","expires_at":"2001-01-01T00:00:00Z"}`, 400, "expires_at"},
		{"bad expiry type", "/v1/admin/lists", `{"list":"block","kind":"ip","value":"10.0.0.1","expires_at":"tomorrow"}`, 400, "expires_at"},
		{"remove unknown", "/v1/admin/lists/remove", `{"list":"block","kind":"ip","value":"10.9.9.9"}`, 404, ""},
		{"remove bad list", "/v1/admin/lists/remove", `{"list":"grey","kind":"ip","value":"10.9.9.9"}`, 400, "list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newTestServer(t, &fakeCases{})
			w := request(h, "POST", tc.path, tc.body, admin, true)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.field != "" {
				var p httpserver.Problem
				_ = json.Unmarshal(w.Body.Bytes(), &p)
				if len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
					t.Fatalf("problem %+v does not name %q", p, tc.field)
				}
			}
			if strings.Contains(w.Body.String(), "4111111111111111") {
				t.Fatalf("the refused card number is echoed back: %s", w.Body)
			}
		})
	}
}

func TestAdminPagesRefusePANWithoutEchoingIt(t *testing.T) {
	t.Parallel()
	h := newTestServer(t, &fakeCases{})
	w := request(h, "POST", "/ui/admin/lists", "form:list=block&kind=card&value=4111+1111+1111+1111", admin, true)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "looks like a card number") {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "4111") {
		t.Fatal("the page echoes the card number")
	}
	w = request(h, "POST", "/ui/admin/rules", "form:rule_id=new&base_version=0&expression=tx.amount_minor+%3E&action=review&reason_code=X&priority=0", admin, true)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "expression: does not compile") ||
		!strings.Contains(w.Body.String(), "tx.amount_minor &gt;") {
		t.Fatalf("refused rule page: %d %s", w.Code, w.Body)
	}
	w = request(h, "GET", "/ui/admin/rules", "", admin, false)
	for _, want := range []string{"tx.amount_minor &gt; 100", "v1", "Disable"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Fatalf("rules page lacks %q", want)
		}
	}
}

// TestOverviewServicesPanel: without sources the panel says so; with a source serving a
// fixture it shows the lag by group and the p99s, in the page and in /v1/overview.
func TestOverviewServicesPanel(t *testing.T) {
	t.Parallel()
	h := newTestServer(t, &fakeCases{})
	if w := request(h, "GET", "/ui/overview", "", analyst, false); !strings.Contains(w.Body.String(), "not configured") {
		t.Fatalf("unconfigured overview: %s", w.Body)
	}
	fixture, err := os.ReadFile("../metrics/testdata/scoring.prom")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(fixture)
	}))
	defer srv.Close()
	srcs, err := metrics.ParseSources("scoring=" + srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	api := New(&fakeCases{}, fakeAccounts{}, fakeHooks{}, &fakeScoring{}, Options{Metrics: metrics.NewScraper(srcs, time.Second, time.Second)},
		slog.New(slog.DiscardHandler))
	h = api.Routes(httpserver.NewHealth(nil))
	w := request(h, "GET", "/ui/overview", "", analyst, false)
	for _, want := range []string{"vigil-scoring: <strong>150</strong>", "75.0 ms", "10.0 ms", "1000 decisions"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Fatalf("overview lacks %q: %s", want, w.Body)
		}
	}
	w = request(h, "GET", "/v1/overview", "", analyst, false)
	var o struct {
		AlertsToday int64            `json:"alerts_today"`
		Services    metrics.Snapshot `json:"services"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &o); err != nil || o.AlertsToday != 150 || !o.Services.Configured || o.Services.Sources[0].Lag["vigil-scoring"] != 150 {
		t.Fatalf("overview JSON %s (%v)", w.Body, err)
	}
}
