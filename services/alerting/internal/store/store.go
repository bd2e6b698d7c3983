// Package store is the Postgres adapter of the alerting service: the decision sink handler
// that raises alerts and cases, the analyst queue and case reads, and every case change with
// its audit row and label outbox rows in one transaction.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/alerting/internal/cases"
)

// Store reads and changes alerts and cases.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// New returns the store.
func New(pool *pgxpool.Pool, log *slog.Logger) *Store { return &Store{pool: pool, log: log} }

// Pool exposes the pool to the adapters that share it (auth sessions, relays).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

func hashID(prefix, s string) string {
	sum := sha256.Sum256([]byte(prefix + ":" + s))
	return prefix + "_" + hex.EncodeToString(sum[:12])
}

// AlertID is derived from the decision id: a replayed decision maps to the same alert.
func AlertID(decisionID string) string { return hashID("alr", decisionID) }

// caseIDFor names the case a decision opens when the account has none open; a replay of that
// decision opens the same id.
func caseIDFor(decisionID string) string { return hashID("cas", decisionID) }

// Raises reports whether a decision needs an analyst.
func Raises(a fraudv1.Action) bool {
	return a == fraudv1.Action_ACTION_REVIEW || a == fraudv1.Action_ACTION_DECLINE
}

// raiseAlert inserts the alert and folds it into the account's open case (opening one), in one
// statement. A decision already alerted changes nothing: the fresh CTE is empty.
const raiseAlert = `WITH fresh AS (
    SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE decision_id = $2)
), c AS (
    INSERT INTO cases (case_id, account_id, top_action, max_score, alert_count)
    SELECT $7, $4, $5, $6, 1 FROM fresh
    ON CONFLICT (account_id) WHERE status = 'open' DO UPDATE SET
        max_score = GREATEST(cases.max_score, EXCLUDED.max_score),
        top_action = CASE WHEN EXCLUDED.top_action = 'decline' THEN 'decline' ELSE cases.top_action END,
        alert_count = cases.alert_count + 1,
        updated_at = now()
    RETURNING case_id
)
INSERT INTO alerts (alert_id, decision_id, transaction_id, account_id, action, score, case_id)
SELECT $1, $2, $3, $4, $5, $6, c.case_id FROM c`

// queueWebhooks writes one delivery per subscribed endpoint; ids are derived from the alert so
// a replay adds nothing.
const queueWebhooks = `INSERT INTO webhook_deliveries (delivery_id, subscription_id, event_type, payload)
SELECT 'whd_' || md5(s.subscription_id || ':' || a.alert_id), s.subscription_id, 'alert.created',
       jsonb_build_object('type', 'alert.created', 'alert_id', a.alert_id, 'case_id', a.case_id,
           'decision_id', a.decision_id, 'transaction_id', a.transaction_id, 'account_id', a.account_id,
           'action', a.action, 'score', a.score, 'created_at', a.created_at)
FROM alerts a JOIN webhook_subscriptions s ON s.active AND 'alert.created' = ANY (s.event_types)
WHERE a.alert_id = $1
ON CONFLICT (delivery_id) DO NOTHING`

