package main

import (
	"fmt"
	"os"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
)

// Config of the scoring service, from VIGIL_SCORING_* and the shared variables.
type Config struct {
	Addr            string
	Group           string
	TransactionalID string
	MaxPollRecords  int
	// ModelPath is a trained artifact (vigil-model train); empty runs the baseline scorer.
	ModelPath string
	Policy    decide.Policy
	// SinkEnabled runs the decision sink (decisions.v1 → Postgres) in this process.
	SinkEnabled bool
	SinkName    string
	Kafka       kafka.Config
	Postgres    postgres.Config
	Log         telemetry.Config
}

func loadConfig(e *config.Env) (Config, error) {
	host, _ := os.Hostname()
	def := decide.DefaultPolicy()
	c := Config{
		Addr:            e.String("VIGIL_SCORING_ADDR", "127.0.0.1:8082"),
		Group:           e.String("VIGIL_SCORING_GROUP", "vigil-scoring"),
		TransactionalID: e.String("VIGIL_SCORING_TRANSACTIONAL_ID", "vigil-scoring-"+host),
		MaxPollRecords:  e.Int("VIGIL_SCORING_MAX_POLL_RECORDS", 500, 1, 100_000),
		ModelPath:       e.String("VIGIL_SCORING_MODEL_PATH", ""),
		Policy: decide.Policy{
			RuleSetVersion:     def.RuleSetVersion,
			ReviewThreshold:    e.Float("VIGIL_SCORING_REVIEW_THRESHOLD", def.ReviewThreshold, 0, 1),
			DeclineThreshold:   e.Float("VIGIL_SCORING_DECLINE_THRESHOLD", def.DeclineThreshold, 0, 1),
			ReviewAmountMinor:  int64(e.Int("VIGIL_SCORING_REVIEW_AMOUNT_MINOR", int(def.ReviewAmountMinor), 1, 1<<53)),
			DeclineAmountMinor: int64(e.Int("VIGIL_SCORING_DECLINE_AMOUNT_MINOR", int(def.DeclineAmountMinor), 1, 1<<53)),
			VelocityReview:     e.Float("VIGIL_SCORING_VELOCITY_REVIEW_1H", def.VelocityReview, 0, 1e9),
		},
		SinkEnabled: e.Bool("VIGIL_SCORING_SINK_ENABLED", true),
		SinkName:    e.String("VIGIL_SCORING_SINK_GROUP", "vigil-decision-sink"),
		Kafka:       kafka.LoadConfig(e),
		Postgres:    postgres.LoadConfig(e),
		Log:         telemetry.Config{Format: e.String("VIGIL_LOG_FORMAT", "json"), Level: e.String("VIGIL_LOG_LEVEL", "info")},
	}
	if err := c.Policy.Validate(); err != nil {
		e.Fail("VIGIL_SCORING_*_THRESHOLD / *_AMOUNT_MINOR", "%v", err)
	}
	if err := e.Err(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}
