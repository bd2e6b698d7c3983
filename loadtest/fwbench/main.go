// Command fwbench measures the feature-window service against a raw franz-go EOS relay
// (consume → produce in Kafka transactions, no work) on the same broker in the same run:
// throughput over a pre-filled topic, Redis round trips per transaction (from the service's
// /metrics), and end-to-end latency under a paced load, whose p99 minus the relay's is the
// latency the service adds. Run by `make bench-feature-window`; bounded to about a minute.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/loadtest/harness"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

type opts struct {
	brokers        []string
	redis          string
	bin            string
	n              int
	partitions     int
	poll           int
	rate           int
	paced          time.Duration
	interval       time.Duration // feature-window's VIGIL_FEATURE_WINDOW_COMMIT_INTERVAL
	rounds         int
	profile        string // CPU profile of the service's last throughput round, written here
	profileSeconds int
}

func main() {
	var o opts
	var src string
	flag.IntVar(&o.n, "n", 5000, "transactions in the throughput phase")
	flag.IntVar(&o.partitions, "partitions", 3, "partitions of every topic")
	flag.IntVar(&o.poll, "poll", 500, "max records per poll (per transaction)")
	flag.IntVar(&o.rounds, "rounds", 3, "throughput rounds (relay, then feature-window, each round): the ratio reported is the median of the rounds', steadier on a shared box")
	flag.IntVar(&o.rate, "rate", 200, "transactions per second in the latency phase")
	flag.DurationVar(&o.paced, "paced", 4*time.Second, "length of the latency phase")
	flag.StringVar(&src, "src", "../services/feature-window", "feature-window source directory to build")
	flag.StringVar(&o.profile, "profile", "", "write a CPU profile of feature-window's last throughput round to this file (go tool pprof); the round must outlast -profile-seconds")
	flag.IntVar(&o.profileSeconds, "profile-seconds", 3, "length of the -profile CPU profile, from the start of the round")
	curve := flag.String("commit-intervals", "", "comma-separated Kafka transaction commit intervals (e.g. 0,20ms,100ms): measure feature-window throughput and latency at each instead of the default run")
	flag.Parse()
	o.brokers = strings.Split(envOr("VIGIL_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	o.redis = envOr("VIGIL_REDIS_ADDR", "127.0.0.1:56379")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if *curve != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := commitCurve(ctx, o, src, *curve); err != nil {
			fmt.Fprintln(os.Stderr, "fwbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, o, src); err != nil {
		fmt.Fprintln(os.Stderr, "fwbench:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// build compiles the feature-window service from src into a temporary directory; cleanup
// removes it.
func build(ctx context.Context, src string) (bin string, cleanup func(), _ error) {
	dir, err := os.MkdirTemp("", "fwbench")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "feature-window")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build %s: %v\n%s", src, err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

func run(ctx context.Context, o opts, src string) error {
	bin, cleanup, err := build(ctx, src)
	if err != nil {
		return err
	}
	defer cleanup()
	o.bin = bin
	fmt.Printf("fwbench: %d tx, %d partitions, %d records/poll, %d throughput rounds, paced %d tx/s for %s, broker %s, redis %s\n",
		o.n, o.partitions, o.poll, o.rounds, o.rate, o.paced, strings.Join(o.brokers, ","), o.redis)

	var relays, fws, ratios, rtts []float64
	for round := range max(o.rounds, 1) {
		relayTP, _, err := throughput(ctx, o, "relay", "")
		if err != nil {
			return err
		}
		if math.IsNaN(relayTP) {
			return fmt.Errorf("the relay's %d transactions were too fast to time: raise -n", o.n)
		}
		profile := ""
		if round == max(o.rounds, 1)-1 {
			profile = o.profile
		}
		fwTP, rtt, err := throughput(ctx, o, "feature-window", profile)
		if err != nil {
			return err
		}
		if math.IsNaN(fwTP) {
			return fmt.Errorf("feature-window's %d transactions were too fast to time: raise -n", o.n)
		}
		relays, fws, ratios, rtts = append(relays, relayTP), append(fws, fwTP), append(ratios, fwTP/relayTP), append(rtts, rtt)
	}
	relayTP, fwTP, ratio, rtt := median(relays), median(fws), median(ratios), median(rtts)
	relayLat, err := latency(ctx, o, "relay")
	if err != nil {
		return err
	}
	fwLat, err := latency(ctx, o, "feature-window")
	if err != nil {
		return err
	}
	fmt.Printf("\n%-16s %12s %14s %10s %10s\n", "", "tx/s", "redis rt/tx", "p50 ms", "p99 ms")
	fmt.Printf("%-16s %12.0f %14s %10.1f %10.1f\n", "raw EOS relay", relayTP, "-", ms(relayLat[0]), ms(relayLat[1]))
	fmt.Printf("%-16s %12.0f %14.4f %10.1f %10.1f\n", "feature-window", fwTP, rtt, ms(fwLat[0]), ms(fwLat[1]))
	fmt.Printf("\nfeature-window / relay throughput: %.2fx (target >= 0.6x; median of %d rounds: %s)\n", ratio, len(ratios), fmtRatios(ratios))
	fmt.Printf("p99 latency added by feature-window at %d tx/s: %.1f ms\n", o.rate, ms(fwLat[1]-relayLat[1]))
	return nil
}

// commitCurve measures feature-window at each commit interval, next to the raw relay (one
// transaction per poll) of the same run: the trade of commit interval against throughput and
// latency.
func commitCurve(ctx context.Context, o opts, src, list string) error {
	var intervals []time.Duration
	for _, f := range strings.Split(list, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("commit interval %q: %w", f, err)
		}
		intervals = append(intervals, d)
	}
	bin, cleanup, err := build(ctx, src)
	if err != nil {
		return err
	}
	defer cleanup()
	o.bin = bin
	// Relay and service at each interval, the relay first: the relay at the same interval is
	// the like-for-like baseline (a relay committing every poll made long intervals look like
	// the service outran it).
	type row struct {
		d             time.Duration
		relayTP, tp   float64
		relayLat, lat [2]time.Duration
	}
	var rows []row
	for _, d := range intervals {
		o.interval = d
		r := row{d: d}
		var err error
		if r.relayTP, _, err = throughput(ctx, o, "relay", ""); err != nil {
			return err
		}
		if r.tp, _, err = throughput(ctx, o, "feature-window", ""); err != nil {
			return err
		}
		if r.relayLat, err = latency(ctx, o, "relay"); err != nil {
			return err
		}
		if r.lat, err = latency(ctx, o, "feature-window"); err != nil {
			return err
		}
		rows = append(rows, r)
	}
	fmt.Printf("\n| commit interval | relay tx/s | feature-window tx/s | × relay | relay p50 / p99 ms @ %d tx/s | feature-window p50 / p99 ms |\n|---:|---:|---:|---:|---|---|\n", o.rate)
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %.1f / %.1f | %.1f / %.1f |\n", r.d, rate(r.relayTP), rate(r.tp), rate(r.tp/r.relayTP),
			ms(r.relayLat[0]), ms(r.relayLat[1]), ms(r.lat[0]), ms(r.lat[1]))
	}
	return nil
}

// rate formats a throughput or ratio, "n/a" when it was not timed.
func rate(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRatios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loopTimes is where the relay's loop time went, in nanoseconds per stage.
type loopTimes struct{ poll, transform, end, records atomic.Int64 }

func (l *loopTimes) String() string {
	s := func(a *atomic.Int64) float64 { return time.Duration(a.Load()).Seconds() }
	return split(s(&l.poll), s(&l.transform), s(&l.end), float64(l.records.Load()), "")
}

type stage struct {
	relay   *loopTimes // the relay's loop times; nil for the service
	in, out string
	stop    func() error
	metrics string // feature-window's /metrics URL
	debug   string // feature-window's pprof server
}

// startStage creates fresh topics and starts the relay (in process) or the service (a process).
func startStage(ctx context.Context, o opts, mode string, before func(in, out string) error) (*stage, error) {
	run := fmt.Sprintf("fwbench-%d-%s", time.Now().UnixNano(), strings.ReplaceAll(mode, "-", ""))
	topics := kafka.Topics{Tx: run + ".tx", Features: run + ".features", Decisions: run + ".decisions", Labels: run + ".labels"}
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, o.partitions, topics.All()...); err != nil {
		return nil, err
	}
	st := &stage{in: topics.Tx, out: topics.Features}
	if before != nil {
		if err := before(st.in, st.out); err != nil {
			return nil, err
		}
	}
	if mode == "relay" {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		st.relay = &loopTimes{}
		go func() { done <- relay(rctx, o, run, st.in, st.out, st.relay) }()
		st.stop = func() error { cancel(); return <-done }
		return st, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	debugPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.bin)
	cmd.Env = append(os.Environ(),
		"VIGIL_KAFKA_BROKERS="+strings.Join(o.brokers, ","), "VIGIL_REDIS_ADDR="+o.redis, "VIGIL_REDIS_KEY_PREFIX="+run+":",
		"VIGIL_TOPIC_TX="+topics.Tx, "VIGIL_TOPIC_FEATURES="+topics.Features, "VIGIL_TOPIC_LABELS="+topics.Labels,
		"VIGIL_TOPIC_DECISIONS="+topics.Decisions, "VIGIL_FEATURE_WINDOW_ADDR="+port,
		"VIGIL_FEATURE_WINDOW_GROUP="+run, "VIGIL_FEATURE_WINDOW_TRANSACTIONAL_ID="+run+"-0",
		"VIGIL_FEATURE_WINDOW_MAX_POLL_RECORDS="+strconv.Itoa(o.poll), "VIGIL_LOG_LEVEL=warn",
		"VIGIL_FEATURE_WINDOW_COMMIT_INTERVAL="+o.interval.String(), "VIGIL_FEATURE_WINDOW_DEBUG_ADDR="+debugPort)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	st.metrics = "http://" + port + "/metrics"
	st.debug = "http://" + debugPort
	st.stop = func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		// The run's windows and checkpoints: left behind, every run added ~130k keys to the
		// shared Redis, and the scans of other tests' clean-ups slowed with them.
		if _, derr := harness.DeleteRedisPrefix(context.WithoutCancel(ctx), o.redis, run+":"); derr != nil && err == nil {
			err = derr
		}
		return err
	}
	return st, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// relay is the baseline: franz-go's GroupTransactSession with the options of libs/kafka's EOS
// loop, copying each record to out. Like the service, it keeps a transaction open across polls
// until it is o.interval old (0: a transaction per poll), so the two are compared at the same
// commit interval.
func relay(ctx context.Context, o opts, run, in, out string, st *loopTimes) error {
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(o.brokers...), kgo.TransactionalID(run+"-relay"), kgo.TransactionTimeout(60*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumerGroup(run), kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()), kgo.Balancers(kgo.CooperativeStickyBalancer()))
	if err != nil {
		return err
	}
	defer sess.Close()
	tctx := context.WithoutCancel(ctx)
	var began time.Time // zero: no transaction open
	var promise *kgo.FirstErrPromise
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if !began.IsZero() {
			pctx, cancel = context.WithDeadline(ctx, began.Add(o.interval))
		}
		start := time.Now()
		fetches := sess.PollRecords(pctx, o.poll)
		cancel()
		st.poll.Add(int64(time.Since(start)))
		if fetches.IsClientClosed() || ctx.Err() != nil {
			if !began.IsZero() {
				_, err := sess.End(tctx, kgo.TransactionEndTry(promise.Err() == nil))
				return err
			}
			return nil
		}
		start = time.Now()
		if recs := fetches.Records(); len(recs) > 0 {
			if began.IsZero() {
				if err := sess.Begin(); err != nil {
					return err
				}
				began, promise = time.Now(), kgo.AbortingFirstErrPromise(sess.Client())
			}
			for _, r := range recs {
				sess.Produce(tctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value, Headers: r.Headers}, promise.Promise())
			}
			st.records.Add(int64(len(recs)))
		}
		st.transform.Add(int64(time.Since(start)))
		if !began.IsZero() && time.Since(began) >= o.interval {
			start = time.Now()
			if _, err := sess.End(tctx, kgo.TransactionEndTry(promise.Err() == nil)); err != nil {
				return err
			}
			st.end.Add(int64(time.Since(start)))
			began = time.Time{}
		}
	}
}

