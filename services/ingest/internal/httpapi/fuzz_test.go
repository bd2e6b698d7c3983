package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/openapifuzz"
	"github.com/vigil-fraud/vigil/services/ingest/internal/ratelimit"
	"github.com/vigil-fraud/vigil/services/ingest/internal/store"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

// FuzzDecodeValidate feeds arbitrary bodies through decode and validation (the path every
// byte from a payment system takes). It must never panic, must answer a decode failure with a
// 400 or 413-class problem, and must never echo the card number, in errors or in the message.
// The fast decoder must agree with encoding/json on every body it accepts (checkFastDecode).
// Seeds live in testdata/fuzz/FuzzDecodeValidate.
func FuzzDecodeValidate(f *testing.F) {
	tok, err := txn.NewTokenizer("k1", []byte(strings.Repeat("s", 32)))
	if err != nil {
		f.Fatal(err)
	}
	rules := txn.Rules{MaxClockSkew: 5 * time.Minute, MaxEventAge: 30 * 24 * time.Hour}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastDecode(t, body)
		req, err := parseTransaction(body)
		if err != nil {
			if p := problemOf(err); p.Status != http.StatusBadRequest || p.Detail == "" {
				t.Fatalf("decode error became %+v", p)
			}
			return
		}
		pan := string(req.CardNumber.value)
		in, typeErrs := req.toInput()
		tx, verr := txn.Validate(in, testNow, rules)
		fields := fieldErrors(typeErrs, verr)
		if len(fields) > 0 {
			out, _ := json.Marshal(fields)
			if len(pan) >= 8 && bytes.Contains(out, []byte(pan)) {
				t.Fatalf("field errors echo the card number: %s", out)
			}
			return
		}
		if verr != nil {
			t.Fatalf("validation error %v without field errors", verr)
		}
		msg := toProto("acme", tx, tok.Tokenize(tx.PAN), testNow)
		wire, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(wire, []byte(tx.PAN)) {
			t.Fatalf("message carries the card number")
		}
	})
}

// Faults the fake dependencies of FuzzIngestAPI inject, one bit each.
const (
	faultPublisherDown  = 1 << iota // every publish fails
	faultPublisherFlaky             // every second publish fails (a batch partly queued)
	faultIdempotencyDown
	faultDecisionsDown
	faultRateLimited // one token per key and no refill within the test's frozen clock
)

// unavailableWhen are the faults that may turn an operation's answer into a 503 (sync mode
// still answers 202 when the decision store is down: the transaction was accepted).
var unavailableWhen = map[string]uint8{
	"POST /v1/transactions":              faultPublisherDown | faultPublisherFlaky | faultIdempotencyDown,
	"POST /v1/transactions:batch":        faultPublisherDown | faultPublisherFlaky | faultIdempotencyDown,
	"GET /v1/transactions/{id}/decision": faultDecisionsDown,
}

// fuzzMaxWait caps Prefer: wait in FuzzIngestAPI; short, as every exec may wait that long.
const fuzzMaxWait = 2 * time.Millisecond

// fuzzKeys are the Authorization headers FuzzIngestAPI chooses from; the first two are valid.
var fuzzKeys = []string{"Bearer " + testKey, "bearer   " + testKey + " ", "Bearer sk_test_abc124", "", "Basic " + testKey}

// fuzzDecisions has a decision for every transaction whose id contains "decided", so sync mode
// (Prefer: wait) can end in a 200.
type fuzzDecisions struct{ down bool }

func (f fuzzDecisions) Decision(_ context.Context, id string) (store.Decision, error) {
	switch {
	case f.down:
		return store.Decision{}, errors.New("postgres: connection refused")
	case !strings.Contains(id, "decided"):
		return store.Decision{}, store.ErrNotFound
	}
	return store.Decision{TransactionID: id, Action: "review", Score: 0.71, ModelVersion: "lr-1",
		Reasons: json.RawMessage(`[{"code":"velocity","description":"5 transactions in 1 min","weight":0.4}]`), DecidedAt: testNow}, nil
}

