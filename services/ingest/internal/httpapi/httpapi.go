// Package httpapi is the HTTP front door of ingest: it authenticates payment systems,
// validates and tokenizes their transactions and hands them to a Publisher.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
	"github.com/vigil-fraud/vigil/services/ingest/internal/idempotency"
	"github.com/vigil-fraud/vigil/services/ingest/internal/ratelimit"
	"github.com/vigil-fraud/vigil/services/ingest/internal/store"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

// Publisher durably hands accepted transactions to the pipeline; nil means it will be scored.
type Publisher interface {
	Publish(ctx context.Context, tx *fraudv1.Transaction) error
	// PublishAll returns one error per transaction.
	PublishAll(ctx context.Context, txs []*fraudv1.Transaction) []error
}

// Authenticator maps an API key to the caller owning it.
type Authenticator interface {
	Authenticate(apiKey string) (auth.Principal, bool)
}

// Idempotency remembers responses by Idempotency-Key (see package idempotency).
type Idempotency interface {
	Key(source, idemKey string) string
	Begin(ctx context.Context, key, fingerprint string) (*idempotency.Claim, *idempotency.Record, error)
	Complete(ctx context.Context, c *idempotency.Claim, rec idempotency.Record) error
	Abandon(ctx context.Context, c *idempotency.Claim) error
}

// Decisions reads the decision on a transaction; store.ErrNotFound until it exists.
type Decisions interface {
	Decision(ctx context.Context, id string) (store.Decision, error)
}

// Config tunes the API.
type Config struct {
	MaxBodyBytes      int64
	MaxBatchBodyBytes int64
	// MaxBatchItems caps a batch (500).
	MaxBatchItems int
	Rules         txn.Rules
	// PublishTimeout bounds the wait for the broker's ack, so a stalled cluster turns into a
	// prompt 503 instead of requests piling up until the write timeout.
	PublishTimeout time.Duration
	// RetryAfter is sent with 503 so clients back off instead of hammering a struggling broker.
	RetryAfter time.Duration
	// MaxInFlight bounds transactions waiting for broker acks; beyond it requests get 503 at
	// once instead of buffering without limit. Must be at least MaxBatchItems.
	MaxInFlight int64
	// RateLimit is the default per-key token bucket; a zero rate disables limiting.
	RateLimit ratelimit.Limits
	// MaxWait caps Prefer: wait=<ms>; WaitPoll is how often a waiting request looks for the decision.
	MaxWait  time.Duration
	WaitPoll time.Duration
}

// Deps are the API's collaborators. Idempotency and Decisions may be nil (tests of other parts):
// then Idempotency-Key is ignored and decisions are never found.
type Deps struct {
	Keys        Authenticator
	Tokenizer   *txn.Tokenizer
	Publisher   Publisher
	Idempotency Idempotency
	Decisions   Decisions
	Now         func() time.Time
}

// API serves the ingest endpoints.
type API struct {
	cfg      Config
	log      *slog.Logger
	keys     Authenticator
	tok      *txn.Tokenizer
	pub      Publisher
	idem     Idempotency
	dec      Decisions
	now      func() time.Time
	limiter  *ratelimit.Limiter
	inFlight *semaphore.Weighted
	tracer   trace.Tracer
	// errLog keeps a dependency outage from writing one error line per request.
	errLog *telemetry.LogLimiter
}

// logError logs a dependency error at most once a second per msg, with how many were held back.
func (a *API) logError(ctx context.Context, msg string, args ...any) {
	if ok, n := a.errLog.Allow(msg); ok {
		a.log.ErrorContext(ctx, msg, append(args, "suppressed_since_last", n)...)
	}
}

