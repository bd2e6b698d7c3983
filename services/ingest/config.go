package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/redisclient"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

// Config of the ingest service, from VIGIL_INGEST_* and the shared Kafka and log variables.
type Config struct {
	Addr string
	// DebugAddr, when set, serves net/http/pprof on its own loopback listener; empty (the
	// default) serves nothing.
	DebugAddr         string
	MaxBodyBytes      int64
	MaxBatchBodyBytes int64
	MaxBatchItems     int
	MaxInFlight       int
	RateLimit         float64
	RateBurst         int
	MaxWait           time.Duration
	RetryAfter        time.Duration
	APIKeyTTL         time.Duration
	IdempotencyTTL    time.Duration
	MaxClockSkew      time.Duration
	MaxEventAge       time.Duration
	PublishTimeout    time.Duration
	// ProducerLinger is how long the producer waits for more records before sending a batch.
	ProducerLinger  time.Duration
	StartupTimeout  time.Duration
	ShutdownTimeout time.Duration
	APIKeys         *auth.Keyring
	CardKeyID       string
	CardHMACKey     []byte
	Kafka           kafka.Config
	Postgres        postgres.Config
	Redis           redisclient.Config
	Log             telemetry.Config
}

func loadConfig(e *config.Env) (Config, error) {
	c := Config{
		Addr:         e.String("VIGIL_INGEST_ADDR", "127.0.0.1:8080"),
		DebugAddr:    e.String("VIGIL_INGEST_DEBUG_ADDR", ""),
		MaxBodyBytes: int64(e.Int("VIGIL_INGEST_MAX_BODY_BYTES", 64<<10, 1<<10, 16<<20)),
		// A full batch of 500 typical transactions (~450 bytes each) is ~230 KB.
		MaxBatchBodyBytes: int64(e.Int("VIGIL_INGEST_MAX_BATCH_BODY_BYTES", 1<<20, 1<<10, 64<<20)),
		MaxBatchItems:     e.Int("VIGIL_INGEST_MAX_BATCH_ITEMS", 500, 1, 500),
		MaxInFlight:       e.Int("VIGIL_INGEST_MAX_IN_FLIGHT", 5000, 1, 1_000_000),
		RateLimit:         e.Float("VIGIL_INGEST_RATE_LIMIT", 1000, 0, 1e7),
		RateBurst:         e.Int("VIGIL_INGEST_RATE_BURST", 2000, 1, 10_000_000),
		MaxWait:           e.Duration("VIGIL_INGEST_MAX_WAIT", 5*time.Second),
		RetryAfter:        e.Duration("VIGIL_INGEST_RETRY_AFTER", time.Second),
		APIKeyTTL:         e.Duration("VIGIL_INGEST_API_KEY_TTL", 5*time.Second),
		IdempotencyTTL:    e.Duration("VIGIL_INGEST_IDEMPOTENCY_TTL", 24*time.Hour),
		MaxClockSkew:      e.Duration("VIGIL_INGEST_MAX_CLOCK_SKEW", 5*time.Minute),
		MaxEventAge:       e.Duration("VIGIL_INGEST_MAX_EVENT_AGE", 30*24*time.Hour),
		PublishTimeout:    e.Duration("VIGIL_INGEST_PUBLISH_TIMEOUT", 10*time.Second),
		// No linger: every request waits for its ack, so a linger is added to every 202. Records
		// still batch while the broker's in-flight produce requests (5 with idempotence) are busy.
		ProducerLinger:  e.DurationRange("VIGIL_INGEST_PRODUCER_LINGER", 0, 0, time.Second),
		StartupTimeout:  e.Duration("VIGIL_INGEST_STARTUP_TIMEOUT", time.Minute),
		ShutdownTimeout: e.Duration("VIGIL_INGEST_SHUTDOWN_TIMEOUT", 15*time.Second),
		CardKeyID:       e.String("VIGIL_INGEST_CARD_KEY_ID", "k1"),
		CardHMACKey:     []byte(e.Secret("VIGIL_INGEST_CARD_HMAC_KEY", true)),
		Kafka:           kafka.LoadConfig(e),
		Postgres:        postgres.LoadConfig(e),
		Redis:           redisclient.LoadConfig(e),
		Log:             telemetry.Config{Format: e.String("VIGIL_LOG_FORMAT", "json"), Level: e.String("VIGIL_LOG_LEVEL", "info")},
	}
	// Optional since keys live in Postgres (`ingest apikey create`); env keys bootstrap a
	// deployment and serve tests and the demo.
	if keys := e.Secret("VIGIL_INGEST_API_KEYS", false); keys != "" {
		ring, err := auth.ParseKeys(keys)
		if err != nil {
			e.Fail("VIGIL_INGEST_API_KEYS", "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		c.APIKeys = ring
	}
	c.validate(e)
	if err := e.Err(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// validate checks what single-variable parsing cannot: lengths, charsets and relations.
func (c Config) validate(e *config.Env) {
	if n := len(c.CardHMACKey); n > 0 && n < txn.MinCardKeyBytes {
		e.Fail("VIGIL_INGEST_CARD_HMAC_KEY", "has %d bytes, need at least %d", n, txn.MinCardKeyBytes)
	}
	if len(c.CardKeyID) > 32 || !txn.IsIDChars(c.CardKeyID) {
		e.Fail("VIGIL_INGEST_CARD_KEY_ID", "must be 1-32 characters of letters, digits and . _ : -")
	}
	if !strings.Contains(c.Addr, ":") {
		e.Fail("VIGIL_INGEST_ADDR", "%q is not host:port", c.Addr)
	}
	if c.DebugAddr != "" {
		if err := httpserver.CheckDebugAddr(c.DebugAddr); err != nil {
			e.Fail("VIGIL_INGEST_DEBUG_ADDR", "%v", err)
		}
	}
	// In-flight requests wait for Kafka acks; shutdown must give them time to finish.
	if c.ShutdownTimeout < c.PublishTimeout {
		e.Fail("VIGIL_INGEST_SHUTDOWN_TIMEOUT", "%s is shorter than VIGIL_INGEST_PUBLISH_TIMEOUT (%s), so shutdown would cut off requests waiting for Kafka",
			c.ShutdownTimeout, c.PublishTimeout)
	}
	if c.MaxInFlight < c.MaxBatchItems {
		e.Fail("VIGIL_INGEST_MAX_IN_FLIGHT", "%d is below VIGIL_INGEST_MAX_BATCH_ITEMS (%d), so a full batch could never be admitted", c.MaxInFlight, c.MaxBatchItems)
	}
	if c.MaxWait > 30*time.Second {
		e.Fail("VIGIL_INGEST_MAX_WAIT", "%s is above 30s; a sync caller should not hold a connection that long", c.MaxWait)
	}
	if c.MaxWait+c.PublishTimeout > c.ShutdownTimeout {
		e.Fail("VIGIL_INGEST_MAX_WAIT", "%s plus VIGIL_INGEST_PUBLISH_TIMEOUT (%s) exceeds VIGIL_INGEST_SHUTDOWN_TIMEOUT (%s), so shutdown would cut off waiting requests",
			c.MaxWait, c.PublishTimeout, c.ShutdownTimeout)
	}
	for name, d := range map[string]time.Duration{"VIGIL_INGEST_RETRY_AFTER": c.RetryAfter, "VIGIL_INGEST_API_KEY_TTL": c.APIKeyTTL, "VIGIL_INGEST_IDEMPOTENCY_TTL": c.IdempotencyTTL} {
		if d <= 0 {
			e.Fail(name, "must be positive")
		}
	}
	if c.ProducerLinger < 0 || c.ProducerLinger > time.Second {
		e.Fail("VIGIL_INGEST_PRODUCER_LINGER", "%s is outside 0-1s", c.ProducerLinger)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Log.Level)); err != nil {
		e.Fail("VIGIL_LOG_LEVEL", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if f := strings.ToLower(c.Log.Format); f != "json" && f != "text" {
		e.Fail("VIGIL_LOG_FORMAT", "%q is not json or text", c.Log.Format)
	}
}

// LogValue is the configuration as logged at start, with secrets masked.
func (c Config) LogValue() slog.Value {
	var sources []string
	keys := 0
	if c.APIKeys != nil {
		sources, keys = c.APIKeys.Sources(), c.APIKeys.Len()
	}
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("debug_addr", c.DebugAddr),
		slog.Int64("max_body_bytes", c.MaxBodyBytes),
		slog.String("max_clock_skew", c.MaxClockSkew.String()),
		slog.String("max_event_age", c.MaxEventAge.String()),
		slog.String("publish_timeout", c.PublishTimeout.String()),
		slog.String("producer_linger", c.ProducerLinger.String()),
		slog.String("startup_timeout", c.StartupTimeout.String()),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.Any("api_key_sources", sources),
		slog.Int("api_keys", keys),
		slog.Int64("max_batch_body_bytes", c.MaxBatchBodyBytes),
		slog.Int("max_batch_items", c.MaxBatchItems),
		slog.Int("max_in_flight", c.MaxInFlight),
		slog.Float64("rate_limit", c.RateLimit),
		slog.Int("rate_burst", c.RateBurst),
		slog.String("max_wait", c.MaxWait.String()),
		slog.String("api_key_ttl", c.APIKeyTTL.String()),
		slog.String("idempotency_ttl", c.IdempotencyTTL.String()),
		slog.String("postgres_url", config.Mask(c.Postgres.URL)),
		slog.String("redis_addr", c.Redis.Addr),
		slog.String("redis_key_prefix", c.Redis.KeyPrefix),
		slog.String("card_key_id", c.CardKeyID),
		slog.String("card_hmac_key", config.Mask(string(c.CardHMACKey))),
		slog.Any("kafka_brokers", c.Kafka.Brokers),
		slog.String("topic_tx", c.Kafka.Topics.Tx),
		slog.String("log_level", c.Log.Level),
		slog.String("log_format", c.Log.Format),
	)
}
