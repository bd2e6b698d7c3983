package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/vigil-fraud/vigil/services/alerting/internal/cases"
	"github.com/vigil-fraud/vigil/services/alerting/internal/lists"
	"github.com/vigil-fraud/vigil/services/alerting/internal/rules"
	"github.com/vigil-fraud/vigil/services/alerting/internal/store"
)

// ScoringRules is what the admin pages need of scoring_rules.
type ScoringRules interface {
	Rules(ctx context.Context) ([]rules.Rule, error)
	SaveRule(ctx context.Context, actor string, r rules.Rule, baseVersion int) (rules.Rule, error)
	SetRuleEnabled(ctx context.Context, actor, id string, version int, enabled bool) (rules.Rule, error)
	ScoringAudit(ctx context.Context, limit int) ([]store.AuditEntry, error)
}

// ScoringLists is what the admin pages need of scoring_list_entries.
type ScoringLists interface {
	Entries(ctx context.Context, limit int) ([]lists.Entry, error)
	PutEntry(ctx context.Context, actor string, e lists.Entry) (lists.Entry, error)
	RemoveEntry(ctx context.Context, actor, list, kind, value string) error
	ExpireEntry(ctx context.Context, actor, list, kind, value string) error
}

// Scoring is both.
type Scoring interface {
	ScoringRules
	ScoringLists
}

type ruleBody struct {
	RuleID      string `json:"rule_id"`
	BaseVersion int    `json:"base_version"`
	Expression  string `json:"expression"`
	Action      string `json:"action"`
	ReasonCode  string `json:"reason_code"`
	Priority    int    `json:"priority"`
	Enabled     *bool  `json:"enabled"`
	Description string `json:"description"`
}

func (b ruleBody) rule() rules.Rule {
	enabled := b.Enabled == nil || *b.Enabled
	return rules.Rule{ID: b.RuleID, Expression: b.Expression, Action: b.Action, Reason: b.ReasonCode, Priority: b.Priority,
		Enabled: enabled, Description: b.Description}
}

func (a *API) listRules() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rs, err := a.scoring.Rules(r.Context())
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if rs == nil {
			rs = []rules.Rule{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"rules": rs})
	}
}

func (a *API) saveRule() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body ruleBody
		if err := decodeBody(r, &body); err != nil {
			a.fail(w, r, err)
			return
		}
		p, _ := principalOf(r)
		out, err := a.scoring.SaveRule(r.Context(), p.Email, body.rule(), body.BaseVersion)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, out)
	}
}

func (a *API) toggleRule(enabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Version int `json:"version"`
		}
		if err := decodeBody(r, &body); err != nil {
			a.fail(w, r, err)
			return
		}
		p, _ := principalOf(r)
		out, err := a.scoring.SetRuleEnabled(r.Context(), p.Email, chi.URLParam(r, "id"), body.Version, enabled)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, out)
	}
}

func (a *API) listEntries() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		es, err := a.scoring.Entries(r.Context(), 1000)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if es == nil {
			es = []lists.Entry{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"entries": es})
	}
}

