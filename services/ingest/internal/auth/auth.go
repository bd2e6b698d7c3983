// Package auth checks the API keys of payment systems.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MinKeyLen is the shortest API key accepted, so a placeholder like "test" cannot slip into
// production.
const MinKeyLen = 12

// Keyring maps API keys to the payment system (source) that owns them. It keeps only SHA-256
// digests: a heap dump or a stray %v shows no usable key.
type Keyring struct {
	keys []key
}

type key struct {
	id     string
	source string
	digest [sha256.Size]byte
}

// ParseKeys reads comma-separated "source:key" pairs. A source may own several keys, so keys
// can rotate without downtime. Errors name entries by position, never by content.
func ParseKeys(spec string) (*Keyring, error) {
	var (
		k    Keyring
		errs []error
		seen = map[[sha256.Size]byte]bool{}
	)
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		n := i + 1
		source, secret, ok := strings.Cut(entry, ":")
		source, secret = strings.TrimSpace(source), strings.TrimSpace(secret)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("entry %d is not source:key", n))
			continue
		case !validSource(source):
			errs = append(errs, fmt.Errorf("entry %d: source must be 1-32 characters of letters, digits, . _ -", n))
			continue
		case len(secret) < MinKeyLen:
			errs = append(errs, fmt.Errorf("entry %d (source %s): key must be at least %d characters", n, source, MinKeyLen))
			continue
		}
		digest := sha256.Sum256([]byte(secret))
		if seen[digest] {
			errs = append(errs, fmt.Errorf("entry %d (source %s): key is listed more than once", n, source))
			continue
		}
		seen[digest] = true
		// The id names the key for rate limiting and logs without revealing it.
		k.keys = append(k.keys, key{id: fmt.Sprintf("env-%d", n), source: source, digest: digest})
	}
	if len(errs) == 0 && len(k.keys) == 0 {
		errs = append(errs, errors.New("no keys"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &k, nil
}

// validSource keeps ':' out of sources, so "<source>:<transaction id>" splits unambiguously.
// ValidSource reports whether s can name a source.
func ValidSource(s string) bool { return validSource(s) }

func validSource(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Authenticate returns the source owning apiKey. It hashes the candidate and compares it
// against every stored digest in constant time, without stopping at a match, so response
// time reveals neither how much of a key matched nor which entry it was.
func (k *Keyring) Authenticate(apiKey string) (source string, ok bool) {
	digest := sha256.Sum256([]byte(apiKey))
	for _, e := range k.keys {
		if subtle.ConstantTimeCompare(digest[:], e.digest[:]) == 1 {
			source, ok = e.source, true
		}
	}
	return source, ok
}

// Principal returns the caller owning apiKey, with the service's default rate limit.
func (k *Keyring) Principal(apiKey string) (Principal, bool) {
	digest := sha256.Sum256([]byte(apiKey))
	var (
		p  Principal
		ok bool
	)
	for _, e := range k.keys {
		if subtle.ConstantTimeCompare(digest[:], e.digest[:]) == 1 {
			p, ok = Principal{KeyID: e.id, Source: e.source}, true
		}
	}
	return p, ok
}

// Sources lists the sources that have keys, sorted, for the start-up log.
func (k *Keyring) Sources() []string {
	var out []string
	for _, e := range k.keys {
		if !slices.Contains(out, e.source) {
			out = append(out, e.source)
		}
	}
	slices.Sort(out)
	return out
}

// Len is the number of keys.
func (k *Keyring) Len() int { return len(k.keys) }
