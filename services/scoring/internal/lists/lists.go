// Package lists matches a transaction against allow and block lists.
//
// Precedence: a block entry always wins over an allow entry (an operator allowing an account
// must not unblock a stolen card used on it); an allow entry overrides the rules and the model
// (approve). Expired entries never match.
package lists

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"
)

// Kind is what an entry matches on.
type Kind string

// Kinds of entries.
const (
	KindAccount  Kind = "account"
	KindCard     Kind = "card"
	KindTerminal Kind = "terminal"
	KindDevice   Kind = "device"
	KindIP       Kind = "ip"
	KindCountry  Kind = "country"
)

// Kinds in the order hits are reported.
var Kinds = []Kind{KindAccount, KindCard, KindTerminal, KindDevice, KindIP, KindCountry}

// List is allow or block.
type List string

// Lists.
const (
	Allow List = "allow"
	Block List = "block"
)

// Entry is one row of scoring_list_entries.
type Entry struct {
	List   List
	Kind   Kind
	Value  string
	Reason string
	// ExpiresAt zero means never.
	ExpiresAt time.Time
}

// Validate names the bad field.
func (e Entry) Validate() error {
	switch e.List {
	case Allow, Block:
	default:
		return fmt.Errorf("list %q must be allow or block", e.List)
	}
	ok := false
	for _, k := range Kinds {
		ok = ok || k == e.Kind
	}
	if !ok {
		return fmt.Errorf("kind %q must be one of %v", e.Kind, Kinds)
	}
	if e.Value == "" {
		return fmt.Errorf("value is empty")
	}
	return nil
}

// Hit is an entry that matched, as recorded on the decision.
type Hit struct {
	List   List   `json:"list"`
	Kind   Kind   `json:"kind"`
	Reason string `json:"reason,omitempty"`
	// ValueHash names the entry without its value (see ValueHash). It stays out of the JSON
	// the decision's input hash covers: the value is already in the hashed transaction, and
	// leaving it out keeps input hashes of decisions made before it existed reproducible.
	ValueHash string `json:"-"`
}

// ValueHash is the hex sha256 of "<kind>:<value>". Decisions carry it instead of the matched
// value so a card token or an IP address is not repeated outside the transaction itself; SQL
// finds the entry with encode(sha256(convert_to(kind || ':' || value, 'UTF8')), 'hex').
func ValueHash(k Kind, value string) string {
	sum := sha256.Sum256([]byte(string(k) + ":" + value))
	return hex.EncodeToString(sum[:])
}

// Code is the decision reason code of the hit, e.g. LIST_BLOCK_CARD.
func (h Hit) Code() string {
	l := "ALLOW"
	if h.List == Block {
		l = "BLOCK"
	}
	return "LIST_" + l + "_" + upper(string(h.Kind))
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Keys are the values of one transaction to look up, by kind.
type Keys map[Kind]string

type key struct {
	kind  Kind
	value string
}

// Snapshot is an immutable index of entries, swapped whole on refresh.
type Snapshot struct {
	entries map[key][]Entry
}

// NewSnapshot indexes entries.
func NewSnapshot(entries []Entry) *Snapshot {
	s := &Snapshot{entries: map[key][]Entry{}}
	for _, e := range entries {
		k := key{e.Kind, e.Value}
		s.entries[k] = append(s.entries[k], e)
	}
	return s
}

// Len is the number of entries.
func (s *Snapshot) Len() int {
	n := 0
	for _, es := range s.entries {
		n += len(es)
	}
	return n
}

// Match returns the unexpired entries matching keys at time at, block hits first, each list in
// Kinds order.
func (s *Snapshot) Match(keys Keys, at time.Time) []Hit {
	if s == nil {
		return nil
	}
	var hits []Hit
	for _, k := range Kinds {
		v := keys[k]
		if v == "" {
			continue
		}
		for _, e := range s.entries[key{k, v}] {
			if !e.ExpiresAt.IsZero() && !at.Before(e.ExpiresAt) {
				continue
			}
			hits = append(hits, Hit{List: e.List, Kind: e.Kind, Reason: e.Reason, ValueHash: ValueHash(e.Kind, e.Value)})
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].List == Block && hits[j].List != Block })
	return hits
}
