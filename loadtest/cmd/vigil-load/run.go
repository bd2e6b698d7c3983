package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/loadtest/harness"
)

type options struct {
	bin, url, results, docs, rate string
	external, findMax, idem       bool
	keep, baselines, pastSLO      bool
	duration, drain, slo, step    time.Duration
	warmup                        time.Duration
	timeout                       time.Duration
	count, keys, partitions       int
	baselineN, batch              int
	batchWait, profile            time.Duration
	customers, terminals          int
	simDays, skipDays             int
	seed                          uint64
	findStart, findFactor, findTo float64
	serviceEnv                    multi
	groups                        string
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

type violationsError struct{ n int }

func (v violationsError) Error() string {
	return fmt.Sprintf("%d correctness violation kind(s); see summary.md", v.n)
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("vigil-load run", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "var/bin", "directory with the ingest, feature-window, scoring and alerting binaries")
	fs.BoolVar(&o.external, "external", false, "target an already running stack (--url, VIGIL_LOAD_API_KEYS, VIGIL_POSTGRES_URL of its database, VIGIL_TOPIC_DECISIONS, --groups)")
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "ingest base URL with --external (loopback only)")
	fs.StringVar(&o.groups, "groups", "vigil-feature-window,vigil-scoring|vigil-decision-sink,vigil-alerting", "with --external: Kafka-committed groups | Postgres-offset sinks")
	fs.StringVar(&o.rate, "rate", "200", "arrival rate: tx/s for --duration, or stepped RATE@DUR,RATE@DUR,...")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "length of a constant-rate run")
	fs.DurationVar(&o.warmup, "warmup", 10*time.Second, "warm-up phase at the first rate (group joins, connections); checked but not reported as a headline (0: none)")
	fs.IntVar(&o.count, "count", 0, "send at most this many transactions per phase (0: as the plan says)")
	fs.IntVar(&o.keys, "keys", 4, "API keys (one source each) the load is spread over")
	fs.BoolVar(&o.idem, "idempotency", false, "send an Idempotency-Key with every request")
	fs.DurationVar(&o.profile, "profile", 0, "take CPU and allocation profiles of every service for this long in each phase (into <results>/pprof/; 0: off)")
	fs.IntVar(&o.batch, "batch", 1, "post arrivals in batches of this many to /v1/transactions:batch (1: one request per transaction)")
	fs.DurationVar(&o.batchWait, "batch-wait", 5*time.Millisecond, "with --batch: post a partial batch once its oldest arrival waited this long")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of the fresh topics")
	fs.DurationVar(&o.drain, "drain", 90*time.Second, "wait at most this long for the decisions after a phase")
	fs.DurationVar(&o.slo, "slo", 100*time.Millisecond, "p99 end-to-end objective (find-max stops above it)")
	fs.BoolVar(&o.findMax, "find-max", false, "step the rate until the SLO is missed or lag keeps growing")
	fs.BoolVar(&o.pastSLO, "find-past-slo", false, "keep stepping after the SLO is missed, until the pipeline stops keeping up (reports both rates)")
	fs.Float64Var(&o.findStart, "find-start", 250, "first find-max rate")
	fs.Float64Var(&o.findFactor, "find-factor", 1.5, "find-max rate multiplier per step")
	fs.Float64Var(&o.findTo, "find-limit", 12000, "highest find-max rate tried")
	fs.DurationVar(&o.step, "find-step", 15*time.Second, "length of each find-max step")
	fs.BoolVar(&o.baselines, "baselines", true, "measure the raw baselines in the same run")
	fs.IntVar(&o.baselineN, "baseline-n", 20000, "records of the throughput baselines")
	fs.IntVar(&o.customers, "sim-customers", 5000, "simulated customers")
	fs.IntVar(&o.terminals, "sim-terminals", 10000, "simulated terminals")
	fs.IntVar(&o.simDays, "sim-days", 0, "simulated days (0: as many as the run needs)")
	fs.IntVar(&o.skipDays, "sim-skip-days", 30, "simulated days left out at the start (compromise scenarios need time)")
	fs.Uint64Var(&o.seed, "seed", 1, "simulator seed")
	fs.StringVar(&o.results, "results", "loadtest/results", "results root; each run writes <root>/<timestamp>/")
	fs.StringVar(&o.docs, "docs", "", "also write the summary to this markdown file (docs/benchmarks.md)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's topics and database")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "stop the whole run after this long")
	fs.Var(&o.serviceEnv, "service-env", "KEY=VALUE added to every started service (repeatable): VIGIL_* (e.g. VIGIL_SCORING_MODEL_PATH=...), GOMAXPROCS, GOGC or GOMEMLIMIT")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if o.keys < 1 || o.keys > 64 {
		errs = append(errs, fmt.Errorf("--keys: %d is outside [1, 64]", o.keys))
	}
	if o.count < 0 {
		errs = append(errs, fmt.Errorf("--count: %d is negative", o.count))
	}
	if o.partitions < 1 || o.partitions > 256 {
		errs = append(errs, fmt.Errorf("--partitions: %d is outside [1, 256]", o.partitions))
	}
	if o.findMax && (o.findStart <= 0 || o.findFactor <= 1 || o.findTo < o.findStart) {
		errs = append(errs, errors.New("--find-start, --find-factor, --find-limit: need start > 0, factor > 1, limit >= start"))
	}
	if o.warmup < 0 {
		errs = append(errs, fmt.Errorf("--warmup: %s is negative", o.warmup))
	}
	if o.slo <= 0 || o.drain <= 0 || o.duration <= 0 || o.step <= 0 {
		errs = append(errs, errors.New("--slo, --drain, --duration, --find-step: must be positive"))
	}
	for _, kv := range o.serviceEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || !strings.HasPrefix(k, "VIGIL_") && !goRuntimeEnv[k] {
			errs = append(errs, fmt.Errorf("--service-env: %q is not VIGIL_NAME=VALUE (or GOMAXPROCS, GOGC, GOMEMLIMIT=VALUE)", kv))
		}
	}
	return o, errors.Join(errs...)
}

