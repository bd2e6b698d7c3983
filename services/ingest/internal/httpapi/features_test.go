package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
	"github.com/vigil-fraud/vigil/services/ingest/internal/idempotency"
	"github.com/vigil-fraud/vigil/services/ingest/internal/ratelimit"
	"github.com/vigil-fraud/vigil/services/ingest/internal/store"
)

// fakeIdempotency keeps records in a map, with the Redis store's semantics.
type fakeIdempotency struct {
	mu      sync.Mutex
	records map[string]idempotency.Record
	claims  map[*idempotency.Claim]string
	err     error
}

func newFakeIdempotency() *fakeIdempotency {
	return &fakeIdempotency{records: map[string]idempotency.Record{}, claims: map[*idempotency.Claim]string{}}
}

func (f *fakeIdempotency) Key(source, k string) string { return source + "|" + k }

func (f *fakeIdempotency) Begin(_ context.Context, key, fp string) (*idempotency.Claim, *idempotency.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, nil, f.err
	}
	if r, ok := f.records[key]; ok {
		return nil, &r, nil
	}
	f.records[key] = idempotency.Record{Fingerprint: fp}
	c := &idempotency.Claim{}
	f.claims[c] = key
	return c, nil, nil
}

func (f *fakeIdempotency) Complete(_ context.Context, c *idempotency.Claim, rec idempotency.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec.Done = true
	f.records[f.claims[c]] = rec
	return nil
}

func (f *fakeIdempotency) Abandon(_ context.Context, c *idempotency.Claim) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.records, f.claims[c])
	return nil
}

// fakeDecisions serves decisions from a map.
type fakeDecisions struct {
	mu   sync.Mutex
	byID map[string]store.Decision
	err  error
}

func (f *fakeDecisions) Decision(_ context.Context, id string) (store.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return store.Decision{}, f.err
	}
	d, ok := f.byID[id]
	if !ok {
		return d, store.ErrNotFound
	}
	return d, nil
}

func (f *fakeDecisions) put(d store.Decision) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byID[d.TransactionID] = d
}

func batchBody(t *testing.T, items ...any) string {
	t.Helper()
	return encode(t, map[string]any{"transactions": items})
}

func withField(k string, v any) map[string]any {
	b := validBody()
	if v == nil {
		delete(b, k)
	} else {
		b[k] = v
	}
	return b
}

func TestBatchReportsPerItem(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	second := withField("transaction_id", "tx-0002")
	second["card_number"] = "4111111111111112"
	rec := h.post(t, call{path: "/v1/transactions:batch", body: `{"transactions": [` +
		encode(t, validBody()) + `,` + encode(t, second) + `, {"transaction_id": "x", "cvv": "1"}]}`})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	var got batchResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Accepted != 1 || got.Rejected != 2 || len(got.Results) != 3 {
		t.Fatalf("result %+v", got)
	}
	want := []struct {
		status int
		field  string
		detail string
	}{
		{http.StatusAccepted, "", ""},
		{http.StatusUnprocessableEntity, "card_number", "Luhn"},
		{http.StatusBadRequest, "", `unknown field "cvv"`},
	}
	for i, w := range want {
		r := got.Results[i]
		if r.Index != i || r.Status != w.status {
			t.Errorf("item %d: %+v, want status %d", i, r, w.status)
			continue
		}
		if w.status == http.StatusAccepted {
			if r.ID != "acme:tx-0001" || r.DecisionURL != "/v1/transactions/acme:tx-0001/decision" || r.Problem != nil {
				t.Errorf("item %d: %+v", i, r)
			}
			continue
		}
		if r.Problem == nil || r.Problem.Status != w.status || !strings.Contains(r.Problem.Detail+encode(t, r.Problem.Errors), w.detail) {
			t.Errorf("item %d problem %+v, want %q", i, r.Problem, w.detail)
		}
		if w.field != "" && (len(r.Problem.Errors) != 1 || r.Problem.Errors[0].Field != w.field) {
			t.Errorf("item %d errors %+v, want only %s", i, r.Problem.Errors, w.field)
		}
	}
	if len(h.pub.msgs) != 1 {
		t.Errorf("published %d, want 1", len(h.pub.msgs))
	}
}

func TestBatchDuplicateIDs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	rec := h.post(t, call{path: "/v1/transactions:batch", body: batchBody(t, validBody(), validBody())})
	var got batchResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	if got.Accepted != 1 || got.Results[1].Status != http.StatusUnprocessableEntity ||
		!strings.Contains(got.Results[1].Problem.Errors[0].Detail, "repeats item 0") {
		t.Errorf("result %s", rec.Body.String())
	}
}

