package httpapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
	"github.com/vigil-fraud/vigil/services/ingest/internal/ratelimit"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

const (
	testPAN = "4111111111111111"
	testKey = "sk_test_abc123"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fakePublisher records what it is given and fails with err when set.
type fakePublisher struct {
	mu   sync.Mutex
	hook func(ctx context.Context) error
	err  error
	msgs []*fraudv1.Transaction
	ctxs []context.Context
}

func (f *fakePublisher) PublishAll(ctx context.Context, txs []*fraudv1.Transaction) []error {
	errs := make([]error, len(txs))
	for i, tx := range txs {
		errs[i] = f.Publish(ctx, tx)
	}
	return errs
}

func (f *fakePublisher) Publish(ctx context.Context, tx *fraudv1.Transaction) error {
	if f.hook != nil {
		if err := f.hook(ctx); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.msgs = append(f.msgs, tx)
	f.ctxs = append(f.ctxs, ctx)
	return nil
}

type harness struct {
	handler http.Handler
	pub     *fakePublisher
	tok     *txn.Tokenizer
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t testing.TB, pubErr error) *harness {
	t.Helper()
	return newHarnessWith(t, options{pubErr: pubErr})
}

// options vary the harness; zero values give the plain API of newHarness.
type options struct {
	pubErr    error
	publish   func(ctx context.Context) error // runs inside Publish when set
	rate      ratelimit.Limits
	inFlight  int64
	idem      Idempotency
	decisions Decisions
	maxWait   time.Duration
	waitPoll  time.Duration // 1 ms when zero
	keys      *auth.Keyring
	// health and openAPI replace a not-ready health and a stub document when set.
	health  *httpserver.Health
	openAPI []byte
	// production uses the service's default batch limits and log level (benchmarks).
	production bool
}

func newHarnessWith(t testing.TB, o options) *harness {
	t.Helper()
	keys, err := auth.ParseKeys("acme:" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := txn.NewTokenizer("k1", []byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if o.keys != nil {
		keys = o.keys
	}
	h := &harness{pub: &fakePublisher{err: o.pubErr, hook: o.publish}, tok: tok, logs: &syncBuffer{}}
	level, maxBatch := slog.LevelDebug, 3
	if o.production {
		level, maxBatch = slog.LevelInfo, 500
	}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: level}))
	api := New(Config{
		MaxBodyBytes:   4 << 10,
		Rules:          txn.Rules{MaxClockSkew: 5 * time.Minute, MaxEventAge: 30 * 24 * time.Hour},
		PublishTimeout: time.Second,
		RetryAfter:     2 * time.Second,
		MaxBatchItems:  maxBatch,
		MaxInFlight:    o.inFlight,
		RateLimit:      o.rate,
		MaxWait:        o.maxWait,
		WaitPoll:       cmp.Or(o.waitPoll, time.Millisecond),
	}, log, Deps{
		Keys:        auth.NewAuthenticator(keys, nil, time.Second, log),
		Tokenizer:   tok,
		Publisher:   h.pub,
		Idempotency: o.idem,
		Decisions:   o.decisions,
		Now:         func() time.Time { return testNow },
	})
	health, doc := o.health, o.openAPI
	if health == nil {
		health = httpserver.NewHealth(nil)
	}
	if doc == nil {
		doc = []byte(`{"openapi":"3.1.0"}`)
	}
	h.handler = api.Handler(health, doc)
	t.Cleanup(func() {
		if strings.Contains(h.logs.String(), testPAN) {
			t.Errorf("logs contain the card number:\n%s", h.logs.String())
		}
	})
	return h
}

func validBody() map[string]any {
	return map[string]any{
		"transaction_id": "tx-0001",
		"account_id":     "acct-42",
		"card_number":    testPAN,
		"merchant_id":    "m-100",
		"terminal_id":    "t-7",
		"mcc":            "5411",
		"amount_minor":   1999,
		"currency":       "EUR",
		"country":        "DE",
		"channel":        "contactless",
		"device_id":      "dev-abc",
		"ip":             "2001:db8::1",
		"event_time":     "2025-06-01T11:59:00Z",
	}
}

func encode(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type call struct {
	path        string // default /v1/transactions
	body        string
	contentType string
	auth        string
	header      http.Header
}

// post sends c and checks the response against openapi.json.
func (h *harness) post(t *testing.T, c call) *httptest.ResponseRecorder {
	t.Helper()
	path := orDefault(c.path, "/v1/transactions")
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(c.body))
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.contentType != "-" {
		req.Header.Set("Content-Type", orDefault(c.contentType, "application/json"))
	}
	if c.auth != "-" {
		req.Header.Set("Authorization", orDefault(c.auth, "Bearer "+testKey))
	}
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, req)
	if strings.Contains(rec.Body.String(), testPAN) {
		t.Errorf("response contains the card number: %s", rec.Body.String())
	}
	checkResponse(t, http.MethodPost, path, rec)
	return rec
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder, status int) httpserver.Problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p httpserver.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	if p.Status != status {
		t.Errorf("problem status %d, want %d", p.Status, status)
	}
	return p
}

