// Package cases holds the analyst-facing rules of cases: which queue filters are valid, which
// labels exist, what a reason code means in words. It does no I/O.
package cases

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error kinds the HTTP layer maps to statuses.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("version conflict")
	ErrInvalid   = errors.New("invalid")
	ErrForbidden = errors.New("forbidden")
)

// FieldError names one bad input field.
type FieldError struct {
	Field  string
	Detail string
}

// InvalidError carries every bad field of one request.
type InvalidError struct{ Fields []FieldError }

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Detail
	}
	return "invalid " + strings.Join(parts, "; ")
}

func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Label values an analyst can give.
const (
	LabelFraud      = "fraud"
	LabelLegitimate = "legitimate"
	LabelUnsure     = "unsure"
)

// ValidLabel reports whether v is a label value.
func ValidLabel(v string) bool {
	return v == LabelFraud || v == LabelLegitimate || v == LabelUnsure
}

// Sort orders of the queue.
var sorts = map[string]bool{"score_desc": true, "score_asc": true, "age_desc": true, "age_asc": true}

// Filter selects and orders the queue. Zero values mean "any".
type Filter struct {
	Status   string // open, closed, or "" for both
	Action   string // review, decline
	MinScore float64
	MaxScore float64
	// MinAge and MaxAge bound how long ago the case was opened.
	MinAge   time.Duration
	MaxAge   time.Duration
	Assignee string // an email, "none" for unassigned, "" for any
	Sort     string
	Limit    int
	// Offset is the old deep-paging parameter, kept for existing callers; After replaces it.
	Offset int
	// After continues the queue after this row of the same sort order (keyset pagination).
	After *Cursor
}

// Cursor is the last row of a page in the queue's sort order: every sort ends in case_id, so
// (score or created_at, case_id) is unique and the next page starts strictly after it.
type Cursor struct {
	Sort      string    `json:"o"`
	Score     float64   `json:"s"`
	CreatedAt time.Time `json:"t"`
	CaseID    string    `json:"i"`
}

// Encode is the opaque cursor string the API hands out.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes a cursor made by Encode for sort.
func ParseCursor(s, sort string) (*Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 512 {
		return nil, errors.New("is not a cursor this API returned (next_cursor)")
	}
	var c Cursor
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.CaseID == "" || c.CreatedAt.IsZero() || c.Score < 0 || c.Score > 1 {
		return nil, errors.New("is not a cursor this API returned (next_cursor)")
	}
	if c.Sort != sort {
		return nil, fmt.Errorf("was issued for sort %s; repeat the same filters and sort with it", c.Sort)
	}
	return &c, nil
}

// MaxNoteLen bounds analyst notes.
const MaxNoteLen = 4000

