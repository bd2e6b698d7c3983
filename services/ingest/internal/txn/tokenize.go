package txn

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
)

// MinCardKeyBytes is the shortest HMAC key accepted: the SHA-256 block strength.
const MinCardKeyBytes = 32

// Card is what survives of a PAN past the edge: a keyed token that joins a card's history
// without revealing it, and the parts PCI DSS allows in clear.
type Card struct {
	Token string // hex HMAC-SHA256 of the PAN
	KeyID string // names the HMAC key, so keys can rotate with old tokens still readable
	BIN   string // first six digits: issuer and card product, strong fraud signals
	Last4 string
}

// Tokenizer turns PANs into Cards under one HMAC key. It is safe for concurrent use.
type Tokenizer struct {
	keyID string
	key   []byte
	// macs holds keyed HMAC states: hmac.New hashes the key pads each time, Reset does not.
	macs sync.Pool
}

// NewTokenizer returns a Tokenizer with key named keyID. A keyed HMAC rather than a plain hash
// because the PAN space is small enough to brute-force a bare SHA-256 in hours.
func NewTokenizer(keyID string, key []byte) (*Tokenizer, error) {
	if keyID == "" {
		return nil, fmt.Errorf("card key id is empty")
	}
	if len(key) < MinCardKeyBytes {
		return nil, fmt.Errorf("card HMAC key has %d bytes, need at least %d", len(key), MinCardKeyBytes)
	}
	t := &Tokenizer{keyID: keyID, key: append([]byte(nil), key...)}
	t.macs.New = func() any { return hmac.New(sha256.New, t.key) }
	return t, nil
}

// Tokenize returns the card of a validated PAN (see Validate).
func (t *Tokenizer) Tokenize(pan PAN) Card {
	digits := string(pan)
	mac := t.macs.Get().(hash.Hash)
	mac.Write([]byte(digits))
	var sum [sha256.Size]byte
	c := Card{Token: hex.EncodeToString(mac.Sum(sum[:0])), KeyID: t.keyID}
	mac.Reset() // back to the keyed state: nothing derived from the card stays in the pool
	t.macs.Put(mac)
	if len(digits) >= MinPANDigits {
		c.BIN = digits[:6]
		c.Last4 = digits[len(digits)-4:]
	}
	return c
}

// Fingerprint is a keyed digest of a request body, for matching idempotent retries. Keyed like
// the card token because the body holds a PAN: a bare hash stored in Redis could be
// brute-forced back to the card over its small space once the other fields are guessed.
func (t *Tokenizer) Fingerprint(parts ...[]byte) string {
	mac := hmac.New(sha256.New, t.key)
	mac.Write([]byte("vigil/idempotency-fingerprint/v1"))
	for _, p := range parts {
		var n [8]byte
		for i := range n {
			n[i] = byte(uint64(len(p)) >> (8 * i))
		}
		mac.Write(n[:])
		mac.Write(p)
	}
	return hex.EncodeToString(mac.Sum(nil))
}