// FuzzIngestAPI sends every operation of ingest's OpenAPI document (openapifuzz picks it from
// op) through the real handler, with fuzzed path parameters, query, body, Content-Type, API key
// (valid, invalid, missing), Idempotency-Key, Prefer and dependency faults. When an
// Idempotency-Key is sent, the request is sent a second time with the same key, with body
// repeat (or the same body when repeat is empty).
//
// Every response must: be documented for the operation and match its schema (checkResponse);
// be a problem+json when 4xx; never be 5xx except a 503 with Retry-After while a fake dependency
// is down (a panic would be a 500 through the recoverer); contain no card number sent, nor
// may the logs. A repeat answered from the idempotency store must be the first response again
// (same payload) or 422 (another payload). Seeds live in testdata/fuzz/FuzzIngestAPI.
func FuzzIngestAPI(f *testing.F) {
	doc, err := os.ReadFile("../../openapi.json")
	if err != nil {
		f.Fatal(err)
	}
	ops, err := openapifuzz.Operations(doc)
	if err != nil {
		f.Fatal(err)
	}
	if len(ops) < 6 {
		f.Fatalf("only %d operations in the OpenAPI document", len(ops))
	}
	f.Fuzz(func(t *testing.T, op, param, query string, body []byte, contentType string, key uint8,
		idemKey string, repeat []byte, prefer string, faults uint8) {
		o := openapifuzz.Pick(ops, op)
		flaky := 0
		health := httpserver.NewHealth(nil)
		health.MarkReady()
		o2 := options{
			idem:      newFakeIdempotency(),
			decisions: fuzzDecisions{down: faults&faultDecisionsDown != 0},
			maxWait:   fuzzMaxWait,
			// One look for the decision, then the wait ends: coverage must not depend on how
			// many polls fit in the wait, or the fuzzer chases timing instead of inputs.
			waitPoll: time.Hour,
			health:   health,
			openAPI:  doc,
		}
		switch {
		case faults&faultPublisherDown != 0:
			o2.pubErr = errors.New("kafka: NOT_ENOUGH_REPLICAS")
		case faults&faultPublisherFlaky != 0:
			o2.publish = func(context.Context) error {
				if flaky++; flaky%2 == 0 {
					return errors.New("kafka: REQUEST_TIMED_OUT")
				}
				return nil
			}
		}
		if faults&faultRateLimited != 0 {
			o2.rate = ratelimit.Limits{Rate: 1, Burst: 1}
		}
		if faults&faultIdempotencyDown != 0 {
			o2.idem.(*fakeIdempotency).err = errors.New("redis: connection refused")
		}
		h := newHarnessWith(t, o2)

		target := o.Target(param, query)
		hdr := http.Header{}
		if a := fuzzKeys[int(key)%len(fuzzKeys)]; a != "" {
			hdr.Set("Authorization", a)
		}
		if ct := openapifuzz.HeaderValue(contentType); ct != "" {
			hdr.Set("Content-Type", ct)
		}
		if p := openapifuzz.HeaderValue(prefer); p != "" {
			hdr.Set("Prefer", p)
		}
		idem := openapifuzz.HeaderValue(idemKey)
		if idemKey != "" {
			hdr["Idempotency-Key"] = []string{idem}
		}
		sent := []fuzzRequest{{target, hdr, body}}
		if idemKey != "" {
			second := body
			if len(repeat) > 0 {
				second = repeat
			}
			sent = append(sent, fuzzRequest{target, hdr, second})
		}

		var recs []*httptest.ResponseRecorder
		for _, r := range sent {
			req := httptest.NewRequest(o.Method, r.target, bytes.NewReader(r.body))
			req.Header = r.header.Clone()
			rec := httptest.NewRecorder()
			h.handler.ServeHTTP(rec, req)
			recs = append(recs, rec)
			checkFuzzResponse(t, o, faults, rec)
		}
		if o.Path == "/v1/transactions/{id}/decision" && int(key)%len(fuzzKeys) < 2 && faults&faultDecisionsDown == 0 {
			checkDecisionLookup(t, o.Target(param, ""), recs[0])
		}

		if len(recs) == 2 && o.Method == http.MethodPost && validIdempotencyKey(idem) && faults&faultIdempotencyDown == 0 {
			checkReplay(t, sent, recs)
		}

		pans, others := cardNumbers(sent)
		logs := h.logs.String()
		for _, sentPAN := range pans {
			for _, pan := range []string{sentPAN, panDigits(sentPAN)} {
				if slices.ContainsFunc(others, func(s string) bool { return strings.Contains(s, pan) }) {
					continue // sent elsewhere too (an id, a header): an echo of that is no leak
				}
				for i, rec := range recs {
					if bytes.Equal(rec.Body.Bytes(), doc) {
						continue // the document as served: its example numbers are no echo
					}
					if strings.Contains(rec.Body.String(), pan) || strings.Contains(fmt.Sprint(rec.Header()), pan) {
						t.Fatalf("response %d to %s %s contains the card number %q: %v %s", i, o.Method, target, pan, rec.Header(), rec.Body.String())
					}
				}
				if strings.Contains(logs, pan) {
					t.Fatalf("logs contain the card number %q:\n%s", pan, logs)
				}
			}
		}
		if strings.Contains(logs, "panic in handler") {
			t.Fatalf("handler panicked:\n%s", logs)
		}
	})
}

