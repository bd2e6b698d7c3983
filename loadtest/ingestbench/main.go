// Command ingestbench measures ingest against the real broker: open-loop load at a fixed rate
// and then at the maximum this machine sustains, each reporting throughput and p50/p99/p99.9
// ack latency, next to a raw franz-go produce loop of the same message size run in the same
// invocation, and prints the ratio. It runs the ingest binary as a child process on a fresh
// topic, a fresh Postgres database and a fresh Redis prefix, and removes them afterwards.
//
//	go build -o var/bin/ingest ./services/ingest
//	eval "$(deploy/local/infra.sh env)"; go run ./loadtest/ingestbench --ingest-bin var/bin/ingest
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/loadtest/harness"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

const (
	// ingestMaxInFlight is ingest's in-flight bound and producer buffer in the run (franz-go's
	// default buffer), and the raw producer's buffer.
	ingestMaxInFlight = 10000
	// rawInFlight is what the raw maximum keeps in flight, about the batch phase's 8 × 500.
	rawInFlight = 4096
)

type options struct {
	ingestBin   string
	rate        float64
	rateFor     time.Duration
	maxFor      time.Duration
	rawFor      time.Duration
	pairs       int
	workers     int
	batch       int
	partitions  int
	brokers     []string
	postgresURL string
	redisAddr   string
	profileDir  string
	linger      time.Duration
	batchers    int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		stop()
		os.Exit(1)
	}
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("ingestbench", flag.ContinueOnError)
	fs.StringVar(&o.ingestBin, "ingest-bin", "var/bin/ingest", "the ingest binary to run")
	fs.Float64Var(&o.rate, "rate", 1000, "open-loop arrival rate of the fixed-rate phase (tx/s)")
	fs.DurationVar(&o.rateFor, "rate-for", 4*time.Second, "length of each fixed-rate phase, raw and ingest alike")
	fs.IntVar(&o.pairs, "pairs", 3, "fixed-rate phases run as this many back-to-back pairs of raw and ingest open loops; medians are reported")
	fs.DurationVar(&o.maxFor, "max-for", 6*time.Second, "length of the single-transaction maximum, and of the batch maximum split over its pairs with the raw one")
	fs.DurationVar(&o.rawFor, "raw-for", 6*time.Second, "length of the raw franz-go produce maximum, split over its pairs with the batch one")
	fs.IntVar(&o.workers, "workers", 64, "concurrent clients of the maximum-throughput phase")
	fs.IntVar(&o.batch, "batch", 500, "transactions per request in the batch phase (1-500)")
	fs.IntVar(&o.batchers, "batch-clients", 8, "concurrent clients of the batch phase; clients × batch is its transactions in flight (the raw loop keeps 4096)")
	fs.DurationVar(&o.linger, "linger", 0, "producer linger of ingest and of the raw loops alike")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of the fresh topic")
	fs.StringVar(&o.profileDir, "profile-dir", "", "when set, write ingest CPU profiles of the fixed-rate and maximum phases and a heap profile here")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if o.rate <= 0 || o.workers <= 0 || o.partitions <= 0 || o.batchers <= 0 || o.pairs <= 0 {
		errs = append(errs, errors.New("--rate, --pairs, --workers, --batch-clients and --partitions must be positive"))
	}
	if o.batch < 1 || o.batch > 500 {
		errs = append(errs, errors.New("--batch must be 1-500"))
	}
	if total := time.Duration(2*o.pairs)*o.rateFor + o.maxFor*2 + o.rawFor; total > 45*time.Second || o.rateFor <= 0 || o.maxFor <= 0 || o.rawFor <= 0 {
		errs = append(errs, fmt.Errorf("phases must be positive and total at most 45s (the run is bounded to 60s), got %s", total))
	}
	o.brokers = strings.Split(os.Getenv("VIGIL_KAFKA_BROKERS"), ",")
	o.postgresURL = os.Getenv("VIGIL_POSTGRES_URL")
	o.redisAddr = os.Getenv("VIGIL_REDIS_ADDR")
	for name, v := range map[string]string{"VIGIL_KAFKA_BROKERS": os.Getenv("VIGIL_KAFKA_BROKERS"), "VIGIL_POSTGRES_URL": o.postgresURL, "VIGIL_REDIS_ADDR": o.redisAddr} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required (eval \"$(deploy/local/infra.sh env)\")", name))
		}
	}
	return o, errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func run(ctx context.Context, args []string) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	// The whole run, set-up and teardown included, stays under a minute.
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	runID := randomHex(4)

	admin, err := kgo.NewClient(kgo.SeedBrokers(o.brokers...))
	if err != nil {
		return err
	}
	defer admin.Close()
	topic := "bench-ingest-" + runID
	if err := kafka.EnsureTopics(ctx, admin, o.partitions, topic); err != nil {
		return err
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		_, _ = kadm.NewClient(admin).DeleteTopics(dctx, topic)
	}()

	dbURL, dropDB, err := harness.FreshDatabase(ctx, o.postgresURL, "bench_ingest_"+runID)
	if err != nil {
		return err
	}
	defer dropDB()

	apiKey := "bench_" + randomHex(16)
	addr, err := freePort()
	if err != nil {
		return err
	}
	env := map[string]string{
		"VIGIL_INGEST_ADDR":            addr,
		"VIGIL_INGEST_API_KEYS":        "bench:" + apiKey,
		"VIGIL_INGEST_CARD_HMAC_KEY":   randomHex(32),
		"VIGIL_INGEST_RATE_LIMIT":      "0", // measure the service, not the limiter
		"VIGIL_INGEST_MAX_IN_FLIGHT":   strconv.Itoa(ingestMaxInFlight),
		"VIGIL_TOPIC_TX":               topic,
		"VIGIL_POSTGRES_URL":           dbURL,
		"VIGIL_REDIS_KEY_PREFIX":       "bench-" + runID + ":",
		"VIGIL_LOG_LEVEL":              "warn",
		"VIGIL_INGEST_PUBLISH_TIMEOUT": "10s",
		"VIGIL_INGEST_PRODUCER_LINGER": o.linger.String(),
	}
	prof := profiler{dir: o.profileDir}
	if prof.dir != "" {
		if prof.addr, err = freePort(); err != nil {
			return err
		}
		env["VIGIL_INGEST_DEBUG_ADDR"] = prof.addr
	}
	ingestPID, stopIngest, err := startIngest(ctx, o, addr, env)
	if err != nil {
		return err
	}
	defer stopIngest()
	watched := map[string]int{"ingest": ingestPID, "bench": os.Getpid()}
	if pid := listenerPID(o.brokers[0]); pid > 0 {
		watched["broker"] = pid
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute}, Timeout: 15 * time.Second}
	target := "http://" + addr + "/v1/transactions"
	gen := &generator{runID: runID, apiKey: apiKey, target: target, client: client}

	sample := gen.body(0)
	msgSize := messageSize()
	fmt.Printf("ingestbench: topic %s (%d partitions), HTTP body %d bytes, tx.v1 record value %d bytes; %d cores, load average %s\n",
		topic, o.partitions, len(sample), msgSize, numCPU(), loadAvg())

	// Warm up connections (as many as the open loop may hold at once) and the producer, so the
	// first phase measures steady state rather than TCP handshakes. The raw client is warmed
	// too: its connection, metadata and producer id must not land in its first phase's tail.
	if _, err := gen.closedLoop(ctx, 64, time.Second); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	raw, err := newRawClient(ctx, o, topic)
	if err != nil {
		return err
	}
	defer raw.Close()

	// The fixed-rate comparison runs as back-to-back pairs of equal length, the order
	// alternating, so both sides see the same machine; the medians are the numbers to quote.
	var rawP99, ingestP99, ratios []time.Duration
	ingestErrors := 0
	for pair := range o.pairs {
		for _, side := range pairOrder(pair) {
			mon := watchBox(watched)
			if side == "raw" {
				res, err := rawOpenLoop(ctx, raw, o.rate, topic, o.rateFor)
				box := mon.finish()
				if err != nil {
					return err
				}
				res.print(fmt.Sprintf("raw franz-go open loop @ %.0f rec/s #%d", o.rate, pair+1))
				fmt.Println(box.line(len(res.lat)))
				rawP99 = append(rawP99, res.quantile(0.99))
				continue
			}
			stopProfile := func() {}
			if pair == 0 {
				stopProfile = prof.cpu(ctx, "fixed", o.rateFor)
			}
			before, _ := serverHistogram(ctx, "http://"+addr, "/v1/transactions")
			res, err := gen.openLoop(ctx, o.rate, o.rateFor)
			box := mon.finish()
			stopProfile()
			if err != nil {
				return err
			}
			res.print(fmt.Sprintf("ingest open loop @ %.0f tx/s #%d", o.rate, pair+1))
			fmt.Println(box.line(len(res.lat)))
			// Ingest's own view of the same requests, from its latency histogram: the part of
			// the ack latency spent inside the server, without the client and the connection.
			if after, err := serverHistogram(ctx, "http://"+addr, "/v1/transactions"); err == nil && before != nil {
				d := after.minus(before)
				fmt.Printf("  ingest server-side, same requests: n=%d p50 ≤ %s  p99 ≤ %s  p99.9 ≤ %s (histogram buckets)\n",
					d.count(), d.quantile(0.5), d.quantile(0.99), d.quantile(0.999))
			} else if err != nil {
				fmt.Fprintln(os.Stderr, "ingestbench: server histogram:", err)
			}
			ingestErrors += res.errors
			ingestP99 = append(ingestP99, res.quantile(0.99))
		}
		ratios = append(ratios, ingestP99[pair]*1000/max(rawP99[pair], 1))
	}

	mon := watchBox(watched)
	stopProfile := prof.cpu(ctx, "max", o.maxFor)
	maxRes, err := gen.closedLoop(ctx, o.workers, o.maxFor)
	stopProfile()
	box := mon.finish()
	if err != nil {
		return err
	}
	maxRes.print(fmt.Sprintf("ingest max (%d concurrent clients)", o.workers))
	fmt.Println(box.line(len(maxRes.lat)))

	// The throughput comparison alternates too: the batch maximum and the raw maximum in
	// back-to-back pairs, so a burst from another user of the box does not land on one side.
	var rawTput, batchTput, tputRatios []float64
	batchErrors := 0
	for pair := range throughputPairs {
		for _, side := range pairOrder(pair) {
			mon := watchBox(watched)
			if side == "raw" {
				res, err := rawProduce(ctx, raw, topic, o.rawFor/throughputPairs)
				box := mon.finish()
				if err != nil {
					return err
				}
				res.print(fmt.Sprintf("raw franz-go produce max, same size #%d", pair+1))
				fmt.Println(box.line(len(res.lat)))
				rawTput = append(rawTput, res.throughput())
				continue
			}
			stopProfile := func() {}
			if pair == 0 {
				stopProfile = prof.cpu(ctx, "batch", o.maxFor/throughputPairs)
			}
			res, err := gen.batchLoop(ctx, o.batchers, o.batch, o.maxFor/throughputPairs)
			stopProfile()
			box := mon.finish()
			if err != nil {
				return err
			}
			res.print(fmt.Sprintf("ingest batch max (%d tx/request, %d clients) #%d", o.batch, o.batchers, pair+1))
			fmt.Println(box.line(len(res.lat)))
			batchTput = append(batchTput, res.throughput())
			batchErrors += res.errors
		}
		tputRatios = append(tputRatios, batchTput[pair]/rawTput[pair])
	}
	prof.save(ctx, "allocs", "/debug/pprof/allocs")
	fmt.Printf("load average after the run: %s\n", loadAvg())

	medRaw, medIngest, medRatio := median(rawP99), median(ingestP99), median(ratios)
	fmt.Printf("p99 ack at %.0f/s, median of %d pairs: ingest %.2f ms vs raw %.2f ms (median ratio %.2f×; pairs: ingest %s, raw %s)\n",
		o.rate, o.pairs, ms(medIngest), ms(medRaw), float64(medRatio)/1000, msList(ingestP99), msList(rawP99))
	batchRatio, singleRatio := meanOf(tputRatios), maxRes.throughput()/meanOf(rawTput)
	fmt.Printf("ratio throughput / raw produce: ingest batch %.2f× (pairs %s), ingest single %.2f× (against the mean raw maximum)\n",
		batchRatio, ratioList(tputRatios), singleRatio)
	fmt.Printf("targets: p99 ack at %.0f tx/s < 10 ms: %s; ≥ 0.5× raw throughput: batch endpoint %s, single endpoint %s\n", o.rate,
		verdict(medIngest < 10*time.Millisecond && ingestErrors == 0),
		verdict(batchRatio >= 0.5 && batchErrors == 0),
		verdict(singleRatio >= 0.5))
	return nil
}

