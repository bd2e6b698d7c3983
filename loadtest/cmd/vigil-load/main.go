// Command vigil-load is Vigil's load test and benchmark harness: it starts the four services
// on fresh topics, database and Redis prefix (or targets a running stack with --external),
// drives open-loop load from the Handbook simulator, measures ack and end-to-end latency,
// throughput and consumer lag, detection quality against the simulator's truth, raw baselines
// in the same run, and checks exactly-once correctness. It exits non-zero on any violation.
//
//	eval "$(deploy/local/infra.sh env)"
//	vigil-load run --bin var/bin --rate 500 --duration 30s
//	vigil-load run --bin var/bin --find-max --slo 100ms
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: vigil-load run [flags]   (vigil-load run -h lists them)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if len(os.Args) < 2 || os.Args[1] != "run" {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	err := run(ctx, os.Args[2:], log)
	var v violationsError
	switch {
	case errors.As(err, &v):
		fmt.Fprintln(os.Stderr, "vigil-load:", err)
		os.Exit(3)
	case err != nil:
		fmt.Fprintln(os.Stderr, "vigil-load:", err)
		os.Exit(1)
	}
}