// New returns the API.
func New(cfg Config, log *slog.Logger, d Deps) *API {
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.MaxBatchItems <= 0 {
		cfg.MaxBatchItems = 500
	}
	if cfg.MaxBatchBodyBytes <= 0 {
		cfg.MaxBatchBodyBytes = cfg.MaxBodyBytes * int64(cfg.MaxBatchItems)
	}
	if cfg.MaxInFlight < int64(cfg.MaxBatchItems) {
		cfg.MaxInFlight = int64(cfg.MaxBatchItems)
	}
	if cfg.WaitPoll <= 0 {
		cfg.WaitPoll = 25 * time.Millisecond
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &API{
		errLog:   telemetry.NewLogLimiter(time.Second),
		cfg:      cfg,
		log:      log,
		keys:     d.Keys,
		tok:      d.Tokenizer,
		pub:      d.Publisher,
		idem:     d.Idempotency,
		dec:      d.Decisions,
		now:      d.Now,
		limiter:  ratelimit.New(cfg.RateLimit, d.Now),
		inFlight: semaphore.NewWeighted(cfg.MaxInFlight),
		tracer:   otel.Tracer("github.com/vigil-fraud/vigil/services/ingest/internal/httpapi"),
	}
}

// Handler routes every endpoint of the service.
func (a *API) Handler(health *httpserver.Health, openAPI []byte) http.Handler {
	r := chi.NewRouter()
	r.Use(a.recoverer)
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusNotFound})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusMethodNotAllowed})
	})
	r.Get("/livez", health.Live())
	r.Get("/readyz", health.Ready())
	r.Get("/openapi.json", serveOpenAPI(openAPI))
	r.Post("/v1/transactions", a.submit("POST /v1/transactions", a.cfg.MaxBodyBytes, a.createTransaction))
	r.Post("/v1/transactions:batch", a.submit("POST /v1/transactions:batch", a.cfg.MaxBatchBodyBytes, a.createBatch))
	r.Get("/v1/transactions/{id}/decision", a.getDecision())
	return r
}

func serveOpenAPI(doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}
}

// response is a handler's answer, built before it is written so it can be stored for
// idempotent replay.
type response struct {
	status      int
	contentType string
	body        []byte
	// header is sent but never stored: Retry-After and Preference-Applied describe this attempt.
	header map[string]string
	// partial marks a batch some of whose items failed and may be retried.
	partial bool
}

func jsonResponse(status int, v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		return problemResponse(httpserver.Problem{Status: http.StatusInternalServerError})
	}
	return response{status: status, contentType: "application/json", body: append(b, '\n')}
}

func problemResponse(p httpserver.Problem) response {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	r := jsonResponse(p.Status, p)
	r.contentType = "application/problem+json"
	return r
}

func (a *API) retryLater(status int, detail string, after time.Duration) response {
	r := problemResponse(httpserver.Problem{Status: status, Detail: detail})
	r.header = map[string]string{"Retry-After": retryAfterSeconds(after)}
	return r
}

func retryAfterSeconds(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	return strconv.Itoa(max(s, 1))
}

// storable reports whether a retry with the same Idempotency-Key should get this response
// again. A 5xx or 429 did not process the request (or not all of it), so the retry must run.
func (r response) storable() bool {
	return r.status < 500 && r.status != http.StatusTooManyRequests && !r.partial
}

func (r response) write(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", r.contentType)
	if r.contentType == "application/problem+json" {
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body)
}

// submission is one authenticated submission.
type submission struct {
	ctx       context.Context
	principal auth.Principal
	body      []byte
	prefer    string
}

// submit runs what both POST endpoints share: auth, content type, body limit and
// Idempotency-Key; process does the rest.
func (a *API) submit(op string, maxBody int64, process func(submission) response) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Continue the payment system's trace, so the Kafka record carries it downstream. Behind
		// httpserver.Instrument the server span already continues it: nest under that span
		// rather than beside it.
		ctx := r.Context()
		if !trace.SpanContextFromContext(ctx).IsValid() {
			ctx = telemetry.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
		}
		ctx, span := a.tracer.Start(ctx, op, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		resp := a.handleSubmit(ctx, span, w, r, maxBody, process)
		span.SetAttributes(attribute.Int("http.response.status_code", resp.status))
		if resp.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(resp.status))
		}
		resp.write(w)
	}
}

