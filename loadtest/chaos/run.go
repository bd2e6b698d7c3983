package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-fraud/vigil/loadtest/harness"
)

// Options configure one chaos run.
type Options struct {
	Duration     time.Duration // steady load with faults
	Rate         float64
	Seed         uint64
	Faults       map[string]int
	Out          string // report, logs, spans, binaries
	Bin          string // service binaries; empty: built from the repository into Out/bin
	Infra        PrivateInfra
	Fresh        bool // delete the private infrastructure's data first
	KeepInfra    bool // leave it running afterwards
	Partitions   int
	Customers    int
	Drain        time.Duration // after the load, how long the pipeline gets to catch up
	ZombieFreeze time.Duration
	Labels       time.Duration // an analyst labels a case this often (0: never)
	ServiceEnv   []string      // KEY=VALUE added to every service environment (last wins)
}

// Report is the outcome of a run, also written to Out/report.json.
type Report struct {
	Started    time.Time           `json:"started"`
	Seconds    map[string]float64  `json:"seconds"`
	Options    map[string]string   `json:"options"`
	Traffic    Counts              `json:"traffic"`
	ByStatus   map[string]int      `json:"by_status"`
	Samples    map[string][]string `json:"error_samples,omitempty"`
	Faults     []Injected          `json:"faults"`
	FaultCount map[string]int      `json:"faults_per_kind"`
	Unplanned  map[string][]string `json:"unplanned_exits,omitempty"`
	Invariants []*Invariant        `json:"invariants"`
	Scan       []ScanResult        `json:"card_number_scan"`
	Labels     []LabelResult       `json:"label_changes"`
	// Hanging counts, per service log, the guard's lines about transactions Kafka left open
	// on a partition: closed with the coordinator's outcome, or unresolved.
	Hanging map[string]int `json:"hanging_transactions,omitempty"`
	Failed  bool           `json:"failed"`
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.work above %s", dir)
		}
	}
}

var services = []string{"ingest", "feature-window", "scoring", "alerting"}

