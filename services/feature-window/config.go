package main

import (
	"fmt"
	"os"
	"time"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/redisclient"
	"github.com/vigil-fraud/vigil/libs/telemetry"
)

// Config of the feature-window service, from VIGIL_FEATURE_WINDOW_* and the shared variables.
type Config struct {
	Addr            string
	Group           string
	TransactionalID string
	MaxPollRecords  int
	Window          time.Duration
	Kafka           kafka.Config
	Redis           redisclient.Config
	Log             telemetry.Config
}

func loadConfig(e *config.Env) (Config, error) {
	host, _ := os.Hostname()
	c := Config{
		Addr:            e.String("VIGIL_FEATURE_WINDOW_ADDR", "127.0.0.1:8081"),
		Group:           e.String("VIGIL_FEATURE_WINDOW_GROUP", "vigil-feature-window"),
		TransactionalID: e.String("VIGIL_FEATURE_WINDOW_TRANSACTIONAL_ID", "vigil-feature-window-"+host),
		MaxPollRecords:  e.Int("VIGIL_FEATURE_WINDOW_MAX_POLL_RECORDS", 500, 1, 100_000),
		Window:          e.Duration("VIGIL_FEATURE_WINDOW_ACCOUNT_WINDOW", time.Hour),
		Kafka:           kafka.LoadConfig(e),
		Redis:           redisclient.LoadConfig(e),
		Log:             telemetry.Config{Format: e.String("VIGIL_LOG_FORMAT", "json"), Level: e.String("VIGIL_LOG_LEVEL", "info")},
	}
	if err := e.Err(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}