func (a *API) handleSubmit(ctx context.Context, span trace.Span, w http.ResponseWriter, r *http.Request, maxBody int64, process func(submission) response) response {
	p, ok := a.authenticate(r)
	if !ok {
		a.log.InfoContext(ctx, "rejected request without a valid API key", "remote", r.RemoteAddr)
		resp := problemResponse(httpserver.Problem{Status: http.StatusUnauthorized,
			Detail: "send a valid API key as Authorization: Bearer <key>"})
		resp.header = map[string]string{"WWW-Authenticate": `Bearer realm="vigil"`}
		return resp
	}
	span.SetAttributes(attribute.String("vigil.source", p.Source))

	if !isJSON(r.Header.Get("Content-Type")) {
		return problemResponse(httpserver.Problem{Status: http.StatusUnsupportedMediaType,
			Detail: "Content-Type must be application/json"})
	}
	body, err := readBody(w, r, maxBody)
	if err != nil {
		return requestProblem(err)
	}
	c := submission{ctx: ctx, principal: p, body: body, prefer: r.Header.Get("Prefer")}

	idemKey, present := r.Header["Idempotency-Key"]
	if !present || a.idem == nil {
		return process(c)
	}
	if len(idemKey) != 1 || !validIdempotencyKey(idemKey[0]) {
		return problemResponse(httpserver.Problem{Status: http.StatusBadRequest,
			Detail: "Idempotency-Key must be one header of 1-255 printable ASCII characters"})
	}
	return a.idempotent(c, r.URL.Path, idemKey[0], process)
}

// idempotent answers a request carrying an Idempotency-Key (IETF httpapi draft): the first
// request is processed, later ones with the same key and payload get its response, with a
// different payload 422, while the first is still running 409.
func (a *API) idempotent(c submission, path, idemKey string, process func(submission) response) response {
	key := a.idem.Key(c.principal.Source, idemKey)
	fp := a.tok.Fingerprint([]byte(path), c.body)
	claim, prev, err := a.idem.Begin(c.ctx, key, fp)
	if err != nil {
		a.logError(c.ctx, "idempotency store", "err", err)
		return a.retryLater(http.StatusServiceUnavailable, "the idempotency store is unavailable; retry later", a.cfg.RetryAfter)
	}
	if prev != nil {
		switch {
		case prev.Fingerprint != fp:
			return problemResponse(httpserver.Problem{Status: http.StatusUnprocessableEntity,
				Detail: "this Idempotency-Key was used with a different request payload"})
		case !prev.Done:
			return a.retryLater(http.StatusConflict, "a request with this Idempotency-Key is still being processed", a.cfg.RetryAfter)
		}
		return response{status: prev.Status, contentType: prev.ContentType, body: prev.Body,
			header: map[string]string{"Idempotent-Replayed": "true"}}
	}

	resp := process(c)
	// Finish even if the client went away: the claim must not linger until its TTL.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 2*time.Second)
	defer cancel()
	if resp.storable() {
		err = a.idem.Complete(fctx, claim, idempotency.Record{Fingerprint: fp, Status: resp.status, ContentType: resp.contentType, Body: resp.body})
	} else {
		err = a.idem.Abandon(fctx, claim)
	}
	if err != nil {
		// The response is still right for this request; a retry then meets the in-flight
		// marker (409) until it expires.
		a.logError(c.ctx, "finish idempotency key", "err", err)
	}
	return resp
}

func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// admit applies the caller's rate limit to cost transactions.
func (a *API) admit(c submission, cost int) (response, bool) {
	p := c.principal
	ok, wait := a.limiter.Allow(p.KeyID, ratelimit.Limits{Rate: p.Rate, Burst: p.Burst}, cost)
	if ok {
		return response{}, true
	}
	// Debug: under abuse an info line per rejected request would add to the overload.
	a.log.DebugContext(c.ctx, "rate limited", "source", p.Source, "key_id", p.KeyID)
	return a.retryLater(http.StatusTooManyRequests, "rate limit exceeded for this API key", wait), false
}

// reserve takes n in-flight slots, or answers 503 at once when the ack backlog is full.
func (a *API) reserve(c submission, n int) (func(), response, bool) {
	if !a.inFlight.TryAcquire(int64(n)) {
		a.log.WarnContext(c.ctx, "in-flight limit reached", "max", a.cfg.MaxInFlight)
		return nil, a.retryLater(http.StatusServiceUnavailable, "too many transactions waiting for the broker; retry later", a.cfg.RetryAfter), false
	}
	return func() { a.inFlight.Release(int64(n)) }, response{}, true
}

// acceptedResponse is the 202 body.
type acceptedResponse struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	DecisionURL string `json:"decision_url"`
}

