package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Fault kinds ("all", which the CI-sized run uses, leaves out flush-redis: it once let one
// duplicate through feature-window, before partitions built from no checkpoint stopped reading
// accounts from Redis; the full run asks for it by name and passed with it). kill-<service> is SIGKILL and a restart by the supervisor; rebalance-<svc>
// starts a second instance of a stream service and stops it again; zombie-<svc> freezes the
// instance (SIGSTOP) past the 60 s transaction timeout while a second instance takes its
// partitions, then thaws it: its late commit must be fenced.
var faultKinds = []string{
	"kill-ingest", "kill-feature-window", "kill-scoring", "kill-alerting",
	"kill-broker", "kill-redis", "restart-postgres", "flush-redis",
	"rebalance-feature-window", "rebalance-scoring",
	"zombie-feature-window", "zombie-scoring",
}

// target is what a fault acts on; faults on one target never overlap. Infrastructure outages
// share "infra": two at once tell less than one after the other. A zombie may overlap an
// outage: it is only frozen once the broker reports its transaction open.
func target(kind string) string {
	if kind == "kill-broker" || kind == "kill-redis" || kind == "restart-postgres" || kind == "flush-redis" {
		return "infra"
	}
	_, svc, _ := strings.Cut(kind, "-")
	return svc
}

// ParseFaults reads "kind[=n],..." or "all[=n]" (n faults of each kind, default 1).
func ParseFaults(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, ns, hasN := strings.Cut(part, "=")
		n := 1
		if hasN {
			var err error
			if n, err = strconv.Atoi(ns); err != nil || n < 0 {
				return nil, fmt.Errorf("--faults: %q: count must be a non-negative integer", part)
			}
		}
		if name == "all" {
			for _, k := range faultKinds {
				if k != "flush-redis" {
					out[k] = n
				}
			}
			continue
		}
		known := false
		for _, k := range faultKinds {
			known = known || k == name
		}
		if !known {
			return nil, fmt.Errorf("--faults: unknown fault %q (known: %s, all)", name, strings.Join(faultKinds, ", "))
		}
		out[name] = n
	}
	return out, nil
}

// Planned is one scheduled fault.
type Planned struct {
	Kind string        `json:"kind"`
	At   time.Duration `json:"at"` // since the load started
}

// faultLength is how long a fault kind lasts when it is long enough to matter for the
// schedule: a zombie stays frozen past the 60 s transaction timeout.
var faultLength = map[string]time.Duration{"zombie-feature-window": 75 * time.Second, "zombie-scoring": 75 * time.Second}

