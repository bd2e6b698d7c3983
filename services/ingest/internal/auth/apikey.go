package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Principal is an authenticated caller: the key that was used and the payment system owning it.
type Principal struct {
	KeyID  string
	Source string
	// Rate (transactions per second) and Burst override the service default when positive.
	Rate  float64
	Burst int
}

// StoredKey is one API key as the database keeps it: a digest, never the key.
type StoredKey struct {
	ID        string
	Source    string
	Hash      []byte
	CreatedAt time.Time
	RevokedAt *time.Time
	Rate      float64
	Burst     int
}

const keyPrefix = "vk_"

// NewKey returns a fresh API key and its id. The secret holds 256 random bits, so one SHA-256
// of it is as strong as any password hash, and lookups need no slow KDF.
func NewKey() (id, key string, err error) {
	var idb [8]byte
	var secret [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", "", fmt.Errorf("random key id: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", fmt.Errorf("random key: %w", err)
	}
	id = hex.EncodeToString(idb[:])
	return id, keyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret[:]), nil
}

// HashKey is the digest stored for key.
func HashKey(key string) []byte {
	d := sha256.Sum256([]byte(key))
	return d[:]
}

// keyID extracts the id part of a vk_<id>_<secret> key; ok is false for any other shape
// (env bootstrap keys, garbage).
func keyID(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "_")
	return id, ok && len(id) == 16
}

// KeyLister loads every active key.
type KeyLister interface {
	ActiveKeys(ctx context.Context) ([]StoredKey, error)
}

// Authenticator checks keys against the env bootstrap keyring and a snapshot of the keys in
// the database, refreshed every TTL. Holding all active keys in memory means an unknown key
// costs no database round trip (a flood of bad keys cannot load Postgres), and a revocation
// takes effect within one TTL.
type Authenticator struct {
	env   *Keyring
	store KeyLister
	ttl   time.Duration
	log   *slog.Logger
	mu    sync.RWMutex
	byID  map[string]StoredKey
}

// NewAuthenticator returns an Authenticator; env and store may each be nil.
func NewAuthenticator(env *Keyring, store KeyLister, ttl time.Duration, log *slog.Logger) *Authenticator {
	return &Authenticator{env: env, store: store, ttl: ttl, log: log, byID: map[string]StoredKey{}}
}

// Refresh reloads the snapshot from the store.
func (a *Authenticator) Refresh(ctx context.Context) error {
	if a.store == nil {
		return nil
	}
	keys, err := a.store.ActiveKeys(ctx)
	if err != nil {
		return fmt.Errorf("load api keys: %w", err)
	}
	byID := make(map[string]StoredKey, len(keys))
	for _, k := range keys {
		byID[k.ID] = k
	}
	a.mu.Lock()
	a.byID = byID
	a.mu.Unlock()
	return nil
}

// Run refreshes every TTL until ctx ends. A failed refresh keeps the last snapshot: Postgres
// blipping must not lock every payment system out.
func (a *Authenticator) Run(ctx context.Context) error {
	if a.store == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(a.ttl)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, a.ttl)
			if err := a.Refresh(rctx); err != nil && ctx.Err() == nil {
				a.log.Warn("refresh api keys; keeping the previous snapshot", "err", err)
			}
			cancel()
		}
	}
}

// Authenticate returns the caller owning apiKey. The database key is found by its id, then
// its digest compared in constant time; env keys are compared the Keyring's way.
func (a *Authenticator) Authenticate(apiKey string) (Principal, bool) {
	if id, ok := keyID(apiKey); ok {
		a.mu.RLock()
		k, found := a.byID[id]
		a.mu.RUnlock()
		if !found {
			return Principal{}, false
		}
		if subtle.ConstantTimeCompare(HashKey(apiKey), k.Hash) != 1 {
			return Principal{}, false
		}
		return Principal{KeyID: k.ID, Source: k.Source, Rate: k.Rate, Burst: k.Burst}, true
	}
	if a.env == nil {
		return Principal{}, false
	}
	return a.env.Principal(apiKey)
}
