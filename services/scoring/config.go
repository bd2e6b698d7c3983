package main

import (
	"fmt"
	"os"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/redisclient"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
)

// Config of the scoring service, from VIGIL_SCORING_* and the shared variables.
type Config struct {
	Addr string
	// DebugAddr, when set (loopback only), serves /debug/pprof.
	DebugAddr       string
	Group           string
	TransactionalID string
	MaxPollRecords  int
	// Fetch shapes the features.v1 consumer's fetches, SinkFetch the decision sink's
	// (kafka.Fetch).
	Fetch     kafka.Fetch
	SinkFetch kafka.Fetch
	// CommitInterval keeps a Kafka transaction open across polls up to this age (0: one per poll).
	CommitInterval time.Duration
	// GroupInstanceID turns on static group membership for the scorer (and, suffixed "-sink",
	// the sink): a restarted process with the same id takes its partitions back at once instead
	// of waiting for the dead member's session to time out. Empty: dynamic membership.
	GroupInstanceID string
	SessionTimeout  time.Duration
	// ModelPath is a trained artifact (vigil-model train); empty runs the baseline scorer.
	ModelPath string
	// ShadowModelPath is a challenger scored on the same traffic and recorded, never acting.
	ShadowModelPath string
	// ModelWatch is how often the model files' mtimes are checked for a hot reload; 0 disables.
	ModelWatch time.Duration
	// RulesFile seeds scoring_rules when it is empty; empty uses the built-in rules.yaml.
	RulesFile    string
	RulesRefresh time.Duration
	ListsRefresh time.Duration
	Policy       decide.Policy
	// AlertBudgetPerDay, when > 0 and VIGIL_SCORING_REVIEW_THRESHOLD is unset, takes the review
	// threshold from the model artifact's validated threshold table at that alert budget.
	AlertBudgetPerDay  float64
	ReviewThresholdSet bool
	// WindowsEnabled keeps per-account decision windows in Redis.
	WindowsEnabled bool
	ModelBudget    time.Duration
	WindowsBudget  time.Duration
	// SinkEnabled runs the decision sink (decisions.v1 → Postgres) in this process.
	SinkEnabled bool
	SinkName    string
	Kafka       kafka.Config
	Postgres    postgres.Config
	Redis       redisclient.Config
	Log         telemetry.Config
}

func loadConfig(e *config.Env) (Config, error) {
	host, _ := os.Hostname()
	def := decide.DefaultPolicy()
	c := Config{
		Addr:            e.String("VIGIL_SCORING_ADDR", "127.0.0.1:8082"),
		DebugAddr:       e.String("VIGIL_SCORING_DEBUG_ADDR", ""),
		Group:           e.String("VIGIL_SCORING_GROUP", "vigil-scoring"),
		TransactionalID: e.String("VIGIL_SCORING_TRANSACTIONAL_ID", "vigil-scoring-"+host),
		MaxPollRecords:  e.Int("VIGIL_SCORING_MAX_POLL_RECORDS", 2000, 1, 100_000),
		Fetch:           kafka.LoadFetch(e, "VIGIL_SCORING", kafka.PipelineFetch()),
		SinkFetch:       kafka.LoadFetch(e, "VIGIL_SCORING_SINK", kafka.PipelineFetch()),
		CommitInterval:  e.DurationRange("VIGIL_SCORING_COMMIT_INTERVAL", 0, 0, 10*time.Second),
		GroupInstanceID: e.String("VIGIL_SCORING_GROUP_INSTANCE_ID", ""),
		SessionTimeout:  e.Duration("VIGIL_SCORING_SESSION_TIMEOUT", 45*time.Second),
		ModelPath:       e.String("VIGIL_SCORING_MODEL_PATH", ""),
		ShadowModelPath: e.String("VIGIL_SCORING_SHADOW_MODEL_PATH", ""),
		ModelWatch:      e.Duration("VIGIL_SCORING_MODEL_WATCH_INTERVAL", 5*time.Second),
		RulesFile:       e.String("VIGIL_SCORING_RULES_FILE", ""),
		RulesRefresh:    e.Duration("VIGIL_SCORING_RULES_REFRESH", 30*time.Second),
		ListsRefresh:    e.Duration("VIGIL_SCORING_LISTS_REFRESH", 10*time.Second),
		Policy: decide.Policy{
			ReviewThreshold:    e.Float("VIGIL_SCORING_REVIEW_THRESHOLD", def.ReviewThreshold, 0, 1),
			DeclineThreshold:   e.Float("VIGIL_SCORING_DECLINE_THRESHOLD", def.DeclineThreshold, 0, 1),
			ReviewAmountMinor:  int64(e.Int("VIGIL_SCORING_REVIEW_AMOUNT_MINOR", int(def.ReviewAmountMinor), 1, 1<<53)),
			DeclineAmountMinor: int64(e.Int("VIGIL_SCORING_DECLINE_AMOUNT_MINOR", int(def.DeclineAmountMinor), 1, 1<<53)),
			VelocityReview:     e.Float("VIGIL_SCORING_VELOCITY_REVIEW_1H", def.VelocityReview, 0, 1e9),
			TopFeatures:        e.Int("VIGIL_SCORING_TOP_FEATURES", def.TopFeatures, 0, 100),
		},
		AlertBudgetPerDay:  e.Float("VIGIL_SCORING_ALERT_BUDGET_PER_DAY", 0, 0, 1e12),
		ReviewThresholdSet: e.String("VIGIL_SCORING_REVIEW_THRESHOLD", "") != "",
		WindowsEnabled:     e.Bool("VIGIL_SCORING_WINDOWS_ENABLED", true),
		ModelBudget:        e.Duration("VIGIL_SCORING_MODEL_BUDGET", 200*time.Millisecond),
		WindowsBudget:      e.Duration("VIGIL_SCORING_WINDOWS_BUDGET", 200*time.Millisecond),
		SinkEnabled:        e.Bool("VIGIL_SCORING_SINK_ENABLED", true),
		SinkName:           e.String("VIGIL_SCORING_SINK_GROUP", "vigil-decision-sink"),
		Kafka:              kafka.LoadConfig(e),
		Postgres:           postgres.LoadConfig(e),
		Redis:              redisclient.LoadConfig(e),
		Log:                telemetry.Config{Format: e.String("VIGIL_LOG_FORMAT", "json"), Level: e.String("VIGIL_LOG_LEVEL", "info")},
	}
	if err := c.Policy.Validate(); err != nil {
		e.Fail("VIGIL_SCORING_*_THRESHOLD / *_AMOUNT_MINOR", "%v", err)
	}
	for name, d := range map[string]time.Duration{"VIGIL_SCORING_RULES_REFRESH": c.RulesRefresh, "VIGIL_SCORING_LISTS_REFRESH": c.ListsRefresh,
		"VIGIL_SCORING_MODEL_BUDGET": c.ModelBudget, "VIGIL_SCORING_WINDOWS_BUDGET": c.WindowsBudget} {
		if d <= 0 {
			e.Fail(name, "must be a positive duration, got %s", d)
		}
	}
	if c.DebugAddr != "" {
		if err := httpserver.CheckDebugAddr(c.DebugAddr); err != nil {
			e.Fail("VIGIL_SCORING_DEBUG_ADDR", "%v", err)
		}
	}
	if err := e.Err(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}
