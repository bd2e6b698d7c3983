package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
)

// Infra is where the shared broker, Redis and Postgres are (from deploy/local/infra.sh env).
type Infra struct {
	Brokers     []string
	RedisAddr   string
	PostgresURL string // admin URL: the run creates its own database next to it
}

// Stack names what the pipeline under test uses, whether the harness started it or not.
type Stack struct {
	IngestURL   string
	PostgresURL string
	Topics      kafka.Topics
	EOSGroups   []string // consumer groups committing to Kafka (feature-window, scoring)
	PGConsumers []string // sinks keeping offsets in Postgres' kafka_offsets (decision sink, alerting)
	Keys        []APIKey
	RedisPrefix string
	// DebugAddrs holds each service's loopback pprof address when StackConfig.Profile is set.
	DebugAddrs map[string]string
	stop       []func()
}

// Close stops the services (SIGTERM, reverse start order) and removes topics and database.
func (s *Stack) Close() {
	for i := len(s.stop) - 1; i >= 0; i-- {
		s.stop[i]()
	}
	s.stop = nil
}

// ServiceGOMAXPROCS is each service's GOMAXPROCS when the four share cpus with the broker,
// Redis, Postgres and the load generator: a quarter of them, at least 1. With Go's default
// (every cpu each) the 2-cpu box ran about 15 runnable threads for its 2 cpus at 1,000 tx/s,
// and each hop's p99 was 3-6 times its p50; with 1 each the median end-to-end p99 of
// alternating runs went from 156 to 99 ms at the same load and CPU (docs/tuning.md).
func ServiceGOMAXPROCS(cpus int) int { return max(1, cpus/4) }

// StackConfig sets up a fresh pipeline.
type StackConfig struct {
	BinDir      string
	Run         string // unique run name: prefix of topics, groups, Redis keys and the database
	Partitions  int
	Keys        int    // bootstrap API keys (one source each)
	LogDir      string // services' logs
	Keep        bool   // keep topics and database after Close (for inspection)
	ExtraEnv    []string
	MaxEventAge time.Duration
	Profile     bool // serve each service's /debug/pprof on a loopback port (Stack.DebugAddrs)
	// Launch, when set, starts each service instead of the built-in launcher (which runs the
	// binary once and stops it with SIGTERM): the chaos harness supervises, kills and restarts
	// the processes itself. It must return once the service is ready; stop ends it for good.
	Launch Launcher
}