// Schedule spreads the faults over [5%, 85%] of the run at seeded random times, so the last
// ones still leave load running after them and the drain sees a quiet system; a long fault
// starts early enough to end by 85% where the run allows.
func Schedule(counts map[string]int, d time.Duration, seed uint64) []Planned {
	rng := rand.New(rand.NewPCG(seed, 11))
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var out []Planned
	lo := float64(d) * 0.05
	for _, k := range kinds {
		span := max(float64(d)*0.85-float64(faultLength[k])-lo, 0)
		for range counts[k] {
			out = append(out, Planned{Kind: k, At: time.Duration(lo + rng.Float64()*span)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// Injected is what happened when a fault ran.
type Injected struct {
	Kind     string  `json:"kind"`
	StartS   float64 `json:"start_s"`
	Seconds  float64 `json:"took_s"`
	Detail   string  `json:"detail,omitempty"`
	Err      string  `json:"error,omitempty"`
	Deferred float64 `json:"deferred_s,omitempty"` // waited for an earlier fault on the same target
}

// Injector runs faults against the private infrastructure and the supervised services.
type Injector struct {
	Infra   PrivateInfra
	Procs   map[string]*Proc // primary instance per service
	Helper  func(ctx context.Context, service string) (*Proc, error)
	TxLimit time.Duration // how long a zombie stays frozen (past the transaction timeout)
	Log     *slog.Logger
	Seed    uint64
	rng     *rand.Rand

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	done  []Injected
}

// rand is the injector's seeded source; the caller holds j.mu.
func (j *Injector) rand() *rand.Rand {
	if j.rng == nil {
		j.rng = rand.New(rand.NewPCG(j.Seed, 17))
	}
	return j.rng
}

func (j *Injector) lock(t string) *sync.Mutex {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.locks == nil {
		j.locks = map[string]*sync.Mutex{}
	}
	if j.locks[t] == nil {
		j.locks[t] = &sync.Mutex{}
	}
	return j.locks[t]
}

// Run fires the planned faults on time, each in its own goroutine, and returns when all ended.
func (j *Injector) Run(ctx context.Context, start time.Time, plan []Planned) []Injected {
	var wg sync.WaitGroup
	for _, p := range plan {
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(start.Add(p.At))):
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			asked := time.Now()
			l := j.lock(target(p.Kind))
			l.Lock()
			defer l.Unlock()
			began := time.Now()
			detail, err := j.inject(ctx, p.Kind)
			in := Injected{Kind: p.Kind, StartS: began.Sub(start).Seconds(), Seconds: time.Since(began).Seconds(), Detail: detail}
			if d := began.Sub(asked); d > time.Second {
				in.Deferred = d.Seconds()
			}
			if err != nil {
				in.Err = err.Error()
				j.Log.Error("fault failed", "kind", p.Kind, "err", err)
			} else {
				j.Log.Info("fault", "kind", p.Kind, "at_s", fmt.Sprintf("%.1f", in.StartS), "took_s", fmt.Sprintf("%.1f", in.Seconds), "detail", detail)
			}
			j.mu.Lock()
			j.done = append(j.done, in)
			j.mu.Unlock()
		}()
	}
	wg.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	sort.Slice(j.done, func(a, b int) bool { return j.done[a].StartS < j.done[b].StartS })
	return append([]Injected(nil), j.done...)
}

// lastLines is the end of a command's output, for an error message.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (j *Injector) inject(ctx context.Context, kind string) (string, error) {
	verb, svc, _ := strings.Cut(kind, "-")
	switch kind {
	case "kill-broker":
		return "", j.Infra.KillBroker(ctx, time.Second)
	case "kill-redis":
		return "", j.Infra.KillRedis(ctx, time.Second)
	case "restart-postgres":
		return "", j.Infra.RestartPostgres(ctx, time.Second)
	case "flush-redis":
		// Redis loses everything; `feature-window rebuild` re-derives the windows from the
		// topics next to the running service (both checkpoint by compare-and-set).
		if err := j.Infra.FlushRedis(ctx); err != nil {
			return "", fmt.Errorf("flush: %w", err)
		}
		fw := j.Procs["feature-window"]
		if fw == nil {
			return "", fmt.Errorf("no feature-window to rebuild with")
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(rctx, fw.bin, "rebuild")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, fw.env...)
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("feature-window rebuild: %w: %s", err, lastLines(out, 5))
		}
		return fmt.Sprintf("flushed; rebuild took %.1fs", time.Since(t0).Seconds()), nil
	}
	p := j.Procs[svc]
	if p == nil {
		return "", fmt.Errorf("no service %q", svc)
	}
	switch verb {
	case "kill":
		t0 := time.Now()
		if err := p.Kill(); err != nil {
			return "", err
		}
		// The next fault on this service waits until it serves again.
		time.Sleep(300 * time.Millisecond)
		if err := p.WaitReady(context.WithoutCancel(ctx), 120*time.Second); err != nil {
			return "", err
		}
		return fmt.Sprintf("ready again after %.1fs", time.Since(t0).Seconds()), nil
	case "rebalance":
		h, err := j.Helper(ctx, svc)
		if err != nil {
			return "", err
		}
		j.mu.Lock()
		hold := 5*time.Second + time.Duration(j.rand().Int64N(int64(10*time.Second)))
		j.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(hold):
		}
		h.Stop()
		return fmt.Sprintf("second instance ran %.0fs", hold.Seconds()), nil
	case "zombie":
		return j.zombie(ctx, svc, p)
	}
	return "", fmt.Errorf("unknown fault %q", kind)
}

// transactionalIDVar names each stream service's transactional id variable.
var transactionalIDVar = map[string]string{
	"feature-window": "VIGIL_FEATURE_WINDOW_TRANSACTIONAL_ID",
	"scoring":        "VIGIL_SCORING_TRANSACTIONAL_ID",
}