// throughputPairs is how many batch/raw maximum pairs split --max-for and --raw-for.
const throughputPairs = 2

func meanOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

func ratioList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, "/")
}

// pairOrder alternates which side of a pair runs first.
func pairOrder(pair int) []string {
	if pair%2 == 0 {
		return []string{"raw", "ingest"}
	}
	return []string{"ingest", "raw"}
}

func median(v []time.Duration) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func msList(v []time.Duration) string {
	parts := make([]string, len(v))
	for i, d := range v {
		parts[i] = strconv.FormatFloat(ms(d), 'f', 2, 64)
	}
	return strings.Join(parts, "/")
}

// histogram is a cumulative latency histogram: bucket upper bound (seconds) to count.
type histogram map[float64]float64

// serverHistogram reads ingest's request latency histogram of route from /metrics.
func serverHistogram(ctx context.Context, base, route string) (histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	h := histogram{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "vigil_http_request_duration_seconds_bucket{") || !strings.Contains(line, `route="`+route+`"`) {
			continue
		}
		_, rest, _ := strings.Cut(line, `le="`)
		le, value, _ := strings.Cut(rest, `"}`)
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		h[bound] += n
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("no vigil_http_request_duration_seconds for %s in /metrics", route)
	}
	return h, nil
}

func (h histogram) minus(o histogram) histogram {
	d := histogram{}
	for k, v := range h {
		d[k] = v - o[k]
	}
	return d
}

