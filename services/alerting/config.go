package main

import (
	"fmt"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/telemetry"
)

// Config of the alerting service, from VIGIL_ALERTING_* and the shared variables.
type Config struct {
	Addr     string
	SinkName string
	// APIToken guards the analyst API until analyst accounts exist.
	APIToken string
	Kafka    kafka.Config
	Postgres postgres.Config
	Log      telemetry.Config
}

func loadConfig(e *config.Env) (Config, error) {
	c := Config{
		Addr:     e.String("VIGIL_ALERTING_ADDR", "127.0.0.1:8083"),
		SinkName: e.String("VIGIL_ALERTING_GROUP", "vigil-alerting"),
		APIToken: e.Secret("VIGIL_ALERTING_API_TOKEN", true),
		Kafka:    kafka.LoadConfig(e),
		Postgres: postgres.LoadConfig(e),
		Log:      telemetry.Config{Format: e.String("VIGIL_LOG_FORMAT", "json"), Level: e.String("VIGIL_LOG_LEVEL", "info")},
	}
	if c.APIToken != "" && len(c.APIToken) < 16 {
		e.Fail("VIGIL_ALERTING_API_TOKEN", "must be at least 16 characters")
	}
	if err := e.Err(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}