func TestAccepted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	rec := h.post(t, call{body: encode(t, validBody())})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body.String())
	}
	var got acceptedResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := acceptedResponse{ID: "acme:tx-0001", Status: "accepted", DecisionURL: "/v1/transactions/acme:tx-0001/decision"}
	if got != want {
		t.Errorf("response %+v, want %+v", got, want)
	}

	if len(h.pub.msgs) != 1 {
		t.Fatalf("published %d messages, want 1", len(h.pub.msgs))
	}
	msg := h.pub.msgs[0]
	card := h.tok.Tokenize(testPAN)
	checks := []struct {
		name      string
		got, want any
	}{
		{"id", msg.GetId(), "acme:tx-0001"},
		{"source", msg.GetSource(), "acme"},
		{"client id", msg.GetClientTransactionId(), "tx-0001"},
		{"account", msg.GetAccountId(), "acct-42"},
		{"token", msg.GetCard().GetToken(), card.Token},
		{"key id", msg.GetCard().GetTokenKeyId(), "k1"},
		{"bin", msg.GetCard().GetBin(), "411111"},
		{"last4", msg.GetCard().GetLast4(), "1111"},
		{"amount", msg.GetAmountMinor(), int64(1999)},
		{"currency", msg.GetCurrency(), "EUR"},
		{"merchant", msg.GetMerchantId(), "m-100"},
		{"terminal", msg.GetTerminalId(), "t-7"},
		{"mcc", msg.GetMcc(), "5411"},
		{"country", msg.GetCountry(), "DE"},
		{"channel", msg.GetChannel(), fraudv1.Channel_CHANNEL_CONTACTLESS},
		{"device", msg.GetDeviceId(), "dev-abc"},
		{"ip", msg.GetIp(), "2001:db8::1"},
		{"event time", msg.GetEventTime().AsTime(), time.Date(2025, 6, 1, 11, 59, 0, 0, time.UTC)},
		{"received time", msg.GetReceivedTime().AsTime(), testNow},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	wire, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wire, []byte(testPAN)) || strings.Contains(msg.String(), testPAN) {
		t.Error("the produced message contains the card number")
	}
}

func TestDecisionURLEscapesID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	body := validBody()
	body["transaction_id"] = "2025:06/01" // '/' is not allowed: the id charset keeps URLs simple
	if rec := h.post(t, call{body: encode(t, body)}); rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422", rec.Code)
	}
	body["transaction_id"] = "2025:06.01_a-b"
	rec := h.post(t, call{body: encode(t, body)})
	var got acceptedResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.DecisionURL != "/v1/transactions/acme:2025:06.01_a-b/decision" {
		t.Errorf("decision_url %q", got.DecisionURL)
	}
}

