package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/alerting/internal/auth"
)

// chromiumPath finds the browser; missing it fails the test (skips only under -short).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test needs chromium; skipped under -short")
	}
	if p := os.Getenv("VIGIL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: apt-get install -y chromium (or set VIGIL_CHROMIUM)")
	return ""
}

func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("VIGIL_TEST_ARTIFACTS"); d != "" {
		dir := filepath.Join(d, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

func produceDecision(t *testing.T, ctx context.Context, cl *kgo.Client, pool *pgxpool.Pool, topic, id, account string, action fraudv1.Action, score float64) {
	t.Helper()
	now := time.Now()
	d := &fraudv1.Decision{DecisionId: id, TransactionId: "tx-" + id, AccountId: account, Action: action, Score: score,
		Reasons:     []*fraudv1.Reason{{Code: "MODEL_SCORE_ELEVATED"}, {Code: "FEATURE:account_count_1h", Weight: 0.42}},
		AmountMinor: 250000, Currency: "EUR", ReceivedTime: timestamppb.New(now), DecidedTime: timestamppb.New(now)}
	// The decision sink (scoring service) stores the decision row the case page joins.
	if _, err := pool.Exec(ctx, `INSERT INTO decisions (decision_id, transaction_id, account_id, action, score, reasons, model_version,
		rule_set_version, feature_schema_version, review_threshold, decline_threshold, amount_minor, currency, features, received_at, decided_at,
		kafka_partition, kafka_offset) VALUES ($1, 'tx-' || $1, $2, $3, $4, '[{"code":"MODEL_SCORE_ELEVATED"},{"code":"FEATURE:account_count_1h","weight":0.42}]',
		'model-7', 'rules-3', 'fs-1', 0.5, 0.9, 250000, 'EUR', '{"account_count_1h": 7, "account_amount_1h": 912.5}', now(), now(), 0, 0)`,
		id, account, strings.ToLower(strings.TrimPrefix(action.String(), "ACTION_")), score); err != nil {
		t.Fatal(err)
	}
	rec, err := kafka.NewRecord(topic, account, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationBrowser drives the real service in headless Chromium: log in, watch the live
// queue pick up a new case without a reload, open a case, label it fraud with the keyboard, and
// find the label in Postgres and, read-committed, on labels.v1.
func TestIntegrationBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	brokers := testinfra.KafkaBrokers(t)
	pool, dbURL := testinfra.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	artifacts := artifactDir(t)

	decisions, labels := testinfra.UniqueName("decisions-ui-"), testinfra.UniqueName("labels-ui-")
	cl, err := kgo.NewClient(kafka.ProducerOptions(brokers)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, 3, decisions, labels); err != nil {
		t.Fatal(err)
	}
	const email, password = "ana@example.com", "correct horse battery staple"
	if _, err := auth.NewAccounts(pool, bcrypt.MinCost, time.Hour).CreateUser(ctx, email, password, auth.RoleAnalyst); err != nil {
		t.Fatal(err)
	}
	const adminEmail = "adm@example.com"
	if _, err := auth.NewAccounts(pool, bcrypt.MinCost, time.Hour).CreateUser(ctx, adminEmail, password, auth.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	// What the scoring service's first start does: seed its rules file.
	if _, err := pool.Exec(ctx, `INSERT INTO scoring_rules (rule_id, version, expression, action, reason_code) VALUES ('seed', 1, 'score > 0.99', 'decline', 'SEED')`); err != nil {
		t.Fatal(err)
	}
	// A stand-in for the scoring service's /metrics, so the overview's services panel has data.
	fixture, err := os.ReadFile("internal/metrics/testdata/scoring.prom")
	if err != nil {
		t.Fatal(err)
	}
	metricsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(fixture)
	}))
	defer metricsSrv.Close()

	env := map[string]string{
		"VIGIL_ALERTING_ADDR": "127.0.0.1:0", "VIGIL_ALERTING_GROUP": testinfra.UniqueName("alerting-ui-"),
		"VIGIL_ALERTING_API_TOKEN": "browser-test-token-123", "VIGIL_ALERTING_BCRYPT_COST": "4",
		"VIGIL_ALERTING_LABEL_TXN_ID": testinfra.UniqueName("labels-ui-txn-"),
		"VIGIL_KAFKA_BROKERS":         strings.Join(brokers, ","), "VIGIL_TOPIC_DECISIONS": decisions, "VIGIL_TOPIC_LABELS": labels,
		"VIGIL_POSTGRES_URL": dbURL, "VIGIL_ALERTING_METRICS_SOURCES": "scoring=" + metricsSrv.URL + "/metrics",
	}
	cfg, err := loadConfig(config.FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- serve(sctx, cfg, slog.New(slog.DiscardHandler), func(a string) { addrc <- a }) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("service: %v", err)
		}
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("service did not start: %v", err)
	}

	produceDecision(t, ctx, cl, pool, decisions, "ui-d1", "acct-ui-1", fraudv1.Action_ACTION_REVIEW, 0.71)
	produceDecision(t, ctx, cl, pool, decisions, "ui-d2", "acct-ui-1", fraudv1.Action_ACTION_DECLINE, 0.93)
	waitFor(t, ctx, pool, `SELECT count(*) FROM alerts WHERE account_id = 'acct-ui-1'`, 2)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun,
		chromedp.WindowSize(1280, 900))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// A screenshot is an artifact, not an assertion: Chromium sometimes has no layout yet right
	// after an htmx swap ("Cannot take screenshot with 0 width", seen once in CI on
	// 2026-12-06), so it is tried a few times and a page that still has none is logged.
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			var buf []byte
			var err error
			for range 5 {
				if buf, err = chromedp.FullScreenshot(100)(ctx, tg); err == nil {
					return chromedp.Void{}, os.WriteFile(filepath.Join(artifacts, name+".png"), buf, 0o644)
				}
				select {
				case <-ctx.Done():
					return chromedp.Void{}, ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
			t.Logf("screenshot %s not taken: %v", name, err)
			return chromedp.Void{}, nil
		}
	}
	// The first action starts the browser and must not carry a step timeout; later steps do, so
	// a broken page fails in seconds rather than at the test deadline.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	step := func() context.Context {
		sctx, scancel := context.WithTimeout(bctx, 45*time.Second)
		t.Cleanup(scancel)
		return sctx
	}
	// On failure, keep what the browser showed: a screenshot and the page's HTML.
	defer func() {
		if !t.Failed() {
			return
		}
		dctx, dcancel := context.WithTimeout(bctx, 10*time.Second)
		defer dcancel()
		_, _ = chromedp.Run(dctx, shot("failure"))
		if html, err := chromedp.Run(dctx, chromedp.OuterHTML(chromedp.CSS("html"))); err == nil {
			_ = os.WriteFile(filepath.Join(artifacts, "failure.html"), []byte(html), 0o644)
		}
		t.Logf("failure artifacts in %s", artifacts)
	}()
	if err := chromedp.Do(step(),
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		shot("01-login"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("a.case-link")),
		shot("02-queue"),
	); err != nil {
		t.Fatalf("login and queue: %v", err)
	}

	// The live queue: a new case appears by htmx polling, without a reload.
	produceDecision(t, ctx, cl, pool, decisions, "ui-d3", "acct-ui-2", fraudv1.Action_ACTION_REVIEW, 0.66)
	if _, err := chromedp.Run(step(), chromedp.Poll[bool](`document.querySelectorAll("tr.case-row").length >= 2`, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("live queue did not show the new case: %v", err)
	}
	if err := chromedp.Do(step(), shot("03-queue-live"),
		// Highest score first: acct-ui-1's case.
		chromedp.Click(chromedp.CSS("tr.case-row:first-child a.case-link")),
		chromedp.WaitVisible(chromedp.ID("label-form")),
		shot("04-case")); err != nil {
		t.Fatalf("open case: %v", err)
	}
	reasons, err := chromedp.Run(step(), chromedp.Text(chromedp.CSS("ul.reasons")))
	if err != nil {
		t.Fatal(err)
	}
	features, err := chromedp.Run(step(), chromedp.Text(chromedp.CSS("table.features")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reasons, "above the review threshold") || !strings.Contains(reasons, "account count 1h") ||
		!strings.Contains(features, "account_count_1h") || !strings.Contains(features, "912.5") {
		t.Fatalf("case page shows reasons %q and features %q", reasons, features)
	}
	// Keyboard shortcut f: label fraud and submit.
	if err := chromedp.Do(step(),
		chromedp.KeyEvent("f"),
		// The form posts and redirects back to the case page with a flash message.
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
		shot("05-labelled"),
	); err != nil {
		t.Fatalf("label with the keyboard: %v", err)
	}
	if shown, err := chromedp.Run(step(), chromedp.Text(chromedp.ID("case-label"))); err != nil || shown != "fraud" {
		t.Fatalf("case page shows label %q (%v)", shown, err)
	}

	var label, analyst string
	if err := pool.QueryRow(ctx, `SELECT label FROM cases WHERE account_id = 'acct-ui-1'`).Scan(&label); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT min(analyst) FROM labels WHERE account_id = 'acct-ui-1'`).Scan(&analyst); err != nil || label != "fraud" || analyst != email {
		t.Fatalf("postgres: case label %q, analyst %q (%v)", label, analyst, err)
	}
	waitFor(t, ctx, pool, `SELECT count(*) FROM label_outbox WHERE sent_at IS NOT NULL`, 2)

	// labels.v1, read-committed: one fraud label per transaction of the case.
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(labels), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]fraudv1.LabelValue{}
	for len(got) < 2 && ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		f := cons.PollFetches(pctx)
		pcancel()
		f.EachRecord(func(r *kgo.Record) {
			l := &fraudv1.Label{}
			if err := kafka.Decode(r, l); err == nil && string(r.Key) == "acct-ui-1" && l.GetAnalyst() == email {
				got[l.GetTransactionId()] = l.GetValue()
			}
		})
	}
	if got["tx-ui-d1"] != fraudv1.LabelValue_LABEL_VALUE_FRAUD || got["tx-ui-d2"] != fraudv1.LabelValue_LABEL_VALUE_FRAUD {
		t.Fatalf("labels.v1: %v", got)
	}

	// The overview reads lag and p99 from the services' /metrics.
	if err := chromedp.Do(step(),
		chromedp.Navigate(base+"/ui/overview"),
		chromedp.WaitVisible(chromedp.CSS("table.services")),
		shot("06-overview"),
	); err != nil {
		t.Fatalf("overview: %v", err)
	}
	if services, err := chromedp.Run(step(), chromedp.Text(chromedp.CSS("table.services"))); err != nil ||
		!strings.Contains(services, "vigil-scoring: 150") || !strings.Contains(services, "75.0 ms") {
		t.Fatalf("overview services panel %q (%v)", services, err)
	}
	// An analyst has no admin pages.
	if err := chromedp.Do(step(), chromedp.Navigate(base+"/ui/admin/lists"), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		t.Fatal(err)
	}
	if body, err := chromedp.Run(step(), chromedp.Text(chromedp.CSS("body"))); err != nil || !strings.Contains(body, "your role may not do this") {
		t.Fatalf("analyst on the lists page sees %q (%v)", body, err)
	}

	// As admin: the rules page (add a rule), the lists page (add a card-token entry; a card
	// number is refused), each checked in Postgres.
	if err := chromedp.Do(step(),
		chromedp.Navigate(base+"/ui/queue"),
		chromedp.WaitVisible(chromedp.CSS("nav form button")),
		chromedp.Click(chromedp.CSS("nav form button")),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), adminEmail),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("a.case-link")),
		chromedp.Navigate(base+"/ui/admin/rules"),
		chromedp.WaitVisible(chromedp.ID("rule-form")),
		chromedp.SendKeys(chromedp.ID("rule-id"), "ui_big_amount"),
		chromedp.SendKeys(chromedp.ID("rule-expression"), "tx.amount_minor > params.review_amount_minor && account.declines_1h >= 1"),
		chromedp.SendKeys(chromedp.ID("rule-reason"), "UI_AMOUNT_HIGH"),
		chromedp.Click(chromedp.ID("rule-submit")),
		chromedp.WaitVisible(chromedp.CSS("tr.rule-row")),
		shot("07-rules"),
	); err != nil {
		t.Fatalf("rules page: %v", err)
	}
	var ruleVersion int
	var ruleEnabled bool
	if err := pool.QueryRow(ctx, `SELECT version, enabled FROM scoring_rules WHERE rule_id = 'ui_big_amount'`).Scan(&ruleVersion, &ruleEnabled); err != nil ||
		ruleVersion != 1 || !ruleEnabled {
		t.Fatalf("postgres: rule v%d enabled %v (%v)", ruleVersion, ruleEnabled, err)
	}
	if err := chromedp.Do(step(),
		chromedp.Navigate(base+"/ui/admin/lists"),
		chromedp.WaitVisible(chromedp.ID("entry-form")),
		chromedp.SendKeys(chromedp.ID("entry-value"), "4111 1111 1111 1111"),
		chromedp.Click(chromedp.ID("entry-submit")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	); err != nil {
		t.Fatalf("lists page: %v", err)
	}
	if flash, err := chromedp.Run(step(), chromedp.Text(chromedp.CSS("p.flash"))); err != nil || !strings.Contains(flash, "looks like a card number") {
		t.Fatalf("PAN refusal shows %q (%v)", flash, err)
	}
	if err := chromedp.Do(step(),
		// The refused value is not echoed back: the field is empty again.
		chromedp.SendKeys(chromedp.ID("entry-value"), "tok_browser_1"),
		chromedp.SendKeys(chromedp.ID("entry-reason"), "chargeback ring"),
		chromedp.SendKeys(chromedp.ID("entry-expires"), "72h"),
		chromedp.Click(chromedp.ID("entry-submit")),
		chromedp.WaitVisible(chromedp.CSS("tr.entry-row")),
		shot("08-lists"),
	); err != nil {
		t.Fatalf("add list entry: %v", err)
	}
	var list, reason string
	var expires time.Time
	if err := pool.QueryRow(ctx, `SELECT list, reason, expires_at FROM scoring_list_entries WHERE kind = 'card' AND value = 'tok_browser_1'`).Scan(&list, &reason, &expires); err != nil ||
		list != "block" || reason != "chargeback ring" || time.Until(expires) < 71*time.Hour {
		t.Fatalf("postgres: entry %s %q expires %s (%v)", list, reason, expires, err)
	}
	var entries, audits int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM scoring_list_entries),
		(SELECT count(*) FROM audit_log WHERE actor = $1 AND entity IN ('scoring_rule', 'scoring_list_entry'))`, adminEmail).Scan(&entries, &audits); err != nil ||
		entries != 1 || audits != 2 {
		t.Fatalf("postgres: %d entries (the PAN must not be one), %d audit rows (%v)", entries, audits, err)
	}
	t.Logf("screenshots in %s", artifacts)
}

func waitFor(t *testing.T, ctx context.Context, pool *pgxpool.Pool, query string, want int) {
	t.Helper()
	var n int
	for ctx.Err() == nil {
		if err := pool.QueryRow(ctx, query).Scan(&n); err == nil && n >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %d, want %d", query, n, want)
}