// Apply is the libs/sink handler: every review or decline decision of the batch becomes an
// alert in its account's open case, with its webhook deliveries, in the sink's transaction.
func (s *Store) Apply(ctx context.Context, tx pgx.Tx, recs []*kgo.Record) error {
	// Read in the sink's transaction: a subscription created meanwhile gets the alerts of the
	// next batch, never half of this one.
	var hooks bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_subscriptions WHERE active)`).Scan(&hooks); err != nil {
		return fmt.Errorf("webhook subscriptions: %w", err)
	}
	batch := &pgx.Batch{}
	for _, r := range recs {
		d := &fraudv1.Decision{}
		if err := kafka.Decode(r, d); err != nil {
			s.log.Error("skipping undecodable decision", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if !Raises(d.GetAction()) {
			continue
		}
		action := "review"
		if d.GetAction() == fraudv1.Action_ACTION_DECLINE {
			action = "decline"
		}
		id := AlertID(d.GetDecisionId())
		batch.Queue(raiseAlert, id, d.GetDecisionId(), d.GetTransactionId(), d.GetAccountId(), action, d.GetScore(),
			caseIDFor(d.GetDecisionId()))
		if hooks {
			batch.Queue(queueWebhooks, id)
		}
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("raise alerts of %d records: %w", len(recs), err)
	}
	return nil
}

// Alert is one row of the machine alert list.
type Alert struct {
	AlertID       string    `json:"alert_id"`
	CaseID        string    `json:"case_id,omitempty"`
	DecisionID    string    `json:"decision_id"`
	TransactionID string    `json:"transaction_id"`
	AccountID     string    `json:"account_id"`
	Action        string    `json:"action"`
	Score         float64   `json:"score"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
}

// Open lists open alerts, highest score first.
func (s *Store) Open(ctx context.Context, limit int) ([]Alert, error) {
	rows, err := s.pool.Query(ctx, `SELECT alert_id, coalesce(case_id, ''), decision_id, transaction_id, account_id, action, score, status, created_at
		FROM alerts WHERE status = 'open' ORDER BY score DESC, created_at LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Alert, error) {
		var a Alert
		err := row.Scan(&a.AlertID, &a.CaseID, &a.DecisionID, &a.TransactionID, &a.AccountID, &a.Action, &a.Score, &a.Status, &a.CreatedAt)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// Case is a case as the queue and the detail page show it.
type Case struct {
	CaseID     string     `json:"case_id"`
	AccountID  string     `json:"account_id"`
	Status     string     `json:"status"`
	Assignee   string     `json:"assignee,omitempty"`
	Label      string     `json:"label,omitempty"`
	LabelNote  string     `json:"label_note,omitempty"`
	TopAction  string     `json:"top_action"`
	MaxScore   float64    `json:"max_score"`
	AlertCount int        `json:"alert_count"`
	Version    int64      `json:"version"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	ClosedAt   *time.Time `json:"closed_at,omitempty"`
}

const caseColumns = `case_id, account_id, status, coalesce(assignee, ''), coalesce(label, ''), label_note, top_action,
	max_score, alert_count, version, created_at, updated_at, closed_at`

func scanCase(row pgx.Row) (Case, error) {
	var c Case
	err := row.Scan(&c.CaseID, &c.AccountID, &c.Status, &c.Assignee, &c.Label, &c.LabelNote, &c.TopAction,
		&c.MaxScore, &c.AlertCount, &c.Version, &c.CreatedAt, &c.UpdatedAt, &c.ClosedAt)
	return c, err
}

// Queue lists cases by filter. Every order ends in case_id so pages are stable.
func (s *Store) Queue(ctx context.Context, f cases.Filter) ([]Case, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.Status != "" {
		where = append(where, "status = "+arg(f.Status))
	}
	if f.Action != "" {
		where = append(where, "top_action = "+arg(f.Action))
	}
	if f.MinScore > 0 {
		where = append(where, "max_score >= "+arg(f.MinScore))
	}
	if f.MaxScore < 1 {
		where = append(where, "max_score <= "+arg(f.MaxScore))
	}
	if f.MinAge > 0 {
		where = append(where, "created_at <= now() - "+arg(f.MinAge)+"::interval")
	}
	if f.MaxAge > 0 {
		where = append(where, "created_at >= now() - "+arg(f.MaxAge)+"::interval")
	}
	switch f.Assignee {
	case "":
	case "none":
		where = append(where, "assignee IS NULL")
	default:
		where = append(where, "assignee = "+arg(f.Assignee))
	}
	if c := f.After; c != nil {
		// Mixed directions (score DESC, case_id ASC) cannot use a row comparison. The OR alone
		// is no index bound (measured: as slow as OFFSET); the extra <= gives the index scan its
		// start, so it begins at the cursor in cases_status_score_idx / cases_status_created_idx.
		switch f.Sort {
		case "score_asc":
			where = append(where, "(max_score, case_id) > ("+arg(c.Score)+"::double precision, "+arg(c.CaseID)+")")
		case "age_desc":
			where = append(where, "(created_at, case_id) > ("+arg(c.CreatedAt)+"::timestamptz, "+arg(c.CaseID)+")")
		case "age_asc":
			t, id := arg(c.CreatedAt), arg(c.CaseID)
			where = append(where, "created_at <= "+t+" AND (created_at < "+t+" OR case_id > "+id+")")
		default:
			sc, id := arg(c.Score), arg(c.CaseID)
			where = append(where, "max_score <= "+sc+" AND (max_score < "+sc+" OR case_id > "+id+")")
		}
	}
	order := map[string]string{
		"score_desc": "max_score DESC, case_id",
		"score_asc":  "max_score ASC, case_id",
		"age_desc":   "created_at ASC, case_id", // oldest first
		"age_asc":    "created_at DESC, case_id",
	}[f.Sort]
	if order == "" {
		order = "max_score DESC, case_id"
	}
	q := "SELECT " + caseColumns + " FROM cases"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + order + " LIMIT " + arg(f.Limit)
	if f.Offset > 0 {
		q += " OFFSET " + arg(f.Offset)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Case, error) { return scanCase(r) })
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return out, nil
}

