package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
	"github.com/vigil-fraud/vigil/services/ingest/internal/store"
)

type fakeKeyStore struct{ created []auth.StoredKey }

func (f *fakeKeyStore) CreateKey(_ context.Context, k auth.StoredKey) (auth.StoredKey, error) {
	f.created = append(f.created, k)
	return k, nil
}

func (f *fakeKeyStore) RevokeKey(context.Context, string) (time.Time, error) {
	return time.Time{}, store.ErrNotFound
}

func (f *fakeKeyStore) ListKeys(context.Context) ([]auth.StoredKey, error) { return f.created, nil }

func TestAPIKeyCommandErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"create"}, "--source must be"},
		{[]string{"create", "--source", "a:b"}, "--source must be"},
		{[]string{"create", "--source", "acme", "--rate", "-1"}, "--rate must be"},
		{[]string{"create", "--source", "acme", "--burst", "-1"}, "--burst must not"},
		{[]string{"create", "--source", "acme", "extra"}, `unexpected argument "extra"`},
		{[]string{"create", "--nope"}, "flag provided but not defined"},
		{[]string{"revoke"}, "exactly one key id"},
		{[]string{"revoke", "abc"}, `no API key with id "abc"`},
		{[]string{"list", "x"}, "takes no arguments"},
		{[]string{"rotate"}, `unknown command "rotate"`},
	}
	for _, tc := range tests {
		err := apikeyCommand(context.Background(), &fakeKeyStore{}, tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestAPIKeyCreatePrintsKeyOnceAndStoresDigest(t *testing.T) {
	t.Parallel()
	st := &fakeKeyStore{}
	var out bytes.Buffer
	if err := apikeyCommand(context.Background(), st, []string{"create", "--source", "acme", "--rate", "50"}, &out); err != nil {
		t.Fatal(err)
	}
	m := keyLine.FindStringSubmatch(out.String())
	if m == nil || len(st.created) != 1 {
		t.Fatalf("output %q, stored %d", out.String(), len(st.created))
	}
	k := st.created[0]
	if !bytes.Equal(k.Hash, auth.HashKey(m[1])) || k.Source != "acme" || k.Rate != 50 {
		t.Errorf("stored %+v", k)
	}
	var list bytes.Buffer
	if err := apikeyCommand(context.Background(), st, []string{"list"}, &list); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(list.String(), m[1]) || !strings.Contains(list.String(), k.ID) || !strings.Contains(list.String(), "50/s") {
		t.Errorf("list:\n%s", list.String())
	}
}

func TestAPIKeyNeedsPostgres(t *testing.T) {
	t.Parallel()
	err := runAPIKey(context.Background(), config.FromMap(map[string]string{}), []string{"list"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "VIGIL_POSTGRES_URL") {
		t.Errorf("error %v", err)
	}
}