func TestTraceContextReachesPublisher(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	rec := h.post(t, call{body: encode(t, validBody()), header: http.Header{
		"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"},
	}})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d", rec.Code)
	}
	if got := trace.SpanContextFromContext(h.pub.ctxs[0]).TraceID().String(); got != traceID {
		t.Errorf("publisher saw trace %s, want %s", got, traceID)
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, auth string }{
		{"missing", "-"},
		{"empty bearer", "Bearer "},
		{"wrong scheme", "Basic " + testKey},
		{"no scheme", testKey},
		{"wrong key", "Bearer sk_test_abc124"},
		{"prefix of key", "Bearer sk_test_abc12"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			rec := h.post(t, call{body: encode(t, validBody()), auth: tc.auth})
			decodeProblem(t, rec, http.StatusUnauthorized)
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
			if strings.Contains(rec.Body.String(), "sk_test") {
				t.Errorf("response echoes the key: %s", rec.Body.String())
			}
			if len(h.pub.msgs) != 0 {
				t.Error("published an unauthenticated transaction")
			}
		})
	}
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	if rec := h.post(t, call{body: encode(t, validBody()), auth: "bearer " + testKey}); rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, want 202", rec.Code)
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"-", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "application/jsonx", ";;"} {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			decodeProblem(t, h.post(t, call{body: encode(t, validBody()), contentType: ct}), http.StatusUnsupportedMediaType)
		})
	}
	h := newHarness(t, nil)
	if rec := h.post(t, call{body: encode(t, validBody()), contentType: "Application/JSON; charset=UTF-8"}); rec.Code != http.StatusAccepted {
		t.Errorf("JSON with charset=UTF-8: status %d, want 202", rec.Code)
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	body := validBody()
	body["device_id"] = strings.Repeat("x", 5<<10)
	p := decodeProblem(t, h.post(t, call{body: encode(t, body)}), http.StatusRequestEntityTooLarge)
	if !strings.Contains(p.Detail, "4096 bytes") {
		t.Errorf("detail %q does not state the limit", p.Detail)
	}
}