// buildServices builds the four services from the working tree into dir, in one go build
// (links run in parallel); go build leaves an up-to-date binary alone, so a kept dir costs
// next to nothing on the next run.
func buildServices(ctx context.Context, root, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, s := range services {
		args = append(args, "./services/"+s)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build the services: %w\n%s", err, out)
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// helperEnv is the environment of a second instance: its own address, transactional id and
// static member id, the rest as the primary's.
var helperVars = map[string][3]string{
	"feature-window": {"VIGIL_FEATURE_WINDOW_ADDR", "VIGIL_FEATURE_WINDOW_TRANSACTIONAL_ID", "VIGIL_FEATURE_WINDOW_INSTANCE_ID"},
	"scoring":        {"VIGIL_SCORING_ADDR", "VIGIL_SCORING_TRANSACTIONAL_ID", "VIGIL_SCORING_GROUP_INSTANCE_ID"},
}

// Run starts the private infrastructure and the services, drives load while injecting the
// faults, lets the pipeline drain, then checks the invariants and scans for card numbers.
func Run(ctx context.Context, o Options, log *slog.Logger, w io.Writer) (*Report, error) {
	rep := &Report{Started: time.Now().UTC(), Seconds: map[string]float64{}, FaultCount: map[string]int{}, Unplanned: map[string][]string{}}
	phase := func(name string, t0 time.Time) { rep.Seconds[name] = math.Round(time.Since(t0).Seconds()*10) / 10 }
	tAll := time.Now()
	if err := o.Infra.Validate(); err != nil {
		return nil, err
	}
	logDir := filepath.Join(o.Out, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if o.Infra.Script == "" {
		o.Infra.Script = filepath.Join(root, "deploy", "local", "infra.sh")
	}

	t0 := time.Now()
	if o.Bin == "" {
		o.Bin = filepath.Join(o.Infra.VarDir, "services")
		if err := buildServices(ctx, root, o.Bin); err != nil {
			return nil, err
		}
	}
	phase("build", t0)

	t0 = time.Now()
	if o.Fresh {
		if err := o.Infra.Reset(ctx); err != nil {
			return nil, err
		}
	}
	if err := o.Infra.Up(ctx); err != nil {
		return nil, err
	}
	if !o.KeepInfra {
		defer func() {
			if err := o.Infra.Down(context.WithoutCancel(ctx)); err != nil {
				log.Warn("stopping the private infrastructure", "err", err)
			}
		}()
	}
	phase("infra_up", t0)

	t0 = time.Now()
	arrivals := int(o.Rate*o.Duration.Seconds()) + 1
	days := 30 + int(math.Ceil(float64(arrivals)/(1.7*float64(o.Customers)))) + 1
	work, err := harness.NewWorkload(harness.WorkloadConfig{Customers: o.Customers, Terminals: 2 * o.Customers, Days: days, SkipDays: 30, Seed: o.Seed}, arrivals, time.Now())
	if err != nil {
		return nil, err
	}
	phase("workload", t0)

	spans, err := StartSpanSink(filepath.Join(o.Out, "spans.otlp"))
	if err != nil {
		return nil, err
	}
	defer spans.Close()

	runID := "ch" + strconv.FormatInt(time.Now().Unix()%1e8, 36)
	var mu sync.Mutex
	procs := map[string]*Proc{}
	var alertingEnv []string
	launch := func(ctx context.Context, name, bin, addr string, env []string) (func(), error) {
		p, err := StartProc(ctx, name, bin, addr, env, logDir, log)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		procs[name] = p
		if name == "alerting" {
			alertingEnv = env
		}
		mu.Unlock()
		return p.Stop, nil
	}
	t0 = time.Now()
	infra := o.Infra.Infra()
	stack, err := harness.StartStack(ctx, infra, harness.StackConfig{
		BinDir: o.Bin, Run: runID, Partitions: o.Partitions, Keys: 2, LogDir: logDir, Keep: true,
		MaxEventAge: work.Span() + 48*time.Hour, Launch: launch,
		ExtraEnv: append([]string{
			"VIGIL_LOG_LEVEL=info",
			// Static membership: a killed and restarted instance takes its partitions back at
			// once; the session timeout only matters for the frozen zombie.
			"VIGIL_FEATURE_WINDOW_INSTANCE_ID=" + runID + "-fw-a", "VIGIL_FEATURE_WINDOW_SESSION_TIMEOUT=10s",
			"VIGIL_SCORING_GROUP_INSTANCE_ID=" + runID + "-sc-a", "VIGIL_SCORING_SESSION_TIMEOUT=10s",
			// Transactions span polls for 100 ms: the multi-poll path is crashed too, and a
			// stream service is inside an open transaction most of the time, where the zombie
			// fault must freeze it (one transaction per poll lasts a few ms at this rate).
			"VIGIL_FEATURE_WINDOW_COMMIT_INTERVAL=100ms", "VIGIL_SCORING_COMMIT_INTERVAL=100ms",
			"OTEL_EXPORTER_OTLP_ENDPOINT=" + spans.URL, "OTEL_BSP_SCHEDULE_DELAY=500",
			// Transactions over 100 EUR go to review: enough alerts and cases for the analyst.
			"VIGIL_SCORING_REVIEW_AMOUNT_MINOR=10000",
		}, o.ServiceEnv...),
	}, log)
	if err != nil {
		return nil, err
	}
	stopped := false
	stopStack := func() {
		if !stopped {
			stopped = true
			stack.Close()
		}
	}
	defer stopStack()
	phase("services_up", t0)

	pool, err := pgxpool.New(ctx, stack.PostgresURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()

	inj := &Injector{Infra: o.Infra, Procs: procs, TxLimit: o.ZombieFreeze, Log: log, Seed: o.Seed,
		Helper: func(ctx context.Context, svc string) (*Proc, error) {
			vars, ok := helperVars[svc]
			if !ok {
				return nil, fmt.Errorf("no second instance for %s", svc)
			}
			addr, err := freeAddr()
			if err != nil {
				return nil, err
			}
			env := procs[svc].env
			env = withEnv(env, vars[0], addr)
			env = withEnv(env, vars[1], envValue(env, vars[1])+"-b")
			env = withEnv(env, vars[2], envValue(env, vars[2])+"-b")
			return StartProc(ctx, svc+"-b", procs[svc].bin, addr, env, logDir, log)
		}}
	plan := Schedule(o.Faults, o.Duration, o.Seed)
	for _, p := range plan {
		rep.FaultCount[p.Kind]++
	}

	analyst := &Analyst{URL: "http://" + procs["alerting"].addr, Email: "chaos-analyst@vigil.test", Password: "chaos-" + runID + "-Analyst-1",
		Every: o.Labels, Seed: o.Seed, Log: log}
	if o.Labels > 0 {
		if err := CreateAnalyst(ctx, procs["alerting"].bin, alertingEnv, analyst.Email, analyst.Password); err != nil {
			return nil, err
		}
	}

	t0 = time.Now()
	log.Info("load", "rate", o.Rate, "duration", o.Duration, "faults", len(plan), "run", runID)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var injected []Injected
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		injected = inj.Run(ctx, start, plan)
	}()
	var labels []LabelResult
	if o.Labels > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			labels = analyst.Run(loadCtx)
		}()
	}
	load, err := Drive(ctx, LoadConfig{URL: stack.IngestURL, Keys: stack.Keys, Prefix: runID, Rate: o.Rate, Duration: o.Duration,
		InvalidEvery: 100, GiveUp: 3 * time.Minute, Seed: o.Seed}, work)
	stopLoad()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	phase("load_and_faults", t0)
	rep.Faults, rep.Labels = injected, labels
	rep.Traffic, rep.ByStatus, rep.Samples = load.Counts(), load.ByStatus, load.Samples

	t0 = time.Now()
	dctx, cancel := context.WithTimeout(ctx, o.Drain)
	n, err := harness.WaitDecisions(dctx, pool, runID, rep.Traffic.Acked, 45*time.Second)
	cancel()
	if err != nil {
		return nil, err
	}
	caught := harness.WaitAlerting(ctx, pool, stack, 60*time.Second)
	// The label outbox relay publishes asynchronously; give it a moment after the last change.
	time.Sleep(3 * time.Second)
	log.Info("drained", "decisions", n, "acked", rep.Traffic.Acked, "alerting_caught_up", caught)
	phase("drain", t0)

	t0 = time.Now()
	topics, err := LoadTopics(ctx, infra.Brokers, stack.Topics)
	if err != nil {
		return nil, err
	}
	pg, err := LoadPG(ctx, pool, runID)
	if err != nil {
		return nil, err
	}
	rep.Invariants = CheckAll(CheckInput{Load: load, Topics: topics, PG: pg, Labels: labels, Partitions: o.Partitions})
	phase("check", t0)

	// Stop the services so their logs and span exports are complete before the scan.
	t0 = time.Now()
	for name, p := range procs {
		if u := p.Unplanned(); len(u) > 0 {
			rep.Unplanned[name] = u
		}
	}
	stopStack()
	time.Sleep(500 * time.Millisecond)
	var pans []string
	for _, t := range load.Txs {
		pans = append(pans, t.PAN)
	}
	needles := NewNeedles(pans)
	var scanErr error
	add := func(r ScanResult, err error) {
		rep.Scan = append(rep.Scan, r)
		scanErr = errors.Join(scanErr, err)
	}
	add(ScanKafka(ctx, infra.Brokers, stack.Topics.All(), needles))
	add(ScanRedis(ctx, infra.RedisAddr, needles))
	add(ScanPostgres(ctx, stack.PostgresURL, needles))
	logs, _ := filepath.Glob(filepath.Join(logDir, "*.log"))
	rep.Hanging = countHanging(logs)
	add(ScanFiles("service logs", logs, needles))
	add(ScanFiles("infrastructure logs", o.Infra.LogFiles(), needles))
	spans.Close()
	sr, err := ScanFiles(fmt.Sprintf("exported spans (%d OTLP batches)", spans.Batches()), []string{filepath.Join(o.Out, "spans.otlp")}, needles)
	add(sr, err)
	phase("scan", t0)
	if scanErr != nil {
		return nil, fmt.Errorf("card-number scan: %w", scanErr)
	}

	rep.Options = map[string]string{"duration": o.Duration.String(), "rate": fmt.Sprint(o.Rate), "seed": fmt.Sprint(o.Seed),
		"partitions": fmt.Sprint(o.Partitions), "customers": fmt.Sprint(o.Customers), "run": runID, "zombie_freeze": o.ZombieFreeze.String(),
		"service_env": strings.Join(o.ServiceEnv, " ")}
	for _, inv := range rep.Invariants {
		rep.Failed = rep.Failed || !inv.OK()
	}
	for _, s := range rep.Scan {
		rep.Failed = rep.Failed || s.Hits > 0
	}
	for _, f := range rep.Faults {
		rep.Failed = rep.Failed || f.Err != ""
	}
	phase("total", tAll)
	rep.Print(w)
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(o.Out, "report.json"), b, 0o644); err != nil {
		return rep, err
	}
	return rep, nil
}