func accepted(id string) acceptedResponse {
	return acceptedResponse{ID: id, Status: "accepted", DecisionURL: decisionURL(id)}
}

func decisionURL(id string) string {
	// Ids are [A-Za-z0-9._:-], all legal in a path segment.
	return "/v1/transactions/" + id + "/decision"
}

func (a *API) createTransaction(c submission) response {
	req, err := parseTransaction(c.body)
	if err != nil {
		return requestProblem(err)
	}
	if resp, ok := a.admit(c, 1); !ok {
		return resp
	}
	msg, fields := a.convert(c.principal.Source, req)
	if len(fields) > 0 {
		a.log.DebugContext(c.ctx, "rejected invalid transaction", "source", c.principal.Source, "fields", len(fields))
		return problemResponse(httpserver.Problem{Status: http.StatusUnprocessableEntity,
			Detail: "the transaction has invalid fields", Errors: fields})
	}
	trace.SpanFromContext(c.ctx).SetAttributes(attribute.String("vigil.transaction_id", msg.GetId()))

	release, resp, ok := a.reserve(c, 1)
	if !ok {
		return resp
	}
	pctx, cancel := context.WithTimeout(c.ctx, a.cfg.PublishTimeout)
	err = a.pub.Publish(pctx, msg)
	cancel()
	release()
	if err != nil {
		trace.SpanFromContext(c.ctx).RecordError(err)
		a.logError(c.ctx, "publish transaction", "id", msg.GetId(), "err", err)
		return a.retryLater(http.StatusServiceUnavailable, "the transaction could not be queued for scoring; retry later", a.cfg.RetryAfter)
	}
	a.log.DebugContext(c.ctx, "accepted transaction", "id", msg.GetId())

	if wait, ok := a.preferWait(c.prefer); ok {
		return a.awaitDecision(c.ctx, msg.GetId(), wait)
	}
	return jsonResponse(http.StatusAccepted, accepted(msg.GetId()))
}

// convert validates a request and builds the tx.v1 message, or lists the bad fields.
func (a *API) convert(source string, req transactionRequest) (*fraudv1.Transaction, []httpserver.FieldError) {
	now := a.now()
	in, typeErrs := req.toInput()
	tx, err := txn.Validate(in, now, a.cfg.Rules)
	if fields := fieldErrors(typeErrs, err); len(fields) > 0 {
		return nil, fields
	}
	return toProto(source, tx, a.tok.Tokenize(tx.PAN), now), nil
}

func (a *API) authenticate(r *http.Request) (auth.Principal, bool) {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return auth.Principal{}, false
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return auth.Principal{}, false
	}
	return a.keys.Authenticate(key)
}

func isJSON(contentType string) bool {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "application/json" {
		return false
	}
	charset, ok := params["charset"]
	return !ok || strings.EqualFold(charset, "utf-8")
}

func requestProblem(err error) response { return problemResponse(problemOf(err)) }

func problemOf(err error) httpserver.Problem {
	re, ok := errors.AsType[*requestError](err)
	if !ok {
		re = &requestError{http.StatusBadRequest, "malformed request"}
	}
	return httpserver.Problem{Status: re.status, Detail: re.detail}
}

// fieldErrors merges wrong-type errors with validation errors. A field of the wrong type also
// fails validation (it decoded as empty); only the type error is kept, as it names the cause.
func fieldErrors(typeErrs []txn.FieldError, validation error) []httpserver.FieldError {
	var out []httpserver.FieldError
	wrongType := map[string]bool{}
	for _, f := range typeErrs {
		wrongType[f.Field] = true
		out = append(out, httpserver.FieldError{Field: f.Field, Detail: f.Detail})
	}
	if inv, ok := errors.AsType[*txn.InvalidError](validation); ok {
		for _, f := range inv.Fields {
			if !wrongType[f.Field] {
				out = append(out, httpserver.FieldError{Field: f.Field, Detail: f.Detail})
			}
		}
	}
	return out
}

// recoverer turns a panic into a bare 500: a bug must not take the process down with it, nor
// show its internals to the client.
func (a *API) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.ErrorContext(r.Context(), "panic in handler", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusInternalServerError})
			}
		}()
		next.ServeHTTP(w, r)
	})
}