type entryBody struct {
	List   string `json:"list"`
	Kind   string `json:"kind"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
	// ExpiresAt is parsed by hand so a bad time names the field.
	ExpiresAt string `json:"expires_at"`
}

func (a *API) putEntry() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body entryBody
		if err := decodeBody(r, &body); err != nil {
			a.fail(w, r, err)
			return
		}
		var exp *time.Time
		if body.ExpiresAt != "" {
			t, err := time.Parse(time.RFC3339, body.ExpiresAt)
			if err != nil {
				a.fail(w, r, badField("expires_at", "must be an RFC 3339 time such as 2026-12-01T00:00:00Z"))
				return
			}
			exp = &t
		}
		p, _ := principalOf(r)
		out, err := a.scoring.PutEntry(r.Context(), p.Email, lists.Entry{List: body.List, Kind: body.Kind, Value: body.Value,
			Reason: body.Reason, ExpiresAt: exp})
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, out)
	}
}

// endEntry removes (expire false) or expires an entry named in the body.
func (a *API) endEntry(expire bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			List  string `json:"list"`
			Kind  string `json:"kind"`
			Value string `json:"value"`
		}
		if err := decodeBody(r, &body); err != nil {
			a.fail(w, r, err)
			return
		}
		p, _ := principalOf(r)
		end := a.scoring.RemoveEntry
		if expire {
			end = a.scoring.ExpireEntry
		}
		if err := end(r.Context(), p.Email, body.List, body.Kind, body.Value); err != nil {
			a.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// UI

func (u *ui) rulesPage(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { u.showRules(a, w, r, http.StatusOK, "", nil) }
}

// showRules renders the rules page; form, when set, refills the editor after a refused save.
func (u *ui) showRules(a *API, w http.ResponseWriter, r *http.Request, status int, flash string, form *ruleBody) {
	rs, err := a.scoring.Rules(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	au, err := a.scoring.ScoringAudit(r.Context(), 50)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if form == nil {
		form = &ruleBody{Action: "review"}
		// ?edit=<id> loads that rule's newest version into the editor.
		if id := r.URL.Query().Get("edit"); id != "" {
			for _, x := range rs {
				if x.ID == id {
					en := x.Enabled
					form = &ruleBody{RuleID: x.ID, BaseVersion: x.Version, Expression: x.Expression, Action: x.Action,
						ReasonCode: x.Reason, Priority: x.Priority, Enabled: &en, Description: x.Description}
				}
			}
		}
	}
	p := pageFor(r, "Rules", map[string]any{"Rules": rs, "Form": form, "Audit": au, "Actions": []string{"review", "decline", "approve"}})
	if flash != "" {
		p.Flash = flash
	}
	u.render(w, status, "rules", p)
}

func (u *ui) saveRule(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		base, err := strconv.Atoi(r.PostFormValue("base_version"))
		if err != nil {
			base = -1
		}
		prio, err := strconv.Atoi(r.PostFormValue("priority"))
		if err != nil {
			prio = 1 << 30 // refused by validation with the field named
		}
		en := r.PostFormValue("enabled") == "on"
		form := ruleBody{RuleID: strings.TrimSpace(r.PostFormValue("rule_id")), BaseVersion: base, Expression: r.PostFormValue("expression"),
			Action: r.PostFormValue("action"), ReasonCode: strings.TrimSpace(r.PostFormValue("reason_code")), Priority: prio, Enabled: &en,
			Description: r.PostFormValue("description")}
		p, _ := principalOf(r)
		saved, err := a.scoring.SaveRule(r.Context(), p.Email, form.rule(), form.BaseVersion)
		if msg, ok := adminFlash(err); ok {
			u.showRules(a, w, r, http.StatusBadRequest, msg, &form)
			return
		} else if err != nil {
			a.fail(w, r, err)
			return
		}
		flash := "Saved " + saved.ID + " v" + strconv.Itoa(saved.Version) + "; scoring picks it up on its next refresh."
		http.Redirect(w, r, "/ui/admin/rules?flash="+url.QueryEscape(flash), http.StatusSeeOther)
	}
}

func (u *ui) toggleRule(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		version, err := strconv.Atoi(r.PostFormValue("version"))
		if err != nil {
			version = 0
		}
		enable := r.PostFormValue("enabled") == "true"
		p, _ := principalOf(r)
		saved, err := a.scoring.SetRuleEnabled(r.Context(), p.Email, chi.URLParam(r, "id"), version, enable)
		flash := ""
		if msg, ok := adminFlash(err); ok {
			flash = msg
		} else if err != nil {
			a.fail(w, r, err)
			return
		} else {
			state := "disabled"
			if saved.Enabled {
				state = "enabled"
			}
			flash = saved.ID + " " + state + " as v" + strconv.Itoa(saved.Version) + "."
		}
		http.Redirect(w, r, "/ui/admin/rules?flash="+url.QueryEscape(flash), http.StatusSeeOther)
	}
}

// adminFlash turns the errors an admin can fix into a message for the page.
func adminFlash(err error) (string, bool) {
	var inv *cases.InvalidError
	switch {
	case err == nil:
		return "", false
	case errors.As(err, &inv):
		return "Not saved: " + inv.Error(), true
	case errors.Is(err, cases.ErrConflict):
		return "Not saved: someone changed it meanwhile (" + err.Error() + "); reload and try again.", true
	case errors.Is(err, cases.ErrNotFound):
		return "Not saved: it no longer exists.", true
	}
	return "", false
}

func (u *ui) listsPage(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { u.showLists(a, w, r, http.StatusOK, "", nil) }
}

type entryForm struct {
	List, Kind, Value, Reason, Expires string
}

func (u *ui) showLists(a *API, w http.ResponseWriter, r *http.Request, status int, flash string, form *entryForm) {
	es, err := a.scoring.Entries(r.Context(), 1000)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if form == nil {
		form = &entryForm{List: "block", Kind: "card"}
	}
	p := pageFor(r, "Lists", map[string]any{"Entries": es, "Form": form, "Kinds": lists.Kinds, "Now": time.Now()})
	if flash != "" {
		p.Flash = flash
	}
	u.render(w, status, "lists", p)
}

func (u *ui) putEntry(a *API) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		form := entryForm{List: r.PostFormValue("list"), Kind: r.PostFormValue("kind"), Value: strings.TrimSpace(r.PostFormValue("value")),
			Reason: r.PostFormValue("reason"), Expires: r.PostFormValue("expires_in")}
		e := lists.Entry{List: form.List, Kind: form.Kind, Value: form.Value, Reason: form.Reason}
		if form.Expires != "" {
			d, err := time.ParseDuration(form.Expires)
			if err != nil || d <= 0 {
				// The value is never echoed back in a refusal: it might be a card number.
				form.Value = ""
				u.showLists(a, w, r, http.StatusBadRequest, "Not saved: invalid expires_in: must be a positive duration such as 24h or 90m", &form)
				return
			}
			t := time.Now().Add(d)
			e.ExpiresAt = &t
		}
		p, _ := principalOf(r)
		_, err := a.scoring.PutEntry(r.Context(), p.Email, e)
		if msg, ok := adminFlash(err); ok {
			form.Value = ""
			u.showLists(a, w, r, http.StatusBadRequest, msg, &form)
			return
		} else if err != nil {
			a.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/ui/admin/lists?flash="+url.QueryEscape("Entry saved; scoring picks it up on its next refresh."), http.StatusSeeOther)
	}
}

func (u *ui) endEntry(a *API, expire bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, _ := principalOf(r)
		end, done := a.scoring.RemoveEntry, "Entry removed."
		if expire {
			end, done = a.scoring.ExpireEntry, "Entry expired."
		}
		err := end(r.Context(), p.Email, r.PostFormValue("list"), r.PostFormValue("kind"), r.PostFormValue("value"))
		flash := done
		if msg, ok := adminFlash(err); ok {
			flash = msg
		} else if err != nil {
			a.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/ui/admin/lists?flash="+url.QueryEscape(flash), http.StatusSeeOther)
	}
}