// genTx draws a transaction of 5,000 accounts at 500 terminals. Each account pays from one of
// its own two devices, one in 50 from a device shared by many (a household tablet, a shop's
// kiosk): a device drawn independently of the account, as before 2026-12-06, gave every device
// about 40 accounts a day, which no real device has and which made the device features, not the
// service, what was measured.
func genTx(rng *rand.Rand, i int, at time.Time) *fraudv1.Transaction {
	a := rng.IntN(5000)
	acct := fmt.Sprint("acct-", a)
	term := fmt.Sprint("T-", rng.IntN(500))
	dev := fmt.Sprintf("dev-%d-%d", a, rng.IntN(2))
	if rng.IntN(50) == 0 {
		dev = fmt.Sprint("dev-shared-", rng.IntN(100))
	}
	return &fraudv1.Transaction{Id: fmt.Sprint("bench:", i), AccountId: acct, Card: &fraudv1.Card{Token: "tok-" + acct},
		AmountMinor: 100 + rng.Int64N(50000), Currency: "EUR", MerchantId: "m-" + term, TerminalId: term, Country: "FR",
		Channel: fraudv1.Channel_CHANNEL_ECOMMERCE, DeviceId: dev, EventTime: timestamppb.New(at)}
}

func producer(o opts) (*kgo.Client, error) {
	return kgo.NewClient(kafka.ProducerOptions(o.brokers)...)
}

