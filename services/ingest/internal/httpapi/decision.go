package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/services/ingest/internal/store"
)

// decisionResponse is the body of GET .../decision and of a POST answered in sync mode.
type decisionResponse struct {
	ID           string          `json:"id"`
	Status       string          `json:"status"`
	Action       string          `json:"action"`
	Score        float64         `json:"score"`
	Reasons      json.RawMessage `json:"reasons"`
	ModelVersion string          `json:"model_version"`
	DecidedAt    time.Time       `json:"decided_at"`
	DecisionURL  string          `json:"decision_url"`
}

func toDecisionResponse(d store.Decision) decisionResponse {
	reasons := d.Reasons
	if len(reasons) == 0 {
		reasons = json.RawMessage("[]")
	}
	return decisionResponse{ID: d.TransactionID, Status: "decided", Action: d.Action, Score: d.Score,
		Reasons: reasons, ModelVersion: d.ModelVersion, DecidedAt: d.DecidedAt.UTC(), DecisionURL: decisionURL(d.TransactionID)}
}

var errNoDecisions = errors.New("decisions are not configured")

func (a *API) decision(ctx context.Context, id string) (store.Decision, error) {
	if a.dec == nil {
		return store.Decision{}, errNoDecisions
	}
	return a.dec.Decision(ctx, id)
}

func (a *API) getDecision() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		p, ok := a.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			httpserver.WriteProblem(w, httpserver.Problem{Status: http.StatusUnauthorized,
				Detail: "send a valid API key as Authorization: Bearer <key>"})
			return
		}
		notFound := httpserver.Problem{Status: http.StatusNotFound,
			Detail: "no decision for this transaction yet; it is usually there within a second of acceptance"}
		// chi routes on the escaped path when the client escaped more than it had to, and then
		// hands the segment over escaped: "acme%3Atx-1" (encodeURIComponent escapes ':') is
		// the id acme:tx-1.
		id, err := url.PathUnescape(chi.URLParam(r, "id"))
		// Another source's transaction answers exactly like an unknown one, so ids of other
		// payment systems cannot be probed.
		if err != nil || !strings.HasPrefix(id, p.Source+":") {
			httpserver.WriteProblem(w, notFound)
			return
		}
		d, err := a.decision(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			httpserver.WriteProblem(w, notFound)
			return
		case err != nil:
			a.logError(ctx, "read decision", "id", id, "err", err)
			a.retryLater(http.StatusServiceUnavailable, "decisions are unavailable; retry later", a.cfg.RetryAfter).write(w)
			return
		}
		jsonResponse(http.StatusOK, toDecisionResponse(d)).write(w)
	}
}

// preferWait reads "wait=<ms>" (RFC 7240) from a Prefer header, capped at MaxWait.
func (a *API) preferWait(prefer string) (time.Duration, bool) {
	if prefer == "" || a.cfg.MaxWait <= 0 {
		return 0, false
	}
	for pref := range strings.SplitSeq(prefer, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(strings.SplitN(pref, ";", 2)[0]), "=")
		if !strings.EqualFold(strings.TrimSpace(name), "wait") {
			continue
		}
		ms, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(value), `"`), 10, 64)
		if err != nil || ms <= 0 {
			return 0, false
		}
		// Cap before converting: wait=9223372036855 would overflow a Duration into a negative wait.
		if ms >= a.cfg.MaxWait.Milliseconds() {
			return a.cfg.MaxWait, true
		}
		return time.Duration(ms) * time.Millisecond, true
	}
	return 0, false
}

// awaitDecision polls for the decision on id until wait passes: 200 with it, else 202. The
// transaction is already accepted, so a decision store failure still answers 202.
func (a *API) awaitDecision(ctx context.Context, id string, wait time.Duration) response {
	applied := map[string]string{"Preference-Applied": "wait=" + strconv.FormatInt(wait.Milliseconds(), 10)}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(a.cfg.WaitPoll)
	defer t.Stop()
	for {
		d, err := a.decision(wctx, id)
		if err == nil {
			resp := jsonResponse(http.StatusOK, toDecisionResponse(d))
			resp.header = applied
			return resp
		}
		if !errors.Is(err, store.ErrNotFound) && wctx.Err() == nil {
			a.log.WarnContext(ctx, "read decision while waiting", "id", id, "err", err)
		}
		select {
		case <-wctx.Done():
			resp := jsonResponse(http.StatusAccepted, accepted(id))
			resp.header = applied
			return resp
		case <-t.C:
		}
	}
}
