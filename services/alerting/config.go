package main

import (
	"fmt"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/services/alerting/internal/metrics"
)

// Config of the alerting service, from VIGIL_ALERTING_* and the shared variables.
type Config struct {
	Addr string
	// DebugAddr, when set (loopback only), serves /debug/pprof.
	DebugAddr string
	SinkName  string
	// APIToken grants machines read-only API access (GET /v1/alerts, /v1/cases).
	APIToken        string
	InsecureCookies bool
	SessionTTL      time.Duration
	LoginAttempts   int
	BcryptCost      int
	// LabelTxnID is the transactional id of the label relay; one relay per deployment.
	LabelTxnID        string
	WebhookAllowLocal bool
	WebhookAttempts   int
	WebhookTimeout    time.Duration
	DailyAlertBudget  int
	// Fetch shapes the decisions.v1 consumer's fetches (kafka.Fetch).
	Fetch kafka.Fetch
	// MetricsSources are the /metrics endpoints the overview reads lag and latency from.
	MetricsSources []metrics.Source
	Kafka          kafka.Config
	Postgres       postgres.Config
	Log            telemetry.Config
}

// AlertingFetch is the decisions.v1 consumer's default: each poll is one Postgres transaction
// (its alerts and its offsets, fsynced), and franz-go's default (answer as soon as one byte is
// there) made that a transaction per few decisions under load, for alerts an analyst or a
// webhook reads seconds later anyway. Up to 100 ms more per alert buys batches of ~100
// decisions at 1,000 tx/s.
var AlertingFetch = kafka.Fetch{MinBytes: 256 << 10, MaxWait: 100 * time.Millisecond}

func loadConfig(e *config.Env) (Config, error) {
	c := Config{
		Addr:              e.String("VIGIL_ALERTING_ADDR", "127.0.0.1:8083"),
		DebugAddr:         e.String("VIGIL_ALERTING_DEBUG_ADDR", ""),
		SinkName:          e.String("VIGIL_ALERTING_GROUP", "vigil-alerting"),
		APIToken:          e.Secret("VIGIL_ALERTING_API_TOKEN", true),
		InsecureCookies:   e.Bool("VIGIL_ALERTING_INSECURE_COOKIES", false),
		SessionTTL:        e.Duration("VIGIL_ALERTING_SESSION_TTL", 12*time.Hour),
		LoginAttempts:     e.Int("VIGIL_ALERTING_LOGIN_ATTEMPTS_PER_MINUTE", 10, 1, 1000),
		BcryptCost:        e.Int("VIGIL_ALERTING_BCRYPT_COST", 12, 4, 16),
		LabelTxnID:        e.String("VIGIL_ALERTING_LABEL_TXN_ID", ""),
		WebhookAllowLocal: e.Bool("VIGIL_ALERTING_WEBHOOK_ALLOW_LOOPBACK", false),
		WebhookAttempts:   e.Int("VIGIL_ALERTING_WEBHOOK_MAX_ATTEMPTS", 8, 1, 50),
		WebhookTimeout:    e.Duration("VIGIL_ALERTING_WEBHOOK_TIMEOUT", 5*time.Second),
		DailyAlertBudget:  e.Int("VIGIL_ALERTING_DAILY_ALERT_BUDGET", 1000, 0, 10_000_000),
		Fetch:             kafka.LoadFetch(e, "VIGIL_ALERTING", AlertingFetch),
		Kafka:             kafka.LoadConfig(e),
		Postgres:          postgres.LoadConfig(e),
		Log:               telemetry.Config{Format: e.String("VIGIL_LOG_FORMAT", "json"), Level: e.String("VIGIL_LOG_LEVEL", "info")},
	}
	var err error
	if c.MetricsSources, err = metrics.ParseSources(e.String("VIGIL_ALERTING_METRICS_SOURCES", "")); err != nil {
		e.Fail("VIGIL_ALERTING_METRICS_SOURCES", "%v", err)
	}
	if c.LabelTxnID == "" {
		// Tied to the consumer group, so side-by-side deployments (e2e next to the demo) never
		// fence each other's relay.
		c.LabelTxnID = c.SinkName + "-labels"
	}
	if c.APIToken != "" && len(c.APIToken) < 16 {
		e.Fail("VIGIL_ALERTING_API_TOKEN", "must be at least 16 characters")
	}
	if c.SessionTTL < time.Minute {
		e.Fail("VIGIL_ALERTING_SESSION_TTL", "must be at least 1m")
	}
	if c.DebugAddr != "" {
		if err := httpserver.CheckDebugAddr(c.DebugAddr); err != nil {
			e.Fail("VIGIL_ALERTING_DEBUG_ADDR", "%v", err)
		}
	}
	if err := e.Err(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}
