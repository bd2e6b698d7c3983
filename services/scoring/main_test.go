package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-fraud/vigil/libs/config"
)

func TestLoadConfigNamesBadVariables(t *testing.T) {
	t.Parallel()
	_, err := loadConfig(config.FromMap(map[string]string{
		"VIGIL_SCORING_REVIEW_THRESHOLD": "1.5",
		"VIGIL_SCORING_MAX_POLL_RECORDS": "lots",
		"VIGIL_SCORING_MODEL_BUDGET":     "soon",
		"VIGIL_SCORING_TOP_FEATURES":     "-1",
	}))
	if err == nil {
		t.Fatal("want error")
	}
	for _, name := range []string{"VIGIL_SCORING_REVIEW_THRESHOLD", "VIGIL_SCORING_MAX_POLL_RECORDS", "VIGIL_POSTGRES_URL",
		"VIGIL_SCORING_MODEL_BUDGET", "VIGIL_SCORING_TOP_FEATURES"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestDefaultsKeepTheSkeletonBehaviour(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(config.FromMap(map[string]string{"VIGIL_POSTGRES_URL": "postgres://u@127.0.0.1:1/db"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ModelPath != "" || !cfg.WindowsEnabled || !cfg.SinkEnabled || cfg.GroupInstanceID != "" || cfg.Policy.ReviewAmountMinor != 100_000 {
		t.Fatalf("defaults changed: %+v", cfg)
	}
}

func TestRulesCheck(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := dispatch(context.Background(), []string{"rules", "check"}, &out); err != nil || !strings.Contains(out.String(), "built-in rules.yaml: 4 rules compile; rule set rs-") {
		t.Fatalf("built-in rules: %v %s", err, out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - id: velocity\n    expression: features.account_count_2h > 3\n    action: review\n    reason: V\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := dispatch(context.Background(), []string{"rules", "check", "-file", bad}, &out)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), `rule "velocity" v1`) ||
		!strings.Contains(err.Error(), `unknown feature "account_count_2h" at column 10`) {
		t.Fatalf("bad rules: %v", err)
	}
	err = dispatch(context.Background(), []string{"lists", "put", "-list", "deny", "-kind", "card", "-value", "tok"}, &out)
	if err == nil || !strings.Contains(err.Error(), `list "deny"`) {
		t.Fatalf("bad list entry: %v", err)
	}
	if err := dispatch(context.Background(), []string{"frobnicate"}, &out); err == nil {
		t.Fatal("unknown command accepted")
	}
}
