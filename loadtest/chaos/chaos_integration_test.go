// TestChaosShort runs in `make test`. It was out of it for a while: in one of several CI runs
// the pipeline stopped after a broker kill — Kafka had skipped a transaction's markers while
// restarting (see libs/kafka/hanging.go); the services' transaction guards now close such
// transactions, and the report counts them.

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/testinfra"
)

// TestChaosShort is the CI-sized chaos run: one fault of every kind (each service killed,
// broker, Redis and Postgres restarted, a rebalance and a fenced zombie per stream service)
// under steady load, then every invariant and the card-number scan. It starts its own broker,
// Redis and Postgres on free ports (never the shared ones, which it would otherwise kill),
// so it needs Java, redis-server and the PostgreSQL server binaries; without them infra.sh
// fails and so does the test. `make chaos` is the long run.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts its own broker, Redis and Postgres; -short given")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if a := os.Getenv("VIGIL_TEST_ARTIFACTS"); a != "" {
		// Logs, spans and report.json stay for whoever reads a failure.
		out = filepath.Join(a, "chaos-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	faults, err := ParseFaults("all=1")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Duration: 90 * time.Second, Rate: 25, Seed: 11, Faults: faults, Out: out,
		Infra: PrivateInfra{VarDir: filepath.Join(root, "var", "chaos-test"),
			KafkaPort: testinfra.FreeTCPPort(t), ControllerPort: testinfra.FreeTCPPort(t), RedisPort: testinfra.FreeTCPPort(t), PGPort: testinfra.FreeTCPPort(t)},
		Fresh: true, Partitions: 3, Customers: 300, Drain: 2 * time.Minute,
		ZombieFreeze: 62 * time.Second, Labels: 2 * time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var report bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	start := time.Now()
	rep, err := Run(ctx, o, log, &report)
	t.Logf("chaos run in %s (output in %s)\n%s", time.Since(start).Round(time.Second), out, report.String())
	if err != nil {
		t.Fatal(err)
	}
	for k := range faults { // every kind "all" asked for
		n := 0
		for _, f := range rep.Faults {
			if f.Kind == k {
				n++
				if f.Err != "" {
					t.Errorf("fault %s failed: %s", k, f.Err)
				}
			}
		}
		if n != 1 {
			t.Errorf("fault %s injected %d times, want 1", k, n)
		}
	}
	for _, inv := range rep.Invariants {
		if !inv.OK() {
			t.Errorf("invariant %d (%s) violated: %v", inv.ID, inv.Name, inv.Violations)
		}
	}
	for _, s := range rep.Scan {
		if s.Hits > 0 {
			t.Errorf("card numbers found in %s: %d (%v)", s.Where, s.Hits, s.Samples)
		}
	}
	if c := rep.Traffic; c.Acked < c.Sent*9/10 {
		t.Errorf("only %d of %d transactions acknowledged", c.Acked, c.Sent)
	}
	if rep.Failed && !t.Failed() {
		t.Error("the run failed")
	}
}
