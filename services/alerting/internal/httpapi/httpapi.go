// Package httpapi serves the analyst JSON API, the web UI and the machine read path.
//
// Principals: a browser session (cookie, roles analyst or admin) or the service bearer token
// (role service: read-only API). Cookie-authenticated state changes need the session's CSRF
// token (synchronizer pattern) in X-CSRF-Token or the csrf_token form field.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/services/alerting/internal/auth"
	"github.com/vigil-fraud/vigil/services/alerting/internal/cases"
	"github.com/vigil-fraud/vigil/services/alerting/internal/metrics"
	"github.com/vigil-fraud/vigil/services/alerting/internal/store"
	"github.com/vigil-fraud/vigil/services/alerting/internal/webhook"
)

// Cases is what the handlers need of the case store.
type Cases interface {
	Open(ctx context.Context, limit int) ([]store.Alert, error)
	Queue(ctx context.Context, f cases.Filter) ([]store.Case, error)
	Case(ctx context.Context, id string) (store.CaseDetail, error)
	Change(ctx context.Context, id string, ch store.Change) (store.Case, error)
	Overview(ctx context.Context) (store.Overview, error)
}

// Accounts is what the handlers need of users and sessions.
type Accounts interface {
	Login(ctx context.Context, email, password string) (string, auth.Session, error)
	Session(ctx context.Context, token string) (auth.Session, bool, error)
	Logout(ctx context.Context, token string) error
	CreateUser(ctx context.Context, email, password, role string) (auth.User, error)
	Users(ctx context.Context) ([]auth.User, error)
}

// Webhooks is what the admin handlers need of subscriptions.
type Webhooks interface {
	Create(ctx context.Context, actor, url string, events []string) (webhook.Subscription, string, error)
	List(ctx context.Context) ([]webhook.Subscription, error)
	Attempts(ctx context.Context, limit int) ([]webhook.Attempt, error)
}

// Options of the API.
type Options struct {
	// ServiceToken grants read-only API access to machines (the e2e test, tools).
	ServiceToken string
	// InsecureCookies drops the Secure flag (plain-HTTP development only).
	InsecureCookies bool
	SessionTTL      time.Duration
	LoginLimiter    *auth.Limiter
	// DailyAlertBudget is how many alerts a day the analyst team can work; the overview shows
	// today's alerts against it.
	DailyAlertBudget int
	// Metrics reads the services' /metrics for lag and latency; nil or no sources shows the
	// panel as not configured.
	Metrics *metrics.Scraper
}

// API holds the handlers' dependencies.
type API struct {
	cases     Cases
	accounts  Accounts
	webhooks  Webhooks
	scoring   Scoring
	opts      Options
	tokenHash [32]byte
	log       *slog.Logger
	ui        *ui
}

// New returns the API.
func New(c Cases, a Accounts, w Webhooks, s Scoring, opts Options, log *slog.Logger) *API {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.LoginLimiter == nil {
		opts.LoginLimiter = auth.NewLimiter(10, time.Minute, time.Now)
	}
	return &API{cases: c, accounts: a, webhooks: w, scoring: s, opts: opts, tokenHash: sha256.Sum256([]byte(opts.ServiceToken)), log: log, ui: newUI()}
}

const sessionCookie = "vigil_session"

type principalKey struct{}

// principal is who makes a request.
type principal struct {
	auth.Session
	viaCookie bool
	token     string
}

func principalOf(r *http.Request) (principal, bool) {
	p, ok := r.Context().Value(principalKey{}).(principal)
	return p, ok
}

