package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
	"github.com/vigil-fraud/vigil/services/ingest/internal/store"
)

const apikeyUsage = `usage:
  ingest apikey create --source <source> [--rate <tx/s>] [--burst <n>]   prints the new key once
  ingest apikey revoke <key id>
  ingest apikey list
Needs VIGIL_POSTGRES_URL.`

// keyStore is what the apikey subcommand needs from Postgres.
type keyStore interface {
	CreateKey(ctx context.Context, k auth.StoredKey) (auth.StoredKey, error)
	RevokeKey(ctx context.Context, id string) (time.Time, error)
	ListKeys(ctx context.Context) ([]auth.StoredKey, error)
}

// runAPIKey opens Postgres and runs one apikey subcommand.
func runAPIKey(ctx context.Context, e *config.Env, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return errors.New(apikeyUsage)
	}
	pc := postgres.LoadConfig(e)
	if err := e.Err(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	pool, err := postgres.Open(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()
	return apikeyCommand(ctx, store.New(pool), args, out)
}

func apikeyCommand(ctx context.Context, st keyStore, args []string, out io.Writer) error {
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		source := fs.String("source", "", "payment system that owns the key")
		rate := fs.Float64("rate", 0, "rate limit override in transactions per second (0: service default)")
		burst := fs.Int("burst", 0, "burst override (0: service default)")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("apikey create: %w\n%s", err, apikeyUsage)
		}
		switch {
		case fs.NArg() > 0:
			return fmt.Errorf("apikey create: unexpected argument %q", fs.Arg(0))
		case !auth.ValidSource(*source):
			return errors.New("apikey create: --source must be 1-32 characters of letters, digits, . _ -")
		case *rate < 0 || *rate > 1e7:
			return errors.New("apikey create: --rate must be between 0 and 10000000")
		case *burst < 0:
			return errors.New("apikey create: --burst must not be negative")
		}
		id, key, err := auth.NewKey()
		if err != nil {
			return err
		}
		k, err := st.CreateKey(ctx, auth.StoredKey{ID: id, Source: *source, Hash: auth.HashKey(key), Rate: *rate, Burst: *burst})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "id:     %s\nsource: %s\nkey:    %s\n\nThe key is shown only now; store it in the payment system's secret store.\n", k.ID, k.Source, key)
		return nil
	case "revoke":
		if len(args) != 2 {
			return errors.New("apikey revoke: give exactly one key id")
		}
		id := strings.TrimSpace(args[1])
		at, err := st.RevokeKey(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("apikey revoke: no API key with id %q", id)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "revoked %s at %s (effective within VIGIL_INGEST_API_KEY_TTL)\n", id, at.UTC().Format(time.RFC3339))
		return nil
	case "list":
		if len(args) != 1 {
			return errors.New("apikey list: takes no arguments")
		}
		keys, err := st.ListKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSOURCE\tCREATED\tREVOKED\tRATE\tBURST")
		for _, k := range keys {
			revoked, rate, burst := "-", "default", "default"
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.UTC().Format(time.RFC3339)
			}
			if k.Rate > 0 {
				rate = fmt.Sprintf("%g/s", k.Rate)
			}
			if k.Burst > 0 {
				burst = fmt.Sprint(k.Burst)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Source, k.CreatedAt.UTC().Format(time.RFC3339), revoked, rate, burst)
		}
		return tw.Flush()
	}
	return fmt.Errorf("apikey: unknown command %q\n%s", args[0], apikeyUsage)
}
