package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/redisclient"
	"github.com/vigil-fraud/vigil/libs/sink"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/metrics"
	"github.com/vigil-fraud/vigil/services/scoring/internal/modelset"
	"github.com/vigil-fraud/vigil/services/scoring/internal/pipeline"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
	"github.com/vigil-fraud/vigil/services/scoring/internal/store"
	"github.com/vigil-fraud/vigil/services/scoring/internal/windows"
)

func run(ctx context.Context) error {
	cfg, err := loadConfig(config.FromOS())
	if err != nil {
		return err
	}
	log, err := telemetry.NewLogger(os.Stderr, "scoring", cfg.Log)
	if err != nil {
		return err
	}

	models, err := modelset.NewHolder(cfg.ModelPath, cfg.ShadowModelPath, features.SchemaVersion)
	if err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, cfg.Postgres)
	if err != nil {
		return err
	}
	defer pool.Close()

	reg := telemetry.NewRegistry("scoring", telemetry.Version())
	met := metrics.New()
	if err := met.Register(reg); err != nil {
		return err
	}
	ruleStore, listStore := store.NewRules(pool), store.NewLists(pool)
	live := &liveSources{rulesStore: ruleStore, listStore: listStore, cfg: cfg, log: log, metrics: met}
	if err := live.loadRules(ctx, true); err != nil {
		return err
	}
	if err := live.loadLists(ctx); err != nil {
		return err
	}

	var win pipeline.Windows
	if cfg.WindowsEnabled {
		rdb, err := redisclient.Open(ctx, cfg.Redis)
		if err != nil {
			return err
		}
		defer rdb.Close()
		win = timedWindows{windows.NewStore(rdb, cfg.Redis.KeyPrefix), met}
	}
	primary := models.Current().Primary
	met.ModelLoaded(primary.Version(), primary.FeatureSchema())
	if cfg.AlertBudgetPerDay > 0 && !cfg.ReviewThresholdSet {
		th, ok := modelset.ThresholdAtBudget(primary.Artifact, cfg.AlertBudgetPerDay)
		if !ok {
			return fmt.Errorf("VIGIL_SCORING_ALERT_BUDGET_PER_DAY: model %s has no validated threshold within %g alerts/day; set VIGIL_SCORING_REVIEW_THRESHOLD",
				primary.Version(), cfg.AlertBudgetPerDay)
		}
		cfg.Policy.ReviewThreshold, cfg.Policy.DeclineThreshold = th, max(cfg.Policy.DeclineThreshold, th)
		log.Info("review threshold from the model's validation at the alert budget", "threshold", th, "alerts_per_day", cfg.AlertBudgetPerDay)
	}
	log.Info("starting", "addr", cfg.Addr, "brokers", cfg.Kafka.Brokers, "in", cfg.Kafka.Topics.Features,
		"out", cfg.Kafka.Topics.Decisions, "group", cfg.Group, "transactional_id", cfg.TransactionalID,
		"model", primary.Version(), "shadow", shadowVersion(models.Current()), "feature_schema", primary.FeatureSchema(),
		"rule_set", live.rules.Load().Version(), "list_entries", live.lists.Load().Len(), "windows", cfg.WindowsEnabled, "sink", cfg.SinkEnabled)

	shutdownTracing, err := telemetry.SetupTracing(ctx, "scoring")
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()

	pipe := pipeline.New(pipeline.Deps{
		Models:   models.Current,
		Rules:    live.rules.Load,
		Lists:    live.lists.Load,
		Windows:  win,
		Recorder: met,
	}, cfg.Policy, pipeline.Budgets{Model: cfg.ModelBudget, Windows: cfg.WindowsBudget}, cfg.Kafka.Topics.Decisions, time.Now, log)
	loop, err := kafka.NewEOS(kafka.EOSConfig{
		Brokers:         cfg.Kafka.Brokers,
		Group:           cfg.Group,
		TransactionalID: cfg.TransactionalID,
		InputTopics:     []string{cfg.Kafka.Topics.Features},
		MaxPollRecords:  cfg.MaxPollRecords,
		CommitInterval:  cfg.CommitInterval,
		ExtraOpts:       append(groupOpts(cfg, ""), cfg.Fetch.Opts()...),
		Metrics:         reg,
	}, pipe.Transform, log)
	if err != nil {
		return err
	}
	// libs/kafka's EOS has no end-of-transaction hook yet: decisions are settled against its
	// committed/aborted counters, so vigil_decisions_total counts commits, not attempts.
	met.SetOutcome(func() (int64, int64) { return loop.Stats.Committed.Load(), loop.Stats.Aborted.Load() })

	health := httpserver.NewHealth(map[string]httpserver.Check{
		"postgres": func(ctx context.Context) error { return pool.Ping(ctx) },
	})
	r := chi.NewRouter()
	r.Get("/livez", health.Live())
	r.Get("/readyz", health.Ready())
	registerMetrics(reg, pipe, loop, models)
	lagGroups := []string{cfg.Group}
	if cfg.SinkEnabled {
		lagGroups = append(lagGroups, cfg.SinkName)
	}
	closeLag, err := kafka.RegisterLag(reg, cfg.Kafka.Brokers, lagGroups...)
	if err != nil {
		return err
	}
	defer closeLag()
	srv, err := httpserver.Listen(httpserver.Config{Addr: cfg.Addr}, httpserver.WithMetrics(reg, "scoring", r), log)
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
	g.Go(func() error { return loop.Run(gctx) })
	g.Go(func() error { return live.refresh(gctx, models) })
	// features.v1 is read here and decisions.v1 by the sink: a transaction left hanging on
	// either stops this process, which repairs it (libs/kafka/hanging.go).
	g.Go(func() error {
		return cfg.Kafka.NewTxnGuard(reg, log, cfg.Kafka.Topics.Features, cfg.Kafka.Topics.Decisions).Run(gctx)
	})
	var decisionSink *sink.Sink
	if cfg.SinkEnabled {
		decisionStore := store.NewDecisions(log)
		decisionSink, err = sink.New(sink.Config{
			Brokers:   cfg.Kafka.Brokers,
			Name:      cfg.SinkName,
			Topics:    []string{cfg.Kafka.Topics.Decisions},
			ExtraOpts: append(groupOpts(cfg, "-sink"), cfg.SinkFetch.Opts()...),
			Metrics:   reg,
			// decisions is a projection of decisions.v1: a crash loses rows and offsets
			// together and they are replayed, so the WAL flush need not be waited for.
			AsyncCommit: true,
		}, pool, func(ctx context.Context, tx pgx.Tx, recs []*kgo.Record) error {
			defer met.Postgres("sink_insert_decisions", time.Now())
			return decisionStore.Apply(ctx, tx, recs)
		}, log)
		if err != nil {
			return err
		}
		g.Go(func() error { return decisionSink.Run(gctx) })
	}
	health.MarkReady()
	err = g.Wait()
	attrs := []any{"transactions_committed", loop.Stats.Committed.Load(), "transactions_aborted", loop.Stats.Aborted.Load(),
		"records", loop.Stats.Records.Load(), "decisions", pipe.Stats.Decisions.Load(), "degraded", pipe.Stats.Degraded.Load(),
		"dead_lettered", pipe.Stats.DeadLettered.Load(), "window_write_failures", pipe.Stats.WindowWriteFailure.Load(),
		"model_reloads", models.Reloads.Load()}
	if decisionSink != nil {
		attrs = append(attrs, "decisions_persisted", decisionSink.Applied.Load())
	}
	log.Info("stopped", attrs...)
	return err
}