func (h histogram) count() int { return int(h[math.Inf(1)]) }

// quantile is the upper bound of the bucket holding quantile q.
func (h histogram) quantile(q float64) string {
	bounds := make([]float64, 0, len(h))
	for k := range h {
		bounds = append(bounds, k)
	}
	slices.Sort(bounds)
	total := h[math.Inf(1)]
	for _, b := range bounds {
		if h[b] >= q*total {
			if math.IsInf(b, 1) {
				return "+Inf"
			}
			return (time.Duration(b * float64(time.Second))).String()
		}
	}
	return "?"
}

// profiler fetches ingest's profiles from its pprof listener while a phase runs.
type profiler struct {
	dir, addr string
}

// cpu starts a CPU profile of about d in the background; the returned func waits for it.
func (p profiler) cpu(ctx context.Context, name string, d time.Duration) func() {
	if p.dir == "" {
		return func() {}
	}
	secs := max(1, int(d.Seconds()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.save(ctx, "cpu-"+name, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs))
	}()
	return func() { <-done }
}

func (p profiler) save(ctx context.Context, name, path string) {
	if p.dir == "" {
		return
	}
	err := os.MkdirAll(p.dir, 0o755)
	if err == nil {
		err = harness.SaveURL(ctx, http.DefaultClient, "http://"+p.addr+path, filepath.Join(p.dir, name+".pprof"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ingestbench: profile %s: %v\n", name, err)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// loadAvg is printed with the numbers: on a shared box they mean little without it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func numCPU() int {
	n := 0
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		n = bytes.Count(b, []byte("processor\t:"))
	}
	return n
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startIngest runs the binary with the inherited infra environment plus env and waits for
// /readyz; it returns the process id and a stop that sends SIGTERM, so the run also exercises
// graceful shutdown.
func startIngest(ctx context.Context, o options, addr string, env map[string]string) (int, func(), error) {
	cmd := exec.Command(o.ingestBin)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", o.ingestBin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintln(os.Stderr, "ingestbench: ingest exited:", err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd.Process.Pid, stop, nil
			}
		}
		select {
		case err := <-done:
			return 0, nil, fmt.Errorf("ingest exited during start-up: %v", err)
		case <-ctx.Done():
			stop()
			return 0, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return 0, nil, errors.New("ingest not ready within 30s")
		}
	}
}

