// Command ingest is Vigil's HTTP front door: it authenticates payment systems, validates and
// tokenizes their transactions and produces them to tx.v1.
package main

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/services/ingest/internal/httpapi"
	"github.com/vigil-fraud/vigil/services/ingest/internal/publish"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

//go:embed openapi.json
var openAPI []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		// The configured logger may not exist yet (bad config), so failures go out through a
		// plain JSON logger that log collectors still parse.
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "ingest").Error("ingest failed", "err", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := loadConfig(config.FromOS())
	if err != nil {
		return err
	}
	log, err := telemetry.NewLogger(os.Stderr, "ingest", cfg.Log)
	if err != nil {
		return err
	}
	log.Info("starting", "config", cfg)

	tok, err := txn.NewTokenizer(cfg.CardKeyID, cfg.CardHMACKey)
	if err != nil {
		return fmt.Errorf("card tokenizer: %w", err)
	}

	producer, err := publish.New(cfg.Kafka.Brokers, cfg.Kafka.Topics.Tx)
	if err != nil {
		return err
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := producer.Close(fctx); err != nil {
			log.Error("close kafka producer", "err", err)
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	err = producer.WaitReady(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("start-up: %w", err)
	}

	health := httpserver.NewHealth(map[string]httpserver.Check{"kafka": producer.Ping})
	api := httpapi.New(httpapi.Config{
		MaxBodyBytes:   cfg.MaxBodyBytes,
		Rules:          txn.Rules{MaxClockSkew: cfg.MaxClockSkew, MaxEventAge: cfg.MaxEventAge},
		PublishTimeout: cfg.PublishTimeout,
		RetryAfter:     time.Second,
	}, log, cfg.APIKeys, tok, producer, time.Now)
	srv, err := httpserver.Listen(httpserver.Config{
		Addr: cfg.Addr,
		// A request may wait the whole publish timeout for Kafka before it writes its answer.
		WriteTimeout:    cfg.PublishTimeout + 5*time.Second,
		ShutdownTimeout: cfg.ShutdownTimeout,
	}, api.Handler(health, openAPI), log)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	health.MarkReady()
	err = g.Wait()
	log.Info("stopped")
	return err
}
