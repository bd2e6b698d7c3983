// Command feature-window consumes tx.v1, keeps per-account windows in Redis and produces each
// transaction with its frozen feature vector to features.v1, exactly once.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/redisclient"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/pipeline"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/window"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "feature-window:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := loadConfig(config.FromOS())
	if err != nil {
		return err
	}
	log, err := telemetry.NewLogger(os.Stderr, "feature-window", cfg.Log)
	if err != nil {
		return err
	}
	log.Info("starting", "addr", cfg.Addr, "brokers", cfg.Kafka.Brokers, "in", cfg.Kafka.Topics.Tx,
		"out", cfg.Kafka.Topics.Features, "group", cfg.Group, "transactional_id", cfg.TransactionalID, "redis", cfg.Redis.Addr)

	rdb, err := redisclient.Open(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()

	pipe := pipeline.New(window.New(rdb, cfg.Redis.KeyPrefix, cfg.Window), cfg.Kafka.Topics.Features, time.Now)
	loop, err := kafka.NewEOS(kafka.EOSConfig{
		Brokers:         cfg.Kafka.Brokers,
		Group:           cfg.Group,
		TransactionalID: cfg.TransactionalID,
		InputTopics:     []string{cfg.Kafka.Topics.Tx},
		MaxPollRecords:  cfg.MaxPollRecords,
	}, pipe.Transform, log)
	if err != nil {
		return err
	}

	health := httpserver.NewHealth(map[string]httpserver.Check{
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	srv, err := httpserver.Listen(httpserver.Config{Addr: cfg.Addr}, routes(health), log)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error { return loop.Run(gctx) })
	health.MarkReady()
	err = g.Wait()
	log.Info("stopped", "transactions_committed", loop.Stats.Committed.Load(),
		"transactions_aborted", loop.Stats.Aborted.Load(), "records", loop.Stats.Records.Load())
	return err
}

func routes(h *httpserver.Health) http.Handler {
	r := chi.NewRouter()
	r.Get("/livez", h.Live())
	r.Get("/readyz", h.Ready())
	return r
}