// Routes mounts everything.
func (a *API) Routes(h *httpserver.Health) http.Handler {
	r := chi.NewRouter()
	r.Use(securityHeaders)
	r.Get("/livez", h.Live())
	r.Get("/readyz", h.Ready())
	r.Get("/openapi.json", serveOpenAPI)
	r.Get("/static/{file}", a.ui.static)
	r.Get("/login", a.ui.loginPage(a))
	r.Post("/login", a.login())
	r.Group(func(r chi.Router) {
		r.Use(a.authenticate)
		r.Post("/logout", a.require(auth.RoleAnalyst, a.logout()))

		r.Get("/v1/alerts", a.require(auth.RoleService, a.listAlerts()))
		r.Get("/v1/cases", a.require(auth.RoleService, a.queue()))
		r.Get("/v1/cases/{id}", a.require(auth.RoleService, a.caseDetail()))
		r.Post("/v1/cases/bulk", a.require(auth.RoleAnalyst, a.bulk()))
		r.Post("/v1/cases/{id}/{action}", a.require(auth.RoleAnalyst, a.change()))
		r.Get("/v1/overview", a.require(auth.RoleAnalyst, a.overview()))
		r.Get("/v1/users", a.require(auth.RoleAdmin, a.listUsers()))
		r.Post("/v1/users", a.require(auth.RoleAdmin, a.createUser()))
		r.Get("/v1/webhooks", a.require(auth.RoleAdmin, a.listWebhooks()))
		r.Post("/v1/webhooks", a.require(auth.RoleAdmin, a.createWebhook()))
		r.Get("/v1/webhooks/attempts", a.require(auth.RoleAdmin, a.listAttempts()))
		r.Get("/v1/admin/rules", a.require(auth.RoleAdmin, a.listRules()))
		r.Post("/v1/admin/rules", a.require(auth.RoleAdmin, a.saveRule()))
		r.Post("/v1/admin/rules/{id}/enable", a.require(auth.RoleAdmin, a.toggleRule(true)))
		r.Post("/v1/admin/rules/{id}/disable", a.require(auth.RoleAdmin, a.toggleRule(false)))
		r.Get("/v1/admin/lists", a.require(auth.RoleAdmin, a.listEntries()))
		r.Post("/v1/admin/lists", a.require(auth.RoleAdmin, a.putEntry()))
		r.Post("/v1/admin/lists/remove", a.require(auth.RoleAdmin, a.endEntry(false)))
		r.Post("/v1/admin/lists/expire", a.require(auth.RoleAdmin, a.endEntry(true)))

		r.Get("/", a.require(auth.RoleAnalyst, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/ui/queue", http.StatusSeeOther)
		}))
		r.Get("/ui/queue", a.require(auth.RoleAnalyst, a.ui.queuePage(a)))
		r.Get("/ui/queue/rows", a.require(auth.RoleAnalyst, a.ui.queueRows(a)))
		r.Get("/ui/cases/{id}", a.require(auth.RoleAnalyst, a.ui.casePage(a)))
		r.Post("/ui/cases/{id}/{action}", a.require(auth.RoleAnalyst, a.ui.caseAction(a)))
		r.Get("/ui/overview", a.require(auth.RoleAnalyst, a.ui.overviewPage(a)))
		r.Get("/ui/admin/webhooks", a.require(auth.RoleAdmin, a.ui.webhooksPage(a)))
		r.Post("/ui/admin/webhooks", a.require(auth.RoleAdmin, a.ui.createWebhook(a)))
		r.Get("/ui/admin/users", a.require(auth.RoleAdmin, a.ui.usersPage(a)))
		r.Get("/ui/admin/rules", a.require(auth.RoleAdmin, a.ui.rulesPage(a)))
		r.Post("/ui/admin/rules", a.require(auth.RoleAdmin, a.ui.saveRule(a)))
		r.Post("/ui/admin/rules/{id}/enabled", a.require(auth.RoleAdmin, a.ui.toggleRule(a)))
		r.Get("/ui/admin/lists", a.require(auth.RoleAdmin, a.ui.listsPage(a)))
		r.Post("/ui/admin/lists", a.require(auth.RoleAdmin, a.ui.putEntry(a)))
		r.Post("/ui/admin/lists/remove", a.require(auth.RoleAdmin, a.ui.endEntry(a, false)))
		r.Post("/ui/admin/lists/expire", a.require(auth.RoleAdmin, a.ui.endEntry(a, true)))
		r.Post("/ui/admin/users", a.require(auth.RoleAdmin, a.ui.createUser(a)))
	})
	return r
}

