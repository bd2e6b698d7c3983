package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-fraud/vigil/libs/postgres"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
)

// ErrNotFound is returned when a decision or rule set does not exist.
var ErrNotFound = errors.New("not found")

// Rules reads and writes scoring_rules and scoring_rule_sets.
type Rules struct{ pool *pgxpool.Pool }

// NewRules returns the rule store.
func NewRules(pool *pgxpool.Pool) *Rules { return &Rules{pool: pool} }

// Active returns the newest version of each rule.
func (s *Rules) Active(ctx context.Context) ([]rules.Rule, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (rule_id) rule_id, version, expression, action, reason_code, priority, enabled, description
		FROM scoring_rules ORDER BY rule_id, version DESC`)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	defer rows.Close()
	var out []rules.Rule
	for rows.Next() {
		var r rules.Rule
		var action string
		if err := rows.Scan(&r.ID, &r.Version, &r.Expression, &action, &r.Reason, &r.Priority, &r.Enabled, &r.Description); err != nil {
			return nil, fmt.Errorf("load rules: %w", err)
		}
		r.Action = rules.Action(action)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Seed inserts rs when the table is empty (force: also adds rule versions not stored yet) and
// reports how many rows it inserted. Existing versions are never changed.
func (s *Rules) Seed(ctx context.Context, rs []rules.Rule, force bool) (int, error) {
	n := 0
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		// Two scorers starting at once must not both seed.
		if _, err := tx.Exec(ctx, `LOCK TABLE scoring_rules IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var count int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM scoring_rules`).Scan(&count); err != nil {
			return err
		}
		if count > 0 && !force {
			return nil
		}
		for _, r := range rs {
			tag, err := tx.Exec(ctx, `INSERT INTO scoring_rules (rule_id, version, expression, action, reason_code, priority, enabled, description)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
				r.ID, r.Version, r.Expression, string(r.Action), r.Reason, r.Priority, r.Enabled, r.Description)
			if err != nil {
				return fmt.Errorf("insert rule %s v%d: %w", r.ID, r.Version, err)
			}
			n += int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("seed rules: %w", err)
	}
	return n, nil
}

// Publish records a compiled set under its version, so explain can rebuild it later.
func (s *Rules) Publish(ctx context.Context, set *rules.Set) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO scoring_rule_sets (version, definition) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		set.Version(), set.Canonical())
	if err != nil {
		return fmt.Errorf("publish rule set %s: %w", set.Version(), err)
	}
	return nil
}

// Set returns the canonical definition of rule set version.
func (s *Rules) Set(ctx context.Context, version string) ([]byte, error) {
	var def []byte
	err := s.pool.QueryRow(ctx, `SELECT definition FROM scoring_rule_sets WHERE version = $1`, version).Scan(&def)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("rule set %s: %w", version, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("rule set %s: %w", version, err)
	}
	return def, nil
}

// Lists reads scoring_list_entries.
type Lists struct{ pool *pgxpool.Pool }

// NewLists returns the list store.
func NewLists(pool *pgxpool.Pool) *Lists { return &Lists{pool: pool} }

