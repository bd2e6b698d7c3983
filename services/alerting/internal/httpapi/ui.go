package httpapi

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/services/alerting/internal/auth"
	"github.com/vigil-fraud/vigil/services/alerting/internal/cases"
	"github.com/vigil-fraud/vigil/services/alerting/internal/metrics"
	"github.com/vigil-fraud/vigil/services/alerting/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

// htmx.min.js is vendored from `npm pack htmx.org@2` (2.0.11, BSD-2-Clause, see htmx.LICENSE):
// no CDN, so the CSP can stay at script-src 'self'.
//
//go:embed static/*
var staticFS embed.FS

type ui struct {
	pages map[string]*template.Template
	files map[string][]byte
}

var funcs = template.FuncMap{
	"age": func(t time.Time) string {
		d := time.Since(t)
		switch {
		case d < time.Minute:
			return fmt.Sprintf("%ds", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh", int(d.Hours()))
		}
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	},
	"money": func(minor int64, cur string) string { return fmt.Sprintf("%d.%02d %s", minor/100, abs(minor%100), cur) },
	"pct":   func(f float64) float64 { return f * 100 },
	"inc":   func(n int) int { return n + 1 },
	"secs":  metrics.FormatSeconds,
	"deref": func(b *bool) bool { return b != nil && *b },
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func newUI() *ui {
	u := &ui{pages: map[string]*template.Template{}, files: map[string][]byte{}}
	for _, p := range []string{"login", "queue", "case", "overview", "webhooks", "users", "rules", "lists"} {
		u.pages[p] = template.Must(template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html"))
	}
	entries, _ := fs.ReadDir(staticFS, "static")
	for _, e := range entries {
		b, _ := staticFS.ReadFile("static/" + e.Name())
		u.files[e.Name()] = b
	}
	return u
}

var contentTypes = map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

func (u *ui) static(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "file")
	b, ok := u.files[name]
	ct := ""
	for ext, t := range contentTypes {
		if len(name) > len(ext) && name[len(name)-len(ext):] == ext {
			ct = t
		}
	}
	if !ok || ct == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

// page is what every template gets.
type page struct {
	Title string
	User  *auth.User
	CSRF  string
	Flash string
	Data  any
}

func (u *ui) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusInternalServerError})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func pageFor(r *http.Request, title string, data any) page {
	p, _ := principalOf(r)
	u := p.User
	return page{Title: title, User: &u, CSRF: p.CSRF, Data: data, Flash: r.URL.Query().Get("flash")}
}

func (u *ui) renderLogin(w http.ResponseWriter, _ *http.Request, status int, flash string) {
	u.render(w, status, "login", page{Title: "Log in", Flash: flash})
}

func (u *ui) loginPage(_ *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { u.renderLogin(w, r, http.StatusOK, "") }
}

type queueData struct {
	Filter   cases.Filter
	Status   string
	MinScore string
	Query    string
	Cases    []store.Case
	Statuses []string
	Actions  []string
	Sorts    []string
}

func (u *ui) loadQueue(a *API, r *http.Request) (queueData, error) {
	q := r.URL.Query()
	// Empty form fields mean "any": drop them before the strict filter parser sees them.
	clean := url.Values{}
	for k, vs := range q {
		if len(vs) > 0 && vs[0] != "" {
			clean.Set(k, vs[0])
		}
	}
	f, err := cases.ParseFilter(clean)
	if err != nil {
		return queueData{}, err
	}
	list, err := a.cases.Queue(r.Context(), f)
	if err != nil {
		return queueData{}, err
	}
	status := f.Status
	if status == "" {
		status = "any"
	}
	ms := ""
	if f.MinScore > 0 {
		ms = strconv.FormatFloat(f.MinScore, 'f', -1, 64)
	}
	return queueData{Filter: f, Status: status, MinScore: ms, Query: clean.Encode(), Cases: list,
		Statuses: []string{"open", "closed", "any"}, Actions: []string{"review", "decline"},
		Sorts: []string{"score_desc", "score_asc", "age_desc", "age_asc"}}, nil
}

func (u *ui) queuePage(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := u.loadQueue(a, r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		u.render(w, http.StatusOK, "queue", pageFor(r, "Queue", d))
	}
}

// queueRows is the fragment htmx polls: the live queue without a reload.
func (u *ui) queueRows(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := u.loadQueue(a, r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = u.pages["queue"].ExecuteTemplate(w, "rows", d.Cases)
	}
}

func (u *ui) casePage(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := a.cases.Case(r.Context(), chi.URLParam(r, "id"))
		if err != nil {
			a.fail(w, r, err)
			return
		}
		u.render(w, http.StatusOK, "case", pageFor(r, "Case "+d.CaseID, map[string]any{"Case": d}))
	}
}

