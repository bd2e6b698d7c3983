// Command alerting turns review and decline decisions into alerts and serves the analyst API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/sink"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/services/alerting/internal/alerts"
	"github.com/vigil-fraud/vigil/services/alerting/internal/httpapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "alerting:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := loadConfig(config.FromOS())
	if err != nil {
		return err
	}
	log, err := telemetry.NewLogger(os.Stderr, "alerting", cfg.Log)
	if err != nil {
		return err
	}
	log.Info("starting", "addr", cfg.Addr, "brokers", cfg.Kafka.Brokers, "in", cfg.Kafka.Topics.Decisions,
		"group", cfg.SinkName, "api_token", config.Mask(cfg.APIToken))

	pool, err := postgres.Open(ctx, cfg.Postgres)
	if err != nil {
		return err
	}
	defer pool.Close()

	alertSink, err := sink.New(sink.Config{
		Brokers: cfg.Kafka.Brokers,
		Name:    cfg.SinkName,
		Topics:  []string{cfg.Kafka.Topics.Decisions},
	}, pool, alerts.NewSink(log).Apply, log)
	if err != nil {
		return err
	}

	health := httpserver.NewHealth(map[string]httpserver.Check{
		"postgres": func(ctx context.Context) error { return pool.Ping(ctx) },
	})
	api := httpapi.New(alerts.NewQueue(pool), cfg.APIToken, log)
	srv, err := httpserver.Listen(httpserver.Config{Addr: cfg.Addr}, api.Routes(health), log)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error { return alertSink.Run(gctx) })
	health.MarkReady()
	err = g.Wait()
	log.Info("stopped", "decisions_applied", alertSink.Applied.Load())
	return err
}