// zombie starts a second instance, then freezes the primary inside an open transaction (it is
// thawed and frozen again until the broker reports its transaction Ongoing), keeps it frozen
// past the transaction timeout while the second instance takes its partitions, and thaws it.
// The broker must have aborted the open transaction and fenced the producer; what the zombie
// logged when it woke up is in the detail, and the invariants say whether anything leaked.
func (j *Injector) zombie(ctx context.Context, svc string, p *Proc) (string, error) {
	txnID := envValue(p.env, transactionalIDVar[svc])
	cl, err := kgo.NewClient(kgo.SeedBrokers(j.Infra.Infra().Brokers...))
	if err != nil {
		return "", err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// describeOnce asks the transaction coordinator once, briefly: the freeze loop below must
	// thaw the process again quickly, or its group session times out and it has nothing left
	// to hold a transaction on.
	describeOnce := func(timeout time.Duration) (kadm.DescribedTransaction, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		d, err := adm.DescribeTransactions(dctx, txnID)
		if err != nil {
			return kadm.DescribedTransaction{}, err
		}
		return d[txnID], d[txnID].Err
	}
	// describe retries for up to 60 s: an outage of the broker may overlap the zombie.
	describe := func() kadm.DescribedTransaction {
		var last error
		for range 20 {
			d, err := describeOnce(2 * time.Second)
			if err == nil {
				return d
			}
			last = err
			time.Sleep(time.Second)
		}
		return kadm.DescribedTransaction{State: "unknown (" + last.Error() + ")"}
	}
	h, err := j.Helper(ctx, svc)
	if err != nil {
		return "", err
	}
	defer h.Stop()
	// A stream service spends only part of its time inside a transaction (from its first
	// produce to EndTxn): freeze, ask the broker, thaw at once when no transaction is open,
	// and try again a moment later.
	var frozen kadm.DescribedTransaction
	// Bounded by time, not tries: the other stream service's zombie may hold its output's
	// last stable offset for up to the transaction timeout (60 s), starving this one of input
	// (and so of open transactions) meanwhile.
	tries, giveUp := 0, time.Now().Add(150*time.Second)
	for time.Now().Before(giveUp) {
		tries++
		if err := p.Pause(); err != nil {
			return "", err
		}
		var err error
		if frozen, err = describeOnce(time.Second); err == nil && frozen.State == "Ongoing" {
			break
		} else if err != nil {
			frozen.State = "unknown (" + err.Error() + ")"
		}
		if err := p.Resume(); err != nil {
			return "", err
		}
		j.mu.Lock()
		gap := time.Duration(20+j.rand().IntN(150)) * time.Millisecond
		j.mu.Unlock()
		time.Sleep(gap)
	}
	if frozen.State != "Ongoing" {
		if err := p.Pause(); err != nil {
			return "", err
		}
	}
	frozenAt := time.Now()
	// Frozen past the transaction timeout even when the run ends meanwhile, and until the
	// broker has aborted the open transaction (it looks for timed-out ones every 10 s).
	time.Sleep(j.TxLimit)
	after := describe()
	for waited := 0; after.State == "Ongoing" && waited < 30; waited++ {
		time.Sleep(time.Second)
		after = describe()
	}
	mark := logSize(p.LogPath())
	if err := p.Resume(); err != nil {
		return "", err
	}
	// Let the zombie try its late commit while the second instance still owns its partitions.
	time.Sleep(5 * time.Second)
	woke := zombieLines(p.LogPath(), mark)
	detail := fmt.Sprintf("froze %s (txn %s, try %d) for %.0fs with a second instance running; txn then %s epoch %d→%d; on waking it logged: %s",
		p.Name, frozen.State, tries, time.Since(frozenAt).Seconds(), after.State, frozen.ProducerEpoch, after.ProducerEpoch, woke)
	switch {
	case frozen.State != "Ongoing":
		return detail, fmt.Errorf("could not freeze %s inside an open transaction in %d tries", p.Name, tries)
	case after.State == "Ongoing" || after.ProducerEpoch == frozen.ProducerEpoch:
		return detail, fmt.Errorf("the broker did not abort the frozen transaction of %s and bump its epoch", p.Name)
	}
	return detail, nil
}

func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// zombieLines summarises what the thawed zombie logged about fencing, aborts and its group.
func zombieLines(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return err.Error()
	}
	b, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	var msgs []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		low := strings.ToLower(line)
		if !strings.Contains(low, "fenc") && !strings.Contains(low, "epoch") && !strings.Contains(low, "abort") &&
			!strings.Contains(low, "unknown_member") && !strings.Contains(low, "producer") && !strings.Contains(low, "revoked") {
			continue
		}
		m := line
		if i := strings.Index(line, `"msg":`); i >= 0 {
			m = line[i:]
		}
		if len(m) > 240 {
			m = m[:240]
		}
		if !seen[m] && len(msgs) < 4 {
			seen[m] = true
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		return "nothing about fencing"
	}
	return strings.Join(msgs, " | ")
}