// NextCursor is the cursor of the page after page, or "" when page was the last one.
func NextCursor(f cases.Filter, page []Case) string {
	if len(page) < f.Limit || len(page) == 0 {
		return ""
	}
	last := page[len(page)-1]
	return cases.Cursor{Sort: f.Sort, Score: last.MaxScore, CreatedAt: last.CreatedAt, CaseID: last.CaseID}.Encode()
}

// Reason is a decision reason with its explanation.
type Reason struct {
	Code        string  `json:"code"`
	Description string  `json:"description,omitempty"`
	Weight      float64 `json:"weight,omitempty"`
	Words       string  `json:"words"`
}

// CaseAlert is an alert of a case with its transaction and decision.
type CaseAlert struct {
	AlertID          string    `json:"alert_id"`
	DecisionID       string    `json:"decision_id"`
	TransactionID    string    `json:"transaction_id"`
	Action           string    `json:"action"`
	Score            float64   `json:"score"`
	CreatedAt        time.Time `json:"created_at"`
	AmountMinor      int64     `json:"amount_minor"`
	Currency         string    `json:"currency"`
	ReceivedAt       time.Time `json:"received_at"`
	ModelVersion     string    `json:"model_version"`
	RuleSetVersion   string    `json:"rule_set_version"`
	ReviewThreshold  float64   `json:"review_threshold"`
	DeclineThreshold float64   `json:"decline_threshold"`
	Reasons          []Reason  `json:"reasons"`
	// Degraded: decided from rules and lists only, without the model.
	Degraded    bool               `json:"degraded"`
	DegradedWhy string             `json:"degraded_reason,omitempty"`
	Features    map[string]float64 `json:"features"`
}

