package lists

import (
	"testing"
	"time"
)

func TestLooksLikePAN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"4111111111111111", true},
		{"4111 1111 1111 1111", true},
		{"5500-0000-0000-0004", true},
		{"378282246310005", true},       // 15-digit Amex
		{"4111111111111112", false},     // Luhn fails
		{"12345", false},                // too short
		{"tok_4111111111111111", false}, // a token that embeds digits is not a PAN
		{"00000000000", false},          // 11 digits
		{"", false},
	}
	for _, tc := range tests {
		if got := LooksLikePAN(tc.in); got != tc.want {
			t.Errorf("LooksLikePAN(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	now := time.Now()
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	tests := []struct {
		name string
		e    Entry
		want string // first bad field, "" for valid
	}{
		{"ok", Entry{List: "block", Kind: "card", Value: "tok_abc", ExpiresAt: &future}, ""},
		{"bad list", Entry{List: "grey", Kind: "card", Value: "tok_abc"}, "list"},
		{"bad kind", Entry{List: "block", Kind: "email", Value: "x"}, "kind"},
		{"empty value", Entry{List: "block", Kind: "ip", Value: ""}, "value"},
		{"pan", Entry{List: "block", Kind: "card", Value: "4111111111111111"}, "value"},
		{"pan in another kind", Entry{List: "allow", Kind: "account", Value: "4111 1111 1111 1111"}, "value"},
		{"expired", Entry{List: "block", Kind: "ip", Value: "10.0.0.1", ExpiresAt: &past}, "expires_at"},
	}
	for _, tc := range tests {
		bad := Validate(tc.e, now)
		got := ""
		if len(bad) > 0 {
			got = bad[0].Field
		}
		if got != tc.want {
			t.Errorf("%s: first bad field %q, want %q (%v)", tc.name, got, tc.want, bad)
		}
	}
}
