package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/services/scoring/internal/metrics"
	"github.com/vigil-fraud/vigil/services/scoring/internal/modelset"
	"github.com/vigil-fraud/vigil/services/scoring/internal/store"
)

// TestIntegrationSIGHUPReload: SIGHUP swaps in a new model and a new rule version; a corrupt
// model or an invalid rule on a later SIGHUP keeps the previous ones.
func TestIntegrationSIGHUPReload(t *testing.T) {
	pool, dbURL := testinfra.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Our own registration keeps a SIGHUP from killing the test binary whatever the timing.
	guard := make(chan os.Signal, 4)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	modelPath := filepath.Join(t.TempDir(), "model.json")
	if err := testArtifact("lr-a").Save(modelPath); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(config.FromMap(map[string]string{"VIGIL_POSTGRES_URL": dbURL, "VIGIL_SCORING_MODEL_PATH": modelPath,
		"VIGIL_SCORING_RULES_REFRESH": "1h", "VIGIL_SCORING_LISTS_REFRESH": "1h", "VIGIL_SCORING_MODEL_WATCH_INTERVAL": "1h"}))
	if err != nil {
		t.Fatal(err)
	}
	models, err := modelset.NewHolder(cfg.ModelPath, "", features.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	met := metrics.New()
	live := &liveSources{rulesStore: store.NewRules(pool), listStore: store.NewLists(pool), cfg: cfg, log: slog.New(slog.DiscardHandler), metrics: met}
	if err := live.loadRules(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := live.loadLists(ctx); err != nil {
		t.Fatal(err)
	}
	firstRules := live.rules.Load().Version()
	met.ModelLoaded(models.Current().Primary.Version(), features.SchemaVersion) // as run does at start
	infoIs := func(model, ruleSet string) func() bool {
		want := fmt.Sprintf(`# HELP vigil_model_info 1 for the primary model in use; labels name its version and feature schema.
# TYPE vigil_model_info gauge
vigil_model_info{feature_schema=%q,version=%q} 1
# HELP vigil_rules_info 1 for the active rule set; the label names its version.
# TYPE vigil_rules_info gauge
vigil_rules_info{version=%q} 1
`, features.SchemaVersion, model, ruleSet)
		return func() bool {
			return testutil.CollectAndCompare(met, strings.NewReader(want), "vigil_model_info", "vigil_rules_info") == nil
		}
	}
	if !infoIs("lr-a", firstRules)() {
		t.Fatal("info gauges at start do not name lr-a and the first rule set")
	}
	done := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	go func() { done <- live.refresh(rctx, models) }()
	defer func() { stop(); <-done }()
	time.Sleep(100 * time.Millisecond) // let refresh register for SIGHUP

	hup := func() {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if err := testArtifact("lr-b").Save(modelPath); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO scoring_rules (rule_id, version, expression, action, reason_code, priority)
		VALUES ('amount-review', 2, 'tx.amount_minor >= 200000', 'review', 'AMOUNT_OVER_REVIEW_LIMIT', 50)`); err != nil {
		t.Fatal(err)
	}
	hup()
	waitFor("model lr-b", func() bool { return models.Current().Primary.Version() == "lr-b" })
	waitFor("new rule set", func() bool { return live.rules.Load().Version() != firstRules })
	second := live.rules.Load().Version()
	// The old label sets are gone, not left at 1 beside the new ones.
	waitFor("info gauges of lr-b and the new rule set", infoIs("lr-b", second))
	if _, err := live.rulesStore.Set(ctx, second); err != nil {
		t.Fatalf("new rule set not published for explain: %v", err)
	}

	// Broken model and broken rule: both keep what runs.
	if err := os.WriteFile(modelPath, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO scoring_rules (rule_id, version, expression, action, reason_code)
		VALUES ('amount-review', 3, 'tx.amount_minor >= ', 'review', 'X')`); err != nil {
		t.Fatal(err)
	}
	reloads := models.Reloads.Load()
	hup()
	time.Sleep(500 * time.Millisecond)
	if models.Current().Primary.Version() != "lr-b" || models.Reloads.Load() != reloads {
		t.Fatalf("corrupt model replaced lr-b: %s", models.Current().Primary.Version())
	}
	if live.rules.Load().Version() != second {
		t.Fatal("invalid rule replaced the rule set")
	}
	if !infoIs("lr-b", second)() {
		t.Fatal("info gauges changed on a failed reload")
	}
}
