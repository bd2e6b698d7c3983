// Package idempotency remembers the first response to each Idempotency-Key in Redis, so a
// retried request is answered the same way instead of being processed twice.
package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Record is what is stored under a key. It holds a keyed fingerprint of the request and the
// response, never the request: the request carries the card number.
type Record struct {
	Owner       string `json:"o,omitempty"` // random, set while in flight so only the owner completes it
	Fingerprint string `json:"f"`
	Done        bool   `json:"d,omitempty"`
	Status      int    `json:"s,omitempty"`
	ContentType string `json:"c,omitempty"`
	Body        []byte `json:"b,omitempty"`
}

// Store keeps records in Redis.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	lockTTL time.Duration
}

// New returns a Store. Completed records live ttl (24 h); an in-flight marker lives lockTTL, so a
// crashed instance does not block a key for a day.
func New(rdb redis.UniversalClient, prefix string, ttl, lockTTL time.Duration) *Store {
	return &Store{rdb: rdb, prefix: prefix, ttl: ttl, lockTTL: lockTTL}
}

// Key is the Redis key of an Idempotency-Key sent by source. The client's key is hashed, so
// arbitrary header bytes never shape Redis key names.
func (s *Store) Key(source, idemKey string) string {
	d := sha256.Sum256([]byte(idemKey))
	return s.prefix + "idem:" + source + ":" + hex.EncodeToString(d[:])
}

// begin sets the in-flight marker unless the key exists, and returns the existing record if so.
var begin = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return '' end
return redis.call('GET', KEYS[1])`)

// finish replaces (or deletes, when ARGV[2] is empty) the record only while it is still our marker.
var finish = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

// Claim is an in-flight marker this process owns.
type Claim struct {
	key    string
	marker string
}

// Begin claims key for a request with fingerprint. When the key is already taken it returns
// the record found there and a nil claim.
func (s *Store) Begin(ctx context.Context, key, fingerprint string) (*Claim, *Record, error) {
	owner := make([]byte, 16)
	_, _ = rand.Read(owner)
	marker, err := json.Marshal(Record{Owner: hex.EncodeToString(owner), Fingerprint: fingerprint})
	if err != nil {
		return nil, nil, err
	}
	res, err := begin.Run(ctx, s.rdb, []string{key}, marker, s.lockTTL.Milliseconds()).Text()
	if err != nil {
		return nil, nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	if res == "" {
		return &Claim{key: key, marker: string(marker)}, nil, nil
	}
	var rec Record
	if err := json.Unmarshal([]byte(res), &rec); err != nil {
		return nil, nil, fmt.Errorf("decode idempotency record: %w", err)
	}
	return nil, &rec, nil
}

// Complete stores the response under the claimed key for the TTL.
func (s *Store) Complete(ctx context.Context, c *Claim, rec Record) error {
	rec.Owner, rec.Done = "", true
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.finish(ctx, c, string(b))
}

// Abandon releases the claim, so a retry is processed afresh (after a 5xx or 429).
func (s *Store) Abandon(ctx context.Context, c *Claim) error { return s.finish(ctx, c, "") }

func (s *Store) finish(ctx context.Context, c *Claim, value string) error {
	err := finish.Run(ctx, s.rdb, []string{c.key}, c.marker, value, s.ttl.Milliseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("finish idempotency key: %w", err)
	}
	return nil
}
