package postgres_test

import (
	"context"
	"log/slog"
	"testing"

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
