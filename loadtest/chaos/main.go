// Command chaos is the whole-system fault-injection run: it starts a private broker, Redis and
// Postgres and the four services, drives steady load through ingest while killing, freezing
// and restarting services and infrastructure on a seeded schedule, then checks the pipeline's
// guarantees (exactly once, order, feature equality, client answers) and scans every store,
// log and exported span for the card numbers it sent.
//
//	go run ./chaos --duration 3m --rate 40 --faults all=1 --out results/chaos
//
// Exit status 1 when an invariant is violated, a card number is found or a fault failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rep, err := run(ctx, os.Args[1:], log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if rep.Failed {
		os.Exit(1)
	}
}

// defaultFaults is the full run: at least 20 SIGKILLs of each service.
const defaultFaults = "kill-ingest=20,kill-feature-window=20,kill-scoring=20,kill-alerting=20," +
	"kill-broker=4,kill-redis=4,restart-postgres=4,rebalance-feature-window=3,rebalance-scoring=3," +
	"zombie-feature-window=1,zombie-scoring=1,flush-redis=2"

func run(ctx context.Context, args []string, log *slog.Logger) (*Report, error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	var o Options
	var faults, varDir string
	fs.DurationVar(&o.Duration, "duration", 12*time.Minute, "steady load with faults")
	fs.Float64Var(&o.Rate, "rate", 50, "transactions per second (open loop)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the workload and the fault schedule")
	fs.StringVar(&faults, "faults", defaultFaults, "faults as kind[=count],... or all[=count]; kinds: "+fmt.Sprint(faultKinds))
	fs.StringVar(&o.Out, "out", "", "directory for the report, logs and spans (default results/chaos-<time>)")
	fs.StringVar(&o.Bin, "bin", "", "directory with prebuilt service binaries (default: build them into <var-dir>/services)")
	fs.StringVar(&varDir, "var-dir", "", "VIGIL_VAR_DIR of the private infrastructure (default <repo>/var/chaos)")
	fs.IntVar(&o.Infra.KafkaPort, "kafka-port", 29092, "private Kafka port")
	fs.IntVar(&o.Infra.ControllerPort, "kafka-controller-port", 29093, "private Kafka controller port")
	fs.IntVar(&o.Infra.RedisPort, "redis-port", 56390, "private Redis port")
	fs.IntVar(&o.Infra.PGPort, "pg-port", 55440, "private Postgres port")
	fs.BoolVar(&o.Fresh, "fresh", true, "delete the private infrastructure's data before the run")
	fs.BoolVar(&o.KeepInfra, "keep-infra", false, "leave the private infrastructure running afterwards")
	fs.IntVar(&o.Partitions, "partitions", 3, "partitions per topic")
	fs.IntVar(&o.Customers, "customers", 500, "simulated customers (fewer: more transactions per account)")
	fs.DurationVar(&o.Drain, "drain", 4*time.Minute, "time the pipeline gets to catch up after the load")
	fs.DurationVar(&o.ZombieFreeze, "zombie-freeze", 62*time.Second, "how long a zombie stays frozen at least (past the 60 s transaction timeout; then until the broker aborted its transaction)")
	fs.DurationVar(&o.Labels, "label-every", 3*time.Second, "an analyst labels one open case this often (0: never)")
	fs.Func("service-env", "KEY=VALUE added to every service's environment (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.ServiceEnv = append(o.ServiceEnv, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if o.Faults, err = ParseFaults(faults); err != nil {
		return nil, err
	}
	if o.Rate <= 0 || o.Duration <= 0 {
		return nil, fmt.Errorf("--rate and --duration must be positive")
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if o.Out == "" {
		o.Out = filepath.Join(root, "loadtest", "results", "chaos-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if o.Out, err = filepath.Abs(o.Out); err != nil {
		return nil, err
	}
	if varDir == "" {
		varDir = filepath.Join(root, "var", "chaos")
	}
	o.Infra.VarDir = varDir
	return Run(ctx, o, log, os.Stdout)
}