// throughput pre-fills the input topic with o.n transactions, then times the stage from start
// (session setup included) until all o.n outputs are readable read-committed.
func throughput(ctx context.Context, o opts, mode, profile string) (float64, float64, error) {
	// Timed from the first output poll, so the group join and transactional-id set-up, which
	// differ in nothing that matters here, are left out; the first poll's records are too.
	var first, last time.Time
	firstN, batches := 0, 0
	done := make(chan error, 1)
	// Filled before the stage starts, so the stage measures processing, not the producer; the
	// reader is fetching before it starts too: a reader still starting while a fast stage
	// finished saw all its output at once (0 tx/s) or only its tail (too many).
	st, err := startStage(ctx, o, mode, func(in, out string) error {
		if err := fill(ctx, o, in); err != nil {
			return err
		}
		ready := make(chan struct{})
		go func() {
			_, err := await(ctx, o, out, o.n, ready, func(_ *kgo.Record, now time.Time) {
				if first.IsZero() {
					first = now
				}
				if !now.Equal(last) {
					last, batches = now, batches+1
				}
				if now.Equal(first) {
					firstN++
				}
			})
			done <- err
		}()
		select {
		case <-ready:
			return nil
		case err := <-done:
			return err
		}
	})
	if err != nil {
		return 0, 0, err
	}
	profiled := make(chan error, 1)
	if profile != "" && st.debug != "" {
		go func() { profiled <- fetchProfile(ctx, st.debug, profile, o.profileSeconds) }()
	} else {
		profiled <- nil
	}
	if err := <-done; err != nil {
		_ = st.stop()
		return 0, 0, fmt.Errorf("%s: %w", mode, err)
	}
	elapsed := time.Since(first)
	if st.relay != nil {
		fmt.Printf("           relay loop: %s\n", st.relay)
	}
	rt := 0.0
	if st.metrics != "" {
		trips, txs, err := scrape(st.metrics)
		if err != nil {
			_ = st.stop()
			return 0, 0, err
		}
		rt = trips / txs
	}
	if err := st.stop(); err != nil {
		return 0, 0, fmt.Errorf("stop %s: %w", mode, err)
	}
	if err := <-profiled; err != nil {
		return 0, 0, fmt.Errorf("profile %s: %w", mode, err)
	}
	tp := float64(o.n-firstN) / elapsed.Seconds()
	// Output becomes visible a commit at a time: with a few commits (long commit intervals, a
	// fast stage, a small -n) the rate is the size of a commit over the gap between two, not
	// a throughput.
	if batches < minBatches {
		fmt.Printf("throughput %-15s %6d tx visible in only %d reads: not timed (raise -n)\n", mode, o.n, batches)
		return math.NaN(), rt, nil
	}
	fmt.Printf("throughput %-15s %6d tx in %6.2fs: %8.0f tx/s\n", mode, o.n-firstN, elapsed.Seconds(), tp)
	return tp, rt, nil
}

