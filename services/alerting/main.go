// Command alerting turns review and decline decisions into alerts and cases, serves the analyst
// API and web UI, relays labels to Kafka and delivers webhooks.
//
//	alerting                                      run the service
//	alerting user create --email E --role R       create a user; password from stdin or VIGIL_ALERTING_NEW_PASSWORD
//	alerting export-labels --out labels.csv       write the latest label of every transaction
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/sink"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/services/alerting/internal/auth"
	"github.com/vigil-fraud/vigil/services/alerting/internal/httpapi"
	"github.com/vigil-fraud/vigil/services/alerting/internal/metrics"
	"github.com/vigil-fraud/vigil/services/alerting/internal/relay"
	"github.com/vigil-fraud/vigil/services/alerting/internal/store"
	"github.com/vigil-fraud/vigil/services/alerting/internal/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "user":
		err = runUserCmd(ctx, os.Args[2:], os.Stdin, os.Stdout)
	case len(os.Args) > 1 && os.Args[1] == "export-labels":
		err = runExportCmd(ctx, os.Args[2:], os.Stdout)
	case len(os.Args) > 1:
		err = fmt.Errorf("unknown command %q (want: user create, export-labels, or no command to serve)", os.Args[1])
	default:
		err = run(ctx)
	}
	if err != nil {
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
	return serve(ctx, cfg, log, nil)
}

// serve runs every part of the service until ctx ends; ready, when set, learns the bound
// address once everything is up (tests bind port 0).
func serve(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	log.Info("starting", "addr", cfg.Addr, "brokers", cfg.Kafka.Brokers, "in", cfg.Kafka.Topics.Decisions, "labels", cfg.Kafka.Topics.Labels,
		"group", cfg.SinkName, "metrics_sources", len(cfg.MetricsSources), "api_token", config.Mask(cfg.APIToken), "webhook_allow_loopback", cfg.WebhookAllowLocal)

	reg := telemetry.NewRegistry("alerting", telemetry.Version())
	pool, err := postgres.Open(ctx, cfg.Postgres, postgres.WithMetrics(reg))
	if err != nil {
		return err
	}
	defer pool.Close()

	shutdownTracing, err := telemetry.SetupTracing(ctx, "alerting")
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()
	closeLag, err := kafka.RegisterLag(reg, cfg.Kafka.Brokers, cfg.SinkName)
	if err != nil {
		return err
	}
	defer closeLag()

	st := store.New(pool, log)
	alertSink, err := sink.New(sink.Config{
		Brokers:   cfg.Kafka.Brokers,
		Name:      cfg.SinkName,
		Topics:    []string{cfg.Kafka.Topics.Decisions},
		Metrics:   reg,
		ExtraOpts: cfg.Fetch.Opts(),
	}, pool, st.Apply, log)
	if err != nil {
		return err
	}
	labels, err := relay.New(relay.Config{Brokers: cfg.Kafka.Brokers, Topic: cfg.Kafka.Topics.Labels, TransactionalID: cfg.LabelTxnID}, pool, log)
	if err != nil {
		return err
	}
	defer labels.Close()
	policy := webhook.Policy{AllowLoopback: cfg.WebhookAllowLocal}
	hooks := webhook.NewWorker(webhook.WorkerConfig{MaxAttempts: cfg.WebhookAttempts, Timeout: cfg.WebhookTimeout}, pool, policy, log)

	health := httpserver.NewHealth(map[string]httpserver.Check{
		"postgres": func(ctx context.Context) error { return pool.Ping(ctx) },
	})
	api := httpapi.New(st, auth.NewAccounts(pool, cfg.BcryptCost, cfg.SessionTTL), webhook.NewStore(pool, policy), st, httpapi.Options{
		ServiceToken:     cfg.APIToken,
		InsecureCookies:  cfg.InsecureCookies,
		SessionTTL:       cfg.SessionTTL,
		DailyAlertBudget: cfg.DailyAlertBudget,
		LoginLimiter:     auth.NewLimiter(cfg.LoginAttempts, time.Minute, time.Now),
		Metrics:          metrics.NewScraper(cfg.MetricsSources, 2*time.Second, 5*time.Second),
	}, log)
	srv, err := httpserver.Listen(httpserver.Config{Addr: cfg.Addr}, httpserver.WithMetrics(reg, "alerting", api.Routes(health)), log)
	if err != nil {
		return err
	}

	debug, err := httpserver.ListenDebug(cfg.DebugAddr, log)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error { return httpserver.RunOrWait(gctx, debug) })
	g.Go(func() error { return alertSink.Run(gctx) })
	g.Go(func() error { return labels.Run(gctx) })
	g.Go(func() error { return hooks.Run(gctx) })
	g.Go(func() error { return cfg.Kafka.NewTxnGuard(reg, log, cfg.Kafka.Topics.Decisions).Run(gctx) })
	health.MarkReady()
	if ready != nil {
		ready(srv.Addr())
	}
	err = g.Wait()
	log.Info("stopped", "decisions_applied", alertSink.Applied.Load())
	return err
}
