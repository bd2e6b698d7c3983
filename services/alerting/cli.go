package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/services/alerting/internal/auth"
	"github.com/vigil-fraud/vigil/services/alerting/internal/store"
)

// openPool reads only the Postgres settings: the CLIs need no API token or Kafka.
func openPool(ctx context.Context) (*pgxpool.Pool, int, error) {
	e := config.FromOS()
	pc := postgres.LoadConfig(e)
	cost := e.Int("VIGIL_ALERTING_BCRYPT_COST", 12, 4, 16)
	if err := e.Err(); err != nil {
		return nil, 0, fmt.Errorf("configuration: %w", err)
	}
	pool, err := postgres.Open(ctx, pc)
	return pool, cost, err
}

// runUserCmd: `user create --email E --role admin|analyst`. The password never comes from a
// flag (it would sit in shell history and ps output): VIGIL_ALERTING_NEW_PASSWORD or the first
// line of stdin.
func runUserCmd(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: alerting user create --email EMAIL --role admin|analyst (password on stdin or in VIGIL_ALERTING_NEW_PASSWORD)")
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the returned error says what is wrong
	email := fs.String("email", "", "email of the new user")
	role := fs.String("role", "analyst", "analyst or admin")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if !strings.Contains(*email, "@") {
		return errors.New("--email: must be an address")
	}
	if *role != auth.RoleAnalyst && *role != auth.RoleAdmin {
		return errors.New("--role: must be analyst or admin")
	}
	password, err := readPassword(stdin)
	if err != nil {
		return err
	}
	if err := auth.ValidatePassword(password); err != nil {
		return fmt.Errorf("password: %w", err)
	}
	pool, cost, err := openPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	u, err := auth.NewAccounts(pool, cost, time.Hour).CreateUser(ctx, *email, password, *role)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s %s (%s)\n", u.Role, u.Email, u.ID)
	return nil
}

func readPassword(stdin io.Reader) (string, error) {
	if p, ok := os.LookupEnv("VIGIL_ALERTING_NEW_PASSWORD"); ok {
		return p, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("password: give it on stdin or in VIGIL_ALERTING_NEW_PASSWORD")
	}
	return line, nil
}

// runExportCmd writes the latest label of each transaction as CSV for retraining.
func runExportCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export-labels", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("out", "", "CSV file to write (- for stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out: required (a file path, or - for stdout)")
	}
	pool, _, err := openPool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	w := stdout
	var f *os.File
	if *out != "-" {
		f, err = os.Create(*out)
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		defer f.Close()
		w = f
	}
	n, err := exportLabels(ctx, store.New(pool, slog.New(slog.DiscardHandler)), w)
	if err != nil {
		return err
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
		fmt.Fprintf(stdout, "wrote %d labels to %s\n", n, *out)
	}
	return nil
}

type labelExporter interface {
	ExportLabels(ctx context.Context, emit func(transactionID, accountID, value, analyst string, txTime, labelledAt time.Time) error) error
}

func exportLabels(ctx context.Context, s labelExporter, w io.Writer) (int, error) {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"transaction_id", "account_id", "label", "analyst", "transaction_time", "labelled_at"})
	n := 0
	err := s.ExportLabels(ctx, func(tid, acc, v, an string, tt, lt time.Time) error {
		n++
		return cw.Write([]string{tid, acc, v, an, tt.UTC().Format(time.RFC3339Nano), lt.UTC().Format(time.RFC3339Nano)})
	})
	if err != nil {
		return n, err
	}
	cw.Flush()
	return n, cw.Error()
}