type generator struct {
	runID, apiKey, target string
	client                *http.Client
	seq                   atomic.Int64
	clock                 atomic.Pointer[cachedTime]
}

// pans are Luhn-valid test card numbers.
var pans = []string{"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"}

// body is one transaction, built with appends rather than fmt: the generator shares the two
// cores with ingest and the broker, and its own cost should not weigh on them.
func (g *generator) body(i int64) []byte {
	return g.appendBody(make([]byte, 0, 320), i)
}

func (g *generator) appendBody(b []byte, i int64) []byte {
	b = append(b, `{"transaction_id":"b`...)
	b = append(b, g.runID...)
	b = append(b, '-')
	b = strconv.AppendInt(b, i, 10)
	b = append(b, `","account_id":"acct-`...)
	b = strconv.AppendInt(b, i%5000, 10)
	b = append(b, `","card_number":"`...)
	b = append(b, pans[i%int64(len(pans))]...)
	b = append(b, `","merchant_id":"m-`...)
	b = strconv.AppendInt(b, i%300, 10)
	b = append(b, `","terminal_id":"t-`...)
	b = strconv.AppendInt(b, i%900, 10)
	b = append(b, `","mcc":"5411","amount_minor":`...)
	b = strconv.AppendInt(b, 100+i%90000, 10)
	b = append(b, `,"currency":"EUR","country":"DE","channel":"ecommerce","device_id":"dev-`...)
	b = strconv.AppendInt(b, i%7000, 10)
	b = append(b, `","ip":"203.0.113.7","event_time":"`...)
	b = append(b, g.eventTime()...)
	return append(b, `"}`...)
}