// securityHeaders: no inline script or style anywhere, never framed, nothing cached.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on POST,
		// which the login's cross-origin check would refuse.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// authenticate resolves the principal when there is one; require decides what it may do.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			sum := sha256.Sum256([]byte(token))
			if a.opts.ServiceToken != "" && subtle.ConstantTimeCompare(sum[:], a.tokenHash[:]) == 1 {
				p := principal{Session: auth.Session{User: auth.User{ID: "service", Email: "service", Role: auth.RoleService}}}
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
				return
			}
			a.unauthorized(w, r)
			return
		}
		if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
			s, ok, err := a.accounts.Session(r.Context(), c.Value)
			if err != nil {
				a.fail(w, r, err)
				return
			}
			if ok {
				p := principal{Session: s, viaCookie: true, token: c.Value}
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) unauthorized(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/ui/") || r.URL.Path == "/" {
		a.ui.renderLogin(w, r, http.StatusUnauthorized, "Please log in.")
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="vigil-alerting"`)
	httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusUnauthorized, Detail: "log in or present a valid bearer token"})
}

// require checks the role and, for cookie sessions, the CSRF token of state changes.
func (a *API) require(role string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := principalOf(r)
		if !ok {
			a.unauthorized(w, r)
			return
		}
		if !auth.Can(p.Role, role) {
			httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusForbidden, Detail: "your role may not do this"})
			return
		}
		if p.viaCookie && r.Method != http.MethodGet && r.Method != http.MethodHead {
			got := r.Header.Get("X-CSRF-Token")
			if got == "" {
				got = r.PostFormValue("csrf_token")
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(p.CSRF)) != 1 {
				httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusForbidden, Detail: "missing or wrong CSRF token"})
				return
			}
		}
		h(w, r)
	}
}

// fail maps an error kind to its status; unknown errors become a bare 500.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var inv *cases.InvalidError
	switch {
	case errors.As(err, &inv):
		p := httpserver.Problem{Status: http.StatusBadRequest}
		for _, f := range inv.Fields {
			p.Errors = append(p.Errors, httpserver.FieldError{Field: f.Field, Detail: f.Detail})
		}
		httpserver.WriteProblem(w, p)
	case errors.Is(err, cases.ErrNotFound):
		detail := "no such case"
		if strings.Contains(r.URL.Path, "/admin/") {
			detail = "no such rule or list entry"
		}
		httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusNotFound, Detail: detail})
	case errors.Is(err, cases.ErrConflict):
		httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusConflict, Detail: err.Error()})
	case errors.Is(err, cases.ErrForbidden):
		httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusForbidden})
	default:
		if r.Context().Err() == nil {
			a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusInternalServerError})
	}
}

func badField(field, detail string) error {
	return &cases.InvalidError{Fields: []cases.FieldError{{Field: field, Detail: detail}}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody reads a small JSON body strictly.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return badField(ute.Field, "has the wrong type")
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return badField(strings.Trim(f, `"`), "unknown field")
		}
		return badField("body", "must be a JSON object")
	}
	return nil
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// login accepts a form (the UI) or JSON (tools); both answer with the session cookie.
func (a *API) login() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Login CSRF: a cross-site form must not log the victim into the attacker's account.
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
			httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusForbidden, Detail: "cross-origin login refused"})
			return
		}
		var email, password string
		isJSON := strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
		if isJSON {
			var body struct {
				Email    string `json:"email"`
				Password string `json:"password"`
			}
			if err := decodeBody(r, &body); err != nil {
				a.fail(w, r, err)
				return
			}
			email, password = body.Email, body.Password
		} else {
			r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
			email, password = r.PostFormValue("email"), r.PostFormValue("password")
		}
		if email == "" || password == "" {
			field := "email"
			if email != "" {
				field = "password"
			}
			if isJSON {
				a.fail(w, r, badField(field, "is required"))
			} else {
				a.ui.renderLogin(w, r, http.StatusBadRequest, "Email and password are required.")
			}
			return
		}
		if !a.opts.LoginLimiter.Allow("ip:"+clientIP(r), "email:"+strings.ToLower(email)) {
			w.Header().Set("Retry-After", "60")
			httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusTooManyRequests, Detail: "too many login attempts; wait a minute"})
			return
		}
		token, s, err := a.accounts.Login(r.Context(), email, password)
		if errors.Is(err, auth.ErrBadCredentials) {
			if isJSON {
				httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusUnauthorized, Detail: "bad email or password"})
			} else {
				a.ui.renderLogin(w, r, http.StatusUnauthorized, "Bad email or password.")
			}
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", HttpOnly: true, Secure: !a.opts.InsecureCookies,
			SameSite: http.SameSiteStrictMode, MaxAge: int(a.opts.SessionTTL.Seconds())})
		if isJSON {
			writeJSON(w, http.StatusOK, map[string]string{"email": s.Email, "role": s.Role, "csrf_token": s.CSRF})
			return
		}
		http.Redirect(w, r, "/ui/queue", http.StatusSeeOther)
	}
}

