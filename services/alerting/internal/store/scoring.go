package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-fraud/vigil/services/alerting/internal/cases"
	"github.com/vigil-fraud/vigil/services/alerting/internal/lists"
	"github.com/vigil-fraud/vigil/services/alerting/internal/rules"
)

// The scoring service owns these tables (migration 0004) and reloads them on its refresh
// interval; the admin pages write them with the same semantics: a rule change is a new version
// row, never an edit of an old one.

const ruleColumns = `rule_id, version, expression, action, reason_code, priority, enabled, description`

// Rules lists the newest version of each rule, as scoring's Active reads them, by priority.
func (s *Store) Rules(ctx context.Context) ([]rules.Rule, error) {
	rows, err := s.pool.Query(ctx, `SELECT * FROM (SELECT DISTINCT ON (rule_id) `+ruleColumns+`
		FROM scoring_rules ORDER BY rule_id, version DESC) r ORDER BY priority DESC, rule_id`)
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rules.Rule, error) { return scanRule(r) })
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	return out, nil
}

func scanRule(row pgx.Row) (rules.Rule, error) {
	var r rules.Rule
	err := row.Scan(&r.ID, &r.Version, &r.Expression, &r.Action, &r.Reason, &r.Priority, &r.Enabled, &r.Description)
	return r, err
}

func invalid(bad []cases.FieldError) error {
	if len(bad) == 0 {
		return nil
	}
	return &cases.InvalidError{Fields: bad}
}

func ruleFieldErrors(fs []rules.FieldError) []cases.FieldError {
	out := make([]cases.FieldError, len(fs))
	for i, f := range fs {
		out[i] = cases.FieldError{Field: f.Field, Detail: f.Detail}
	}
	return out
}

// SaveRule inserts r as the next version of its rule. baseVersion is the version the admin
// edited (0 for a new rule); anything newer stored meanwhile is a conflict.
func (s *Store) SaveRule(ctx context.Context, actor string, r rules.Rule, baseVersion int) (rules.Rule, error) {
	if err := invalid(ruleFieldErrors(rules.Validate(r))); err != nil {
		return r, err
	}
	if baseVersion < 0 {
		return r, invalid([]cases.FieldError{{Field: "base_version", Detail: "must be the version you edited, or 0 for a new rule"}})
	}
	return s.newRuleVersion(ctx, actor, "rule.save", r.ID, baseVersion, func(prev *rules.Rule) rules.Rule { return r })
}

// SetRuleEnabled writes a new version of rule id, identical to version but for enabled.
func (s *Store) SetRuleEnabled(ctx context.Context, actor, id string, version int, enabled bool) (rules.Rule, error) {
	if version < 1 {
		return rules.Rule{}, invalid([]cases.FieldError{{Field: "version", Detail: "must be the rule version you saw (>= 1)"}})
	}
	action := "rule.disable"
	if enabled {
		action = "rule.enable"
	}
	return s.newRuleVersion(ctx, actor, action, id, version, func(prev *rules.Rule) rules.Rule {
		next := *prev
		next.Enabled = enabled
		return next
	})
}

// newRuleVersion serialises writers of one rule id, checks base against the newest stored
// version, and inserts next(newest) as version newest+1 with its audit row.
func (s *Store) newRuleVersion(ctx context.Context, actor, action, id string, base int, next func(prev *rules.Rule) rules.Rule) (rules.Rule, error) {
	var out rules.Rule
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Two admins saving the same rule: without the lock both read version n and one insert
		// fails on the primary key; with it the second sees n+1 and gets a clean 409.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('scoring_rules:' || $1, 0))`, id); err != nil {
			return fmt.Errorf("lock rule %s: %w", id, err)
		}
		prev, err := scanRule(tx.QueryRow(ctx, `SELECT `+ruleColumns+` FROM scoring_rules WHERE rule_id = $1 ORDER BY version DESC LIMIT 1`, id))
		var prevPtr *rules.Rule
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if base != 0 {
				return fmt.Errorf("rule %s: %w", id, cases.ErrNotFound)
			}
			// Scoring seeds its rules file only into an empty table: a rule stored first
			// would silently keep every seed rule out.
			var seeded bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM scoring_rules)`).Scan(&seeded); err != nil {
				return fmt.Errorf("rules seeded: %w", err)
			}
			if !seeded {
				return fmt.Errorf("scoring has not seeded its rules yet; start the scoring service once, then add rules: %w", cases.ErrConflict)
			}
		case err != nil:
			return fmt.Errorf("read rule %s: %w", id, err)
		default:
			prevPtr = &prev
			if base != prev.Version {
				if base == 0 {
					return fmt.Errorf("rule %s already exists at version %d; edit it instead: %w", id, prev.Version, cases.ErrConflict)
				}
				return fmt.Errorf("rule %s is at version %d, not %d: %w", id, prev.Version, base, cases.ErrConflict)
			}
		}
		r := next(prevPtr)
		r.ID = id
		r.Version = base + 1
		out, err = scanRule(tx.QueryRow(ctx, `INSERT INTO scoring_rules (`+ruleColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			RETURNING `+ruleColumns, r.ID, r.Version, r.Expression, r.Action, r.Reason, r.Priority, r.Enabled, r.Description))
		if err != nil {
			return fmt.Errorf("insert rule %s v%d: %w", id, r.Version, err)
		}
		var before []byte
		if prevPtr != nil {
			before, _ = json.Marshal(prev)
		}
		after, _ := json.Marshal(out)
		return audit(ctx, tx, actor, action, "scoring_rule", id, before, after)
	})
	return out, err
}

