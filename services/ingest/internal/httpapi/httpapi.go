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
	"net/url"
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

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

// Publisher durably hands an accepted transaction to the pipeline; nil means it will be scored.
type Publisher interface {
	Publish(ctx context.Context, tx *fraudv1.Transaction) error
}

// Authenticator maps an API key to the payment system that owns it.
type Authenticator interface {
	Authenticate(apiKey string) (source string, ok bool)
}

// Config tunes the API.
type Config struct {
	MaxBodyBytes int64
	Rules        txn.Rules
	// PublishTimeout bounds the wait for the broker's ack, so a stalled cluster turns into a
	// prompt 503 instead of requests piling up until the write timeout.
	PublishTimeout time.Duration
	// RetryAfter is sent with 503 so clients back off instead of hammering a struggling broker.
	RetryAfter time.Duration
}

// API serves the ingest endpoints.
type API struct {
	cfg    Config
	log    *slog.Logger
	keys   Authenticator
	tok    *txn.Tokenizer
	pub    Publisher
	now    func() time.Time
	tracer trace.Tracer
}

// New returns the API. now is the clock (time.Now in production).
func New(cfg Config, log *slog.Logger, keys Authenticator, tok *txn.Tokenizer, pub Publisher, now func() time.Time) *API {
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	return &API{
		cfg:    cfg,
		log:    log,
		keys:   keys,
		tok:    tok,
		pub:    pub,
		now:    now,
		tracer: otel.Tracer("github.com/vigil-fraud/vigil/services/ingest/internal/httpapi"),
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
	r.Post("/v1/transactions", a.createTransaction())
	return r
}

func serveOpenAPI(doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}
}

// acceptedResponse is the 202 body.
type acceptedResponse struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	DecisionURL string `json:"decision_url"`
}

func (a *API) createTransaction() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Continue the payment system's trace, so the Kafka record carries it downstream.
		ctx := telemetry.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := a.tracer.Start(ctx, "POST /v1/transactions", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		fail := func(p httpserver.Problem) {
			span.SetAttributes(attribute.Int("http.response.status_code", p.Status))
			if p.Status >= 500 {
				span.SetStatus(codes.Error, p.Title)
			}
			httpserver.WriteProblem(w, p)
		}

		source, ok := a.authenticate(r)
		if !ok {
			a.log.InfoContext(ctx, "rejected request without a valid API key", "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			fail(httpserver.Problem{Status: http.StatusUnauthorized,
				Detail: "send a valid API key as Authorization: Bearer <key>"})
			return
		}
		span.SetAttributes(attribute.String("vigil.source", source))

		if !isJSON(r.Header.Get("Content-Type")) {
			fail(httpserver.Problem{Status: http.StatusUnsupportedMediaType,
				Detail: "Content-Type must be application/json"})
			return
		}

		req, err := decodeTransaction(w, r, a.cfg.MaxBodyBytes)
		if err != nil {
			re, ok := errors.AsType[*requestError](err)
			if !ok {
				re = &requestError{http.StatusBadRequest, "malformed request"}
			}
			a.log.DebugContext(ctx, "rejected malformed request", "source", source, "status", re.status, "detail", re.detail)
			fail(httpserver.Problem{Status: re.status, Detail: re.detail})
			return
		}

		now := a.now()
		in, typeErrs := req.toInput()
		tx, err := txn.Validate(in, now, a.cfg.Rules)
		if fields := fieldErrors(typeErrs, err); len(fields) > 0 {
			a.log.DebugContext(ctx, "rejected invalid transaction", "source", source, "fields", len(fields))
			fail(httpserver.Problem{Status: http.StatusUnprocessableEntity,
				Detail: "the transaction has invalid fields", Errors: fields})
			return
		}

		msg := toProto(source, tx, a.tok.Tokenize(tx.PAN), now)
		span.SetAttributes(attribute.String("vigil.transaction_id", msg.GetId()))

		pctx, cancel := context.WithTimeout(ctx, a.cfg.PublishTimeout)
		err = a.pub.Publish(pctx, msg)
		cancel()
		if err != nil {
			span.RecordError(err)
			a.log.ErrorContext(ctx, "publish transaction", "id", msg.GetId(), "err", err)
			w.Header().Set("Retry-After", strconv.Itoa(int(a.cfg.RetryAfter.Round(time.Second)/time.Second)))
			fail(httpserver.Problem{Status: http.StatusServiceUnavailable,
				Detail: "the transaction could not be queued for scoring; retry later"})
			return
		}

		span.SetAttributes(attribute.Int("http.response.status_code", http.StatusAccepted))
		a.log.DebugContext(ctx, "accepted transaction", "id", msg.GetId())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(acceptedResponse{
			ID:          msg.GetId(),
			Status:      "accepted",
			DecisionURL: "/v1/transactions/" + url.PathEscape(msg.GetId()) + "/decision",
		})
	}
}

func (a *API) authenticate(r *http.Request) (string, bool) {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return "", false
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
