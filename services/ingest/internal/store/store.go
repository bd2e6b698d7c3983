// Package store is ingest's Postgres access: API keys and the decisions it reports back.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
)

// ErrNotFound means no such row.
var ErrNotFound = errors.New("not found")

// Store reads and writes ingest's tables.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const insertKey = `INSERT INTO ingest_api_keys (key_id, source, key_hash, rate_per_sec, rate_burst)
VALUES ($1, $2, $3, NULLIF($4, 0::double precision), NULLIF($5, 0))
RETURNING created_at`

// CreateKey stores a new key (its digest, never the key).
func (s *Store) CreateKey(ctx context.Context, k auth.StoredKey) (auth.StoredKey, error) {
	if err := s.pool.QueryRow(ctx, insertKey, k.ID, k.Source, k.Hash, k.Rate, k.Burst).Scan(&k.CreatedAt); err != nil {
		return k, fmt.Errorf("insert api key %s: %w", k.ID, err)
	}
	return k, nil
}

// RevokeKey marks a key revoked; revoking twice keeps the first time.
func (s *Store) RevokeKey(ctx context.Context, id string) (time.Time, error) {
	var at time.Time
	err := s.pool.QueryRow(ctx, `UPDATE ingest_api_keys SET revoked_at = COALESCE(revoked_at, now())
		WHERE key_id = $1 RETURNING revoked_at`, id).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return at, fmt.Errorf("revoke api key %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return at, fmt.Errorf("revoke api key %s: %w", id, err)
	}
	return at, nil
}

const selectKeys = `SELECT key_id, source, key_hash, created_at, revoked_at,
	COALESCE(rate_per_sec, 0), COALESCE(rate_burst, 0) FROM ingest_api_keys`

// ListKeys returns every key, revoked ones too, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]auth.StoredKey, error) {
	return s.keys(ctx, selectKeys+` ORDER BY created_at, key_id`)
}

// ActiveKeys returns the keys not revoked.
func (s *Store) ActiveKeys(ctx context.Context) ([]auth.StoredKey, error) {
	return s.keys(ctx, selectKeys+` WHERE revoked_at IS NULL`)
}

func (s *Store) keys(ctx context.Context, q string) ([]auth.StoredKey, error) {
	rows, err := s.pool.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auth.StoredKey, error) {
		var k auth.StoredKey
		err := r.Scan(&k.ID, &k.Source, &k.Hash, &k.CreatedAt, &k.RevokedAt, &k.Rate, &k.Burst)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return out, nil
}

// Decision is what the API reports of a decision.
type Decision struct {
	TransactionID string
	Action        string
	Score         float64
	Reasons       json.RawMessage
	ModelVersion  string
	DecidedAt     time.Time
}

// Decision returns the decision on transaction id (the "<source>:<client id>" form).
func (s *Store) Decision(ctx context.Context, id string) (Decision, error) {
	d := Decision{TransactionID: id}
	err := s.pool.QueryRow(ctx, `SELECT action, score, reasons, model_version, decided_at
		FROM decisions WHERE transaction_id = $1`, id).Scan(&d.Action, &d.Score, &d.Reasons, &d.ModelVersion, &d.DecidedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("select decision %s: %w", id, err)
	}
	return d, nil
}
