package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/testinfra"
)

func TestIntegrationUserCreateCLI(t *testing.T) {
	_, dbURL := testinfra.NewDatabase(t)
	t.Setenv("VIGIL_POSTGRES_URL", dbURL)
	t.Setenv("VIGIL_ALERTING_BCRYPT_COST", "4")
	ctx := context.Background()
	var out bytes.Buffer
	if err := runUserCmd(ctx, []string{"create", "--email", "Root@Example.com", "--role", "admin"}, strings.NewReader("a long enough password\n"), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "created admin root@example.com") {
		t.Fatalf("output %q", out.String())
	}
	tests := []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"create", "--email", "root@example.com", "--role", "admin"}, "a long enough password\n", "user exists"},
		{[]string{"create", "--email", "nobody", "--role", "admin"}, "a long enough password\n", "--email"},
		{[]string{"create", "--email", "a@b.c", "--role", "root"}, "a long enough password\n", "--role"},
		{[]string{"create", "--email", "a@b.c", "--role", "admin"}, "short\n", "password"},
		{[]string{"create", "--email", "a@b.c", "--role", "admin"}, "", "password"},
		{[]string{"create", "--email", "a@b.c", "--password", "x"}, "", "flag provided but not defined"},
		{[]string{"delete"}, "", "usage"},
	}
	for _, tc := range tests {
		err := runUserCmd(ctx, tc.args, strings.NewReader(tc.stdin), &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
	// export-labels: an empty database writes the header only.
	path := filepath.Join(t.TempDir(), "labels.csv")
	if err := runExportCmd(ctx, []string{"--out", path}, &out); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "transaction_id,account_id,label,analyst,transaction_time,labelled_at\n" {
		t.Fatalf("csv %q", b)
	}
	if err := runExportCmd(ctx, nil, &out); err == nil || !strings.Contains(err.Error(), "--out") {
		t.Fatalf("missing --out: %v", err)
	}
}

type fakeExporter struct{ err error }

func (f fakeExporter) ExportLabels(_ context.Context, emit func(tid, acc, v, an string, tt, lt time.Time) error) error {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := emit("tx-1", "acct,1", "fraud", "ana@x", at, at); err != nil {
		return err
	}
	return f.err
}

func TestExportLabelsCSV(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	n, err := exportLabels(context.Background(), fakeExporter{}, &buf)
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	want := "transaction_id,account_id,label,analyst,transaction_time,labelled_at\ntx-1,\"acct,1\",fraud,ana@x,2026-01-02T03:04:05Z,2026-01-02T03:04:05Z\n"
	if buf.String() != want {
		t.Fatalf("csv %q", buf.String())
	}
	if _, err := exportLabels(context.Background(), fakeExporter{err: errors.New("pg down")}, &buf); err == nil {
		t.Fatal("error swallowed")
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(config.FromMap(map[string]string{"VIGIL_ALERTING_API_TOKEN": "0123456789abcdef", "VIGIL_POSTGRES_URL": "postgres://x@127.0.0.1/db"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LabelTxnID != "vigil-alerting-labels" || cfg.InsecureCookies || cfg.WebhookAllowLocal || cfg.BcryptCost != 12 || cfg.Fetch != AlertingFetch {
		t.Fatalf("defaults %+v", cfg)
	}
	_, err = loadConfig(config.FromMap(map[string]string{"VIGIL_ALERTING_API_TOKEN": "short", "VIGIL_POSTGRES_URL": "postgres://x@127.0.0.1/db",
		"VIGIL_ALERTING_SESSION_TTL": "1s"}))
	if err == nil || !strings.Contains(err.Error(), "VIGIL_ALERTING_API_TOKEN") || !strings.Contains(err.Error(), "VIGIL_ALERTING_SESSION_TTL") {
		t.Fatalf("config errors: %v", err)
	}
}
