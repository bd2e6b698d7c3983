package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
	"github.com/vigil-fraud/vigil/services/ingest/internal/idempotency"
	"github.com/vigil-fraud/vigil/services/ingest/internal/publish"
	"github.com/vigil-fraud/vigil/services/ingest/internal/store"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

const (
	itPAN      = "5555555555554444"
	itEnvKey   = "sk_it_bootstrap_0001"
	itHMACKey  = "0123456789abcdef0123456789abcdef"
	itKeyTTL   = 100 * time.Millisecond
	itTestWait = 10 * time.Second
)

// stack is the real handler on real Postgres (fresh database), Redis (fresh prefix) and Kafka
// (fresh topic), wired by newHandler exactly as run wires it.
type stack struct {
	handler http.Handler
	pool    *pgxpool.Pool
	rdb     *redis.Client
	prefix  string
	topic   string
	brokers []string
	keys    *auth.Authenticator
}

func newStack(t *testing.T, env map[string]string) *stack {
	t.Helper()
	brokers := testinfra.KafkaBrokers(t)
	if b := env["VIGIL_KAFKA_BROKERS"]; b != "" {
		brokers = strings.Split(b, ",")
	}
	redisAddr := testinfra.RedisAddr(t)
	pool, dbURL := testinfra.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	s := &stack{pool: pool, brokers: brokers, prefix: testinfra.UniqueName("ingest-it-") + ":", topic: testinfra.UniqueName("ingest-it-tx-")}
	m := map[string]string{
		"VIGIL_INGEST_API_KEYS":      "boot:" + itEnvKey,
		"VIGIL_INGEST_CARD_HMAC_KEY": itHMACKey,
		"VIGIL_POSTGRES_URL":         dbURL,
		"VIGIL_REDIS_ADDR":           redisAddr,
		"VIGIL_REDIS_KEY_PREFIX":     s.prefix,
		"VIGIL_KAFKA_BROKERS":        strings.Join(brokers, ","),
		"VIGIL_TOPIC_TX":             s.topic,
		"VIGIL_INGEST_API_KEY_TTL":   itKeyTTL.String(),
	}
	for k, v := range env {
		m[k] = v
	}
	cfg, err := loadConfig(config.FromMap(m))
	if err != nil {
		t.Fatal(err)
	}

	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if err := kafka.EnsureTopics(ctx, admin, 3, s.topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		_, _ = kadm.NewClient(admin).DeleteTopics(dctx, s.topic)
	})
	producer, err := publish.New(brokers, s.topic, producerOptions(cfg)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close(context.Background()) })
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := producer.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}

	s.rdb = redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() {
		keys, _ := s.rdb.Keys(context.Background(), s.prefix+"*").Result()
		if len(keys) > 0 {
			s.rdb.Del(context.Background(), keys...)
		}
		_ = s.rdb.Close()
	})

	tok, err := txn.NewTokenizer(cfg.CardKeyID, cfg.CardHMACKey)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	s.keys = auth.NewAuthenticator(cfg.APIKeys, store.New(pool), cfg.APIKeyTTL, log)
	if err := s.keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.keys.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	s.handler = newHandler(cfg, log, deps{tok: tok, pub: producer, keys: s.keys, pool: pool, rdb: s.rdb}, httpserver.NewHealth(nil))
	return s
}

func itBody(id string) string {
	return fmt.Sprintf(`{"transaction_id":%q,"account_id":"acct-it","card_number":%q,"merchant_id":"m-1",
		"terminal_id":"t-1","mcc":"5999","amount_minor":4200,"currency":"USD","country":"US","channel":"ecommerce",
		"event_time":%q}`, id, itPAN, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
}

func (s *stack) do(t *testing.T, method, path, key, body string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	if strings.Contains(rec.Body.String(), itPAN) {
		t.Errorf("response holds the card number: %s", rec.Body.String())
	}
	return rec
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body.String())
	}
}