// registerMetrics exposes the pipeline's counters, read from their atomics at scrape time.
func registerMetrics(reg *prometheus.Registry, pipe *pipeline.Pipeline, loop *kafka.EOS, models *modelset.Holder) {
	counter := func(name, help string, v func() int64) prometheus.CounterFunc {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
	}
	reg.MustRegister(
		counter("vigil_scoring_decisions_total", "Decisions produced (including aborted transactions' retries).", pipe.Stats.Decisions.Load),
		counter("vigil_scoring_degraded_total", "Decisions made with rules and lists only (model or Redis past its budget).", pipe.Stats.Degraded.Load),
		counter("vigil_scoring_dead_letters_total", "Input records sent to the dead-letter topic.", pipe.Stats.DeadLettered.Load),
		counter("vigil_scoring_window_write_failures_total", "Batches whose decision windows could not be recorded.", pipe.Stats.WindowWriteFailure.Load),
		counter("vigil_scoring_model_reloads_total", "Successful model reloads.", models.Reloads.Load),
		counter("vigil_scoring_transactions_committed_total", "Kafka transactions committed.", loop.Stats.Committed.Load),
		counter("vigil_scoring_transactions_aborted_total", "Kafka transactions aborted.", loop.Stats.Aborted.Load),
	)
}

// timedWindows records each decision-window pipeline round trip, failed and timed-out ones
// included (a budget overrun shows up as a long tail).
type timedWindows struct {
	w pipeline.Windows
	m *metrics.Metrics
}

func (t timedWindows) Load(ctx context.Context, reqs []windows.Request) (map[string][]windows.Entry, error) {
	defer t.m.Redis("decision_windows_load", time.Now())
	return t.w.Load(ctx, reqs)
}

func (t timedWindows) Record(ctx context.Context, byAccount map[string][]windows.Entry) error {
	if len(byAccount) == 0 {
		return nil // no round trip
	}
	defer t.m.Redis("decision_windows_record", time.Now())
	return t.w.Record(ctx, byAccount)
}

func groupOpts(cfg Config, suffix string) []kgo.Opt {
	opts := []kgo.Opt{kgo.SessionTimeout(cfg.SessionTimeout)}
	if cfg.GroupInstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.GroupInstanceID+suffix))
	}
	return opts
}