type fuzzRequest struct {
	target string
	header http.Header
	body   []byte
}

// checkFuzzResponse checks what holds for every response, whatever was sent.
func checkFuzzResponse(t *testing.T, o openapifuzz.Operation, faults uint8, rec *httptest.ResponseRecorder) {
	t.Helper()
	if !o.Documents(rec.Code) {
		t.Fatalf("%s answered %d, which openapi.json does not document: %s", o, rec.Code, rec.Body.String())
	}
	switch {
	case rec.Code >= 500:
		if rec.Code != http.StatusServiceUnavailable || faults&unavailableWhen[o.String()] == 0 {
			t.Fatalf("%s answered %d with no dependency down (faults %#x): %s", o, rec.Code, faults, rec.Body.String())
		}
		if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 {
			t.Fatalf("%s answered 503 with Retry-After %q", o, rec.Header().Get("Retry-After"))
		}
		fallthrough
	case rec.Code >= 400:
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("%s answered %d as %q, not application/problem+json", o, rec.Code, ct)
		}
		var p httpserver.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code || p.Title == "" {
			t.Fatalf("%s answered %d with problem %s (%v)", o, rec.Code, rec.Body.String(), err)
		}
	}
	if pa := rec.Header().Get("Preference-Applied"); pa != "" {
		ms, err := strconv.Atoi(strings.TrimPrefix(pa, "wait="))
		if !strings.HasPrefix(pa, "wait=") || err != nil || ms < 1 || time.Duration(ms)*time.Millisecond > fuzzMaxWait {
			t.Fatalf("%s answered %d with Preference-Applied %q; want wait=1..%d", o, rec.Code, pa, fuzzMaxWait.Milliseconds())
		}
	}
	checkResponse(t, o.Method, o.Path, rec)
}

// checkDecisionLookup checks GET .../decision by a valid key against fuzzDecisions: a decision
// for the caller's own id (as the client wrote it, percent-escapes and all) when it has one,
// else 404.
func checkDecisionLookup(t *testing.T, target string, rec *httptest.ResponseRecorder) {
	t.Helper()
	seg := strings.TrimSuffix(strings.TrimPrefix(target, "/v1/transactions/"), "/decision")
	id, err := url.PathUnescape(seg)
	if err != nil {
		t.Fatalf("target %q: %v", target, err)
	}
	want := http.StatusNotFound
	if strings.HasPrefix(id, "acme:") && strings.Contains(id, "decided") {
		want = http.StatusOK
	}
	if rec.Code != want {
		t.Fatalf("GET %s (id %q): %d, want %d: %s", target, id, rec.Code, want, rec.Body.String())
	}
}

