// Package lists checks allow/block list entries an admin writes to scoring_list_entries.
//
// Kinds and lists are those of the scoring service (services/scoring/internal/lists). A card
// entry matches the card token scoring sees; a card number must never be stored, so a value
// that looks like a PAN (12-19 digits passing the Luhn check) is refused.
package lists

import (
	"strings"
	"time"
)

// Entry is one row of scoring_list_entries.
type Entry struct {
	List      string     `json:"list"`
	Kind      string     `json:"kind"`
	Value     string     `json:"value"`
	Reason    string     `json:"reason"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// Kinds scoring matches on.
var Kinds = []string{"account", "card", "terminal", "device", "ip", "country"}

// FieldError names one bad field.
type FieldError struct{ Field, Detail string }

// Validate reports every bad field of e at time now.
func Validate(e Entry, now time.Time) []FieldError {
	var bad []FieldError
	if e.List != "allow" && e.List != "block" {
		bad = append(bad, FieldError{"list", "must be allow or block"})
	}
	bad = append(bad, validKey(e.Kind, e.Value)...)
	if len(e.Reason) > 500 {
		bad = append(bad, FieldError{"reason", "must be at most 500 characters"})
	}
	if e.ExpiresAt != nil && !e.ExpiresAt.After(now) {
		bad = append(bad, FieldError{"expires_at", "must be in the future"})
	}
	return bad
}

// ValidateKey checks the identifying fields of an entry to remove or expire.
func ValidateKey(list, kind, value string) []FieldError {
	var bad []FieldError
	if list != "allow" && list != "block" {
		bad = append(bad, FieldError{"list", "must be allow or block"})
	}
	return append(bad, validKey(kind, value)...)
}

func validKey(kind, value string) []FieldError {
	var bad []FieldError
	known := false
	for _, k := range Kinds {
		known = known || k == kind
	}
	if !known {
		bad = append(bad, FieldError{"kind", "must be one of " + strings.Join(Kinds, ", ")})
	}
	switch {
	case value == "" || strings.TrimSpace(value) != value:
		bad = append(bad, FieldError{"value", "must be non-empty without surrounding spaces"})
	case len(value) > 200:
		bad = append(bad, FieldError{"value", "must be at most 200 characters"})
	case LooksLikePAN(value):
		// Checked for every kind: a PAN pasted into the wrong kind is just as stored.
		bad = append(bad, FieldError{"value", "looks like a card number (PAN); enter the card token instead, never the card number"})
	}
	return bad
}

// LooksLikePAN reports whether s, ignoring spaces and dashes, is 12-19 digits passing Luhn.
func LooksLikePAN(s string) bool {
	digits := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c-'0')
		case c == ' ' || c == '-':
		default:
			return false
		}
	}
	if len(digits) < 12 || len(digits) > 19 {
		return false
	}
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i])
		if (len(digits)-1-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