// minBatches is the fewest reads of the output a throughput is timed from.
const minBatches = 8

// fetchProfile writes the service's CPU profile of the next seconds to path.
func fetchProfile(ctx context.Context, debug, path string, seconds int) error {
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", debug, seconds)
	// The service is still starting: its debug server may not listen yet.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := harness.SaveURL(ctx, http.DefaultClient, url, path)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			return err
		}
	}
}

// fill writes o.n transactions to in.
func fill(ctx context.Context, o opts, in string) error {
	pr, err := producer(o)
	if err != nil {
		return err
	}
	defer pr.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]*kgo.Record, 0, o.n)
	for i := range o.n {
		tx := genTx(rng, i, t0.Add(time.Duration(i)*100*time.Millisecond))
		r, err := kafka.NewRecord(in, tx.GetAccountId(), tx)
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	return pr.ProduceSync(ctx, recs...).FirstErr()
}

// await reads out read-committed until n records arrived; onRecord sees each. ready, when not
// nil, is closed once the reader has been fetching for a while.
func await(ctx context.Context, o opts, out string, n int, ready chan<- struct{}, onRecord func(*kgo.Record, time.Time)) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.brokers...), kgo.ConsumeTopics(out),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	got := 0
	if ready != nil {
		wctx, cancel := context.WithTimeout(actx, 500*time.Millisecond)
		cl.PollFetches(wctx) // nothing to read yet: connects, loads metadata and offsets, fetches
		cancel()
		close(ready)
	}
	for got < n {
		f := cl.PollFetches(actx)
		if actx.Err() != nil {
			return got, fmt.Errorf("%d of %d records on %s: %w", got, n, out, actx.Err())
		}
		now := time.Now()
		f.EachRecord(func(r *kgo.Record) {
			got++
			if onRecord != nil {
				onRecord(r, now)
			}
		})
	}
	return got, nil
}