// Unexpired returns the entries not expired at now.
func (s *Lists) Unexpired(ctx context.Context, now time.Time) ([]lists.Entry, error) {
	rows, err := s.pool.Query(ctx, `SELECT list, kind, value, reason, expires_at FROM scoring_list_entries
		WHERE expires_at IS NULL OR expires_at > $1`, now)
	if err != nil {
		return nil, fmt.Errorf("load list entries: %w", err)
	}
	defer rows.Close()
	var out []lists.Entry
	for rows.Next() {
		var e lists.Entry
		var list, kind string
		var exp *time.Time
		if err := rows.Scan(&list, &kind, &e.Value, &e.Reason, &exp); err != nil {
			return nil, fmt.Errorf("load list entries: %w", err)
		}
		e.List, e.Kind = lists.List(list), lists.Kind(kind)
		if exp != nil {
			e.ExpiresAt = *exp
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Put inserts or replaces one entry.
func (s *Lists) Put(ctx context.Context, e lists.Entry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	var exp *time.Time
	if !e.ExpiresAt.IsZero() {
		exp = &e.ExpiresAt
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO scoring_list_entries (list, kind, value, reason, expires_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (list, kind, value) DO UPDATE SET reason = EXCLUDED.reason, expires_at = EXCLUDED.expires_at`,
		string(e.List), string(e.Kind), e.Value, e.Reason, exp)
	if err != nil {
		return fmt.Errorf("put %s entry %s: %w", e.List, e.Kind, err)
	}
	return nil
}

// StoredDecision is what explain needs from a decisions row.
type StoredDecision struct {
	DecisionID, TransactionID, Action, ModelVersion, RuleSetVersion, FeatureSchemaVersion, InputHash string
	Score, ReviewThreshold, DeclineThreshold                                                         float64
	Input                                                                                            []byte
	// Recorded is the decision as far as the row keeps it: decision id, reasons and the
	// metadata fields (input hash, degraded causes, shadow, account window, list hits).
	Recorded *fraudv1.Decision
}

// Decision loads the row of transactionID.
func Decision(ctx context.Context, pool *pgxpool.Pool, transactionID string) (StoredDecision, error) {
	var d StoredDecision
	var reasons, window, hits []byte
	var causes []string
	var shadowVersion *string
	var shadowScore *float64
	var degraded bool
	err := pool.QueryRow(ctx, `SELECT decision_id, transaction_id, action, model_version, rule_set_version, feature_schema_version,
		input_hash, score, review_threshold, decline_threshold, coalesce(input, ''::bytea), reasons,
		degraded, degraded_causes, shadow_model_version, shadow_score, account_window, list_hits
		FROM decisions WHERE transaction_id = $1`, transactionID).Scan(
		&d.DecisionID, &d.TransactionID, &d.Action, &d.ModelVersion, &d.RuleSetVersion, &d.FeatureSchemaVersion,
		&d.InputHash, &d.Score, &d.ReviewThreshold, &d.DeclineThreshold, &d.Input, &reasons,
		&degraded, &causes, &shadowVersion, &shadowScore, &window, &hits)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("decision of transaction %q: %w", transactionID, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("decision of transaction %q: %w", transactionID, err)
	}
	rec := &fraudv1.Decision{DecisionId: d.DecisionID, TransactionId: d.TransactionID, InputHash: d.InputHash, Degraded: degraded}
	var rr []reasonRow
	if err := json.Unmarshal(reasons, &rr); err != nil {
		return d, fmt.Errorf("decision %s: reasons: %w", d.DecisionID, err)
	}
	for _, r := range rr {
		rec.Reasons = append(rec.Reasons, &fraudv1.Reason{Code: r.Code, Description: r.Description, Weight: r.Weight})
	}
	for _, c := range causes {
		rec.DegradedCauses = append(rec.DegradedCauses, CauseFromName(c))
	}
	if shadowVersion != nil && shadowScore != nil {
		rec.ShadowModelVersion, rec.ShadowScore = *shadowVersion, *shadowScore
	}
	if window != nil {
		var w WindowRow
		if err := json.Unmarshal(window, &w); err != nil {
			return d, fmt.Errorf("decision %s: account_window: %w", d.DecisionID, err)
		}
		rec.AccountWindow = &fraudv1.AccountWindow{Reviews_1H: w.Reviews1h, Declines_1H: w.Declines1h,
			Reviews_24H: w.Reviews24h, Declines_24H: w.Declines24h, MaxScore_24H: w.MaxScore24h}
	}
	var hr []HitRow
	if err := json.Unmarshal(hits, &hr); err != nil {
		return d, fmt.Errorf("decision %s: list_hits: %w", d.DecisionID, err)
	}
	for _, h := range hr {
		rec.ListHits = append(rec.ListHits, &fraudv1.ListHit{List: h.List, Kind: h.Kind, Reason: h.Reason, ValueHash: h.ValueHash})
	}
	d.Recorded = rec
	return d, nil
}
