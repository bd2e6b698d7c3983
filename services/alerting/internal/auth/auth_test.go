package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-fraud/vigil/libs/testinfra"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	l := NewLimiter(2, time.Minute, func() time.Time { return now })
	if !l.Allow("ip:1", "email:a") || !l.Allow("ip:1", "email:b") {
		t.Fatal("first two attempts refused")
	}
	if l.Allow("ip:1", "email:c") {
		t.Fatal("third attempt from one IP allowed")
	}
	if !l.Allow("ip:2", "email:c") {
		t.Fatal("another IP and email refused")
	}
	now = now.Add(time.Minute)
	if !l.Allow("ip:1", "email:a") {
		t.Fatal("not reset after the window")
	}
}

func TestCan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		role, want string
		ok         bool
	}{
		{RoleService, RoleService, true}, {RoleService, RoleAnalyst, false}, {RoleAnalyst, RoleService, true},
		{RoleAnalyst, RoleAnalyst, true}, {RoleAnalyst, RoleAdmin, false}, {RoleAdmin, RoleAdmin, true}, {"", RoleService, false},
	} {
		if Can(tc.role, tc.want) != tc.ok {
			t.Errorf("Can(%q, %q) != %v", tc.role, tc.want, tc.ok)
		}
	}
}

func TestIntegrationAccounts(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	ctx := context.Background()
	a := NewAccounts(pool, bcrypt.MinCost, time.Hour)
	if _, err := a.CreateUser(ctx, "Ana@Example.com", "correct horse battery", RoleAnalyst); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateUser(ctx, "ana@example.com", "correct horse battery", RoleAdmin); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate email: %v", err)
	}
	var hash string
	_ = pool.QueryRow(ctx, `SELECT password_hash FROM users`).Scan(&hash)
	if hash == "correct horse battery" || bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse battery")) != nil {
		t.Fatal("password not stored as a bcrypt hash")
	}
	if _, _, err := a.Login(ctx, "ana@example.com", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, _, err := a.Login(ctx, "nobody@example.com", "x"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	token, s, err := a.Login(ctx, "ANA@example.com", "correct horse battery")
	if err != nil || s.Role != RoleAnalyst || s.CSRF == "" {
		t.Fatalf("login: %+v %v", s, err)
	}
	var stored int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE token_hash = $1`, []byte(token)).Scan(&stored)
	if stored != 0 {
		t.Fatal("session token stored in clear")
	}
	got, ok, err := a.Session(ctx, token)
	if err != nil || !ok || got.Email != "ana@example.com" || got.CSRF != s.CSRF {
		t.Fatalf("session: %+v %v %v", got, ok, err)
	}
	if _, ok, _ := a.Session(ctx, token+"x"); ok {
		t.Fatal("forged token accepted")
	}
	if _, err := pool.Exec(ctx, `UPDATE sessions SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Session(ctx, token); ok {
		t.Fatal("expired session accepted")
	}
	token, _, _ = a.Login(ctx, "ana@example.com", "correct horse battery")
	if err := a.Logout(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Session(ctx, token); ok {
		t.Fatal("session alive after logout")
	}
}