// HistoryDecision is one of the account's recent decisions.
type HistoryDecision struct {
	DecisionID    string    `json:"decision_id"`
	TransactionID string    `json:"transaction_id"`
	Action        string    `json:"action"`
	Score         float64   `json:"score"`
	AmountMinor   int64     `json:"amount_minor"`
	Currency      string    `json:"currency"`
	DecidedAt     time.Time `json:"decided_at"`
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	Actor  string          `json:"actor"`
	At     time.Time       `json:"at"`
	Action string          `json:"action"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// CaseDetail is everything the case page shows.
type CaseDetail struct {
	Case
	Alerts          []CaseAlert       `json:"alerts"`
	RecentDecisions []HistoryDecision `json:"recent_decisions"`
	PreviousCases   []Case            `json:"previous_cases"`
	Audit           []AuditEntry      `json:"audit"`
}

// Case reads one case with its alerts, the account's history and its audit trail.
func (s *Store) Case(ctx context.Context, id string) (CaseDetail, error) {
	var d CaseDetail
	c, err := scanCase(s.pool.QueryRow(ctx, "SELECT "+caseColumns+" FROM cases WHERE case_id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("case %s: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("case %s: %w", id, err)
	}
	d.Case = c
	rows, err := s.pool.Query(ctx, `SELECT a.alert_id, a.decision_id, a.transaction_id, a.action, a.score, a.created_at,
		coalesce(d.amount_minor, 0), coalesce(d.currency, ''), coalesce(d.received_at, a.created_at), coalesce(d.model_version, ''),
		coalesce(d.rule_set_version, ''), coalesce(d.review_threshold, 0), coalesce(d.decline_threshold, 0),
		coalesce(d.reasons, '[]'), coalesce(d.features, '{}'), coalesce(d.degraded, false)
		FROM alerts a LEFT JOIN decisions d USING (decision_id) WHERE a.case_id = $1 ORDER BY a.created_at, a.alert_id`, id)
	if err != nil {
		return d, fmt.Errorf("alerts of case %s: %w", id, err)
	}
	d.Alerts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (CaseAlert, error) {
		var a CaseAlert
		var reasons, feats []byte
		if err := r.Scan(&a.AlertID, &a.DecisionID, &a.TransactionID, &a.Action, &a.Score, &a.CreatedAt, &a.AmountMinor, &a.Currency,
			&a.ReceivedAt, &a.ModelVersion, &a.RuleSetVersion, &a.ReviewThreshold, &a.DeclineThreshold, &reasons, &feats, &a.Degraded); err != nil {
			return a, err
		}
		var all []Reason
		if err := json.Unmarshal(reasons, &all); err != nil {
			return a, fmt.Errorf("reasons of %s: %w", a.DecisionID, err)
		}
		codes := make([]cases.ReasonCode, len(all))
		for i, r := range all {
			codes[i] = cases.ReasonCode{Code: r.Code, Description: r.Description}
		}
		keep, degraded, why := cases.SplitReasons(codes, a.Degraded)
		a.Degraded, a.DegradedWhy = degraded, why
		a.Reasons = make([]Reason, 0, len(keep))
		for _, i := range keep {
			r := all[i]
			r.Words = cases.ExplainReason(r.Code, r.Description)
			a.Reasons = append(a.Reasons, r)
		}
		if err := json.Unmarshal(feats, &a.Features); err != nil {
			return a, fmt.Errorf("features of %s: %w", a.DecisionID, err)
		}
		return a, nil
	})
	if err != nil {
		return d, fmt.Errorf("alerts of case %s: %w", id, err)
	}
	rows, err = s.pool.Query(ctx, `SELECT decision_id, transaction_id, action, score, amount_minor, currency, decided_at
		FROM decisions WHERE account_id = $1 ORDER BY decided_at DESC LIMIT 20`, c.AccountID)
	if err != nil {
		return d, fmt.Errorf("history of %s: %w", c.AccountID, err)
	}
	d.RecentDecisions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryDecision, error) {
		var h HistoryDecision
		err := r.Scan(&h.DecisionID, &h.TransactionID, &h.Action, &h.Score, &h.AmountMinor, &h.Currency, &h.DecidedAt)
		return h, err
	})
	if err != nil {
		return d, fmt.Errorf("history of %s: %w", c.AccountID, err)
	}
	rows, err = s.pool.Query(ctx, "SELECT "+caseColumns+` FROM cases WHERE account_id = $1 AND case_id <> $2
		ORDER BY created_at DESC LIMIT 20`, c.AccountID, id)
	if err != nil {
		return d, fmt.Errorf("previous cases of %s: %w", c.AccountID, err)
	}
	d.PreviousCases, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Case, error) { return scanCase(r) })
	if err != nil {
		return d, fmt.Errorf("previous cases of %s: %w", c.AccountID, err)
	}
	rows, err = s.pool.Query(ctx, `SELECT actor, at, action, before, after FROM audit_log
		WHERE entity = 'case' AND entity_id = $1 ORDER BY audit_id`, id)
	if err != nil {
		return d, fmt.Errorf("audit of %s: %w", id, err)
	}
	d.Audit, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.Actor, &e.At, &e.Action, &e.Before, &e.After)
		return e, err
	})
	if err != nil {
		return d, fmt.Errorf("audit of %s: %w", id, err)
	}
	return d, nil
}

// Change is one analyst action on a case, made against the version the analyst saw.
type Change struct {
	Kind     string // claim, assign, label, close, reopen
	Actor    string
	Version  int64
	Assignee string // assign
	Label    string // label
	Note     string // label
}

// auditState is what before → after shows of a case.
type auditState struct {
	Status    string `json:"status"`
	Assignee  string `json:"assignee,omitempty"`
	Label     string `json:"label,omitempty"`
	LabelNote string `json:"label_note,omitempty"`
	Version   int64  `json:"version"`
}

func stateOf(c Case) auditState {
	return auditState{Status: c.Status, Assignee: c.Assignee, Label: c.Label, LabelNote: c.LabelNote, Version: c.Version}
}

// ValidateChange checks a change without I/O.
func ValidateChange(ch Change) error {
	var bad []cases.FieldError
	if ch.Version < 1 {
		bad = append(bad, cases.FieldError{Field: "version", Detail: "must be the case version you saw (>= 1)"})
	}
	switch ch.Kind {
	case "claim", "close", "reopen":
	case "assign":
		if ch.Assignee == "" || len(ch.Assignee) > 254 || !strings.Contains(ch.Assignee, "@") {
			bad = append(bad, cases.FieldError{Field: "assignee", Detail: "must be an analyst's email"})
		}
	case "label":
		if !cases.ValidLabel(ch.Label) {
			bad = append(bad, cases.FieldError{Field: "label", Detail: "must be fraud, legitimate or unsure"})
		}
		if len(ch.Note) > cases.MaxNoteLen {
			bad = append(bad, cases.FieldError{Field: "note", Detail: fmt.Sprintf("must be at most %d characters", cases.MaxNoteLen)})
		}
	default:
		bad = append(bad, cases.FieldError{Field: "action", Detail: "must be claim, assign, label, close or reopen"})
	}
	if len(bad) > 0 {
		return &cases.InvalidError{Fields: bad}
	}
	return nil
}

// Change applies ch to case id: optimistic concurrency on version, one audit row, and for labels
// the label rows and their labels.v1 outbox rows, all in one transaction.
func (s *Store) Change(ctx context.Context, id string, ch Change) (Case, error) {
	if err := ValidateChange(ch); err != nil {
		return Case{}, err
	}
	var out Case
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		before, err := scanCase(tx.QueryRow(ctx, "SELECT "+caseColumns+" FROM cases WHERE case_id = $1 FOR UPDATE", id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("case %s: %w", id, cases.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("lock case %s: %w", id, err)
		}
		if before.Version != ch.Version {
			return fmt.Errorf("case %s is at version %d, not %d: %w", id, before.Version, ch.Version, cases.ErrConflict)
		}
		after := before
		after.Version++
		switch ch.Kind {
		case "claim":
			after.Assignee = ch.Actor
		case "assign":
			after.Assignee = ch.Assignee
		case "label":
			after.Label, after.LabelNote = ch.Label, ch.Note
		case "close":
			if before.Status == "closed" {
				return fmt.Errorf("case %s is already closed: %w", id, cases.ErrConflict)
			}
			after.Status = "closed"
		case "reopen":
			if before.Status == "open" {
				return fmt.Errorf("case %s is open: %w", id, cases.ErrConflict)
			}
			after.Status = "open"
		}
		if ch.Kind == "reopen" {
			// Only one open case per account: refuse rather than merge silently.
			var open bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM cases WHERE account_id = $1 AND status = 'open')`, before.AccountID).Scan(&open); err != nil {
				return fmt.Errorf("open case of %s: %w", before.AccountID, err)
			}
			if open {
				return fmt.Errorf("account %s already has an open case: %w", before.AccountID, cases.ErrConflict)
			}
		}
		out, err = scanCase(tx.QueryRow(ctx, `UPDATE cases SET status = $2, assignee = nullif($3, ''), label = nullif($4, ''),
			label_note = $5, version = $6, updated_at = now(),
			closed_at = CASE WHEN $2 = 'closed' THEN coalesce(closed_at, now()) ELSE NULL END
			WHERE case_id = $1 RETURNING `+caseColumns, id, after.Status, after.Assignee, after.Label, after.LabelNote, after.Version))
		if err != nil {
			return fmt.Errorf("update case %s: %w", id, err)
		}
		if before.Status != out.Status {
			if _, err := tx.Exec(ctx, `UPDATE alerts SET status = $2 WHERE case_id = $1`, id, out.Status); err != nil {
				return fmt.Errorf("alerts of case %s: %w", id, err)
			}
		}
		bj, _ := json.Marshal(stateOf(before))
		aj, _ := json.Marshal(stateOf(out))
		if _, err := tx.Exec(ctx, `INSERT INTO audit_log (actor, action, entity, entity_id, before, after)
			VALUES ($1, $2, 'case', $3, $4, $5)`, ch.Actor, ch.Kind, id, bj, aj); err != nil {
			return fmt.Errorf("audit case %s: %w", id, err)
		}
		if ch.Kind == "label" {
			return writeLabels(ctx, tx, out, ch.Actor)
		}
		return nil
	})
	return out, err
}

