package webhook

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/testinfra"
)

func TestSignVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"a":1}`)
	sig := Sign("whsec_k", 1700000000, body)
	// Known answer: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_k
	if !Verify("whsec_k", 1700000000, body, sig) || Verify("whsec_k", 1700000001, body, sig) || Verify("other", 1700000000, body, sig) {
		t.Fatal("signature does not bind secret, timestamp and body")
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int
		rnd  float64
		want time.Duration
	}{
		{1, 0, time.Second}, {1, 1, 2 * time.Second}, {3, 1, 8 * time.Second}, {20, 1, time.Minute}, {20, 0, 30 * time.Second},
	}
	for _, tc := range tests {
		if got := Backoff(tc.n, 2*time.Second, time.Minute, func() float64 { return tc.rnd }); got != tc.want {
			t.Errorf("Backoff(%d, rnd %.0f) = %s, want %s", tc.n, tc.rnd, got, tc.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url      string
		loopback bool
		ok       bool
	}{
		{"https://hooks.example.com/x", false, true},
		{"http://93.184.216.34/x", false, true},
		{"ftp://example.com/x", false, false},
		{"file:///etc/passwd", false, false},
		{"https://user:pw@example.com/", false, false},
		{"/relative", false, false},
		{"http://10.0.0.1/", false, false},
		{"http://192.168.1.1/", false, false},
		{"http://172.16.0.1/", false, false},
		{"http://169.254.169.254/latest/meta-data", true, false},
		{"http://[fe80::1]/", true, false},
		{"http://[::ffff:10.0.0.1]/", false, false},
		{"http://metadata.google.internal/", true, false},
		{"http://100.64.0.1/", false, false},
		{"http://0.0.0.0/", true, false},
		{"http://127.0.0.1:8080/", false, false},
		{"http://127.0.0.1:8080/", true, true},
		{"http://localhost/", false, false},
		{"http://localhost/", true, true},
		{"http://[::1]/", true, true},
	}
	for _, tc := range tests {
		err := Policy{AllowLoopback: tc.loopback}.CheckURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q, loopback=%v) = %v, want ok=%v", tc.url, tc.loopback, err, tc.ok)
		}
	}
	// The dial-time check refuses what DNS might resolve to.
	if err := (Policy{}).CheckAddr(netip.MustParseAddr("10.1.2.3")); !errors.Is(err, ErrURL) {
		t.Fatalf("private dial allowed: %v", err)
	}
}

type receiver struct {
	mu       sync.Mutex
	bodies   [][]byte
	keys     []string
	sigOK    []bool
	failures int // answer 500 this many times first
}

func (rc *receiver) handler(secret string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(HeaderTimestamp), 10, 64)
		sig := strings.TrimPrefix(r.Header.Get(HeaderSignature), "v1=")
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.bodies = append(rc.bodies, body)
		rc.keys = append(rc.keys, r.Header.Get(HeaderIdempotency))
		rc.sigOK = append(rc.sigOK, Verify(secret, ts, body, sig))
		if rc.failures > 0 {
			rc.failures--
			w.WriteHeader(500)
			_, _ = w.Write([]byte(strings.Repeat("x", 1<<20))) // a huge body the worker must not read whole
			return
		}
		w.WriteHeader(204)
	}
}

func TestIntegrationDelivery(t *testing.T) {
	t.Parallel()
	pool, _ := testinfra.NewDatabase(t)
	ctx := context.Background()
	policy := Policy{AllowLoopback: true}
	st := NewStore(pool, policy)

	good := &receiver{failures: 2}
	dead := &receiver{failures: 1000}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// 127.0.0.1 vs localhost: another host, same machine.
		http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1), http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()

	type sub struct {
		rc  *receiver
		url string
		id  string
	}
	var subs []*sub
	for _, rc := range []*receiver{good, dead, nil} {
		s := &sub{rc: rc}
		if rc != nil {
			srv := httptest.NewServer(nil)
			s.url = srv.URL
			defer srv.Close()
			created, secret, err := st.Create(ctx, "adm@x", srv.URL+"/hook", []string{"alert.created"})
			if err != nil {
				t.Fatal(err)
			}
			srv.Config.Handler = rc.handler(secret)
			s.id = created.ID
		} else {
			created, _, err := st.Create(ctx, "adm@x", redirect.URL+"/hook", []string{"alert.created"})
			if err != nil {
				t.Fatal(err)
			}
			s.id = created.ID
		}
		subs = append(subs, s)
	}
	if _, _, err := NewStore(pool, Policy{}).Create(ctx, "adm@x", "http://127.0.0.1:1/x", []string{"alert.created"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("loopback subscription without the dev setting: %v", err)
	}
	// An alert enqueues one delivery per subscription (what the sink does in its transaction).
	if _, err := pool.Exec(ctx, `INSERT INTO cases (case_id, account_id, top_action, max_score) VALUES ('c1', 'acct-1', 'review', 0.7);
		INSERT INTO alerts (alert_id, decision_id, transaction_id, account_id, action, score, case_id) VALUES ('alr_1', 'd1', 'tx1', 'acct-1', 'review', 0.7, 'c1')`); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if _, err := pool.Exec(ctx, `INSERT INTO webhook_deliveries (delivery_id, subscription_id, event_type, payload)
			VALUES ('whd_' || $1, $1, 'alert.created', '{"type":"alert.created","alert_id":"alr_1"}')`, s.id); err != nil {
			t.Fatal(err)
		}
	}
	w := NewWorker(WorkerConfig{MaxAttempts: 4, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxResponseBytes: 1024},
		pool, policy, slog.New(slog.DiscardHandler))
	for i := 0; i < 10; i++ {
		if _, err := w.Once(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	status := map[string]string{}
	attempts := map[string]int{}
	rows, _ := pool.Query(ctx, `SELECT subscription_id, status, attempts FROM webhook_deliveries`)
	for rows.Next() {
		var id, st string
		var n int
		_ = rows.Scan(&id, &st, &n)
		status[id], attempts[id] = st, n
	}
	rows.Close()
	if status[subs[0].id] != "delivered" || attempts[subs[0].id] != 3 {
		t.Errorf("flaky endpoint: %s after %d attempts, want delivered after 3", status[subs[0].id], attempts[subs[0].id])
	}
	if status[subs[1].id] != "dead" || attempts[subs[1].id] != 4 {
		t.Errorf("failing endpoint: %s after %d, want dead after 4", status[subs[1].id], attempts[subs[1].id])
	}
	if status[subs[2].id] == "delivered" {
		t.Errorf("redirect to another host was followed")
	}
	good.mu.Lock()
	defer good.mu.Unlock()
	for i, ok := range good.sigOK {
		if !ok || good.keys[i] != "whd_"+subs[0].id {
			t.Errorf("attempt %d: signature ok %v, idempotency key %q", i, ok, good.keys[i])
		}
	}
	log, err := st.Attempts(ctx, 100)
	if err != nil || len(log) < 3+4+1 {
		t.Fatalf("attempt log: %d rows, %v", len(log), err)
	}
}
