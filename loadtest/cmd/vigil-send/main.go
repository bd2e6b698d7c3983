// Command vigil-send posts generated transactions to ingest at a fixed arrival rate, for demos
// and smoke tests. (The load-test issue grows this into the open-loop benchmark harness.)
//
//	VIGIL_SEND_API_KEY=... vigil-send --url http://127.0.0.1:8080 --rate 50 --count 500
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-send:", err)
		os.Exit(1)
	}
}

type options struct {
	url      string
	rate     float64
	count    int
	accounts int
	seed     uint64
	apiKey   string
	prefix   string
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("vigil-send", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "ingest base URL (loopback only)")
	fs.Float64Var(&o.rate, "rate", 50, "transactions per second")
	fs.IntVar(&o.count, "count", 500, "transactions to send")
	fs.IntVar(&o.accounts, "accounts", 200, "distinct accounts")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed")
	fs.StringVar(&o.prefix, "id-prefix", "", "transaction id prefix (default: a per-run timestamp)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.apiKey = os.Getenv("VIGIL_SEND_API_KEY")
	var errs []error
	if o.apiKey == "" {
		errs = append(errs, errors.New("VIGIL_SEND_API_KEY: is required (an ingest API key)"))
	}
	if o.rate <= 0 || o.rate > 100_000 {
		errs = append(errs, fmt.Errorf("--rate: %g is outside (0, 100000]", o.rate))
	}
	if o.count <= 0 || o.count > 10_000_000 {
		errs = append(errs, fmt.Errorf("--count: %d is outside [1, 10000000]", o.count))
	}
	if o.accounts <= 0 {
		errs = append(errs, fmt.Errorf("--accounts: %d must be positive", o.accounts))
	}
	u, err := url.Parse(o.url)
	if err != nil || u.Hostname() == "" {
		errs = append(errs, fmt.Errorf("--url: %q is not a URL", o.url))
	} else if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		// Traffic generators here only ever target this machine.
		errs = append(errs, fmt.Errorf("--url: host %q is not a loopback address", h))
	}
	if o.prefix == "" {
		o.prefix = "demo-" + strconv.FormatInt(time.Now().Unix(), 36)
	}
	return o, errors.Join(errs...)
}

// luhn completes a digit string with its check digit.
func luhn(body string) string {
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-i)%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + strconv.Itoa((10-sum%10)%10)
}

func body(o options, r *rand.Rand, i int) []byte {
	acct := r.IntN(o.accounts)
	amount := int64(500 + r.IntN(9_500)) // 5–100 EUR
	switch p := r.Float64(); {
	case p < 0.01:
		amount = 600_000 + int64(r.IntN(100_000)) // the rare very large one
	case p < 0.05:
		amount = 100_000 + int64(r.IntN(200_000))
	}
	b, _ := json.Marshal(map[string]any{
		"transaction_id": fmt.Sprintf("%s-%07d", o.prefix, i),
		"account_id":     fmt.Sprintf("acct-%05d", acct),
		"card_number":    luhn(fmt.Sprintf("4000%011d", acct)),
		"merchant_id":    fmt.Sprintf("m-%03d", r.IntN(50)),
		"terminal_id":    fmt.Sprintf("term-%04d", r.IntN(500)),
		"mcc":            "5411",
		"amount_minor":   amount,
		"currency":       "EUR",
		"country":        "FR",
		"channel":        []string{"card_present", "ecommerce", "contactless"}[r.IntN(3)],
		"device_id":      fmt.Sprintf("dev-%05d", acct),
		"ip":             "203.0.113.7",
		"event_time":     time.Now().UTC().Format(time.RFC3339Nano),
	})
	return b
}

func run(ctx context.Context, args []string) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(o.seed, 0))
	client := &http.Client{Timeout: 10 * time.Second}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		byStatus  = map[string]int{}
		wg        sync.WaitGroup
	)
	interval := time.Duration(float64(time.Second) / o.rate)
	start := time.Now()
	// Open loop: arrivals follow the clock, not the responses, so a slow server is measured,
	// not hidden.
	for i := 0; i < o.count; i++ {
		due := start.Add(time.Duration(i) * interval)
		select {
		case <-ctx.Done():
			i = o.count
			continue
		case <-time.After(time.Until(due)):
		}
		payload := body(o, r, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, o.url+"/v1/transactions", bytes.NewReader(payload))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+o.apiKey)
			t0 := time.Now()
			resp, err := client.Do(req)
			status := "error"
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status = strconv.Itoa(resp.StatusCode)
			}
			mu.Lock()
			latencies = append(latencies, time.Since(t0))
			byStatus[status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	fmt.Printf("sent %d in %s (%.1f tx/s); by status %v; ack latency p50 %s p99 %s max %s\n",
		len(latencies), elapsed.Round(time.Millisecond), float64(len(latencies))/elapsed.Seconds(), byStatus,
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
	if byStatus["202"] != len(latencies) {
		return fmt.Errorf("%d of %d requests were not accepted", len(latencies)-byStatus["202"], len(latencies))
	}
	return nil
}
