// Package e2e runs the four services as real processes against the real broker, Redis and
// Postgres, posts transactions to ingest and checks what lands in Postgres.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
)

const (
	apiKey   = "sk_e2e_0123456789abcdef"
	apiToken = "e2e-analyst-token-0123456789"
	hmacKey  = "e2e-card-hmac-key-0123456789abcdef0123456789"
)

type service struct {
	name    string
	cmd     *exec.Cmd
	log     string
	addr    string
	exited  chan struct{} // closed when the process has ended; waitErr is then its exit
	waitErr error
}

// handedOut remembers every address freeAddr returned: the kernel happily gives a just-closed
// port to the next Listen(":0"), and two services on one port fail to start.
var handedOut sync.Map

func freeAddr(t *testing.T) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, taken := handedOut.LoadOrStore(addr, true); !taken {
			return addr
		}
	}
}

// buildAll compiles the services once into dir.
func buildAll(t *testing.T, dir string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ingest", "feature-window", "scoring", "alerting"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./services/"+name)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
}

func start(t *testing.T, bin, name, addr string, env []string) *service {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, name))
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	s := &service{name: name, cmd: cmd, log: logPath, addr: addr, exited: make(chan struct{})}
	go func() { s.waitErr = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = cmd.Process.Kill()
			<-s.exited
		}
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("---- last lines of %s log ----\n%s", name, strings.Join(lines, "\n"))
		}
	})
	return s
}

func waitReady(t *testing.T, s *service) {
	t.Helper()
	if err := httpserver.WaitReady(t.Context(), s.addr, 60*time.Second, s.exited); err != nil {
		t.Fatalf("%s: %v (exit: %v)", s.name, err, s.waitErr)
	}
}