// goRuntimeEnv are the Go runtime's settings --service-env may tune besides VIGIL_*.
var goRuntimeEnv = map[string]bool{"GOMAXPROCS": true, "GOGC": true, "GOMEMLIMIT": true}

// plans lists the phases: one plan, or the find-max ladder.
func (o options) plans() ([]harness.Plan, error) {
	if !o.findMax {
		p, err := harness.ParsePlan("--rate", o.rate, o.duration)
		return []harness.Plan{p}, err
	}
	var out []harness.Plan
	for r := o.findStart; r <= o.findTo; r *= o.findFactor {
		out = append(out, harness.Plan{{Rate: math.Round(r), Duration: o.step}})
	}
	return out, nil
}

func needed(plans []harness.Plan, count int) int {
	n := 0
	for _, p := range plans {
		n += len(p.Arrivals(count))
	}
	return n
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	plans, err := o.plans()
	if err != nil {
		return err
	}
	infra, err := infraFromEnv()
	if err != nil {
		return err
	}
	started := time.Now()
	res := &harness.Results{Started: started, Mode: "run", Machine: harness.ReadMachine(), Settings: settings(o), SLOMS: float64(o.slo.Milliseconds())}
	if o.findMax {
		res.Mode = "find-max"
	}
	dir := filepath.Join(o.results, started.UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--results: %w", err)
	}

	var warm harness.Plan
	if o.warmup > 0 {
		warm = harness.Plan{{Rate: plans[0][0].Rate, Duration: o.warmup}}
	}
	need := needed(append([]harness.Plan{warm}, plans...), o.count)
	days := o.simDays
	if days == 0 {
		// The Handbook population makes about 1.9 transactions per customer a day.
		days = o.skipDays + int(math.Ceil(float64(need)/(1.7*float64(o.customers)))) + 1
	}
	t0 := time.Now()
	work, err := harness.NewWorkload(harness.WorkloadConfig{Customers: o.customers, Terminals: o.terminals, Days: days, SkipDays: o.skipDays, Seed: o.seed}, need, time.Now())
	if err != nil {
		return err
	}
	log.Info("simulated", "transactions", work.Len(), "days", days, "took", time.Since(t0).Round(time.Millisecond))

	runID := "L" + strconv.FormatInt(started.Unix()%1e8, 36)
	var stack *harness.Stack
	if o.external {
		if stack, err = externalStack(o, infra); err != nil {
			return err
		}
	} else {
		stack, err = harness.StartStack(ctx, infra, harness.StackConfig{
			BinDir: o.bin, Run: strings.ToLower("vl-" + runID), Partitions: o.partitions, Keys: o.keys, LogDir: dir, Keep: o.keep,
			Profile:  o.profile > 0,
			ExtraEnv: o.serviceEnv, MaxEventAge: work.Span() + 48*time.Hour,
		}, log)
		if err != nil {
			return err
		}
	}
	defer stack.Close()

	pool, err := pgxpool.New(ctx, stack.PostgresURL)
	if err != nil {
		return fmt.Errorf("VIGIL_POSTGRES_URL: %w", err)
	}
	defer pool.Close()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(infra.Brokers...))
	if err != nil {
		return err
	}
	defer kcl.Close()
	lag := harness.NewLagSampler(kadm.NewClient(kcl), pool, stack)
	lctx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() { lag.Run(lctx); close(lagDone) }()

	runner := &harness.Runner{
		Target: harness.Target{URL: stack.IngestURL, Keys: stack.Keys, Idempotency: o.idem, Client: harness.NewClient(),
			Batch: o.batch, BatchWait: o.batchWait},
		Work: work, Pool: pool, Lag: lag, RunID: runID, Log: log,
		FeatureTimes: func(ctx context.Context, prefix string) (map[string]time.Time, error) {
			return harness.FeatureTimes(ctx, infra.Brokers, stack.Topics.Features, prefix)
		},
	}
	serverErrors := 0
	var runErr error
	if warm != nil {
		p, err := runner.Phase(ctx, harness.PhaseConfig{Plan: warm, Count: o.count, Drain: o.drain, SLO: o.slo, Warmup: true})
		if err != nil {
			runErr = err
			plans = nil
		} else {
			serverErrors += p.ServerErrors()
		}
	}
	for i, plan := range plans {
		profiled := make(chan struct{})
		if o.profile > 0 && stack.DebugAddrs != nil {
			// CPU and allocation profiles of every service under this phase's load, taken
			// after a short ramp; bounded by the phase's length.
			pdir := filepath.Join(dir, "pprof", fmt.Sprintf("%d-%.0ftxs", i+1, plan[len(plan)-1].Rate))
			d := min(o.profile, plan.Duration()-3*time.Second)
			go func() {
				defer close(profiled)
				select {
				case <-ctx.Done():
					return
				case <-time.After(2 * time.Second):
				}
				if err := harness.Profile(ctx, stack.DebugAddrs, max(d, time.Second), pdir); err != nil {
					log.Warn("profiles not taken", "err", err)
				}
			}()
		} else {
			close(profiled)
		}
		p, err := runner.Phase(ctx, harness.PhaseConfig{Plan: plan, Count: o.count, Drain: o.drain, SLO: o.slo, MaxLateFrac: 0.01})
		<-profiled
		if err != nil {
			runErr = err
			break
		}
		serverErrors += p.ServerErrors()
		if o.findMax {
			if p.Sustainable {
				res.MaxSustainable = max(res.MaxSustainable, p.OfferedRate)
			}
			if p.KeepsUp {
				res.MaxKeepingUp = max(res.MaxKeepingUp, p.OfferedRate)
			}
			if !p.KeepsUp || (!p.Sustainable && !o.pastSLO) {
				break
			}
		}
	}
	harness.WaitAlerting(ctx, pool, stack, 30*time.Second)
	stopLag()
	<-lagDone
	res.Phases = runner.Phases()
	res.Lag = lag.Samples()
	if len(res.Phases) > 0 {
		if res.Violations, res.Quality, res.AlertQuality, err = runner.CheckAll(ctx, serverErrors); err != nil && runErr == nil {
			runErr = err
		}
	}

	if o.baselines && ctx.Err() == nil {
		// The paced raw baseline runs at the rate of the phase the headline quotes.
		rate := plans[0][0].Rate
		if best := res.Best(); best != nil {
			rate = best.OfferedRate
		}
		res.Baselines = baselines(ctx, o, infra, stack, work, rate, runID, log)
	}
	res.Machine.LoadEnd = harness.LoadAvg()
	res.Headlines()
	if err := res.Write(dir); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if o.docs != "" {
		doc := docHeader + res.Markdown()
		if err := os.MkdirAll(filepath.Dir(o.docs), 0o755); err != nil {
			return fmt.Errorf("--docs: %w", err)
		}
		if err := os.WriteFile(o.docs, []byte(doc), 0o644); err != nil {
			return fmt.Errorf("--docs: %w", err)
		}
	}
	fmt.Println(res.Markdown())
	fmt.Printf("results in %s\n", dir)
	if runErr != nil {
		return runErr
	}
	if len(res.Violations) > 0 {
		return violationsError{len(res.Violations)}
	}
	return nil
}