func TestIntegrationIdempotency(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	idem := http.Header{"Idempotency-Key": {"order-77"}}
	// One body for both sends: itBody stamps the current second, and a replay must be
	// byte-for-byte the same request.
	body1 := itBody("idem-1")
	first := s.do(t, http.MethodPost, "/v1/transactions", itEnvKey, body1, idem)
	wantStatus(t, first, http.StatusAccepted)
	replay := s.do(t, http.MethodPost, "/v1/transactions", itEnvKey, body1, idem)
	wantStatus(t, replay, http.StatusAccepted)
	if replay.Body.String() != first.Body.String() || replay.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay %q %s, first %s", replay.Header().Get("Idempotent-Replayed"), replay.Body.String(), first.Body.String())
	}
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions", itEnvKey, itBody("idem-2"), idem), http.StatusUnprocessableEntity)

	// A request still in flight: claim the key as a concurrent request would.
	st := idempotency.New(s.rdb, s.prefix, time.Hour, time.Minute)
	tok, _ := txn.NewTokenizer("k1", []byte(itHMACKey))
	body := itBody("idem-3")
	claim, prev, err := st.Begin(context.Background(), st.Key("boot", "order-78"), tok.Fingerprint([]byte("/v1/transactions"), []byte(body)))
	if err != nil || claim == nil || prev != nil {
		t.Fatalf("claim: %v %v %v", claim, prev, err)
	}
	rec := s.do(t, http.MethodPost, "/v1/transactions", itEnvKey, body, http.Header{"Idempotency-Key": {"order-78"}})
	wantStatus(t, rec, http.StatusConflict)
	if err := st.Abandon(context.Background(), claim); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions", itEnvKey, body, http.Header{"Idempotency-Key": {"order-78"}}), http.StatusAccepted)

	// The record expires after the TTL.
	ttl, err := s.rdb.PTTL(context.Background(), st.Key("boot", "order-77")).Result()
	if err != nil || ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("TTL %v (%v), want about 24h", ttl, err)
	}
}

var keyLine = regexp.MustCompile(`(?m)^key:\s+(\S+)$`)
var idLine = regexp.MustCompile(`(?m)^id:\s+(\S+)$`)

func createKey(t *testing.T, s *stack, args ...string) (id, key string) {
	t.Helper()
	var out bytes.Buffer
	if err := apikeyCommand(context.Background(), store.New(s.pool), append([]string{"create"}, args...), &out); err != nil {
		t.Fatal(err)
	}
	k, i := keyLine.FindStringSubmatch(out.String()), idLine.FindStringSubmatch(out.String())
	if k == nil || i == nil {
		t.Fatalf("create printed %q", out.String())
	}
	return i[1], k[1]
}

// waitStatus retries until the API answers status: key changes are seen within the cache TTL.
func waitStatus(t *testing.T, s *stack, key, txID string, status int) {
	t.Helper()
	deadline := time.Now().Add(itTestWait)
	for {
		rec := s.do(t, http.MethodPost, "/v1/transactions", key, itBody(txID), nil)
		if rec.Code == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d, want %d within %s: %s", rec.Code, status, itTestWait, rec.Body.String())
		}
		time.Sleep(itKeyTTL / 2)
	}
}