func (a *API) logout() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, _ := principalOf(r)
		if p.viaCookie {
			if err := a.accounts.Logout(r.Context(), p.token); err != nil {
				a.fail(w, r, err)
				return
			}
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: !a.opts.InsecureCookies,
			SameSite: http.SameSiteStrictMode, MaxAge: -1})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	}
}

func (a *API) listAlerts() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit := 50
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 500 {
				a.fail(w, r, badField("limit", "must be an integer in [1, 500]"))
				return
			}
			limit = n
		}
		list, err := a.cases.Open(r.Context(), limit)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if list == nil {
			list = []store.Alert{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"alerts": list})
	}
}

func (a *API) queue() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := cases.ParseFilter(r.URL.Query())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		list, err := a.cases.Queue(r.Context(), f)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if list == nil {
			list = []store.Case{}
		}
		out := map[string]any{"cases": list}
		if next := store.NextCursor(f, list); next != "" {
			out["next_cursor"] = next
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (a *API) caseDetail() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := a.cases.Case(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, d)
	}
}

// changeBody is the body of every case action.
type changeBody struct {
	Version  int64  `json:"version"`
	Assignee string `json:"assignee,omitempty"`
	Label    string `json:"label,omitempty"`
	Note     string `json:"note,omitempty"`
}

var actions = map[string]bool{"claim": true, "assign": true, "label": true, "close": true, "reopen": true}

func (a *API) change() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		action := chi.URLParam(r, "action")
		if !actions[action] {
			httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusNotFound, Detail: "unknown case action"})
			return
		}
		var body changeBody
		if err := decodeBody(r, &body); err != nil {
			a.fail(w, r, err)
			return
		}
		p, _ := principalOf(r)
		c, err := a.cases.Change(r.Context(), chi.URLParam(r, "id"), store.Change{Kind: action, Actor: p.Email, Version: body.Version,
			Assignee: body.Assignee, Label: body.Label, Note: body.Note})
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	}
}

type bulkBody struct {
	Action   string `json:"action"`
	Assignee string `json:"assignee,omitempty"`
	Label    string `json:"label,omitempty"`
	Note     string `json:"note,omitempty"`
	Items    []struct {
		CaseID  string `json:"case_id"`
		Version int64  `json:"version"`
	} `json:"items"`
}