func audit(ctx context.Context, tx pgx.Tx, actor, action, entity, id string, before, after []byte) error {
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (actor, action, entity, entity_id, before, after) VALUES ($1, $2, $3, $4, $5, $6)`,
		actor, action, entity, id, before, after); err != nil {
		return fmt.Errorf("audit %s %s: %w", entity, id, err)
	}
	return nil
}

// ScoringAudit returns the newest audit rows of rules and list entries.
func (s *Store) ScoringAudit(ctx context.Context, limit int) ([]AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT actor, at, action, before, after FROM audit_log
		WHERE entity IN ('scoring_rule', 'scoring_list_entry') ORDER BY audit_id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("scoring audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.Actor, &e.At, &e.Action, &e.Before, &e.After)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("scoring audit: %w", err)
	}
	return out, nil
}

const entryColumns = `list, kind, value, reason, expires_at, created_at`

func scanEntry(row pgx.Row) (lists.Entry, error) {
	var e lists.Entry
	err := row.Scan(&e.List, &e.Kind, &e.Value, &e.Reason, &e.ExpiresAt, &e.CreatedAt)
	return e, err
}

// Entries lists allow/block entries, unexpired first, newest first; expired ones stay visible
// (scoring ignores them) until removed.
func (s *Store) Entries(ctx context.Context, limit int) ([]lists.Entry, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+entryColumns+` FROM scoring_list_entries
		ORDER BY (expires_at IS NOT NULL AND expires_at <= now()), created_at DESC, list, kind, value LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list entries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lists.Entry, error) { return scanEntry(r) })
	if err != nil {
		return nil, fmt.Errorf("list entries: %w", err)
	}
	return out, nil
}

func listFieldErrors(fs []lists.FieldError) []cases.FieldError {
	out := make([]cases.FieldError, len(fs))
	for i, f := range fs {
		out[i] = cases.FieldError{Field: f.Field, Detail: f.Detail}
	}
	return out
}

func entryID(list, kind, value string) string { return list + ":" + kind + ":" + value }

// PutEntry adds an entry or replaces the reason and expiry of an existing one (scoring's Put
// semantics), with its audit row.
func (s *Store) PutEntry(ctx context.Context, actor string, e lists.Entry) (lists.Entry, error) {
	if err := invalid(listFieldErrors(lists.Validate(e, time.Now()))); err != nil {
		return e, err
	}
	var out lists.Entry
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var before []byte
		prev, err := scanEntry(tx.QueryRow(ctx, `SELECT `+entryColumns+` FROM scoring_list_entries WHERE list = $1 AND kind = $2 AND value = $3 FOR UPDATE`,
			e.List, e.Kind, e.Value))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read %s entry: %w", e.List, err)
		default:
			before, _ = json.Marshal(prev)
		}
		out, err = scanEntry(tx.QueryRow(ctx, `INSERT INTO scoring_list_entries (list, kind, value, reason, expires_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (list, kind, value) DO UPDATE SET reason = EXCLUDED.reason, expires_at = EXCLUDED.expires_at
			RETURNING `+entryColumns, e.List, e.Kind, e.Value, e.Reason, e.ExpiresAt))
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23514" {
				return invalid([]cases.FieldError{{Field: "kind", Detail: "is not accepted by scoring_list_entries"}})
			}
			return fmt.Errorf("put %s entry: %w", e.List, err)
		}
		after, _ := json.Marshal(out)
		return audit(ctx, tx, actor, "list.put", "scoring_list_entry", entryID(e.List, e.Kind, e.Value), before, after)
	})
	return out, err
}

// RemoveEntry deletes an entry; ExpireEntry keeps it but makes it stop matching now. Both
// audit the entry as it was.
func (s *Store) RemoveEntry(ctx context.Context, actor, list, kind, value string) error {
	return s.endEntry(ctx, actor, "list.remove", list, kind, value,
		`DELETE FROM scoring_list_entries WHERE list = $1 AND kind = $2 AND value = $3 RETURNING `+entryColumns)
}

// ExpireEntry sets the entry's expiry to now.
func (s *Store) ExpireEntry(ctx context.Context, actor, list, kind, value string) error {
	return s.endEntry(ctx, actor, "list.expire", list, kind, value,
		`UPDATE scoring_list_entries SET expires_at = now() WHERE list = $1 AND kind = $2 AND value = $3 RETURNING `+entryColumns)
}

func (s *Store) endEntry(ctx context.Context, actor, action, list, kind, value, q string) error {
	if err := invalid(listFieldErrors(lists.ValidateKey(list, kind, value))); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		prev, err := scanEntry(tx.QueryRow(ctx, `SELECT `+entryColumns+` FROM scoring_list_entries WHERE list = $1 AND kind = $2 AND value = $3 FOR UPDATE`,
			list, kind, value))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s entry: %w", list, cases.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read %s entry: %w", list, err)
		}
		out, err := scanEntry(tx.QueryRow(ctx, q, list, kind, value))
		if err != nil {
			return fmt.Errorf("%s %s entry: %w", action, list, err)
		}
		before, _ := json.Marshal(prev)
		var after []byte
		if action != "list.remove" {
			after, _ = json.Marshal(out)
		}
		return audit(ctx, tx, actor, action, "scoring_list_entry", entryID(list, kind, value), before, after)
	})
}