const docHeader = `# Benchmarks

Written by ` + "`vigil-load run --docs docs/benchmarks.md`" + ` (` + "`make bench-full`" + `); the numbers below are from the latest
such run, on the machine it names. Everything (Kafka, Redis, Postgres, the four services and the
load generator) shares one small machine, so absolute numbers move from run to run: read the
ratios to the raw baselines, which are measured in the same run with the same message size.

How it measures (loadtest/harness): open-loop arrivals scheduled by the clock (a slow pipeline
receives the same arrivals as a fast one) from the Handbook simulator's transactions, spread over
several API keys; ack latency from each intended send time to the HTTP answer; end-to-end latency
from ingest's receipt (decisions.received_at) to the decision row (decisions.persisted_at), split
at feature-window's features.v1 record (its create time) and scoring's decision (decided_at) into
receipt→features (ingest's publish, feature-window's fetch and transform), features→decision
(feature-window's commit, scoring's fetch and transform) and decision→row (scoring's commit, the
sink's fetch); consumer lag every second (Kafka-committed groups through kadm, Postgres-offset sinks through kafka_offsets);
detection quality against the simulator's fraud flag; and a checker (exactly one decision per
acknowledged transaction, none without one, at most one alert per decision, no 5xx) whose failure
makes the run exit non-zero. Results, plots and service logs land in loadtest/results/<timestamp>/.

`