type bulkResult struct {
	CaseID  string `json:"case_id"`
	Status  int    `json:"status"`
	Version int64  `json:"version,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// bulk applies one action to many cases; each case succeeds or fails on its own (its own
// transaction and version check), and the answer lists every outcome.
func (a *API) bulk() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body bulkBody
		if err := decodeBody(r, &body); err != nil {
			a.fail(w, r, err)
			return
		}
		if !actions[body.Action] {
			a.fail(w, r, badField("action", "must be claim, assign, label, close or reopen"))
			return
		}
		if len(body.Items) == 0 || len(body.Items) > 200 {
			a.fail(w, r, badField("items", "must hold 1 to 200 cases"))
			return
		}
		p, _ := principalOf(r)
		out := make([]bulkResult, 0, len(body.Items))
		for i, it := range body.Items {
			ch := store.Change{Kind: body.Action, Actor: p.Email, Version: it.Version, Assignee: body.Assignee, Label: body.Label, Note: body.Note}
			if err := store.ValidateChange(ch); err != nil {
				var inv *cases.InvalidError
				errors.As(err, &inv)
				f := inv.Fields[0]
				if f.Field == "version" {
					f.Field = "items/" + strconv.Itoa(i) + "/version"
				}
				a.fail(w, r, &cases.InvalidError{Fields: []cases.FieldError{f}})
				return
			}
			c, err := a.cases.Change(r.Context(), it.CaseID, ch)
			res := bulkResult{CaseID: it.CaseID, Status: http.StatusOK}
			switch {
			case err == nil:
				res.Version = c.Version
			case errors.Is(err, cases.ErrNotFound):
				res.Status, res.Detail = http.StatusNotFound, "no such case"
			case errors.Is(err, cases.ErrConflict):
				res.Status, res.Detail = http.StatusConflict, err.Error()
			default:
				a.fail(w, r, err)
				return
			}
			out = append(out, res)
		}
		writeJSON(w, http.StatusOK, map[string]any{"results": out})
	}
}

func (a *API) overview() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o, err := a.cases.Overview(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, struct {
			store.Overview
			Services metrics.Snapshot `json:"services"`
		}{o, a.opts.Metrics.Snapshot(r.Context())})
	}
}

type userView struct {
	ID    string `json:"user_id"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

func (a *API) listUsers() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		us, err := a.accounts.Users(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out := make([]userView, 0, len(us))
		for _, u := range us {
			out = append(out, userView{u.ID, u.Email, u.Role})
		}
		writeJSON(w, http.StatusOK, map[string]any{"users": out})
	}
}

func (a *API) createUser() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Email    string `json:"email"`
			Password string `json:"password"`
			Role     string `json:"role"`
		}
		if err := decodeBody(r, &body); err != nil {
			a.fail(w, r, err)
			return
		}
		u, err := a.doCreateUser(r.Context(), body.Email, body.Password, body.Role)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, userView{u.ID, u.Email, u.Role})
	}
}

func (a *API) doCreateUser(ctx context.Context, email, password, role string) (auth.User, error) {
	switch {
	case !strings.Contains(email, "@"):
		return auth.User{}, badField("email", "must be an address")
	case role != auth.RoleAnalyst && role != auth.RoleAdmin:
		return auth.User{}, badField("role", "must be analyst or admin")
	}
	if err := auth.ValidatePassword(password); err != nil {
		return auth.User{}, badField("password", err.Error())
	}
	u, err := a.accounts.CreateUser(ctx, email, password, role)
	if errors.Is(err, auth.ErrExists) {
		return u, badField("email", "is taken")
	}
	return u, err
}

func (a *API) listWebhooks() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		subs, err := a.webhooks.List(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if subs == nil {
			subs = []webhook.Subscription{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"subscriptions": subs})
	}
}

func (a *API) createWebhook() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			URL        string   `json:"url"`
			EventTypes []string `json:"event_types"`
		}
		if err := decodeBody(r, &body); err != nil {
			a.fail(w, r, err)
			return
		}
		p, _ := principalOf(r)
		sub, secret, err := a.webhooks.Create(r.Context(), p.Email, body.URL, body.EventTypes)
		if err != nil {
			a.fail(w, r, webhookErr(err))
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"subscription": sub, "secret": secret})
	}
}

// webhookErr turns "invalid subscription: url: ..." into a field error.
func webhookErr(err error) error {
	if !errors.Is(err, webhook.ErrInvalid) {
		return err
	}
	msg := strings.TrimPrefix(err.Error(), webhook.ErrInvalid.Error()+": ")
	field, detail, _ := strings.Cut(msg, ": ")
	return badField(field, detail)
}

func (a *API) listAttempts() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		at, err := a.webhooks.Attempts(r.Context(), 200)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if at == nil {
			at = []webhook.Attempt{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"attempts": at})
	}
}