func TestIntegrationAPIKeyLifecycle(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	id, key := createKey(t, s, "--source", "acme")
	waitStatus(t, s, key, "key-1", http.StatusAccepted)
	rec := s.do(t, http.MethodPost, "/v1/transactions", key, itBody("key-2"), nil)
	wantStatus(t, rec, http.StatusAccepted)
	if !strings.Contains(rec.Body.String(), `"acme:key-2"`) {
		t.Errorf("id not scoped to the key's source: %s", rec.Body.String())
	}
	// Only the digest is stored.
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM ingest_api_keys WHERE key_hash = $1 AND key_id = $2`, auth.HashKey(key), id).Scan(&n); err != nil || n != 1 {
		t.Fatalf("stored digest rows %d (%v)", n, err)
	}

	var out bytes.Buffer
	if err := apikeyCommand(context.Background(), store.New(s.pool), []string{"revoke", id}, &out); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, key, "key-3", http.StatusUnauthorized)
	out.Reset()
	if err := apikeyCommand(context.Background(), store.New(s.pool), []string{"list"}, &out); err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^` + id + `\s+acme\s+\S+\s+(\S+)`).FindStringSubmatch(out.String())
	if row == nil || row[1] == "-" || strings.Contains(out.String(), key) {
		t.Errorf("list does not show %s revoked (or shows the key):\n%s", id, out.String())
	}
	if err := apikeyCommand(context.Background(), store.New(s.pool), []string{"revoke", "0000000000000000"}, &out); err == nil || !strings.Contains(err.Error(), "no API key") {
		t.Errorf("revoke unknown: %v", err)
	}
	// The bootstrap key from VIGIL_INGEST_API_KEYS keeps working alongside.
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions", itEnvKey, itBody("key-4"), nil), http.StatusAccepted)
}

func TestIntegrationRateLimit(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	_, key := createKey(t, s, "--source", "slow", "--rate", "0.1", "--burst", "2")
	waitStatus(t, s, key, "rl-1", http.StatusAccepted)
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions", key, itBody("rl-2"), nil), http.StatusAccepted)
	rec := s.do(t, http.MethodPost, "/v1/transactions", key, itBody("rl-3"), nil)
	wantStatus(t, rec, http.StatusTooManyRequests)
	if ra := rec.Header().Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	// Other keys have their own buckets.
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions", itEnvKey, itBody("rl-4"), nil), http.StatusAccepted)
}