func TestBadRequest(t *testing.T) {
	t.Parallel()
	valid := encode(t, validBody())
	tests := []struct {
		name, body, detail string
	}{
		{"empty", "", "empty"},
		{"syntax", "{\n  \"transaction_id\": \"tx\",\n  \"amount_minor\": 12x\n}", "line 3, column"},
		{"truncated", `{"transaction_id": "tx"`, "ends early"},
		{"not an object", `[1, 2]`, "JSON object"},
		{"string", `"hello"`, "JSON object"},
		{"trailing object", valid + `{}`, "after the JSON object"},
		{"trailing garbage", valid + ` x`, "after the JSON object"},
		{"unknown field", `{"transaction_id": "tx", "cvv": "123"}`, `unknown field "cvv"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			p := decodeProblem(t, h.post(t, call{body: tc.body}), http.StatusBadRequest)
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q, want it to contain %q", p.Detail, tc.detail)
			}
		})
	}
}

func TestUnknownFieldRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	body := validBody()
	body["pan"] = testPAN
	p := decodeProblem(t, h.post(t, call{body: encode(t, body)}), http.StatusBadRequest)
	if !strings.Contains(p.Detail, `"pan"`) {
		t.Errorf("detail %q does not name the field", p.Detail)
	}
	if len(h.pub.msgs) != 0 {
		t.Error("published a transaction with an unknown field")
	}
}

func TestUnprocessableListsEveryField(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	body := validBody()
	body["card_number"] = "4111111111111112" // fails Luhn
	body["amount_minor"] = "19.99"           // wrong JSON type
	body["account_id"] = 42                  // wrong JSON type
	body["currency"] = "eur"
	body["ip"] = "not-an-ip"
	body["event_time"] = "2025-06-01T13:00:00Z" // an hour ahead
	delete(body, "mcc")
	p := decodeProblem(t, h.post(t, call{body: encode(t, body)}), http.StatusUnprocessableEntity)
	got := map[string]string{}
	for _, e := range p.Errors {
		got[e.Field] = e.Detail
	}
	want := map[string]string{
		"account_id":   "must be a string",
		"amount_minor": "integer",
		"card_number":  "Luhn",
		"mcc":          "required",
		"currency":     "ISO 4217",
		"ip":           "IPv4 or IPv6",
		"event_time":   "future",
	}
	if len(got) != len(want) || len(p.Errors) != len(want) {
		t.Errorf("errors %+v, want exactly the fields %v", p.Errors, slices.Sorted(maps.Keys(want)))
	}
	for field, detail := range want {
		if !strings.Contains(got[field], detail) {
			t.Errorf("%s: detail %q, want it to contain %q", field, got[field], detail)
		}
	}
	if strings.Contains(p.Detail+encode(t, p.Errors), "411111111111111") {
		t.Error("problem repeats the card number")
	}
	if len(h.pub.msgs) != 0 {
		t.Error("published an invalid transaction")
	}
}

func TestNullCountsAsMissing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	body := validBody()
	body["amount_minor"] = nil
	body["device_id"] = nil
	p := decodeProblem(t, h.post(t, call{body: encode(t, body)}), http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Field != "amount_minor" || p.Errors[0].Detail != "is required" {
		t.Errorf("errors %+v, want only amount_minor is required", p.Errors)
	}
}

func TestPublisherFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, errors.New("kafka: NOT_ENOUGH_REPLICAS broker-7:9092"))
	rec := h.post(t, call{body: encode(t, validBody())})
	p := decodeProblem(t, rec, http.StatusServiceUnavailable)
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2", got)
	}
	if strings.Contains(p.Detail, "broker") || strings.Contains(rec.Body.String(), "NOT_ENOUGH_REPLICAS") {
		t.Errorf("problem leaks internals: %s", rec.Body.String())
	}
	if !strings.Contains(h.logs.String(), "NOT_ENOUGH_REPLICAS") {
		t.Error("the publish failure was not logged")
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tests := []struct {
		method, path string
		status       int
		contentType  string
	}{
		{http.MethodGet, "/livez", http.StatusOK, "application/json"},
		{http.MethodGet, "/readyz", http.StatusServiceUnavailable, "application/json"}, // not marked ready
		{http.MethodGet, "/openapi.json", http.StatusOK, "application/json"},
		{http.MethodGet, "/nope", http.StatusNotFound, "application/problem+json"},
		{http.MethodGet, "/v1/transactions", http.StatusMethodNotAllowed, "application/problem+json"},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		h.handler.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status || rec.Header().Get("Content-Type") != tc.contentType {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.status, tc.contentType)
		}
	}
}

// The OpenAPI document describes the request struct; this keeps the two from drifting.
func TestOpenAPIMatchesRequest(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Required   []string                   `json:"required"`
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	schema := doc.Components.Schemas["TransactionRequest"]
	var documented []string
	for name := range schema.Properties {
		documented = append(documented, name)
	}
	var fields []string
	rt := reflect.TypeFor[transactionRequest]()
	for i := range rt.NumField() {
		fields = append(fields, rt.Field(i).Tag.Get("json"))
	}
	slices.Sort(documented)
	slices.Sort(fields)
	if !slices.Equal(documented, fields) {
		t.Errorf("openapi.json documents %v, the request has %v", documented, fields)
	}

	// Required fields are exactly those whose absence fails validation.
	_, err = txn.Validate(txn.Input{}, testNow, txn.Rules{})
	inv, _ := errors.AsType[*txn.InvalidError](err)
	var required []string
	for _, f := range inv.Fields {
		required = append(required, f.Field)
	}
	slices.Sort(required)
	documentedRequired := slices.Sorted(slices.Values(schema.Required))
	if !slices.Equal(required, documentedRequired) {
		t.Errorf("openapi.json requires %v, validation requires %v", documentedRequired, required)
	}
}