// Launcher starts service name from binary bin, serving on addr, with env (the whole
// environment: nothing else is inherited), and returns once it is ready.
type Launcher func(ctx context.Context, name, bin, addr string, env []string) (stop func(), err error)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StartStack creates fresh topics, a fresh migrated database and a Redis key prefix, starts
// ingest, feature-window, scoring and alerting from cfg.BinDir and waits until each is ready.
func StartStack(ctx context.Context, in Infra, cfg StackConfig, log *slog.Logger) (*Stack, error) {
	s := &Stack{RedisPrefix: cfg.Run + ":"}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	s.Topics = kafka.Topics{Tx: cfg.Run + ".tx.v1", Features: cfg.Run + ".features.v1", Decisions: cfg.Run + ".decisions.v1", Labels: cfg.Run + ".labels.v1"}
	admin, err := kgo.NewClient(kgo.SeedBrokers(in.Brokers...))
	if err != nil {
		return nil, err
	}
	if err := kafka.EnsureTopics(ctx, admin, cfg.Partitions, s.Topics.All()...); err != nil {
		admin.Close()
		return nil, err
	}
	s.stop = append(s.stop, func() {
		defer admin.Close()
		if cfg.Keep {
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(admin).DeleteTopics(dctx, s.Topics.All()...)
	})
	// Every run writes windows and checkpoints under its own Redis prefix; left behind they
	// pile up (~35k keys per 1,000 tx/s minute) and slow down every SCAN on the shared Redis.
	// Runs after the services stopped (stop runs in reverse order).
	s.stop = append(s.stop, func() {
		if cfg.Keep {
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if n, err := DeleteRedisPrefix(dctx, in.RedisAddr, s.RedisPrefix); err != nil {
			log.Warn("could not delete the run's Redis keys", "prefix", s.RedisPrefix, "deleted", n, "err", err)
		}
	})
	dbName := strings.ReplaceAll(cfg.Run, "-", "_")
	dbURL, drop, err := FreshDatabase(ctx, in.PostgresURL, dbName)
	if err != nil {
		return nil, err
	}
	s.PostgresURL = dbURL
	s.stop = append(s.stop, func() {
		if !cfg.Keep {
			drop()
		}
	})

	var keyList []string
	for i := range cfg.Keys {
		k := APIKey{Source: fmt.Sprintf("load%d", i), Key: "sk_load_" + randomHex(16)}
		s.Keys = append(s.Keys, k)
		keyList = append(keyList, k.Source+":"+k.Key)
	}
	fw, sc, sink, al := cfg.Run+"-fw", cfg.Run+"-sc", cfg.Run+"-sink", cfg.Run+"-al"
	s.EOSGroups, s.PGConsumers = []string{fw, sc}, []string{sink, al}
	common := []string{
		"VIGIL_KAFKA_BROKERS=" + strings.Join(in.Brokers, ","),
		"VIGIL_TOPIC_TX=" + s.Topics.Tx, "VIGIL_TOPIC_FEATURES=" + s.Topics.Features,
		"VIGIL_TOPIC_DECISIONS=" + s.Topics.Decisions, "VIGIL_TOPIC_LABELS=" + s.Topics.Labels,
		"VIGIL_POSTGRES_URL=" + dbURL, "VIGIL_REDIS_ADDR=" + in.RedisAddr, "VIGIL_REDIS_KEY_PREFIX=" + s.RedisPrefix,
		"VIGIL_LOG_LEVEL=warn",
		// ExtraEnv, after it, may override it.
		"GOMAXPROCS=" + strconv.Itoa(ServiceGOMAXPROCS(runtime.NumCPU())),
	}
	addr := map[string]string{}
	for _, n := range []string{"ingest", "feature-window", "scoring", "alerting"} {
		if addr[n], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	if cfg.Profile {
		s.DebugAddrs = map[string]string{}
		for _, n := range []string{"ingest", "feature-window", "scoring", "alerting"} {
			if s.DebugAddrs[n], err = freeAddr(); err != nil {
				return nil, err
			}
			// Each service reads only its own VIGIL_<SERVICE>_DEBUG_ADDR.
			common = append(common, "VIGIL_"+strings.ToUpper(strings.ReplaceAll(n, "-", "_"))+"_DEBUG_ADDR="+s.DebugAddrs[n])
		}
	}
	maxAge := cfg.MaxEventAge
	if maxAge <= 0 {
		maxAge = 720 * time.Hour
	}
	specs := []struct {
		name string
		env  []string
	}{
		{"feature-window", []string{"VIGIL_FEATURE_WINDOW_ADDR=" + addr["feature-window"], "VIGIL_FEATURE_WINDOW_GROUP=" + fw,
			"VIGIL_FEATURE_WINDOW_TRANSACTIONAL_ID=" + fw + "-0"}},
		{"scoring", []string{"VIGIL_SCORING_ADDR=" + addr["scoring"], "VIGIL_SCORING_GROUP=" + sc,
			"VIGIL_SCORING_TRANSACTIONAL_ID=" + sc + "-0", "VIGIL_SCORING_SINK_GROUP=" + sink}},
		{"alerting", []string{"VIGIL_ALERTING_ADDR=" + addr["alerting"], "VIGIL_ALERTING_GROUP=" + al,
			"VIGIL_ALERTING_API_TOKEN=" + randomHex(16)}},
		{"ingest", []string{"VIGIL_INGEST_ADDR=" + addr["ingest"], "VIGIL_INGEST_API_KEYS=" + strings.Join(keyList, ","),
			"VIGIL_INGEST_CARD_HMAC_KEY=" + randomHex(32),
			// The harness measures the pipeline, not the per-key limiter.
			"VIGIL_INGEST_RATE_LIMIT=0", "VIGIL_INGEST_MAX_IN_FLIGHT=20000",
			"VIGIL_INGEST_MAX_EVENT_AGE=" + maxAge.String()}},
	}
	for _, sp := range specs {
		env := append(append(append([]string(nil), common...), sp.env...), cfg.ExtraEnv...)
		launch := cfg.Launch
		if launch == nil {
			launch = func(ctx context.Context, name, bin, addr string, env []string) (func(), error) {
				return startService(ctx, bin, name, addr, env, cfg.LogDir, log)
			}
		}
		stop, err := launch(ctx, sp.name, filepath.Join(cfg.BinDir, sp.name), addr[sp.name], env)
		if err != nil {
			return nil, err
		}
		s.stop = append(s.stop, stop)
	}
	s.IngestURL = "http://" + addr["ingest"]
	ok = true
	return s, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startService runs one binary with env (the parent's environment is not inherited beyond
// PATH and HOME, so a stray VIGIL_* of the caller cannot change the run) and waits for /readyz.
func startService(ctx context.Context, bin, name, addr string, env []string, logDir string, log *slog.Logger) (func(), error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("--bin: %s: %w (run `make build`)", bin, err)
	}
	out := io.Discard
	var f *os.File
	if logDir != "" {
		var err error
		if f, err = os.Create(filepath.Join(logDir, name+".log")); err != nil {
			return nil, err
		}
		out = f
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if waitErr != nil {
				log.Warn("service exited uncleanly", "service", name, "err", waitErr)
			}
		case <-time.After(30 * time.Second):
			log.Warn("service did not stop within 30s; killing", "service", name)
			_ = cmd.Process.Kill()
			<-exited
		}
		if f != nil {
			f.Close()
		}
	}
	switch err := httpserver.WaitReady(ctx, addr, 60*time.Second, exited); {
	case err == nil:
		log.Info("service ready", "service", name, "addr", addr, "pid", cmd.Process.Pid)
		return stop, nil
	case errors.Is(err, httpserver.ErrExited):
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("%s exited during start-up (%v); see %s.log", name, waitErr, name)
	default:
		stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
}

// FreshDatabase creates and migrates a database named name, so a run never touches shared
// tables, and returns its URL and a function that drops it.
func FreshDatabase(ctx context.Context, adminURL, name string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect postgres: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		admin.Close(ctx)
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = admin.Exec(dctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		admin.Close(dctx)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		drop()
		return "", nil, errors.New("VIGIL_POSTGRES_URL is not a URL")
	}
	u.Path = "/" + name
	pool, err := postgres.Open(ctx, postgres.Config{URL: u.String(), MaxConns: 2})
	if err != nil {
		drop()
		return "", nil, err
	}
	_, err = postgres.Migrate(ctx, pool, slog.New(slog.DiscardHandler))
	pool.Close()
	if err != nil {
		drop()
		return "", nil, err
	}
	return u.String(), drop, nil
}
