// Package auth owns analyst accounts: bcrypt password hashes, server-side sessions whose token
// only the browser holds (Postgres keeps its SHA-256), a per-session synchronizer CSRF token, and
// a login rate limiter.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-fraud/vigil/libs/postgres"
)

// Roles.
const (
	RoleAnalyst = "analyst"
	RoleAdmin   = "admin"
	// RoleService is the machine token's role: read-only API access.
	RoleService = "service"
)

// ErrBadCredentials hides whether the email or the password was wrong.
var ErrBadCredentials = errors.New("bad email or password")

// ErrExists is returned when creating a user whose email is taken.
var ErrExists = errors.New("user exists")

// User is an authenticated principal.
type User struct {
	ID    string
	Email string
	Role  string
}

// Session is a logged-in user with the CSRF token of the session.
type Session struct {
	User
	CSRF string
}

// Can reports whether role may do what needs want: admins can do what analysts can.
func Can(role, want string) bool {
	switch want {
	case RoleService:
		return role == RoleService || role == RoleAnalyst || role == RoleAdmin
	case RoleAnalyst:
		return role == RoleAnalyst || role == RoleAdmin
	case RoleAdmin:
		return role == RoleAdmin
	}
	return false
}

// ValidatePassword enforces the minimum the bootstrap CLI and the admin page share.
func ValidatePassword(p string) error {
	if len(p) < 12 {
		return errors.New("password must be at least 12 characters")
	}
	if len(p) > 72 {
		return errors.New("password must be at most 72 bytes (bcrypt limit)")
	}
	return nil
}

// Accounts stores users and sessions in Postgres.
type Accounts struct {
	pool       *pgxpool.Pool
	cost       int
	sessionTTL time.Duration
	// dummy is compared against for unknown emails so their timing matches a wrong password.
	dummy []byte
}

// NewAccounts returns the store; cost is the bcrypt cost (tests use bcrypt.MinCost).
func NewAccounts(pool *pgxpool.Pool, cost int, sessionTTL time.Duration) *Accounts {
	d, _ := bcrypt.GenerateFromPassword([]byte("not-a-real-password"), cost)
	return &Accounts{pool: pool, cost: cost, sessionTTL: sessionTTL, dummy: d}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(token string) []byte {
	s := sha256.Sum256([]byte(token))
	return s[:]
}

// CreateUser adds a user.
func (a *Accounts) CreateUser(ctx context.Context, email, password, role string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if !strings.Contains(email, "@") || len(email) > 254 {
		return User{}, errors.New("email must be an address")
	}
	if role != RoleAnalyst && role != RoleAdmin {
		return User{}, errors.New("role must be analyst or admin")
	}
	if err := ValidatePassword(password); err != nil {
		return User{}, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), a.cost)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	u := User{ID: "usr_" + randomToken()[:16], Email: email, Role: role}
	_, err = a.pool.Exec(ctx, `INSERT INTO users (user_id, email, password_hash, role) VALUES ($1, $2, $3, $4)`, u.ID, email, string(h), role)
	if postgres.IsUniqueViolation(err) {
		return User{}, fmt.Errorf("user %s: %w", email, ErrExists)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user %s: %w", email, err)
	}
	return u, nil
}

// Users lists all users.
func (a *Accounts) Users(ctx context.Context) ([]User, error) {
	rows, err := a.pool.Query(ctx, `SELECT user_id, email, role FROM users WHERE NOT disabled ORDER BY email`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) {
		var u User
		err := r.Scan(&u.ID, &u.Email, &u.Role)
		return u, err
	})
}

// Login checks the password and opens a session, returning its token (for the cookie).
func (a *Accounts) Login(ctx context.Context, email, password string) (string, Session, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var s Session
	var hash string
	err := a.pool.QueryRow(ctx, `SELECT user_id, email, role, password_hash FROM users WHERE email = $1 AND NOT disabled`, email).
		Scan(&s.ID, &s.Email, &s.Role, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
		return "", s, ErrBadCredentials
	}
	if err != nil {
		return "", s, fmt.Errorf("load user: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return "", s, ErrBadCredentials
	}
	// Expired sessions are swept here rather than by a timer: logins are rare and this keeps
	// the table small without another goroutine.
	if _, err := a.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at < now()`); err != nil {
		return "", s, fmt.Errorf("sweep sessions: %w", err)
	}
	token := randomToken()
	s.CSRF = randomToken()
	if _, err := a.pool.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)`,
		tokenHash(token), s.ID, s.CSRF, time.Now().Add(a.sessionTTL)); err != nil {
		return "", s, fmt.Errorf("open session: %w", err)
	}
	return token, s, nil
}

// Session resolves a cookie token; ok is false for unknown or expired sessions.
func (a *Accounts) Session(ctx context.Context, token string) (Session, bool, error) {
	var s Session
	err := a.pool.QueryRow(ctx, `SELECT u.user_id, u.email, u.role, s.csrf_token FROM sessions s JOIN users u USING (user_id)
		WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled`, tokenHash(token)).Scan(&s.ID, &s.Email, &s.Role, &s.CSRF)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("load session: %w", err)
	}
	return s, true, nil
}

// Logout ends a session.
func (a *Accounts) Logout(ctx context.Context, token string) error {
	_, err := a.pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, tokenHash(token))
	return err
}

// Limiter allows a number of login attempts per key per window (fixed window, in memory: one
// replica's view, which is enough to make online guessing slow).
type Limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	hits   map[string]*bucket
}

type bucket struct {
	start time.Time
	n     int
}

// NewLimiter allows max attempts per key per window.
func NewLimiter(max int, window time.Duration, now func() time.Time) *Limiter {
	return &Limiter{max: max, window: window, now: now, hits: map[string]*bucket{}}
}

// Allow counts an attempt for each key and reports whether all are within their limit.
func (l *Limiter) Allow(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.hits) > 100_000 {
		for k, b := range l.hits {
			if now.Sub(b.start) >= l.window {
				delete(l.hits, k)
			}
		}
	}
	ok := true
	for _, k := range keys {
		b := l.hits[k]
		if b == nil || now.Sub(b.start) >= l.window {
			b = &bucket{start: now}
			l.hits[k] = b
		}
		b.n++
		if b.n > l.max {
			ok = false
		}
	}
	return ok
}