// checkReplay checks the second of two requests with one valid Idempotency-Key. When the first
// got as far as the idempotency store (authenticated, JSON, within the size limit) and was
// stored (not 429, 5xx or a partly queued batch), the second is its replay when the payloads
// match, else 422.
func checkReplay(t *testing.T, sent []fuzzRequest, recs []*httptest.ResponseRecorder) {
	t.Helper()
	first, second := recs[0], recs[1]
	switch first.Code {
	case http.StatusUnauthorized, http.StatusUnsupportedMediaType, http.StatusRequestEntityTooLarge,
		http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return
	}
	if first.Code == http.StatusOK && first.Header().Get("Retry-After") != "" {
		return // partly queued batch: the retry must run
	}
	if !bytes.Equal(sent[0].body, sent[1].body) {
		if second.Code != http.StatusUnprocessableEntity {
			t.Fatalf("same Idempotency-Key, another payload: %d %s, want 422", second.Code, second.Body.String())
		}
		return
	}
	if second.Code != first.Code || !bytes.Equal(second.Body.Bytes(), first.Body.Bytes()) ||
		second.Header().Get("Content-Type") != first.Header().Get("Content-Type") || second.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay differs:\nfirst  %d %v %s\nsecond %d %v %s", first.Code, first.Header(), first.Body.String(),
			second.Code, second.Header(), second.Body.String())
	}
}

var cardNumberField = regexp.MustCompile(`"card_number"\s*:\s*"?([0-9][0-9 -]*[0-9])`)

// cardLike reports whether v could be a card number: 12 to 19 digits once spaces and dashes,
// which people write between groups, are dropped.
func cardLike(v string) bool {
	digits := panDigits(v)
	if len(digits) < txn.MinPANDigits || len(digits) > txn.MaxPANDigits {
		return false
	}
	for i := range len(digits) {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

func panDigits(v string) string { return strings.NewReplacer(" ", "", "-", "").Replace(v) }

// cardNumbers returns the card numbers of the requests (card_number values that could be one,
// see cardLike, wherever they sit) and every other string they carry (target, header values,
// JSON keys and other values), so a check can skip a number the client also sent as, say, an id.
// A body that is not JSON gives its card_number values by pattern and itself, with those
// values blanked, as an other.
func cardNumbers(reqs []fuzzRequest) (pans, others []string) {
	for _, r := range reqs {
		others = append(others, r.target)
		for _, vs := range r.header {
			others = append(others, vs...)
		}
		dec := json.NewDecoder(bytes.NewReader(r.body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			for _, m := range cardNumberField.FindAllSubmatch(r.body, -1) {
				if cardLike(string(m[1])) {
					pans = append(pans, string(m[1]))
				}
			}
			others = append(others, cardNumberField.ReplaceAllString(string(r.body), ""))
			continue
		}
		var walk func(v any, field string)
		walk = func(v any, field string) {
			switch v := v.(type) {
			case map[string]any:
				for k, e := range v {
					others = append(others, k)
					walk(e, k)
				}
			case []any:
				for _, e := range v {
					walk(e, field)
				}
			case string:
				if field == "card_number" && cardLike(v) {
					pans = append(pans, v)
				} else {
					others = append(others, v)
				}
			case json.Number:
				if field == "card_number" && cardLike(string(v)) {
					pans = append(pans, string(v))
				} else {
					others = append(others, string(v))
				}
			}
		}
		walk(v, "")
		// Anything after the first value (a 400) is sent too.
		others = append(others, string(r.body[min(int(dec.InputOffset()), len(r.body)):]))
	}
	return pans, others
}