func TestBatchWholeRequestErrors(t *testing.T) {
	t.Parallel()
	v := validBody()
	tests := []struct {
		name, body, contentType, auth string
		status                        int
		detail                        string
	}{
		{"empty list", `{"transactions": []}`, "", "", http.StatusBadRequest, "1 to 3 items"},
		{"too many", batchBody(t, v, v, v, v), "", "", http.StatusBadRequest, "got 4"},
		{"missing list", `{}`, "", "", http.StatusBadRequest, "got 0"},
		{"unknown envelope field", `{"transactions": [], "x": 1}`, "", "", http.StatusBadRequest, `unknown field "x"`},
		{"not json", `[`, "", "", http.StatusBadRequest, "ends early"},
		{"items not objects", `{"transactions": 3}`, "", "", http.StatusBadRequest, "JSON object"},
		{"content type", batchBody(t, v), "text/plain", "", http.StatusUnsupportedMediaType, "application/json"},
		{"no key", batchBody(t, v), "", "-", http.StatusUnauthorized, "API key"},
		{"too large", batchBody(t, withField("device_id", strings.Repeat("d", 13<<10))), "", "", http.StatusRequestEntityTooLarge, "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			p := decodeProblem(t, h.post(t, call{path: "/v1/transactions:batch", body: tc.body, contentType: tc.contentType, auth: tc.auth}), tc.status)
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q, want %q", p.Detail, tc.detail)
			}
			if len(h.pub.msgs) != 0 {
				t.Error("published")
			}
		})
	}
}

func TestBatchBrokerDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, errors.New("broker down"))
	rec := h.post(t, call{path: "/v1/transactions:batch", body: batchBody(t, validBody())})
	decodeProblem(t, rec, http.StatusServiceUnavailable)
	if rec.Header().Get("Retry-After") != "2" {
		t.Errorf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, options{rate: ratelimit.Limits{Rate: 0.5, Burst: 2}})
	for i := range 2 {
		if rec := h.post(t, call{body: encode(t, withField("transaction_id", fmt.Sprint("tx-", i)))}); rec.Code != http.StatusAccepted {
			t.Fatalf("request %d: status %d", i, rec.Code)
		}
	}
	rec := h.post(t, call{body: encode(t, validBody())})
	decodeProblem(t, rec, http.StatusTooManyRequests)
	// The clock is frozen: one token at 0.5/s is 2 s away.
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2", got)
	}
	// A batch costs one token per item.
	decodeProblem(t, h.post(t, call{path: "/v1/transactions:batch", body: batchBody(t, validBody())}), http.StatusTooManyRequests)
}

func TestInFlightLimit(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	h := newHarnessWith(t, options{inFlight: 3, publish: func(ctx context.Context) error {
		entered <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	var wg sync.WaitGroup
	// MaxInFlight is raised to MaxBatchItems (3): three publishes fill it.
	for i := range 3 {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/v1/transactions", strings.NewReader(encode(t, withField("transaction_id", fmt.Sprint("tx-", i)))))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+testKey)
			h.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				t.Errorf("held request: status %d", rec.Code)
			}
		})
	}
	for range 3 {
		<-entered
	}
	rec := h.post(t, call{body: encode(t, validBody())})
	decodeProblem(t, rec, http.StatusServiceUnavailable)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	close(release)
	wg.Wait()
	if rec := h.post(t, call{body: encode(t, validBody())}); rec.Code != http.StatusAccepted {
		t.Errorf("after release: status %d", rec.Code)
	}
}

func idemCall(body, key string) call {
	return call{body: body, header: http.Header{"Idempotency-Key": {key}}}
}

