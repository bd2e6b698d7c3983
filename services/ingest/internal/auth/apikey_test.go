package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type fakeLister struct {
	mu   sync.Mutex
	keys []StoredKey
	err  error
}

func (f *fakeLister) ActiveKeys(context.Context) ([]StoredKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]StoredKey(nil), f.keys...), f.err
}

func TestNewKeyShape(t *testing.T) {
	t.Parallel()
	id, key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := keyID(key)
	if !ok || got != id || !strings.HasPrefix(key, "vk_"+id+"_") || len(key) != 3+16+1+43 {
		t.Errorf("key %q (id %q) has the wrong shape", key, id)
	}
	_, other, _ := NewKey()
	if other == key {
		t.Error("two keys are equal")
	}
}

func TestAuthenticator(t *testing.T) {
	t.Parallel()
	id, key, _ := NewKey()
	id2, key2, _ := NewKey()
	lister := &fakeLister{keys: []StoredKey{
		{ID: id, Source: "acme", Hash: HashKey(key), Rate: 5, Burst: 10},
		{ID: id2, Source: "globex", Hash: HashKey(key2)},
	}}
	env, err := ParseKeys("boot:sk_bootstrap_0001")
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthenticator(env, lister, 0, slog.New(slog.DiscardHandler))
	if _, ok := a.Authenticate(key); ok {
		t.Error("authenticated before the first refresh")
	}
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	forged := "vk_" + id + "_" + strings.Repeat("A", 43)
	tests := []struct {
		name, key string
		ok        bool
		want      Principal
	}{
		{"database key", key, true, Principal{KeyID: id, Source: "acme", Rate: 5, Burst: 10}},
		{"second key", key2, true, Principal{KeyID: id2, Source: "globex"}},
		{"right id, wrong secret", forged, false, Principal{}},
		{"unknown id", "vk_0123456789abcdef_x", false, Principal{}},
		{"env key", "sk_bootstrap_0001", true, Principal{KeyID: "env-1", Source: "boot"}},
		{"garbage", "nope", false, Principal{}},
	}
	for _, tc := range tests {
		got, ok := a.Authenticate(tc.key)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}

	// Revocation: the key leaves the active set; the next refresh drops it.
	lister.mu.Lock()
	lister.keys = lister.keys[1:]
	lister.mu.Unlock()
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Authenticate(key); ok {
		t.Error("revoked key still authenticates")
	}
	// A failed refresh keeps the previous snapshot.
	lister.err = errors.New("pg down")
	if err := a.Refresh(context.Background()); err == nil {
		t.Error("refresh error swallowed")
	}
	if _, ok := a.Authenticate(key2); !ok {
		t.Error("a failed refresh dropped the keys")
	}
}
