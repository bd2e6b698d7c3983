package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/testinfra"
)

func TestMigrateIsIdempotentAndTablesExist(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t) // already migrated through the template
	ctx := context.Background()
	n, err := postgres.Migrate(ctx, pool, slog.New(slog.DiscardHandler))
	if err != nil || n != 0 {
		t.Fatalf("second migrate applied %d, %v", n, err)
	}
	for _, table := range []string{"decisions", "alerts", "kafka_offsets"} {
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil || !ok {
			t.Fatalf("table %s missing: %v", table, err)
		}
	}
}

func TestInTxRollsBackOnError(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	ctx := context.Background()
	_ = postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO kafka_offsets (consumer, topic, partition, next_offset) VALUES ('c', 't', 0, 1)`); err != nil {
			return err
		}
		return context.Canceled
	})
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM kafka_offsets`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after rollback = %d, %v", n, err)
	}
}

// Open waits for a server that is not up yet, but not for one that refuses the login.
func TestOpenStartupWait(t *testing.T) {
	t.Parallel()
	good, err := url.Parse(testinfra.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword := *good
	wrongPassword.User = url.UserPassword(good.User.Username(), "not-the-password")
	closedPort := *good
	closedPort.Host = fmt.Sprintf("127.0.0.1:%d", testinfra.FreeTCPPort(t))
	tests := []struct {
		name             string
		url              string
		wait             time.Duration
		minTook, maxTook time.Duration
	}{
		{"nothing listening: waits its StartupWait", closedPort.String(), 1500 * time.Millisecond, 1400 * time.Millisecond, 10 * time.Second},
		{"wrong password: fails at once", wrongPassword.String(), time.Minute, 0, 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			pool, err := postgres.Open(context.Background(), postgres.Config{URL: tc.url, MaxConns: 1, StartupWait: tc.wait})
			took := time.Since(start)
			if err == nil {
				pool.Close()
				t.Fatal("Open succeeded")
			}
			if took < tc.minTook || took > tc.maxTook {
				t.Errorf("failed after %s, want between %s and %s (%v)", took, tc.minTook, tc.maxTook, err)
			}
			if strings.Contains(err.Error(), "not-the-password") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}