func settings(o options) map[string]any {
	return map[string]any{"rate": o.rate, "duration": o.duration.String(), "count": o.count, "keys": o.keys, "idempotency": o.idem,
		"batch": o.batch, "batch_wait": o.batchWait.String(),
		"partitions": o.partitions, "external": o.external, "find_max": o.findMax, "slo": o.slo.String(),
		"find":        fmt.Sprintf("%g×%g..%g, %s each", o.findStart, o.findFactor, o.findTo, o.step),
		"sim":         fmt.Sprintf("%d customers, %d terminals, seed %d, skip %d days", o.customers, o.terminals, o.seed, o.skipDays),
		"service_env": []string(o.serviceEnv)}
}

func infraFromEnv() (harness.Infra, error) {
	in := harness.Infra{Brokers: strings.Split(os.Getenv("VIGIL_KAFKA_BROKERS"), ","), RedisAddr: os.Getenv("VIGIL_REDIS_ADDR"), PostgresURL: os.Getenv("VIGIL_POSTGRES_URL")}
	var errs []error
	for name, v := range map[string]string{"VIGIL_KAFKA_BROKERS": in.Brokers[0], "VIGIL_REDIS_ADDR": in.RedisAddr, "VIGIL_POSTGRES_URL": in.PostgresURL} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: is required (eval \"$(deploy/local/infra.sh env)\")", name))
		}
	}
	return in, errors.Join(errs...)
}