// caseAction handles the case page's forms and returns to the page (post/redirect/get).
func (u *ui) caseAction(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, action := chi.URLParam(r, "id"), chi.URLParam(r, "action")
		if !actions[action] {
			http.NotFound(w, r)
			return
		}
		version, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
		if err != nil {
			a.fail(w, r, badField("version", "must be an integer"))
			return
		}
		p, _ := principalOf(r)
		_, err = a.cases.Change(r.Context(), id, store.Change{Kind: action, Actor: p.Email, Version: version,
			Assignee: r.PostFormValue("assignee"), Label: r.PostFormValue("label"), Note: r.PostFormValue("note")})
		flash := "Saved."
		switch {
		case err == nil:
		case errors.Is(err, cases.ErrConflict):
			flash = "Someone changed this case meanwhile; review it and try again."
		default:
			var inv *cases.InvalidError
			if errors.As(err, &inv) {
				flash = "Not saved: " + inv.Error()
				break
			}
			a.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/ui/cases/"+url.PathEscape(id)+"?flash="+url.QueryEscape(flash), http.StatusSeeOther)
	}
}

func (u *ui) overviewPage(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o, err := a.cases.Overview(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		budget := a.opts.DailyAlertBudget
		used := 0.0
		if budget > 0 {
			used = float64(o.AlertsToday) / float64(budget)
		}
		u.render(w, http.StatusOK, "overview", pageFor(r, "Overview", map[string]any{"O": o, "Budget": budget, "BudgetUsed": used,
			"Services": a.opts.Metrics.Snapshot(r.Context())}))
	}
}

func (u *ui) webhooksPage(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { u.showWebhooks(a, w, r, "", "") }
}

func (u *ui) showWebhooks(a *API, w http.ResponseWriter, r *http.Request, secret, flash string) {
	subs, err := a.webhooks.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	at, err := a.webhooks.Attempts(r.Context(), 100)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p := pageFor(r, "Webhooks", map[string]any{"Subs": subs, "Attempts": at, "Secret": secret})
	if flash != "" {
		p.Flash = flash
	}
	u.render(w, http.StatusOK, "webhooks", p)
}

func (u *ui) createWebhook(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, _ := principalOf(r)
		_ = r.ParseForm()
		_, secret, err := a.webhooks.Create(r.Context(), p.Email, r.PostFormValue("url"), r.PostForm["event_types"])
		if err != nil {
			var inv *cases.InvalidError
			if errors.As(webhookErr(err), &inv) {
				u.showWebhooks(a, w, r, "", "Not saved: "+inv.Error())
				return
			}
			a.fail(w, r, err)
			return
		}
		u.showWebhooks(a, w, r, secret, "Subscription added.")
	}
}

func (u *ui) usersPage(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		us, err := a.accounts.Users(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		u.render(w, http.StatusOK, "users", pageFor(r, "Users", us))
	}
}

func (u *ui) createUser(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, err := a.doCreateUser(r.Context(), r.PostFormValue("email"), r.PostFormValue("password"), r.PostFormValue("role"))
		flash := "User created."
		if err != nil {
			var inv *cases.InvalidError
			if !errors.As(err, &inv) {
				a.fail(w, r, err)
				return
			}
			flash = "Not created: " + inv.Error()
		}
		http.Redirect(w, r, "/ui/admin/users?flash="+url.QueryEscape(flash), http.StatusSeeOther)
	}
}