// writeLabels records the case's label on each of its transactions and queues each for
// labels.v1. label_id is derived from case, version and transaction: one change, one label.
func writeLabels(ctx context.Context, tx pgx.Tx, c Case, analyst string) error {
	rows, err := tx.Query(ctx, `SELECT a.transaction_id, coalesce(d.received_at, a.created_at)
		FROM alerts a LEFT JOIN decisions d USING (decision_id) WHERE a.case_id = $1`, c.CaseID)
	if err != nil {
		return fmt.Errorf("transactions of case %s: %w", c.CaseID, err)
	}
	type txn struct {
		id string
		at time.Time
	}
	txns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (txn, error) {
		var t txn
		err := r.Scan(&t.id, &t.at)
		return t, err
	})
	if err != nil {
		return fmt.Errorf("transactions of case %s: %w", c.CaseID, err)
	}
	now := time.Now().UTC()
	batch := &pgx.Batch{}
	for _, t := range txns {
		labelID := hashID("lbl", fmt.Sprintf("%s:%d:%s", c.CaseID, c.Version, t.id))
		msg := &fraudv1.Label{LabelId: labelID, TransactionId: t.id, AccountId: c.AccountID, Value: LabelValue(c.Label),
			Analyst: analyst, TransactionTime: timestamppb.New(t.at), LabelledTime: timestamppb.New(now)}
		payload, err := proto.Marshal(msg)
		if err != nil {
			return fmt.Errorf("encode label %s: %w", labelID, err)
		}
		batch.Queue(`INSERT INTO labels (label_id, case_id, case_version, transaction_id, account_id, value, analyst, note, transaction_time, labelled_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, labelID, c.CaseID, c.Version, t.id, c.AccountID, c.Label, analyst, c.LabelNote, t.at, now)
		batch.Queue(`INSERT INTO label_outbox (label_id, account_id, payload) VALUES ($1, $2, $3)`, labelID, c.AccountID, payload)
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("label case %s: %w", c.CaseID, err)
	}
	return nil
}

// LabelValue maps a label to its protobuf value.
func LabelValue(v string) fraudv1.LabelValue {
	switch v {
	case cases.LabelFraud:
		return fraudv1.LabelValue_LABEL_VALUE_FRAUD
	case cases.LabelLegitimate:
		return fraudv1.LabelValue_LABEL_VALUE_LEGITIMATE
	case cases.LabelUnsure:
		return fraudv1.LabelValue_LABEL_VALUE_UNSURE
	}
	return fraudv1.LabelValue_LABEL_VALUE_UNSPECIFIED
}

// Overview is the dashboard's numbers.
type Overview struct {
	DecisionsByAction map[string]int64 `json:"decisions_by_action"`
	// DecisionsPerSecond by action over the last minute.
	DecisionsPerSecond map[string]float64 `json:"decisions_per_second"`
	AlertsToday        int64              `json:"alerts_today"`
	AlertRate          float64            `json:"alert_rate"`
	LabelledCases      int64              `json:"labelled_cases"`
	FraudCases         int64              `json:"fraud_cases"`
	// Precision is fraud / (fraud + legitimate) over labelled cases; unsure ones are left out.
	Precision float64 `json:"precision"`
	OpenCases int64   `json:"open_cases"`
}

// Overview computes the dashboard numbers.
func (s *Store) Overview(ctx context.Context) (Overview, error) {
	o := Overview{DecisionsByAction: map[string]int64{}, DecisionsPerSecond: map[string]float64{}}
	rows, err := s.pool.Query(ctx, `SELECT action, count(*), count(*) FILTER (WHERE decided_at > now() - interval '1 minute')
		FROM decisions WHERE decided_at > now() - interval '1 day' GROUP BY action`)
	if err != nil {
		return o, fmt.Errorf("overview decisions: %w", err)
	}
	var total int64
	for rows.Next() {
		var a string
		var n, lastMin int64
		if err := rows.Scan(&a, &n, &lastMin); err != nil {
			rows.Close()
			return o, fmt.Errorf("overview decisions: %w", err)
		}
		o.DecisionsByAction[a] = n
		o.DecisionsPerSecond[a] = float64(lastMin) / 60
		total += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return o, fmt.Errorf("overview decisions: %w", err)
	}
	var legit int64
	if err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM alerts WHERE created_at > now() - interval '1 day'),
		(SELECT count(*) FROM cases WHERE status = 'open'),
		count(*) FILTER (WHERE label = 'fraud'), count(*) FILTER (WHERE label = 'legitimate'), count(*) FILTER (WHERE label IS NOT NULL)
		FROM cases WHERE label IS NOT NULL`).Scan(&o.AlertsToday, &o.OpenCases, &o.FraudCases, &legit, &o.LabelledCases); err != nil {
		return o, fmt.Errorf("overview cases: %w", err)
	}
	if total > 0 {
		o.AlertRate = float64(o.AlertsToday) / float64(total)
	}
	if o.FraudCases+legit > 0 {
		o.Precision = float64(o.FraudCases) / float64(o.FraudCases+legit)
	}
	return o, nil
}

// ExportLabels writes the latest label of each transaction through emit, oldest first.
func (s *Store) ExportLabels(ctx context.Context, emit func(transactionID, accountID, value, analyst string, txTime, labelledAt time.Time) error) error {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (transaction_id) transaction_id, account_id, value, analyst, transaction_time, labelled_at
		FROM labels ORDER BY transaction_id, labelled_at DESC, case_version DESC`)
	if err != nil {
		return fmt.Errorf("export labels: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tid, acc, v, an string
		var tt, lt time.Time
		if err := rows.Scan(&tid, &acc, &v, &an, &tt, &lt); err != nil {
			return fmt.Errorf("export labels: %w", err)
		}
		if err := emit(tid, acc, v, an, tt, lt); err != nil {
			return err
		}
	}
	return rows.Err()
}
