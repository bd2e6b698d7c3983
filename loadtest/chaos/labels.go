package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"time"
)

// LabelResult is one label change an analyst asked for.
type LabelResult struct {
	CaseID  string `json:"case_id"`
	Value   string `json:"value"`
	Version int64  `json:"version"` // the case version the change created (when Done)
	Done    bool   `json:"done"`    // acknowledged, or found applied after a cut-off attempt
	Tries   int    `json:"tries"`
}

// Analyst labels open cases through the alerting API while the faults run, so label changes
// cross restarts of alerting, the broker and Postgres like everything else.
type Analyst struct {
	URL      string
	Email    string
	Password string
	Every    time.Duration
	Seed     uint64
	Log      *slog.Logger

	client  *http.Client
	cookie  string
	csrf    string
	results []LabelResult
}

// CreateAnalyst adds the analyst account with the alerting CLI (the password goes through the
// environment, never a flag).
func CreateAnalyst(ctx context.Context, bin string, env []string, email, password string) error {
	cmd := exec.CommandContext(ctx, bin, "user", "create", "--email", email, "--role", "analyst")
	cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...),
		"VIGIL_ALERTING_NEW_PASSWORD="+password, "VIGIL_ALERTING_BCRYPT_COST=4")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("alerting user create: %w: %s", err, out)
	}
	return nil
}

// Run labels one unlabelled case every a.Every until ctx ends.
func (a *Analyst) Run(ctx context.Context) []LabelResult {
	a.client = &http.Client{Timeout: 10 * time.Second}
	rng := rand.New(rand.NewPCG(a.Seed, 13))
	tick := time.NewTicker(a.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return a.results
		case <-tick.C:
		}
		if a.cookie == "" {
			if err := a.login(ctx); err != nil {
				continue
			}
		}
		c, err := a.pick(ctx)
		if err != nil || c == nil {
			continue
		}
		value := "legitimate"
		if rng.IntN(3) == 0 {
			value = "fraud"
		}
		a.results = append(a.results, a.label(ctx, c.CaseID, c.Version, value))
	}
}

type caseView struct {
	CaseID  string `json:"case_id"`
	Label   string `json:"label"`
	Version int64  `json:"version"`
}

func (a *Analyst) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.cookie != "" {
		req.Header.Set("Cookie", a.cookie)
		req.Header.Set("X-CSRF-Token", a.csrf)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && path == "/login" {
		for _, c := range resp.Cookies() {
			a.cookie = c.Name + "=" + c.Value
		}
	}
	if resp.StatusCode == http.StatusUnauthorized && path != "/login" {
		a.cookie = "" // the session is gone: log in again
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func (a *Analyst) login(ctx context.Context) error {
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	a.cookie = ""
	st, err := a.do(ctx, http.MethodPost, "/login", map[string]string{"email": a.Email, "password": a.Password}, &out)
	if err != nil || st != http.StatusOK {
		a.cookie = ""
		return fmt.Errorf("login: %d %v", st, err)
	}
	a.csrf = out.CSRF
	return nil
}

func (a *Analyst) pick(ctx context.Context) (*caseView, error) {
	var out struct {
		Cases []caseView `json:"cases"`
	}
	st, err := a.do(ctx, http.MethodGet, "/v1/cases", nil, &out)
	if err != nil || st != http.StatusOK {
		return nil, fmt.Errorf("queue: %d %v", st, err)
	}
	for _, c := range out.Cases {
		if c.Label == "" {
			return &c, nil
		}
	}
	return nil, nil
}

// label applies one change, retrying through outages: after an attempt whose answer was lost,
// the case is read back, and a change found applied is not made again.
func (a *Analyst) label(ctx context.Context, id string, version int64, value string) LabelResult {
	r := LabelResult{CaseID: id, Value: value}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		r.Tries++
		var out caseView
		st, err := a.do(ctx, http.MethodPost, "/v1/cases/"+id+"/label", map[string]any{"version": version, "label": value, "note": "chaos"}, &out)
		if err == nil && st == http.StatusOK {
			r.Done, r.Version = true, out.Version
			return r
		}
		if err == nil && st/100 == 4 && st != http.StatusConflict && st != http.StatusUnauthorized && st != http.StatusTooManyRequests {
			a.Log.Warn("label refused", "case", id, "status", st)
			return r
		}
		time.Sleep(500 * time.Millisecond)
		if a.cookie == "" {
			_ = a.login(ctx)
		}
		var c caseView // the case detail embeds the case's fields
		if st, err := a.do(ctx, http.MethodGet, "/v1/cases/"+id, nil, &c); err == nil && st == http.StatusOK {
			if c.Label == value && c.Version > version {
				// An earlier attempt landed although its answer was lost.
				r.Done, r.Version = true, c.Version
				return r
			}
			version = c.Version
		}
	}
	return r
}
