// Command vigilctl is the operator's tool: wait for Kafka, create topics, migrate Postgres.
// Each is an idempotent step of `make infra-up`, `make demo`, a Kubernetes Job or a CI run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/config"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
)

const usage = `usage: vigilctl <command> [flags]

commands:
  kafka-ready   wait until the broker answers a metadata request listing itself
  topics        create the pipeline topics (and their .dlq) that do not exist yet
  migrate       apply pending Postgres migrations

Kafka, topic and Postgres settings come from VIGIL_KAFKA_*, VIGIL_TOPIC_* and VIGIL_POSTGRES_URL.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], os.Stderr, log); err != nil {
		fmt.Fprintln(os.Stderr, "vigilctl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer, log *slog.Logger) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch cmd {
	case "kafka-ready":
		brokers := fs.String("brokers", "", "comma-separated brokers (default VIGIL_KAFKA_BROKERS)")
		timeout := fs.Duration("timeout", 60*time.Second, "how long to wait")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		kc, err := kafkaConfig()
		if err != nil {
			return err
		}
		if *brokers != "" {
			kc.Brokers = strings.Split(*brokers, ",")
		}
		wctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		if err := kafka.WaitReady(wctx, kc.Brokers); err != nil {
			return err
		}
		log.Info("kafka ready", "brokers", kc.Brokers)
		return nil
	case "topics":
		if err := fs.Parse(rest); err != nil {
			return err
		}
		kc, err := kafkaConfig()
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...))
		if err != nil {
			return fmt.Errorf("kafka client: %w", err)
		}
		defer cl.Close()
		tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := kafka.EnsureTopics(tctx, cl, kc.Partitions, kc.Topics.All()...); err != nil {
			return err
		}
		log.Info("topics ready", "topics", kc.Topics.All(), "partitions", kc.Partitions)
		return nil
	case "migrate":
		if err := fs.Parse(rest); err != nil {
			return err
		}
		e := config.FromOS()
		pc := postgres.LoadConfig(e)
		if err := e.Err(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		pool, err := postgres.Open(ctx, pc)
		if err != nil {
			return err
		}
		defer pool.Close()
		n, err := postgres.Migrate(ctx, pool, log)
		if err != nil {
			return err
		}
		log.Info("migrations done", "applied", n)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func kafkaConfig() (kafka.Config, error) {
	e := config.FromOS()
	kc := kafka.LoadConfig(e)
	if err := e.Err(); err != nil {
		return kc, fmt.Errorf("config: %w", err)
	}
	return kc, nil
}