// Print writes the human summary.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\n== chaos run %s (%s)\n", r.Options["run"], r.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "traffic: sent=%d acked=%d rejected=%d (invalid on purpose %d) unknown=%d retried=%d\n",
		r.Traffic.Sent, r.Traffic.Acked, r.Traffic.Rejected, r.Traffic.Invalid, r.Traffic.Unknown, r.Traffic.Retried)
	fmt.Fprintf(w, "answers: %v\n", sortedMap(r.ByStatus))
	injected := map[string]int{}
	failed := map[string]int{}
	for _, f := range r.Faults {
		injected[f.Kind]++
		if f.Err != "" {
			failed[f.Kind]++
		}
	}
	fmt.Fprintf(w, "faults injected: %v", sortedMap(injected))
	if len(failed) > 0 {
		fmt.Fprintf(w, "  FAILED: %v", sortedMap(failed))
	}
	fmt.Fprintln(w)
	for _, f := range r.Faults {
		if f.Err != "" {
			fmt.Fprintf(w, "  fault %s at %.1fs failed: %s\n", f.Kind, f.StartS, f.Err)
		}
	}
	for name, u := range r.Unplanned {
		fmt.Fprintf(w, "unplanned exits of %s (restarted): %d, e.g. %s\n", name, len(u), u[0])
	}
	if len(r.Hanging) > 0 {
		fmt.Fprintf(w, "hanging transactions (Kafka skipped their markers) handled by the services' guards: %v\n", sortedMap(r.Hanging))
	}
	for _, inv := range r.Invariants {
		inv.Print(w)
	}
	for _, s := range r.Scan {
		status := "OK  "
		if s.Hits > 0 {
			status = "FAIL"
		}
		fmt.Fprintf(w, "%s card numbers in %s: %d hits in %d items (%d bytes)", status, s.Where, s.Hits, s.Scanned, s.Bytes)
		if len(s.Samples) > 0 {
			fmt.Fprintf(w, " at %s", strings.Join(s.Samples, ", "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "seconds: %v\n", sortedMapF(r.Seconds))
	if r.Failed {
		fmt.Fprintln(w, "RESULT: FAIL")
	} else {
		fmt.Fprintln(w, "RESULT: PASS")
	}
}

// countHanging counts the transaction guard's log lines per service log and action.
func countHanging(logs []string) map[string]int {
	out := map[string]int{}
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(path), ".log")
		out[name+"/closed"] += bytes.Count(b, []byte("closed a hanging transaction"))
		out[name+"/unresolved"] += bytes.Count(b, []byte("transaction open on a partition with no decided outcome"))
	}
	maps.DeleteFunc(out, func(_ string, n int) bool { return n == 0 })
	return out
}

func sortedMap(m map[string]int) string { return harness.FormatSorted(m, "%s=%d") }

func sortedMapF(m map[string]float64) string { return harness.FormatSorted(m, "%s=%.1f") }
