// Command ingest is Vigil's HTTP front door: it authenticates payment systems, validates and
// tokenizes their transactions and produces them to tx.v1.
//
//	ingest                 serve (configuration from VIGIL_INGEST_* and the shared variables)
//	ingest apikey ...      create, revoke and list API keys (see `ingest apikey help`)
package main

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/libs/redisclient"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
	"github.com/vigil-fraud/vigil/services/ingest/internal/httpapi"
	"github.com/vigil-fraud/vigil/services/ingest/internal/idempotency"
	"github.com/vigil-fraud/vigil/services/ingest/internal/publish"
	"github.com/vigil-fraud/vigil/services/ingest/internal/ratelimit"
	"github.com/vigil-fraud/vigil/services/ingest/internal/store"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

//go:embed openapi.json
var openAPI []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "apikey" {
		err = runAPIKey(ctx, config.FromOS(), os.Args[2:], os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			stop()
			os.Exit(2)
		}
		return
	}
	if err = run(ctx); err != nil {
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
	log.Info("starting", "config", cfg, "version", telemetry.Version())
	shutdownTracing, err := telemetry.SetupTracing(ctx, "ingest")
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()
	reg := telemetry.NewRegistry("ingest", telemetry.Version())

	tok, err := txn.NewTokenizer(cfg.CardKeyID, cfg.CardHMACKey)
	if err != nil {
		return fmt.Errorf("card tokenizer: %w", err)
	}

	// Opened first so they close last, after the HTTP server drained and the producer flushed.
	pool, err := postgres.Open(ctx, cfg.Postgres, postgres.WithMetrics(reg))
	if err != nil {
		return err
	}
	defer pool.Close()
	rdb, err := redisclient.Open(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	if err := redisclient.Instrument(rdb, reg); err != nil {
		return err
	}

	producer, err := publish.New(cfg.Kafka.Brokers, cfg.Kafka.Topics.Tx, producerOptions(cfg)...)
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

	st := store.New(pool)
	keys := auth.NewAuthenticator(cfg.APIKeys, st, cfg.APIKeyTTL, log)
	sctx, cancel = context.WithTimeout(ctx, cfg.StartupTimeout)
	err = keys.Refresh(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("start-up: %w", err)
	}

	health := httpserver.NewHealth(map[string]httpserver.Check{
		"kafka":    producer.Ping,
		"postgres": pool.Ping,
		"redis":    func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	handler := newHandler(cfg, log, deps{tok: tok, pub: producer, keys: keys, pool: pool, rdb: rdb}, health)
	srv, err := httpserver.Listen(httpserver.Config{
		Addr: cfg.Addr,
		// A request may wait the publish timeout for Kafka and then Prefer: wait for the decision.
		WriteTimeout:    cfg.PublishTimeout + cfg.MaxWait + 5*time.Second,
		ShutdownTimeout: cfg.ShutdownTimeout,
	}, httpserver.WithMetrics(reg, "ingest", handler), log)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	debug, err := httpserver.ListenDebug(cfg.DebugAddr, log)
	if err != nil {
		return err
	}
	g.Go(func() error { return httpserver.RunOrWait(gctx, debug) })
	g.Go(func() error { return keys.Run(gctx) })
	health.MarkReady()
	err = g.Wait()
	log.Info("stopped")
	return err
}

// producerOptions tune the shared producer settings for ingest. The buffer holds at most what
// may be in flight, so records a dead broker holds on to cannot pile up without bound.
func producerOptions(cfg Config) []kgo.Opt {
	return []kgo.Opt{kgo.ProducerLinger(cfg.ProducerLinger), kgo.MaxBufferedRecords(cfg.MaxInFlight)}
}

type deps struct {
	tok  *txn.Tokenizer
	pub  httpapi.Publisher
	keys httpapi.Authenticator
	pool *pgxpool.Pool
	rdb  redis.UniversalClient
}

// newHandler builds the API from the configuration; integration tests share it with run.
func newHandler(cfg Config, log *slog.Logger, d deps, health *httpserver.Health) http.Handler {
	api := httpapi.New(httpapi.Config{
		MaxBodyBytes:      cfg.MaxBodyBytes,
		MaxBatchBodyBytes: cfg.MaxBatchBodyBytes,
		MaxBatchItems:     cfg.MaxBatchItems,
		Rules:             txn.Rules{MaxClockSkew: cfg.MaxClockSkew, MaxEventAge: cfg.MaxEventAge},
		PublishTimeout:    cfg.PublishTimeout,
		RetryAfter:        cfg.RetryAfter,
		MaxInFlight:       int64(cfg.MaxInFlight),
		RateLimit:         ratelimit.Limits{Rate: cfg.RateLimit, Burst: cfg.RateBurst},
		MaxWait:           cfg.MaxWait,
	}, log, httpapi.Deps{
		Keys:      d.keys,
		Tokenizer: d.tok,
		Publisher: d.pub,
		// In-flight markers outlive the slowest request (publish, then the longest wait).
		Idempotency: idempotency.New(d.rdb, cfg.Redis.KeyPrefix, cfg.IdempotencyTTL, cfg.PublishTimeout+cfg.MaxWait+10*time.Second),
		Decisions:   store.New(d.pool),
		Now:         time.Now,
	})
	return api.Handler(health, openAPI)
}