// scrape reads the service's round-trip and transaction counters.
// It prints where the service's time went: CPU per transaction, Kafka transactions
// (Begin to End, the transform included) and Redis pipelines.
func scrape(url string) (trips, txs float64, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	series := map[string]float64{
		"process_cpu_seconds_total": 0, "vigil_kafka_transaction_duration_seconds_sum": 0, "vigil_kafka_transaction_duration_seconds_count": 0,
		"vigil_redis_call_duration_seconds_sum": 0, "vigil_redis_call_duration_seconds_count": 0,
	}
	loop := map[string]float64{} // stage or step → seconds
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		name, _, _ := strings.Cut(f[0], "{")
		if _, ok := series[name]; ok {
			series[name] += v
		}
		switch f[0] {
		case "vigil_feature_window_redis_round_trips_total":
			trips = v
		case "vigil_feature_window_transactions_total":
			txs = v
		}
		if stage := label(f[0], "stage"); name == "vigil_kafka_loop_seconds_total" && stage != "" {
			loop[stage] += v
		}
		if step := label(f[0], "step"); name == "vigil_feature_window_transform_seconds_total" && step != "" {
			loop[step] += v
		}
	}
	if txs == 0 {
		return 0, 0, errors.New("no transactions_total in " + url)
	}
	mean := func(sum, count string) float64 { return 1000 * series[sum] / max(series[count], 1) }
	fmt.Printf("           feature-window: %.1f µs CPU/tx (process, start-up included); %.0f Kafka transactions, %.1f ms each; %.0f Redis calls, %.2f ms each\n",
		1e6*series["process_cpu_seconds_total"]/txs,
		series["vigil_kafka_transaction_duration_seconds_count"], mean("vigil_kafka_transaction_duration_seconds_sum", "vigil_kafka_transaction_duration_seconds_count"),
		series["vigil_redis_call_duration_seconds_count"], mean("vigil_redis_call_duration_seconds_sum", "vigil_redis_call_duration_seconds_count"))
	fmt.Printf("           feature-window loop: %s\n", split(loop["poll"], loop["transform"], loop["end"], txs,
		fmt.Sprintf(" (decode %.2fs, read %.2fs, compute %.2fs)", loop["decode"], loop["read"], loop["compute"])))
	return trips, txs, sc.Err()
}

