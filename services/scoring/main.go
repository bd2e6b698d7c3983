// Command scoring consumes features.v1, scores and decides, produces decisions.v1 exactly once,
// and (the decision sink) persists decisions.v1 to Postgres exactly once.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/sink"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/models/model"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
	"github.com/vigil-fraud/vigil/services/scoring/internal/pipeline"
	"github.com/vigil-fraud/vigil/services/scoring/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "scoring:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := loadConfig(config.FromOS())
	if err != nil {
		return err
	}
	log, err := telemetry.NewLogger(os.Stderr, "scoring", cfg.Log)
	if err != nil {
		return err
	}

	scorer, err := loadScorer(cfg.ModelPath)
	if err != nil {
		return err
	}
	log.Info("starting", "addr", cfg.Addr, "brokers", cfg.Kafka.Brokers, "in", cfg.Kafka.Topics.Features,
		"out", cfg.Kafka.Topics.Decisions, "group", cfg.Group, "transactional_id", cfg.TransactionalID,
		"model", scorer.Version(), "feature_schema", scorer.FeatureSchema(), "rule_set", cfg.Policy.RuleSetVersion,
		"sink", cfg.SinkEnabled)

	pool, err := postgres.Open(ctx, cfg.Postgres)
	if err != nil {
		return err
	}
	defer pool.Close()

	pipe := pipeline.New(scorer, cfg.Policy, cfg.Kafka.Topics.Decisions, time.Now)
	loop, err := kafka.NewEOS(kafka.EOSConfig{
		Brokers:         cfg.Kafka.Brokers,
		Group:           cfg.Group,
		TransactionalID: cfg.TransactionalID,
		InputTopics:     []string{cfg.Kafka.Topics.Features},
		MaxPollRecords:  cfg.MaxPollRecords,
	}, pipe.Transform, log)
	if err != nil {
		return err
	}

	health := httpserver.NewHealth(map[string]httpserver.Check{
		"postgres": func(ctx context.Context) error { return pool.Ping(ctx) },
	})
	r := chi.NewRouter()
	r.Get("/livez", health.Live())
	r.Get("/readyz", health.Ready())
	srv, err := httpserver.Listen(httpserver.Config{Addr: cfg.Addr}, r, log)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error { return loop.Run(gctx) })
	var decisionSink *sink.Sink
	if cfg.SinkEnabled {
		decisionSink, err = sink.New(sink.Config{
			Brokers: cfg.Kafka.Brokers,
			Name:    cfg.SinkName,
			Topics:  []string{cfg.Kafka.Topics.Decisions},
		}, pool, store.NewDecisions(log).Apply, log)
		if err != nil {
			return err
		}
		g.Go(func() error { return decisionSink.Run(gctx) })
	}
	health.MarkReady()
	err = g.Wait()
	attrs := []any{"transactions_committed", loop.Stats.Committed.Load(), "transactions_aborted", loop.Stats.Aborted.Load(),
		"records", loop.Stats.Records.Load()}
	if decisionSink != nil {
		attrs = append(attrs, "decisions_persisted", decisionSink.Applied.Load())
	}
	log.Info("stopped", attrs...)
	return err
}

// loadScorer loads the trained model, or the amount baseline when none is configured.
func loadScorer(path string) (pipeline.Scorer, error) {
	if path == "" {
		return decide.BaselineScorer{Schema: features.SchemaVersion, AmountIndex: features.Index("amount")}, nil
	}
	a, err := model.Load(path)
	if err != nil {
		return nil, fmt.Errorf("VIGIL_SCORING_MODEL_PATH: %w", err)
	}
	if a.FeatureSchema != features.SchemaVersion {
		return nil, fmt.Errorf("VIGIL_SCORING_MODEL_PATH: model %s was trained on feature schema %q, this build computes %q",
			a.Version, a.FeatureSchema, features.SchemaVersion)
	}
	m, err := model.New(a)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", a.Version, err)
	}
	return m, nil
}
