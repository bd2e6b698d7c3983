// Command feature-window consumes tx.v1, keeps event-time windows in Redis and produces each
// transaction with its frozen feature vector to features.v1, exactly once. labels.v1 feeds the
// terminal fraud ratios. `feature-window rebuild` re-derives the windows from the topics after
// Redis lost them.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/redisclient"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/labels"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/pipeline"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/window"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "feature-window:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	mode := "serve"
	if len(args) > 0 {
		mode = args[0]
	}
	if mode != "serve" && mode != "rebuild" {
		return fmt.Errorf("unknown command %q: want serve (default) or rebuild", mode)
	}
	cfg, err := loadConfig(config.FromOS())
	if err != nil {
		return err
	}
	log, err := telemetry.NewLogger(os.Stderr, "feature-window", cfg.Log)
	if err != nil {
		return err
	}
	// Built before the dependencies it observes; rebuild mode serves no /metrics and ignores it.
	reg := telemetry.NewRegistry("feature-window", telemetry.Version())
	rdb, err := redisclient.Open(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := redisclient.Instrument(rdb, reg); err != nil {
		return err
	}
	store := window.New(rdb, cfg.Redis.KeyPrefix, cfg.Features)
	pipe := pipeline.New(store, pipeline.KafkaReader(cfg.Kafka.Brokers, cfg.CatchUpTimeout), cfg.Features,
		cfg.Kafka.Topics.Features, time.Now, pipeline.WithLogger(log), pipeline.WithMetrics(reg),
		pipeline.WithMaxAccounts(cfg.MaxAccounts), pipeline.WithCheckpointInterval(cfg.CheckpointInterval), pipeline.WithDeviceRefresh(cfg.DeviceRefresh),
		pipeline.WithTerminalRefresh(cfg.TerminalRefresh))
	applier := &labels.Applier{Windows: store}
	if mode == "rebuild" {
		return rebuild(ctx, cfg, pipe, applier, log)
	}
	return serve(ctx, cfg, reg, func(ctx context.Context) error { return rdb.Ping(ctx).Err() }, store, pipe, applier, log)
}

func serve(ctx context.Context, cfg Config, reg *prometheus.Registry, ping func(context.Context) error, store *window.Store, pipe *pipeline.Pipeline, applier *labels.Applier, log *slog.Logger) error {
	log.Info("starting", "addr", cfg.Addr, "brokers", cfg.Kafka.Brokers, "in", cfg.Kafka.Topics.Tx,
		"out", cfg.Kafka.Topics.Features, "labels", cfg.Kafka.Topics.Labels, "group", cfg.Group,
		"transactional_id", cfg.TransactionalID, "redis", cfg.Redis.Addr,
		"label_delay", cfg.Features.LabelDelay, "allowed_lateness", cfg.Features.AllowedLateness)
	shutdownTracing, err := telemetry.SetupTracing(ctx, "feature-window")
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()
	closeLag, err := kafka.RegisterLag(reg, cfg.Kafka.Brokers, cfg.Group, cfg.LabelsGroup)
	if err != nil {
		return err
	}
	defer closeLag()
	extra := append([]kgo.Opt{kgo.SessionTimeout(cfg.SessionTimeout)}, cfg.Fetch.Opts()...)
	if cfg.InstanceID != "" {
		extra = append(extra, kgo.InstanceID(cfg.InstanceID))
	}
	loop, err := kafka.NewStreamEOS(kafka.EOSConfig{
		Brokers:         cfg.Kafka.Brokers,
		Group:           cfg.Group,
		TransactionalID: cfg.TransactionalID,
		InputTopics:     []string{cfg.Kafka.Topics.Tx},
		MaxPollRecords:  cfg.MaxPollRecords,
		CommitInterval:  cfg.CommitInterval,
		Metrics:         reg,
		ExtraOpts:       extra,
		Committed:       pipe.Committed,
		Aborted:         pipe.Aborted,
		Revoked:         pipe.Reset,
	}, pipe.TransformStream, log)
	if err != nil {
		return err
	}
	lc, err := labels.NewConsumer(cfg.Kafka.Brokers, cfg.LabelsGroup, cfg.Kafka.Topics.Labels, applier, log)
	if err != nil {
		return err
	}
	registerStats(reg, pipe, applier, store.RoundTrips.Load)

	health := httpserver.NewHealth(map[string]httpserver.Check{
		"redis": func(ctx context.Context) error { return ping(ctx) },
	})
	srv, err := httpserver.Listen(httpserver.Config{Addr: cfg.Addr}, httpserver.WithMetrics(reg, "feature-window", routes(health)), log)
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
	g.Go(func() error {
		err := loop.Run(gctx)
		pipe.FlushAll(context.WithoutCancel(gctx)) // what the last transactions committed
		return err
	})
	g.Go(func() error { return lc.Run(gctx) })
	g.Go(func() error { return cfg.Kafka.NewTxnGuard(reg, log, cfg.Kafka.Topics.Labels).Run(gctx) })
	health.MarkReady()
	err = g.Wait()
	log.Info("stopped", "transactions_committed", loop.Stats.Committed.Load(),
		"transactions_aborted", loop.Stats.Aborted.Load(), "records", loop.Stats.Records.Load(),
		"late", pipe.Stats.Late.Load(), "caught_up", pipe.Stats.CaughtUp.Load(), "labels", applier.Stats.Applied.Load())
	return err
}

func registerStats(reg prometheus.Registerer, pipe *pipeline.Pipeline, a *labels.Applier, roundTrips func() int64) {
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "vigil", Subsystem: "feature_window", Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	reg.MustRegister(
		counter("late_total", "Transactions later than the allowed lateness: emitted, marked late, not applied.", pipe.Stats.Late.Load),
		counter("caught_up_total", "Committed tx.v1 records folded into the windows again from Kafka after a crash, rebalance, abort or lost Redis state.", pipe.Stats.CaughtUp.Load),
		counter("stale_total", "Records already in the Redis checkpoint when processed (never expected): features from later state.", pipe.Stats.Stale.Load),
		counter("checkpoints_total", "Partition checkpoints written to Redis.", pipe.Stats.Flushes.Load),
		counter("checkpoint_conflicts_total", "Checkpoints refused because another instance moved the partition's checkpoint (rebalance, zombie, rebuild).", pipe.Stats.Conflicts.Load),
		counter("checkpoint_errors_total", "Checkpoints that failed (Redis unavailable); the partition is caught up from tx.v1.", pipe.Stats.FlushErrors.Load),
		counter("dead_letters_total", "tx.v1 records sent to the dead-letter topic.", pipe.Stats.DeadLetters.Load),
		counter("duplicates_total", "tx.v1 records whose transaction id the account had already seen (a client retry after a 503 whose record was written): dropped.", pipe.Stats.Duplicates.Load),
		counter("labels_applied_total", "Labels applied to the terminal windows.", a.Stats.Applied.Load),
		counter("labels_duplicate_total", "Labels of already labelled transactions, ignored.", a.Stats.Duplicates.Load),
		counter("redis_round_trips_total", "Redis round trips of the window store (a read and a checkpoint per poll).", roundTrips),
		counter("transactions_total", "Transactions emitted to features.v1, replays included.", pipe.Stats.Transactions.Load),
	)
}

func routes(h *httpserver.Health) http.Handler {
	r := chi.NewRouter()
	r.Get("/livez", h.Live())
	r.Get("/readyz", h.Ready())
	return r
}