// label is the value of a label in a Prometheus series name, "" when it has none.
func label(series, name string) string {
	_, v, ok := strings.Cut(series, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, `"`)
	return v
}

// split formats where an EOS loop's time went, for tx transactions: the relay and the
// service are compared stage by stage.
func split(poll, transform, end, tx float64, detail string) string {
	us := func(s float64) float64 { return 1e6 * s / max(tx, 1) }
	return fmt.Sprintf("poll %.2fs, transform %.2fs%s, end %.2fs = %.1f / %.1f / %.1f µs per tx",
		poll, transform, detail, end, us(poll), us(transform), us(end))
}

// latency starts the stage on an empty topic, waits until it answers, then produces at o.rate
// for o.paced and measures produce → visible read-committed downstream per transaction.
func latency(ctx context.Context, o opts, mode string) ([2]time.Duration, error) {
	var res [2]time.Duration
	st, err := startStage(ctx, o, mode, nil)
	if err != nil {
		return res, err
	}
	defer func() { _ = st.stop() }()
	pr, err := producer(o)
	if err != nil {
		return res, err
	}
	defer pr.Close()
	rng := rand.New(rand.NewPCG(2, 2))
	sent := sync.Map{} // tx id → send time
	send := func(i int) {
		tx := genTx(rng, i, time.Now())
		r, _ := kafka.NewRecord(st.in, tx.GetAccountId(), tx)
		sent.Store(tx.GetId(), time.Now())
		pr.Produce(ctx, r, nil)
	}
	// Warm up: the group join and the first transaction are not part of steady-state latency.
	send(-1)
	if _, err := await(ctx, o, st.out, 1, nil, nil); err != nil {
		return res, fmt.Errorf("%s warm-up: %w", mode, err)
	}
	total := int(float64(o.rate) * o.paced.Seconds())
	var lats []time.Duration
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		_, err := await(ctx, o, st.out, total+1, nil, func(r *kgo.Record, now time.Time) {
			id := idOf(r)
			if t, ok := sent.Load(id); ok && id != "bench:-1" {
				mu.Lock()
				lats = append(lats, now.Sub(t.(time.Time)))
				mu.Unlock()
			}
		})
		done <- err
	}()
	tick := time.NewTicker(time.Second / time.Duration(o.rate))
	for i := range total {
		<-tick.C
		send(i)
	}
	tick.Stop()
	if err := <-done; err != nil {
		return res, fmt.Errorf("%s: %w", mode, err)
	}
	slices.Sort(lats)
	res[0], res[1] = lats[len(lats)/2], lats[len(lats)*99/100]
	fmt.Printf("latency    %-15s %6d tx at %d tx/s: p50 %.1f ms, p99 %.1f ms\n", mode, len(lats), o.rate, ms(res[0]), ms(res[1]))
	return res, nil
}

func idOf(r *kgo.Record) string {
	var et fraudv1.EnrichedTransaction
	if kafka.Header(r, kafka.HeaderType) == string(proto.MessageName(&et)) {
		if proto.Unmarshal(r.Value, &et) == nil {
			return et.GetTransaction().GetId()
		}
		return ""
	}
	var tx fraudv1.Transaction
	if proto.Unmarshal(r.Value, &tx) == nil {
		return tx.GetId()
	}
	return ""
}