// stop sends SIGTERM and requires a clean exit: graceful shutdown is part of the contract.
func stop(t *testing.T, s *service) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if s.waitErr != nil {
			t.Errorf("%s exited with %v after SIGTERM", s.name, s.waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30s of SIGTERM", s.name)
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// luhn completes a digit string with its Luhn check digit.
func luhn(body string) string {
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + strconv.Itoa((10-sum%10)%10)
}

type txn struct {
	TransactionID string `json:"transaction_id"`
	AccountID     string `json:"account_id"`
	CardNumber    string `json:"card_number"`
	MerchantID    string `json:"merchant_id"`
	TerminalID    string `json:"terminal_id"`
	MCC           string `json:"mcc"`
	AmountMinor   int64  `json:"amount_minor"`
	Currency      string `json:"currency"`
	Country       string `json:"country"`
	Channel       string `json:"channel"`
	DeviceID      string `json:"device_id,omitempty"`
	IP            string `json:"ip,omitempty"`
	EventTime     string `json:"event_time"`
}

// amountFor makes every tenth transaction need review by amount and every fiftieth a decline,
// so the expected alerts are known in advance.
func amountFor(i int) int64 {
	switch {
	case i%50 == 0:
		return 600_000
	case i%10 == 0:
		return 150_000
	default:
		return 1_000 + int64(i%40)*100
	}
}

func TestPipelineEndToEnd(t *testing.T) {
	brokers := testinfra.KafkaBrokers(t)
	redisAddr := testinfra.RedisAddr(t)
	pool, dbURL := testinfra.NewDatabase(t)
	ctx := context.Background()

	run := testinfra.UniqueName("e2e-")
	topics := kafka.Topics{Tx: run + ".tx.v1", Features: run + ".features.v1", Decisions: run + ".decisions.v1", Labels: run + ".labels.v1"}
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, 6, topics.All()...); err != nil {
		t.Fatal(err)
	}

	bin := t.TempDir()
	t0 := time.Now()
	buildAll(t, bin)
	t.Logf("built services in %s", time.Since(t0).Round(time.Millisecond))

	common := []string{
		"VIGIL_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"VIGIL_TOPIC_TX=" + topics.Tx, "VIGIL_TOPIC_FEATURES=" + topics.Features,
		"VIGIL_TOPIC_DECISIONS=" + topics.Decisions, "VIGIL_TOPIC_LABELS=" + topics.Labels,
		"VIGIL_POSTGRES_URL=" + dbURL,
		"VIGIL_REDIS_ADDR=" + redisAddr, "VIGIL_REDIS_KEY_PREFIX=" + run + ":",
		"VIGIL_LOG_LEVEL=info",
	}
	with := func(extra ...string) []string { return append(append([]string(nil), common...), extra...) }
	addrs := map[string]string{"ingest": freeAddr(t), "feature-window": freeAddr(t), "scoring": freeAddr(t), "alerting": freeAddr(t)}
	svcs := []*service{
		start(t, bin, "feature-window", addrs["feature-window"], with(
			"VIGIL_FEATURE_WINDOW_ADDR="+addrs["feature-window"],
			"VIGIL_FEATURE_WINDOW_GROUP="+run+"-fw", "VIGIL_FEATURE_WINDOW_TRANSACTIONAL_ID="+run+"-fw-0")),
		start(t, bin, "scoring", addrs["scoring"], with(
			"VIGIL_SCORING_ADDR="+addrs["scoring"],
			"VIGIL_SCORING_GROUP="+run+"-sc", "VIGIL_SCORING_TRANSACTIONAL_ID="+run+"-sc-0",
			"VIGIL_SCORING_SINK_GROUP="+run+"-sink")),
		start(t, bin, "alerting", addrs["alerting"], with(
			"VIGIL_ALERTING_ADDR="+addrs["alerting"], "VIGIL_ALERTING_GROUP="+run+"-al",
			"VIGIL_ALERTING_API_TOKEN="+apiToken)),
		start(t, bin, "ingest", addrs["ingest"], with(
			"VIGIL_INGEST_ADDR="+addrs["ingest"], "VIGIL_INGEST_API_KEYS=e2e:"+apiKey,
			"VIGIL_INGEST_CARD_HMAC_KEY="+hmacKey)),
	}
	for _, s := range svcs {
		waitReady(t, s)
	}

	const n = 1000
	pans := make([]string, n)
	wantAlerts, wantDeclines := 0, 0
	base := time.Now().Add(-2 * time.Hour).UTC()
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	client := &http.Client{Timeout: 10 * time.Second}
	t1 := time.Now()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				body, _ := json.Marshal(txn{
					TransactionID: fmt.Sprintf("t-%05d", i), AccountID: fmt.Sprintf("acct-%03d", i%250),
					CardNumber: pans[i], MerchantID: "m-1", TerminalID: fmt.Sprintf("term-%02d", i%20), MCC: "5411",
					AmountMinor: amountFor(i), Currency: "EUR", Country: "FR", Channel: "ecommerce",
					DeviceID: "dev-1", IP: "203.0.113.7", EventTime: base.Add(time.Duration(i) * time.Second).Format(time.RFC3339),
				})
				req, _ := http.NewRequest(http.MethodPost, "http://"+addrs["ingest"]+"/v1/transactions", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+apiKey)
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, b))
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		pans[i] = luhn(fmt.Sprintf("4000%011d", i))
		switch a := amountFor(i); {
		case a >= 500_000:
			wantAlerts++
			wantDeclines++
		case a >= 100_000:
			wantAlerts++
		}
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d posts failed, first: %s", len(failures), failures[0])
	}
	t.Logf("posted %d transactions in %s", n, time.Since(t1).Round(time.Millisecond))

	waitRows(t, pool, `SELECT count(*) FROM decisions`, n)
	t.Logf("all %d decisions in Postgres %s after the first post", n, time.Since(t1).Round(time.Millisecond))
	waitRows(t, pool, `SELECT count(*) FROM alerts`, wantAlerts)

	// Every posted id has exactly one decision, and nothing else does.
	var distinct, matching, declines int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT transaction_id),
		count(*) FILTER (WHERE transaction_id ~ '^e2e:t-[0-9]{5}$'),
		count(*) FILTER (WHERE action = 'decline') FROM decisions`).Scan(&distinct, &matching, &declines); err != nil {
		t.Fatal(err)
	}
	if distinct != n || matching != n || declines != wantDeclines {
		t.Fatalf("decisions: %d distinct, %d matching ids, %d declines; want %d, %d, %d", distinct, matching, declines, n, n, wantDeclines)
	}
	var alertsOnApprovals int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM alerts a JOIN decisions d USING (decision_id) WHERE d.action = 'approve'`).Scan(&alertsOnApprovals); err != nil {
		t.Fatal(err)
	}
	if alertsOnApprovals != 0 {
		t.Fatalf("%d alerts for approved transactions", alertsOnApprovals)
	}
	// The window feature went through Redis: account acct-000 got 4 transactions within an
	// hour (i = 0, 250, 500, 750 seconds apart), so its last one counted 4.
	var count1h float64
	if err := pool.QueryRow(ctx, `SELECT (features->>'account_count_1h')::float8 FROM decisions WHERE transaction_id = 'e2e:t-00750'`).Scan(&count1h); err != nil {
		t.Fatal(err)
	}
	if count1h != 4 {
		t.Fatalf("account_count_1h of e2e:t-00750 = %v, want 4", count1h)
	}
	// No card number reached Postgres.
	var leaks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM decisions WHERE features::text LIKE '%' || $1 || '%' OR reasons::text LIKE '%' || $1 || '%'`, pans[7]).Scan(&leaks); err != nil || leaks != 0 {
		t.Fatalf("card number found in decisions: %d, %v", leaks, err)
	}

	// The analyst API serves the alerts, and only with the token.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addrs["alerting"]+"/v1/alerts?limit=500", nil)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous alerts request: %v %v", resp, err)
	}
	resp.Body.Close()
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Alerts []json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Alerts) != wantAlerts {
		t.Fatalf("alerts API returned %d alerts, %v; want %d", len(list.Alerts), err, wantAlerts)
	}
	resp.Body.Close()

	// Nothing more arrives late (no duplicates hidden by timing).
	time.Sleep(2 * time.Second)
	waitRows(t, pool, `SELECT count(*) FROM decisions`, n)

	for i := len(svcs) - 1; i >= 0; i-- {
		stop(t, svcs[i])
	}
}

func waitRows(t *testing.T, pool *pgxpool.Pool, query string, want int) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	var got int
	for time.Now().Before(deadline) {
		if err := pool.QueryRow(context.Background(), query).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		if got > want {
			t.Fatalf("%s = %d, more than %d", query, got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s = %d after 120s, want %d", query, got, want)
}