func TestIdempotencyReplayAndConflict(t *testing.T) {
	t.Parallel()
	idem := newFakeIdempotency()
	h := newHarnessWith(t, options{idem: idem})
	body := encode(t, validBody())
	first := h.post(t, idemCall(body, "order-1"))
	if first.Code != http.StatusAccepted {
		t.Fatalf("first: %d", first.Code)
	}
	again := h.post(t, idemCall(body, "order-1"))
	if again.Code != http.StatusAccepted || again.Body.String() != first.Body.String() || again.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %q %s", again.Code, again.Header().Get("Idempotent-Replayed"), again.Body.String())
	}
	if len(h.pub.msgs) != 1 {
		t.Errorf("published %d times, want once", len(h.pub.msgs))
	}
	p := decodeProblem(t, h.post(t, idemCall(encode(t, withField("amount_minor", 2000)), "order-1")), http.StatusUnprocessableEntity)
	if !strings.Contains(p.Detail, "different request payload") {
		t.Errorf("detail %q", p.Detail)
	}
	// The same key on the batch endpoint is a different request.
	decodeProblem(t, h.post(t, call{path: "/v1/transactions:batch", body: body, header: http.Header{"Idempotency-Key": {"order-1"}}}), http.StatusUnprocessableEntity)
	for _, rec := range idem.records {
		if strings.Contains(string(rec.Body)+rec.Fingerprint, testPAN) {
			t.Error("idempotency record holds the card number")
		}
	}
}

func TestIdempotencyInFlight(t *testing.T) {
	t.Parallel()
	idem := newFakeIdempotency()
	h := newHarnessWith(t, options{idem: idem})
	body := encode(t, validBody())
	idem.records[idem.Key("acme", "k")] = idempotency.Record{Fingerprint: h.tok.Fingerprint([]byte("/v1/transactions"), []byte(body))}
	rec := h.post(t, idemCall(body, "k"))
	decodeProblem(t, rec, http.StatusConflict)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

func TestIdempotencyDoesNotKeepFailures(t *testing.T) {
	t.Parallel()
	idem := newFakeIdempotency()
	h := newHarnessWith(t, options{idem: idem, pubErr: errors.New("down")})
	decodeProblem(t, h.post(t, idemCall(encode(t, validBody()), "k")), http.StatusServiceUnavailable)
	if len(idem.records) != 0 {
		t.Errorf("kept %v after a 503", idem.records)
	}
}

func TestIdempotencyKeyAndStoreErrors(t *testing.T) {
	t.Parallel()
	idem := newFakeIdempotency()
	h := newHarnessWith(t, options{idem: idem})
	decodeProblem(t, h.post(t, idemCall(encode(t, validBody()), strings.Repeat("k", 256))), http.StatusBadRequest)
	decodeProblem(t, h.post(t, idemCall(encode(t, validBody()), "")), http.StatusBadRequest)
	idem.err = errors.New("redis down")
	rec := h.post(t, idemCall(encode(t, validBody()), "k"))
	decodeProblem(t, rec, http.StatusServiceUnavailable)
	if strings.Contains(rec.Body.String(), "redis") {
		t.Errorf("leaks internals: %s", rec.Body.String())
	}
}

func get(t *testing.T, h *harness, path, key string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, req)
	checkResponse(t, http.MethodGet, "/v1/transactions/{id}/decision", rec)
	return rec
}

func sampleDecision(id string) store.Decision {
	return store.Decision{TransactionID: id, Action: "review", Score: 0.72,
		Reasons:      json.RawMessage(`[{"code":"amount_high","description":"amount above p99","weight":0.4}]`),
		ModelVersion: "m-1", DecidedAt: testNow}
}

