package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/vigil-fraud/vigil/models/simulator"
)

// APIKey is one ingest credential; ingest stores transaction ids as "source:client id".
type APIKey struct{ Source, Key string }

// Target is the ingest API the driver posts to.
type Target struct {
	URL         string // base URL, loopback only
	Keys        []APIKey
	Idempotency bool // send Idempotency-Key (the client id) with every request
	MaxInFlight int  // requests outstanding at once; arrivals beyond are counted as not sent
	Client      *http.Client
	// Batch, when ≥ 2, sends arrivals in batches of this many to /v1/transactions:batch
	// (DriveBatched), or after BatchWait for the oldest waiting one.
	Batch     int
	BatchWait time.Duration
}

// Sent is what happened to one arrival.
type Sent struct {
	StoredID string
	Step     int
	Intended time.Time
	Outcome  Outcome
	Fraud    bool
}

// LoadResult is one open-loop phase.
type LoadResult struct {
	Prefix    string
	Plan      Plan
	Start     time.Time
	SendSpan  time.Duration // start → last response
	Ack       *Histogram    // intended send → response
	AckSeries *Series
	ByStatus  map[string]int
	Records   []Sent
	Samples   map[string][]string // first answers per non-2xx status (problem+json, never the request)
	Lagging   int                 // arrivals dispatched more than 100 ms after their time (the driver itself fell behind)
}

// Acked counts 2xx answers.
func (r *LoadResult) Acked() int {
	n := 0
	for _, s := range r.Records {
		if s.Outcome == Acked {
			n++
		}
	}
	return n
}

// ServerErrors counts 5xx answers.
func (r *LoadResult) ServerErrors() int {
	n := 0
	for k, v := range r.ByStatus {
		if len(k) == 3 && k[0] == '5' {
			n += v
		}
	}
	return n
}

// Drive posts workload transactions first, first+1, … on the plan's arrival times, each in
// its own goroutine, and measures each ack from its intended send time, so a stalled server
// shows up as latency rather than as fewer requests (no coordinated omission).
func Drive(ctx context.Context, t Target, w *Workload, first int, prefix string, plan Plan, limit int) (*LoadResult, error) {
	arrivals, err := t.arrivals(w, first, plan, limit)
	if err != nil {
		return nil, err
	}
	res := &LoadResult{Prefix: prefix, Plan: plan, Ack: NewHistogram(), ByStatus: map[string]int{}, Samples: map[string][]string{}, Records: make([]Sent, len(arrivals))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var last time.Time
	slots := make(chan struct{}, t.MaxInFlight)
	url := t.URL + "/v1/transactions"
	res.Start = time.Now()
	res.AckSeries = NewSeries(res.Start)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i, a := range arrivals {
		due := res.Start.Add(a.At)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				res.Records = res.Records[:i]
				wg.Wait()
				return res, ctx.Err()
			case <-timer.C:
			}
		} else if wait < -100*time.Millisecond {
			// Latency is still measured from the intended time; this only tells whether the
			// offered rate was really offered (a CPU-starved generator bunches arrivals).
			res.Lagging++
		}
		key := t.Keys[i%len(t.Keys)]
		cid := ClientID(prefix, first+i)
		res.Records[i] = Sent{StoredID: key.Source + ":" + cid, Step: a.Step, Intended: due, Fraud: w.Fraud(first + i)}
		body, err := w.Body(first+i, cid)
		if err != nil {
			return nil, err
		}
		select {
		case slots <- struct{}{}:
		default:
			res.Records[i].Outcome = Rejected
			mu.Lock()
			res.ByStatus["not_sent_inflight_cap"]++
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(i int, body []byte, key APIKey, cid string) {
			defer wg.Done()
			defer func() { <-slots }()
			status, outcome, detail := post(ctx, t, url, body, key, cid)
			now := time.Now()
			lat := now.Sub(due)
			res.Ack.Record(lat)
			res.AckSeries.Record(due, lat)
			mu.Lock()
			res.Records[i].Outcome = outcome
			res.ByStatus[status]++
			if detail != "" && len(res.Samples[status]) < 3 {
				res.Samples[status] = append(res.Samples[status], cid+": "+detail)
			}
			if now.After(last) {
				last = now
			}
			mu.Unlock()
		}(i, body, key, cid)
	}
	wg.Wait()
	res.SendSpan = last.Sub(res.Start)
	return res, nil
}

// arrivals checks the target and returns the plan's arrivals, which must fit the workload from
// first on; it defaults MaxInFlight.
func (t *Target) arrivals(w *Workload, first int, plan Plan, limit int) ([]Arrival, error) {
	if err := simulator.CheckLoopback(t.URL); err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	if len(t.Keys) == 0 {
		return nil, fmt.Errorf("no API key")
	}
	arrivals := plan.Arrivals(limit)
	if first+len(arrivals) > w.Len() {
		return nil, fmt.Errorf("the plan needs %d transactions from %d, the workload has %d: raise --sim-days or lower --count",
			len(arrivals), first, w.Len())
	}
	if t.MaxInFlight <= 0 {
		t.MaxInFlight = 20000
	}
	return arrivals, nil
}

func post(ctx context.Context, t Target, url string, body []byte, key APIKey, cid string) (string, Outcome, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "error", Rejected, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key.Key)
	if t.Idempotency {
		req.Header.Set("Idempotency-Key", cid)
	}
	resp, err := t.Client.Do(req)
	if err != nil {
		// The request may have reached ingest: its outcome is unknown, not a rejection.
		return "transport_error", Unknown, err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return strconv.Itoa(resp.StatusCode), Acked, ""
	}
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 500 {
		// A publish that timed out may still land; the checker flags the 5xx itself.
		return strconv.Itoa(resp.StatusCode), Unknown, string(detail)
	}
	return strconv.Itoa(resp.StatusCode), Rejected, string(detail)
}

// NewClient is an HTTP client sized for open-loop load on loopback.
func NewClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute,
	}}
}
