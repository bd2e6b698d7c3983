package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
)

const testHMACKey = "0123456789abcdef0123456789abcdef"

func minimalEnv() map[string]string {
	return map[string]string{
		"VIGIL_INGEST_API_KEYS":      "acme:sk_test_abc123",
		"VIGIL_INGEST_CARD_HMAC_KEY": testHMACKey,
		"VIGIL_POSTGRES_URL":         "postgres://vigil:pw-secret@127.0.0.1:55432/vigil",
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(config.FromMap(minimalEnv()))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"addr", c.Addr, "127.0.0.1:8080"},
		{"max body", c.MaxBodyBytes, int64(64 << 10)},
		{"skew", c.MaxClockSkew, 5 * time.Minute},
		{"age", c.MaxEventAge, 30 * 24 * time.Hour},
		{"key id", c.CardKeyID, "k1"},
		{"hmac key", string(c.CardHMACKey), testHMACKey},
		{"topic", c.Kafka.Topics.Tx, "tx.v1"},
		{"log level", c.Log.Level, "info"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if source, ok := c.APIKeys.Authenticate("sk_test_abc123"); !ok || source != "acme" {
		t.Errorf("Authenticate = %q, %v", source, ok)
	}
}

// Keys can all live in Postgres, so the env bootstrap keys are optional.
func TestLoadConfigWithoutEnvKeys(t *testing.T) {
	t.Parallel()
	env := minimalEnv()
	delete(env, "VIGIL_INGEST_API_KEYS")
	c, err := loadConfig(config.FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.APIKeys != nil {
		t.Errorf("keys %v", c.APIKeys)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"batch items", c.MaxBatchItems, 500},
		{"batch body", c.MaxBatchBodyBytes, int64(1 << 20)},
		{"in flight", c.MaxInFlight, 5000},
		{"rate", c.RateLimit, 1000.0},
		{"burst", c.RateBurst, 2000},
		{"max wait", c.MaxWait, 5 * time.Second},
		{"key ttl", c.APIKeyTTL, 5 * time.Second},
		{"idempotency ttl", c.IdempotencyTTL, 24 * time.Hour},
		{"redis", c.Redis.Addr, "127.0.0.1:56379"},
		{"linger", c.ProducerLinger, time.Duration(0)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadConfigSecretsFromFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	hmac := filepath.Join(dir, "hmac")
	if err := os.WriteFile(keys, []byte("acme:sk_test_abc123,globex:gx_live_123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hmac, []byte(testHMACKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(config.FromMap(map[string]string{
		"VIGIL_INGEST_API_KEYS_FILE":      keys,
		"VIGIL_INGEST_CARD_HMAC_KEY_FILE": hmac,
		"VIGIL_POSTGRES_URL":              "postgres://127.0.0.1:55432/vigil",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.APIKeys.Len() != 2 || string(c.CardHMACKey) != testHMACKey {
		t.Errorf("keys %d, hmac %q", c.APIKeys.Len(), c.CardHMACKey)
	}
}

func TestLoadConfigNamesEveryBadVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string // each must appear in the error
	}{
		{"nothing set", map[string]string{}, []string{
			"VIGIL_POSTGRES_URL: is required", "VIGIL_INGEST_CARD_HMAC_KEY: is required"}},
		{"in flight below a batch", map[string]string{"VIGIL_INGEST_MAX_IN_FLIGHT": "100"},
			[]string{"VIGIL_INGEST_MAX_IN_FLIGHT: 100 is below VIGIL_INGEST_MAX_BATCH_ITEMS"}},
		{"wait too long", map[string]string{"VIGIL_INGEST_MAX_WAIT": "1m"}, []string{"VIGIL_INGEST_MAX_WAIT: 1m0s is above 30s"}},
		{"rate", map[string]string{"VIGIL_INGEST_RATE_LIMIT": "-1", "VIGIL_INGEST_RATE_BURST": "0"},
			[]string{"VIGIL_INGEST_RATE_LIMIT", "VIGIL_INGEST_RATE_BURST"}},
		{"short hmac key", map[string]string{"VIGIL_INGEST_CARD_HMAC_KEY": "short"},
			[]string{"VIGIL_INGEST_CARD_HMAC_KEY: has 5 bytes, need at least 32"}},
		{"both value and file", map[string]string{"VIGIL_INGEST_CARD_HMAC_KEY_FILE": "/nonexistent"},
			[]string{"VIGIL_INGEST_CARD_HMAC_KEY: set either"}},
		{"missing secret file", map[string]string{"VIGIL_INGEST_API_KEYS": "", "VIGIL_INGEST_API_KEYS_FILE": "/nonexistent/keys"},
			[]string{"VIGIL_INGEST_API_KEYS_FILE: cannot read"}},
		{"bad keys", map[string]string{"VIGIL_INGEST_API_KEYS": "acme:sk_test_abc123,nocolon,globex:short"},
			[]string{"VIGIL_INGEST_API_KEYS: entry 2 is not source:key", "entry 3 (source globex)"}},
		{"key id", map[string]string{"VIGIL_INGEST_CARD_KEY_ID": "key 1"}, []string{"VIGIL_INGEST_CARD_KEY_ID"}},
		{"numbers and durations", map[string]string{
			"VIGIL_INGEST_MAX_BODY_BYTES":  "lots",
			"VIGIL_INGEST_MAX_CLOCK_SKEW":  "5",
			"VIGIL_INGEST_MAX_EVENT_AGE":   "-1h",
			"VIGIL_INGEST_PUBLISH_TIMEOUT": "30s",
		}, []string{
			"VIGIL_INGEST_MAX_BODY_BYTES", "VIGIL_INGEST_MAX_CLOCK_SKEW", "VIGIL_INGEST_MAX_EVENT_AGE",
			"VIGIL_INGEST_SHUTDOWN_TIMEOUT: 15s is shorter than VIGIL_INGEST_PUBLISH_TIMEOUT"}},
		{"body too small", map[string]string{"VIGIL_INGEST_MAX_BODY_BYTES": "10"}, []string{"VIGIL_INGEST_MAX_BODY_BYTES: 10 is outside"}},
		{"addr", map[string]string{"VIGIL_INGEST_ADDR": "8080"}, []string{"VIGIL_INGEST_ADDR"}},
		{"linger", map[string]string{"VIGIL_INGEST_PRODUCER_LINGER": "5s"}, []string{"VIGIL_INGEST_PRODUCER_LINGER: 5s is outside [0s, 1s]"}},
		{"linger not a duration", map[string]string{"VIGIL_INGEST_PRODUCER_LINGER": "soon"}, []string{"VIGIL_INGEST_PRODUCER_LINGER: \"soon\" is not a duration"}},
		{"pprof on a public address", map[string]string{"VIGIL_INGEST_DEBUG_ADDR": "0.0.0.0:6060"}, []string{"VIGIL_INGEST_DEBUG_ADDR: \"0.0.0.0:6060\" must be a loopback"}},
		{"pprof without a port", map[string]string{"VIGIL_INGEST_DEBUG_ADDR": "127.0.0.1"}, []string{"VIGIL_INGEST_DEBUG_ADDR"}},
		{"shared", map[string]string{"VIGIL_KAFKA_BROKERS": "localhost", "VIGIL_LOG_LEVEL": "loud", "VIGIL_LOG_FORMAT": "xml"},
			[]string{"VIGIL_KAFKA_BROKERS", "VIGIL_LOG_LEVEL", "VIGIL_LOG_FORMAT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := minimalEnv()
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.name == "nothing set" {
				env = tc.env
			}
			_, err := loadConfig(config.FromMap(env))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, secret := range []string{"sk_test_abc123", testHMACKey} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error reveals a secret: %v", err)
				}
			}
		})
	}
}

func TestConfigLogMasksSecrets(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(config.FromMap(minimalEnv()))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("starting", "config", c)
	out := b.String()
	for _, secret := range []string{"sk_test_abc123", testHMACKey, "pw-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("config log reveals a secret: %s", out)
		}
	}
	for _, want := range []string{`"card_hmac_key":"***"`, `"api_key_sources":["acme"]`, `"addr":"127.0.0.1:8080"`} {
		if !strings.Contains(out, want) {
			t.Errorf("config log %s lacks %s", out, want)
		}
	}
}

func TestDebugAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want string
	}{
		{"", ""},
		{"127.0.0.1:6060", "127.0.0.1:6060"},
		{"localhost:0", "localhost:0"},
		{"[::1]:6060", "[::1]:6060"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			env := minimalEnv()
			env["VIGIL_INGEST_DEBUG_ADDR"] = tc.addr
			c, err := loadConfig(config.FromMap(env))
			if err != nil {
				t.Fatal(err)
			}
			if c.DebugAddr != tc.want {
				t.Errorf("DebugAddr = %q, want %q", c.DebugAddr, tc.want)
			}
		})
	}
}

func TestProducerLinger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{{"0", 0}, {"0s", 0}, {"2ms", 2 * time.Millisecond}, {"1s", time.Second}} {
		t.Run(tc.value, func(t *testing.T) {
			t.Parallel()
			env := minimalEnv()
			env["VIGIL_INGEST_PRODUCER_LINGER"] = tc.value
			c, err := loadConfig(config.FromMap(env))
			if err != nil {
				t.Fatal(err)
			}
			if c.ProducerLinger != tc.want {
				t.Errorf("ProducerLinger = %s, want %s", c.ProducerLinger, tc.want)
			}
		})
	}
}