// ParseFilter reads the queue query string, reporting every bad field.
func ParseFilter(q url.Values) (Filter, error) {
	f := Filter{Status: "open", MaxScore: 1, Sort: "score_desc", Limit: 50}
	var bad []FieldError
	known := map[string]bool{"status": true, "action": true, "min_score": true, "max_score": true, "min_age": true,
		"max_age": true, "assignee": true, "sort": true, "limit": true, "offset": true, "cursor": true}
	for k := range q {
		if !known[k] {
			bad = append(bad, FieldError{k, "unknown filter"})
		}
	}
	if q.Has("status") {
		switch s := q.Get("status"); s {
		case "open", "closed":
			f.Status = s
		case "any":
			f.Status = ""
		default:
			bad = append(bad, FieldError{"status", "must be open, closed or any"})
		}
	}
	if q.Has("action") {
		switch a := q.Get("action"); a {
		case "review", "decline":
			f.Action = a
		default:
			bad = append(bad, FieldError{"action", "must be review or decline"})
		}
	}
	score := func(name string, dst *float64) {
		if !q.Has(name) {
			return
		}
		v, err := strconv.ParseFloat(q.Get(name), 64)
		if err != nil || v < 0 || v > 1 {
			bad = append(bad, FieldError{name, "must be a number in [0, 1]"})
			return
		}
		*dst = v
	}
	score("min_score", &f.MinScore)
	score("max_score", &f.MaxScore)
	age := func(name string, dst *time.Duration) {
		if !q.Has(name) {
			return
		}
		d, err := time.ParseDuration(q.Get(name))
		if err != nil || d < 0 {
			bad = append(bad, FieldError{name, "must be a non-negative duration such as 90m or 24h"})
			return
		}
		*dst = d
	}
	age("min_age", &f.MinAge)
	age("max_age", &f.MaxAge)
	if q.Has("assignee") {
		a := q.Get("assignee")
		if a == "" || len(a) > 254 {
			bad = append(bad, FieldError{"assignee", "must be an email or none"})
		}
		f.Assignee = a
	}
	if q.Has("sort") {
		if s := q.Get("sort"); sorts[s] {
			f.Sort = s
		} else {
			bad = append(bad, FieldError{"sort", "must be score_desc, score_asc, age_desc or age_asc"})
		}
	}
	intIn := func(name string, lo, hi int, dst *int) {
		if !q.Has(name) {
			return
		}
		n, err := strconv.Atoi(q.Get(name))
		if err != nil || n < lo || n > hi {
			bad = append(bad, FieldError{name, fmt.Sprintf("must be an integer in [%d, %d]", lo, hi)})
			return
		}
		*dst = n
	}
	intIn("limit", 1, 500, &f.Limit)
	intIn("offset", 0, 100000, &f.Offset)
	if q.Has("cursor") {
		switch c, err := ParseCursor(q.Get("cursor"), f.Sort); {
		case err != nil:
			bad = append(bad, FieldError{"cursor", err.Error()})
		case q.Has("offset"):
			bad = append(bad, FieldError{"cursor", "cannot be combined with offset"})
		default:
			f.After = c
		}
	}
	if len(bad) == 0 && f.MinScore > f.MaxScore {
		bad = append(bad, FieldError{"min_score", "must not exceed max_score"})
	}
	if len(bad) == 0 && f.MaxAge > 0 && f.MinAge > f.MaxAge {
		bad = append(bad, FieldError{"min_age", "must not exceed max_age"})
	}
	if len(bad) > 0 {
		return f, &InvalidError{Fields: bad}
	}
	return f, nil
}

// reasonWords explains the reason codes scoring emits. Unknown codes fall back to the
// description the decision carries.
var reasonWords = map[string]string{
	"MODEL_SCORE_HIGH":     "The fraud model's score is above the decline threshold.",
	"MODEL_SCORE_ELEVATED": "The fraud model's score is above the review threshold.",
	"DEGRADED":             "The model was unavailable; only rules and lists decided.",
	"LIST_BLOCK":           "A value of the transaction is on the block list.",
	"LIST_ALLOW":           "A value of the transaction is on the allow list.",
	"FEATURE:":             "A feature that pushed the score up:",
}

// ReasonDegraded marks a decision made without the model (rules and lists only).
const ReasonDegraded = "DEGRADED"

// metadataReasons are codes older scoring versions appended to carry data the Decision message
// had no field for. They are not reasons an analyst should read.
var metadataReasons = map[string]bool{"INPUT_HASH": true, "ACCOUNT_WINDOW": true, "SHADOW_SCORE": true, ReasonDegraded: true}

// ReasonCode is the part of a reason SplitReasons looks at.
type ReasonCode struct{ Code, Description string }

// SplitReasons drops the metadata pseudo-reasons from codes and reports whether the decision
// was degraded (stored flag or the old DEGRADED code) and why, when the code said so. It
// returns the indexes of the reasons to show.
func SplitReasons(codes []ReasonCode, storedDegraded bool) (keep []int, degraded bool, why string) {
	degraded = storedDegraded
	for i, c := range codes {
		if c.Code == ReasonDegraded {
			degraded, why = true, c.Description
		}
		if !metadataReasons[c.Code] {
			keep = append(keep, i)
		}
	}
	return keep, degraded, why
}

// ExplainReason returns a reason in words.
func ExplainReason(code, description string) string {
	if w, ok := reasonWords[code]; ok {
		return w
	}
	if name, ok := strings.CutPrefix(code, "FEATURE:"); ok {
		return "The feature " + strings.ReplaceAll(name, "_", " ") + " pushed the score up."
	}
	if strings.HasPrefix(code, "LIST_BLOCK") {
		return reasonWords["LIST_BLOCK"] + " " + description
	}
	if description != "" {
		return description
	}
	return "Reason code " + code + "."
}