func shadowVersion(s *modelset.Set) string {
	if s.Shadow == nil {
		return ""
	}
	return s.Shadow.Version()
}

// liveSources holds the rule set and list snapshot the pipeline reads once per batch; refresh
// replaces them whole, keeping the previous one when a reload fails.
type liveSources struct {
	rulesStore *store.Rules
	listStore  *store.Lists
	cfg        Config
	log        *slog.Logger
	metrics    *metrics.Metrics
	rules      atomic.Pointer[rules.Set]
	lists      atomic.Pointer[lists.Snapshot]
}

// loadRules compiles the active rules from Postgres (seeding them first when the table is
// empty and seed is set) and publishes the set so explain can find it by version.
func (l *liveSources) loadRules(ctx context.Context, seed bool) error {
	if seed {
		rs, name, err := rulesFile(l.cfg.RulesFile)
		if err != nil {
			return err
		}
		if _, err := rules.Compile(rs, l.cfg.Policy.Params(), features.Names); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		n, err := l.rulesStore.Seed(ctx, rs, false)
		if err != nil {
			return err
		}
		if n > 0 {
			l.log.Info("seeded rules", "file", name, "rules", n)
		}
	}
	start := time.Now()
	active, err := l.rulesStore.Active(ctx)
	l.metrics.Postgres("rules_active", start)
	if err != nil {
		return err
	}
	set, err := rules.Compile(active, l.cfg.Policy.Params(), features.Names)
	if err != nil {
		return fmt.Errorf("rules in postgres (scoring_rules): %w", err)
	}
	if prev := l.rules.Load(); prev != nil && prev.Version() == set.Version() {
		return nil
	}
	start = time.Now()
	err = l.rulesStore.Publish(ctx, set)
	l.metrics.Postgres("rule_set_publish", start)
	if err != nil {
		return err
	}
	l.rules.Store(set)
	l.metrics.RulesLoaded(set.Version())
	l.log.Info("rule set active", "rule_set", set.Version(), "rules", len(set.Rules()))
	return nil
}

func compileStored(ctx context.Context, s *store.Rules, params map[string]float64) (*rules.Set, error) {
	rs, err := s.Active(ctx)
	if err != nil {
		return nil, err
	}
	set, err := rules.Compile(rs, params, features.Names)
	if err != nil {
		return nil, fmt.Errorf("rules in postgres (scoring_rules): %w", err)
	}
	return set, nil
}

func (l *liveSources) loadLists(ctx context.Context) error {
	start := time.Now()
	es, err := l.listStore.Unexpired(ctx, start)
	l.metrics.Postgres("lists_unexpired", start)
	if err != nil {
		return err
	}
	l.lists.Store(lists.NewSnapshot(es))
	return nil
}

// refresh reloads rules and lists periodically, the models when their files change, and all of
// them on SIGHUP. Swaps are atomic pointer stores the pipeline reads once per batch.
func (l *liveSources) refresh(ctx context.Context, models *modelset.Holder) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	rulesT, listsT, modelT := time.NewTicker(l.cfg.RulesRefresh), time.NewTicker(l.cfg.ListsRefresh), time.NewTicker(l.cfg.ModelWatch)
	defer rulesT.Stop()
	defer listsT.Stop()
	defer modelT.Stop()
	reloadModels := func(why string) {
		s, err := models.Reload()
		if err != nil {
			l.log.Error("model reload failed; keeping the previous model", "trigger", why, "model", s.Primary.Version(), "err", err)
			return
		}
		l.metrics.ModelLoaded(s.Primary.Version(), s.Primary.FeatureSchema())
		l.log.Info("models reloaded", "trigger", why, "model", s.Primary.Version(), "shadow", shadowVersion(s))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			reloadModels("SIGHUP")
			if err := l.loadRules(ctx, false); err != nil {
				l.log.Error("rule reload failed; keeping the previous rule set", "err", err)
			}
			if err := l.loadLists(ctx); err != nil {
				l.log.Error("list reload failed; keeping the previous lists", "err", err)
			}
		case <-modelT.C:
			if models.Changed() {
				reloadModels("file changed")
			}
		case <-rulesT.C:
			if err := l.loadRules(ctx, false); err != nil {
				l.log.Error("rule reload failed; keeping the previous rule set", "err", err)
			}
		case <-listsT.C:
			if err := l.loadLists(ctx); err != nil {
				l.log.Warn("list refresh failed; keeping the previous lists", "err", err)
			}
		}
	}
}

func rulesFile(path string) ([]rules.Rule, string, error) {
	data, name := defaultRules, "built-in rules.yaml"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, path, fmt.Errorf("VIGIL_SCORING_RULES_FILE: %w", err)
		}
		data, name = b, path
	}
	rs, err := rules.ParseYAML(name, data)
	return rs, name, err
}

func openPool(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	return postgres.Open(ctx, cfg.Postgres)
}