func TestGetDecision(t *testing.T) {
	t.Parallel()
	dec := &fakeDecisions{byID: map[string]store.Decision{}}
	keys, err := auth.ParseKeys("acme:" + testKey + ",globex:gx_test_0123456")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWith(t, options{decisions: dec, keys: keys})
	decodeProblem(t, get(t, h, "/v1/transactions/acme:tx-1/decision", ""), http.StatusUnauthorized)
	decodeProblem(t, get(t, h, "/v1/transactions/acme:tx-1/decision", testKey), http.StatusNotFound)
	dec.put(sampleDecision("acme:tx-1"))
	dec.put(sampleDecision("globex:tx-1"))
	rec := get(t, h, "/v1/transactions/acme:tx-1/decision", testKey)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	var got decisionResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	if got.Action != "review" || got.Score != 0.72 || got.Status != "decided" || !strings.Contains(string(got.Reasons), "amount_high") {
		t.Errorf("decision %+v", got)
	}
	// A client may escape the id's colon (encodeURIComponent does): the same decision.
	for _, path := range []string{"/v1/transactions/acme%3Atx-1/decision", "/v1/transactions/acme%3atx%2D1/decision"} {
		if rec := get(t, h, path, testKey); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"id":"acme:tx-1"`) {
			t.Errorf("%s: status %d %s, want the decision on acme:tx-1", path, rec.Code, rec.Body.String())
		}
	}
	// Another source's decision is not found, exactly like a missing one, escaped or not.
	decodeProblem(t, get(t, h, "/v1/transactions/globex:tx-1/decision", testKey), http.StatusNotFound)
	decodeProblem(t, get(t, h, "/v1/transactions/globex%3Atx-1/decision", testKey), http.StatusNotFound)
	decodeProblem(t, get(t, h, "/v1/transactions/tx-1/decision", testKey), http.StatusNotFound)
	if rec := get(t, h, "/v1/transactions/globex:tx-1/decision", "gx_test_0123456"); rec.Code != http.StatusOK {
		t.Errorf("owner: status %d", rec.Code)
	}
	dec.err = errors.New("pg down")
	rec = get(t, h, "/v1/transactions/acme:tx-1/decision", testKey)
	decodeProblem(t, rec, http.StatusServiceUnavailable)
}

func TestPreferWait(t *testing.T) {
	t.Parallel()
	dec := &fakeDecisions{byID: map[string]store.Decision{}}
	var pubs sync.WaitGroup
	pubs.Add(1)
	h := newHarnessWith(t, options{decisions: dec, maxWait: 2 * time.Second, publish: func(context.Context) error {
		// The decision lands shortly after the ack, as the pipeline would write it.
		go func() {
			time.Sleep(20 * time.Millisecond)
			dec.put(sampleDecision("acme:tx-0001"))
			pubs.Done()
		}()
		return nil
	}})
	rec := h.post(t, call{body: encode(t, validBody()), header: http.Header{"Prefer": {"respond-async, wait=100000"}}})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	if got := rec.Header().Get("Preference-Applied"); got != "wait=2000" {
		t.Errorf("Preference-Applied %q, want the capped wait=2000", got)
	}
	var got decisionResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	if got.ID != "acme:tx-0001" || got.Action != "review" {
		t.Errorf("decision %+v", got)
	}
	pubs.Wait()
}

func TestPreferWaitTimesOut(t *testing.T) {
	t.Parallel()
	dec := &fakeDecisions{byID: map[string]store.Decision{}}
	h := newHarnessWith(t, options{decisions: dec, maxWait: time.Second})
	rec := h.post(t, call{body: encode(t, validBody()), header: http.Header{"Prefer": {"wait=30"}}})
	if rec.Code != http.StatusAccepted || rec.Header().Get("Preference-Applied") != "wait=30" {
		t.Fatalf("status %d, Preference-Applied %q", rec.Code, rec.Header().Get("Preference-Applied"))
	}
	// Malformed preferences are ignored, as RFC 7240 asks.
	for _, p := range []string{"wait=abc", "wait=-5", "handling=strict"} {
		rec := h.post(t, call{body: encode(t, withField("transaction_id", "tx-"+p[:4])), header: http.Header{"Prefer": {p}}})
		if rec.Code != http.StatusAccepted || rec.Header().Get("Preference-Applied") != "" {
			t.Errorf("Prefer %q: %d %q", p, rec.Code, rec.Header().Get("Preference-Applied"))
		}
	}
}

func TestPreferWaitParse(t *testing.T) {
	t.Parallel()
	a := New(Config{MaxWait: 2 * time.Second}, slog.New(slog.DiscardHandler), Deps{})
	tests := []struct {
		prefer string
		want   time.Duration
		ok     bool
	}{
		{"wait=30", 30 * time.Millisecond, true},
		{"respond-async, wait=100", 100 * time.Millisecond, true},
		{` WAIT = "250" ; x=y`, 250 * time.Millisecond, true},
		{"wait=2000", 2 * time.Second, true},
		{"wait=100000", 2 * time.Second, true},
		// Beyond what a Duration holds in milliseconds: capped, not wrapped into a negative wait.
		{"wait=9223372036855", 2 * time.Second, true},
		{"wait=9223372036854775807", 2 * time.Second, true},
		{"wait=9223372036854775808", 0, false},
		{"wait=0", 0, false},
		{"wait=-5", 0, false},
		{"wait=abc", 0, false},
		{"wait", 0, false},
		{"handling=strict", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		got, ok := a.preferWait(tc.prefer)
		if got != tc.want || ok != tc.ok {
			t.Errorf("preferWait(%q) = %v, %v; want %v, %v", tc.prefer, got, ok, tc.want, tc.ok)
		}
	}
	off := New(Config{}, slog.New(slog.DiscardHandler), Deps{})
	if _, ok := off.preferWait("wait=10"); ok {
		t.Error("sync mode without MaxWait")
	}
}