func insertDecision(t *testing.T, pool *pgxpool.Pool, txID string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO decisions (decision_id, transaction_id, account_id, action, score, reasons,
		model_version, rule_set_version, feature_schema_version, review_threshold, decline_threshold, amount_minor, currency,
		received_at, decided_at, kafka_partition, kafka_offset)
		VALUES ($1, $2, 'acct-it', 'decline', 0.93, '[{"code":"velocity","description":"many cards","weight":0.5}]',
		'model-7', 'rules-3', 'fs-1', 0.5, 0.9, 4200, 'USD', now(), now(), 0, 1)`, "d-"+txID, txID)
	if err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationDecision(t *testing.T) {
	t.Parallel()
	s := newStack(t, map[string]string{"VIGIL_INGEST_API_KEYS": "boot:" + itEnvKey + ",other:sk_it_other_000001"})
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions", itEnvKey, itBody("dec-1"), nil), http.StatusAccepted)
	path := "/v1/transactions/boot:dec-1/decision"
	wantStatus(t, s.do(t, http.MethodGet, path, itEnvKey, "", nil), http.StatusNotFound)
	insertDecision(t, s.pool, "boot:dec-1")
	rec := s.do(t, http.MethodGet, path, itEnvKey, "", nil)
	wantStatus(t, rec, http.StatusOK)
	var got struct {
		ID, Action string
		Score      float64
		Reasons    []struct{ Code string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "boot:dec-1" || got.Action != "decline" || got.Score != 0.93 || len(got.Reasons) != 1 || got.Reasons[0].Code != "velocity" {
		t.Errorf("decision %s", rec.Body.String())
	}
	wantStatus(t, s.do(t, http.MethodGet, path, "sk_it_other_000001", "", nil), http.StatusNotFound)
	wantStatus(t, s.do(t, http.MethodGet, path, "wrong-key-000000", "", nil), http.StatusUnauthorized)

	// Sync mode: the decision row appears while the request waits.
	go func() {
		time.Sleep(300 * time.Millisecond)
		insertDecision(t, s.pool, "boot:dec-2")
	}()
	rec = s.do(t, http.MethodPost, "/v1/transactions", itEnvKey, itBody("dec-2"), http.Header{"Prefer": {"wait=4000"}})
	wantStatus(t, rec, http.StatusOK)
	if rec.Header().Get("Preference-Applied") != "wait=4000" || !strings.Contains(rec.Body.String(), `"action":"decline"`) {
		t.Errorf("sync answer %q %s", rec.Header().Get("Preference-Applied"), rec.Body.String())
	}
	rec = s.do(t, http.MethodPost, "/v1/transactions", itEnvKey, itBody("dec-3"), http.Header{"Prefer": {"wait=200"}})
	wantStatus(t, rec, http.StatusAccepted)
	if rec.Header().Get("Preference-Applied") != "wait=200" {
		t.Errorf("Preference-Applied %q", rec.Header().Get("Preference-Applied"))
	}
}

// TestIntegrationCardNumberNowhere sends transactions through every path that stores
// something (plain, batch, idempotent, sync, rejected) and then searches every Redis key and
// value under the prefix, every row of every Postgres table and every Kafka record for the
// card number.
func TestIntegrationCardNumberNowhere(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	_, key := createKey(t, s, "--source", "pan")
	waitStatus(t, s, key, "pan-0", http.StatusAccepted)
	pan1 := itBody("pan-1") // sent twice: the replay must be the same bytes
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions", key, pan1, http.Header{"Idempotency-Key": {"pan-k1"}}), http.StatusAccepted)
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions", key, pan1, http.Header{"Idempotency-Key": {"pan-k1"}}), http.StatusAccepted)
	bad := strings.Replace(itBody("pan-2"), `"USD"`, `"usd"`, 1)
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions", key, bad, http.Header{"Idempotency-Key": {"pan-k2"}}), http.StatusUnprocessableEntity)
	batch := `{"transactions":[` + itBody("pan-3") + `,` + bad + `]}`
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions:batch", key, batch, http.Header{"Idempotency-Key": {"pan-k3"}}), http.StatusOK)
	wantStatus(t, s.do(t, http.MethodPost, "/v1/transactions", key, itBody("pan-4"), http.Header{"Prefer": {"wait=50"}}), http.StatusAccepted)
	insertDecision(t, s.pool, "pan:pan-1")

	ctx := context.Background()
	keys, err := s.rdb.Keys(ctx, s.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 3 {
		t.Fatalf("found %d Redis keys under %s, want the idempotency records", len(keys), s.prefix)
	}
	for _, k := range keys {
		// Ingest writes only strings; GET, not DUMP, because DUMP may LZF-compress the value.
		if typ := s.rdb.Type(ctx, k).Val(); typ != "string" {
			t.Errorf("Redis key %s has type %s; the search reads strings only", k, typ)
			continue
		}
		v, err := s.rdb.Get(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, itPAN) || strings.Contains(v, itPAN) {
			t.Errorf("Redis key %s holds the card number", k)
		}
	}

	rows, err := s.pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		var hits int
		q := fmt.Sprintf(`SELECT count(*) FROM %q t WHERE t::text LIKE '%%' || $1 || '%%'`, table)
		if err := s.pool.QueryRow(ctx, q, itPAN).Scan(&hits); err != nil {
			t.Fatalf("search %s: %v", table, err)
		}
		if hits > 0 {
			t.Errorf("table %s: %d rows hold the card number", table, hits)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics(s.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var records int
	for records < 4 && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			records++
			all := append(append([]byte{}, r.Key...), r.Value...)
			for _, h := range r.Headers {
				all = append(all, h.Value...)
			}
			if bytes.Contains(all, []byte(itPAN)) {
				t.Errorf("Kafka record at offset %d holds the card number", r.Offset)
			}
		})
	}
	if records < 4 {
		t.Errorf("read %d Kafka records, want at least 4", records)
	}
	t.Logf("searched %d Redis keys, %d tables, %d Kafka records", len(keys), len(tables), records)
}
