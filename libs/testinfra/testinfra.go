// Package testinfra gives integration tests the real broker, Redis and Postgres that
// `make infra-up` starts. Without them a test fails loudly; only `go test -short` skips.
package testinfra

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-fraud/vigil/libs/postgres"
)

func env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if testing.Short() {
			t.Skipf("integration test: %s unset and -short given", name)
		}
		t.Fatalf("integration test needs %s: run `make infra-up` and `eval $(deploy/local/infra.sh env)`, or `make test`", name)
	}
	return v
}

// KafkaBrokers returns VIGIL_KAFKA_BROKERS split on commas.
func KafkaBrokers(t testing.TB) []string {
	return strings.Split(env(t, "VIGIL_KAFKA_BROKERS"), ",")
}

// RedisAddr returns VIGIL_REDIS_ADDR.
func RedisAddr(t testing.TB) string { return env(t, "VIGIL_REDIS_ADDR") }

// PostgresURL returns VIGIL_POSTGRES_URL (the server's main database).
func PostgresURL(t testing.TB) string { return env(t, "VIGIL_POSTGRES_URL") }

// UniqueName returns prefix plus random hex, for topics, groups and key prefixes.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NewDatabase creates a fresh, migrated database for one test and drops it at cleanup. It
// clones a template migrated once per migration set, so each test pays a file copy, not the
// migrations.
func NewDatabase(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adminURL := PostgresURL(t)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect postgres: %v", err)
	}
	defer admin.Close(context.Background())

	template := "vigil_tmpl_" + migrationsHash(t)
	if err := ensureTemplate(ctx, admin, adminURL, template); err != nil {
		t.Fatalf("template database: %v", err)
	}
	name := UniqueName("vigil_test_")
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, template)); err != nil {
		t.Fatalf("create database: %v", err)
	}
	dbURL := withDatabase(t, adminURL, name)
	pool, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxConns: 10})
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("drop test database: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name)); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return pool, dbURL
}

func withDatabase(t testing.TB, raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("VIGIL_POSTGRES_URL is not a URL")
	}
	u.Path = "/" + db
	return u.String()
}

func migrationsHash(t testing.TB) string {
	h := sha256.New()
	err := fs.WalkDir(postgres.MigrationFS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(postgres.MigrationFS(), path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatalf("hash migrations: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// templateLock serialises template creation across test processes (go test runs packages in
// parallel).
const templateLock = 7_402_115_002

func ensureTemplate(ctx context.Context, admin *pgx.Conn, adminURL, template string) error {
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock($1)`, templateLock); err != nil {
		return err
	}
	defer func() { _, _ = admin.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, templateLock) }()
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, template).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := template + "_build"
	if _, err := admin.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, building)); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s`, building)); err != nil {
		return err
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return err
	}
	u.Path = "/" + building
	pool, err := postgres.Open(ctx, postgres.Config{URL: u.String(), MaxConns: 2})
	if err != nil {
		return err
	}
	_, err = postgres.Migrate(ctx, pool, slog.New(slog.DiscardHandler))
	pool.Close()
	if err != nil {
		return err
	}
	// Rename only when complete, so a crash mid-migration never leaves a half template.
	_, err = admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, building, template))
	return err
}