// eventTime is a second ago in RFC 3339, formatted once per second.
func (g *generator) eventTime() string {
	now := time.Now().Unix()
	if c := g.clock.Load(); c != nil && c.unix == now {
		return c.text
	}
	c := &cachedTime{unix: now, text: time.Unix(now-1, 0).UTC().Format(time.RFC3339)}
	g.clock.Store(c)
	return c.text
}

type cachedTime struct {
	unix int64
	text string
}

// send posts one transaction and reports whether it was accepted (202).
func (g *generator) send(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.target, bytes.NewReader(g.body(g.seq.Add(1))))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+g.apiKey)
	resp, err := g.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusAccepted
}

type result struct {
	lat     []time.Duration
	errors  int
	elapsed time.Duration
}

func (r *result) throughput() float64 { return float64(len(r.lat)) / r.elapsed.Seconds() }

func (r *result) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	i := int(math.Ceil(q*float64(len(r.lat)))) - 1
	return r.lat[max(0, min(i, len(r.lat)-1))]
}

func (r *result) print(name string) {
	fmt.Printf("%-42s %9.0f acks/s  n=%-7d errors=%-5d p50 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  max %7.2f ms\n",
		name, r.throughput(), len(r.lat), r.errors, ms(r.quantile(0.5)), ms(r.quantile(0.99)), ms(r.quantile(0.999)), ms(r.quantile(1)))
}