func externalStack(o options, in harness.Infra) (*harness.Stack, error) {
	s := &harness.Stack{IngestURL: strings.TrimRight(o.url, "/"), PostgresURL: in.PostgresURL}
	s.Topics.Decisions = os.Getenv("VIGIL_TOPIC_DECISIONS")
	if s.Topics.Decisions == "" {
		s.Topics.Decisions = "decisions.v1"
	}
	eos, pg, _ := strings.Cut(o.groups, "|")
	s.EOSGroups, s.PGConsumers = splitList(eos), splitList(pg)
	keys := os.Getenv("VIGIL_LOAD_API_KEYS")
	for _, kv := range splitList(keys) {
		src, key, ok := strings.Cut(kv, ":")
		if !ok || src == "" || key == "" {
			return nil, errors.New("VIGIL_LOAD_API_KEYS: entries must be source:key")
		}
		s.Keys = append(s.Keys, harness.APIKey{Source: src, Key: key})
	}
	if len(s.Keys) == 0 {
		return nil, errors.New("VIGIL_LOAD_API_KEYS: is required with --external (source:key,...)")
	}
	return s, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// baselines measures the raw building blocks after the load, on the same infrastructure.
func baselines(ctx context.Context, o options, in harness.Infra, s *harness.Stack, w *harness.Workload, rate float64, runID string, log *slog.Logger) harness.Baselines {
	b := harness.Baselines{MessageBytes: harness.TxMessageSize(w)}
	fail := func(what string, err error) { b.Errors = append(b.Errors, what+": "+err.Error()) }
	name := strings.ToLower("vl-" + runID + "-base")
	b.ProduceConsumeRateAt = rate
	n := int(math.Min(rate*5, 10000))
	if _, h, err := harness.ProduceConsume(ctx, in.Brokers, name+".paced", o.partitions, n, b.MessageBytes, rate); err != nil {
		fail("raw produce→consume paced", err)
	} else {
		b.ProduceConsumeLat = h.Summary()
	}
	if r, _, err := harness.ProduceConsume(ctx, in.Brokers, name+".max", o.partitions, o.baselineN, b.MessageBytes, 0); err != nil {
		fail("raw produce→consume", err)
	} else {
		b.ProduceConsumeRate = r
	}
	if r, err := harness.EOSRelay(ctx, in.Brokers, name, o.partitions, o.baselineN, b.MessageBytes); err != nil {
		fail("raw EOS relay", err)
	} else {
		b.EOSRelayRate = r
	}
	if r, err := harness.RedisPipelined(ctx, in.RedisAddr, name+":", b.MessageBytes, 3*time.Second); err != nil {
		fail("redis pipelined", err)
	} else {
		b.RedisPipelinedOps = r
	}
	if r, err := harness.PostgresCopy(ctx, s.PostgresURL, o.baselineN); err != nil {
		fail("postgres copy", err)
	} else {
		b.PostgresCopyRows = r
	}
	log.Info("baselines", "produce_consume_rec_s", b.ProduceConsumeRate, "eos_relay_rec_s", b.EOSRelayRate,
		"redis_ops_s", b.RedisPipelinedOps, "pg_copy_rows_s", b.PostgresCopyRows, "errors", len(b.Errors))
	return b
}
