package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-fraud/vigil/loadtest/harness"
)

// Attempt is one HTTP exchange of a transaction.
type Attempt struct {
	Status     int // 0: transport error (connection refused or reset, timeout)
	RetryAfter bool
	At         time.Time
}

// TxResult is everything the client learnt about one transaction.
type TxResult struct {
	StoredID  string // "source:client id", the id ingest stores
	Account   string
	PAN       string
	Invalid   bool // deliberately invalid: must be refused and never published
	Attempts  []Attempt
	Outcome   harness.Outcome // Acked, Rejected, or Unknown when the client gave up
	FirstSent time.Time
	AckedAt   time.Time
}

// LoadConfig is the steady open-loop load of a chaos run.
type LoadConfig struct {
	URL          string
	Keys         []harness.APIKey
	Prefix       string // client id prefix of the run
	Rate         float64
	Duration     time.Duration
	InvalidEvery int           // every n-th transaction is invalid (0: none)
	GiveUp       time.Duration // a transaction still unanswered after this is Unknown
	Seed         uint64
}

// Load is the record of the whole run's traffic.
type Load struct {
	mu       sync.Mutex
	Txs      []*TxResult
	ByStatus map[string]int
	Samples  map[string][]string
}

// Drive sends cfg.Rate transactions a second for cfg.Duration, open loop (arrival times come
// from the clock, never from answers), and retries each one until it gets a final answer: a
// 2xx or a 4xx other than 409/429. 429, 503 and 409 (the same Idempotency-Key still in flight)
// are retried after their Retry-After, transport errors after a short pause, always with the
// same Idempotency-Key, so a retry of a request whose first attempt did land is answered from
// the idempotency store rather than published again.
func Drive(ctx context.Context, cfg LoadConfig, w *harness.Workload) (*Load, error) {
	plan := harness.Plan{{Rate: cfg.Rate, Duration: cfg.Duration}}
	arrivals := plan.Arrivals(0)
	if len(arrivals) > w.Len() {
		return nil, fmt.Errorf("the run needs %d transactions, the workload has %d", len(arrivals), w.Len())
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 2048, MaxIdleConnsPerHost: 2048, IdleConnTimeout: time.Minute,
	}}
	l := &Load{ByStatus: map[string]int{}, Samples: map[string][]string{}, Txs: make([]*TxResult, len(arrivals))}
	rng := rand.New(rand.NewPCG(cfg.Seed, 7))
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i, a := range arrivals {
		if wait := time.Until(start.Add(a.At)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				l.Txs = l.Txs[:i]
				wg.Wait()
				return l, ctx.Err()
			case <-timer.C:
			}
		}
		key := cfg.Keys[i%len(cfg.Keys)]
		cid := harness.ClientID(cfg.Prefix, i)
		body, err := w.Body(i, cid)
		if err != nil {
			return nil, err
		}
		var req struct {
			Account string `json:"account_id"`
			PAN     string `json:"card_number"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, err
		}
		tx := &TxResult{StoredID: key.Source + ":" + cid, Account: req.Account, PAN: req.PAN}
		if cfg.InvalidEvery > 0 && rng.IntN(cfg.InvalidEvery) == 0 {
			tx.Invalid = true
			if body, err = invalidate(body); err != nil {
				return nil, err
			}
		}
		l.Txs[i] = tx
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.send(ctx, client, cfg, key, cid, body, tx)
		}()
	}
	wg.Wait()
	return l, nil
}

// invalidate makes a request ingest must refuse: a negative amount.
func invalidate(body []byte) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	m["amount_minor"] = -500
	return json.Marshal(m)
}

func (l *Load) send(ctx context.Context, client *http.Client, cfg LoadConfig, key harness.APIKey, cid string, body []byte, tx *TxResult) {
	url := cfg.URL + "/v1/transactions"
	tx.FirstSent = time.Now()
	tx.Outcome = harness.Unknown
	for time.Since(tx.FirstSent) < cfg.GiveUp {
		status, retryAfter, detail, err := post(ctx, client, url, body, key, cid)
		at := time.Now()
		tx.Attempts = append(tx.Attempts, Attempt{Status: status, RetryAfter: retryAfter != "", At: at})
		label := strconv.Itoa(status)
		if err != nil {
			label = "transport_error"
			detail = err.Error()
		}
		l.mu.Lock()
		l.ByStatus[label]++
		if status/100 != 2 && len(l.Samples[label]) < 3 {
			l.Samples[label] = append(l.Samples[label], cid+": "+detail)
		}
		l.mu.Unlock()
		switch {
		case status/100 == 2:
			tx.Outcome, tx.AckedAt = harness.Acked, at
			return
		case status/100 == 4 && status != http.StatusConflict && status != http.StatusTooManyRequests:
			tx.Outcome = harness.Rejected
			return
		}
		if ctx.Err() != nil {
			return
		}
		// Exponential back-off from 250 ms to 4 s (a client hammering a restarting ingest
		// measures nothing), never shorter than Retry-After, which is capped at 5 s: a run has
		// no time for minutes-long waits.
		pause := min(250*time.Millisecond<<min(len(tx.Attempts)-1, 4), 4*time.Second)
		if s, err := strconv.Atoi(retryAfter); err == nil && s >= 0 {
			pause = max(pause, min(time.Duration(s)*time.Second, 5*time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

func post(ctx context.Context, client *http.Client, url string, body []byte, key harness.APIKey, cid string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key.Key)
	req.Header.Set("Idempotency-Key", cid)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(detail), nil
}

// Counts summarises the traffic.
type Counts struct {
	Sent, Invalid, Acked, Rejected, Unknown, Retried int
}

// Counts tallies outcomes.
func (l *Load) Counts() Counts {
	var c Counts
	for _, t := range l.Txs {
		c.Sent++
		if t.Invalid {
			c.Invalid++
		}
		switch t.Outcome {
		case harness.Acked:
			c.Acked++
		case harness.Rejected:
			c.Rejected++
		default:
			c.Unknown++
		}
		if len(t.Attempts) > 1 {
			c.Retried++
		}
	}
	return c
}

// History lists the answers the client got, with their times: "503@15:04:05.123 202@…"
// (status 0 is a transport error).
func (t *TxResult) History() string {
	parts := make([]string, 0, len(t.Attempts))
	for _, a := range t.Attempts {
		parts = append(parts, fmt.Sprintf("%d@%s", a.Status, a.At.UTC().Format("15:04:05.000")))
	}
	return strings.Join(parts, " ")
}