// openLoop fires requests at their scheduled times whether or not earlier ones returned, and
// measures each from its scheduled time, so a stall shows in the latencies instead of
// silently lowering the offered load (coordinated omission).
func (g *generator) openLoop(ctx context.Context, rate float64, d time.Duration) (*result, error) {
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	res := &result{}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
		}
		wg.Go(func() {
			ok := g.send(ctx)
			lat := time.Since(at)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				res.lat = append(res.lat, lat)
			} else {
				res.errors++
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res, nil
}

// closedLoop runs workers that each send back to back: the throughput the service sustains.
func (g *generator) closedLoop(ctx context.Context, workers int, d time.Duration) (*result, error) {
	res := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for range workers {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			for time.Now().Before(end) && ctx.Err() == nil {
				t := time.Now()
				if g.send(ctx) {
					lat = append(lat, time.Since(t))
				} else {
					errs++
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(res.lat) == 0 {
		return nil, fmt.Errorf("no request was accepted (%d errors)", res.errors)
	}
	return res, nil
}

// batchLoop posts batches of size transactions back to back from workers clients; each
// accepted item counts as one ack, timed by its request.
func (g *generator) batchLoop(ctx context.Context, workers, size int, d time.Duration) (*result, error) {
	res := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	target := g.target + ":batch"
	for range workers {
		wg.Go(func() {
			var body []byte
			for time.Now().Before(end) && ctx.Err() == nil {
				body = append(body[:0], `{"transactions":[`...)
				for i := range size {
					if i > 0 {
						body = append(body, ',')
					}
					body = g.appendBody(body, g.seq.Add(1))
				}
				body = append(body, `]}`...)
				t := time.Now()
				accepted := g.post(ctx, target, body)
				lat := time.Since(t)
				mu.Lock()
				for range accepted {
					res.lat = append(res.lat, lat)
				}
				res.errors += size - accepted
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return res, nil
}

// post sends a batch and returns how many items were accepted.
func (g *generator) post(ctx context.Context, target string, body []byte) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+g.apiKey)
	resp, err := g.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var out struct {
		Accepted int `json:"accepted"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return 0
	}
	return out.Accepted
}

// sampleTx is shaped like what ingest produces for generator bodies.
func sampleTx(i int) *fraudv1.Transaction {
	now := time.Now()
	return &fraudv1.Transaction{
		Id: fmt.Sprintf("bench:braw-%d", i), Source: "bench", ClientTransactionId: fmt.Sprintf("braw-%d", i),
		AccountId:   fmt.Sprintf("acct-%d", i%5000),
		Card:        &fraudv1.Card{Token: strings.Repeat("ab", 32), TokenKeyId: "k1", Bin: "411111", Last4: "1111"},
		AmountMinor: 100 + int64(i%90000), Currency: "EUR", MerchantId: fmt.Sprintf("m-%d", i%300), TerminalId: fmt.Sprintf("t-%d", i%900),
		Mcc: "5411", Country: "DE", Channel: fraudv1.Channel_CHANNEL_ECOMMERCE, DeviceId: fmt.Sprintf("dev-%d", i%7000), Ip: "203.0.113.7",
		EventTime: timestamppb.New(now), ReceivedTime: timestamppb.New(now),
	}
}

func messageSize() int {
	rec, err := kafka.NewRecord("x", "k", sampleTx(123456))
	if err != nil {
		return 0
	}
	return len(rec.Value)
}

// newRawClient is the baseline's producer: the options ingest runs with (the shared ones, the
// linger and the buffer bound), connected and warmed up before anything is measured.
func newRawClient(ctx context.Context, o options, topic string) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(kafka.ProducerOptions(o.brokers), kgo.ProducerLinger(o.linger), kgo.MaxBufferedRecords(ingestMaxInFlight))...)
	if err != nil {
		return nil, err
	}
	for i := range 1000 {
		tx := sampleTx(i)
		rec, err := kafka.NewRecord(topic, tx.GetAccountId(), tx)
		if err != nil {
			cl.Close()
			return nil, err
		}
		cl.Produce(ctx, rec, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("warm up the raw producer: %w", err)
	}
	return cl, nil
}

// rawOpenLoop produces records of the ingest message's size at a fixed rate, each timed from
// its scheduled send to its ack: the latency floor the broker sets for ingest at that rate.
func rawOpenLoop(ctx context.Context, cl *kgo.Client, rate float64, topic string, d time.Duration) (*result, error) {
	res := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
		}
		tx := sampleTx(i)
		rec, err := kafka.NewRecord(topic, tx.GetAccountId(), tx)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			lat := time.Since(at)
			mu.Lock()
			if err != nil {
				res.errors++
			} else {
				res.lat = append(res.lat, lat)
			}
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res, ctx.Err()
}

// rawProduce is the throughput baseline: records of the same size produced as fast as acks
// come back, with as many in flight as ingest's producer buffer holds.
func rawProduce(ctx context.Context, cl *kgo.Client, topic string, d time.Duration) (*result, error) {
	res := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	inflight := make(chan struct{}, rawInFlight)
	start := time.Now()
	end := start.Add(d)
	for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
		tx := sampleTx(i)
		rec, err := kafka.NewRecord(topic, tx.GetAccountId(), tx)
		if err != nil {
			return nil, err
		}
		inflight <- struct{}{}
		t := time.Now()
		wg.Add(1)
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			lat := time.Since(t)
			mu.Lock()
			if err != nil {
				res.errors++
			} else {
				res.lat = append(res.lat, lat)
			}
			mu.Unlock()
			<-inflight
			wg.Done()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res, ctx.Err()
}
