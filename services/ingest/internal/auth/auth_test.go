package auth

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseKeysAndAuthenticate(t *testing.T) {
	t.Parallel()
	k, err := ParseKeys(" acme:sk_test_abc123 , globex:gx_live_0000000001, acme:sk_test_rotated1 ,")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key    string
		source string
		ok     bool
	}{
		{"sk_test_abc123", "acme", true},
		{"sk_test_rotated1", "acme", true},
		{"gx_live_0000000001", "globex", true},
		{"sk_test_abc12", "", false},
		{"sk_test_abc1234", "", false},
		{"", "", false},
		{"acme:sk_test_abc123", "", false},
	}
	for _, tc := range tests {
		source, ok := k.Authenticate(tc.key)
		if source != tc.source || ok != tc.ok {
			t.Errorf("Authenticate(%q) = %q, %v; want %q, %v", tc.key, source, ok, tc.source, tc.ok)
		}
	}
	if got := k.Sources(); !slices.Equal(got, []string{"acme", "globex"}) {
		t.Errorf("Sources() = %v", got)
	}
}

func TestParseKeysErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec string
		want string
	}{
		{"", "no keys"},
		{" , ", "no keys"},
		{"acme", "entry 1 is not source:key"},
		{"acme:short", "at least 12"},
		{":sk_test_abc123", "entry 1: source"},
		{"ac me:sk_test_abc123", "entry 1: source"},
		{"acme:sk_test_abc123,globex:sk_test_abc123", "entry 2 (source globex): key is listed more than once"},
		{"acme:sk_test_abc123,bad", "entry 2 is not source:key"},
	}
	for _, tc := range tests {
		_, err := ParseKeys(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseKeys(%q) error %v, want it to contain %q", tc.spec, err, tc.want)
		}
		if err != nil && strings.Contains(tc.spec, "sk_test_abc123") && strings.Contains(err.Error(), "sk_test_abc123") {
			t.Errorf("error echoes a key: %v", err)
		}
	}
}

func TestKeyringKeepsNoClearKey(t *testing.T) {
	t.Parallel()
	k, err := ParseKeys("acme:sk_test_abc123")
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%+v %#v", k, k); strings.Contains(s, "sk_test_abc123") {
		t.Errorf("keyring prints a key: %s", s)
	}
}
