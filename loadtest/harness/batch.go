package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DriveBatched is Drive for a payment system that micro-batches: arrivals keep their
// open-loop times, and are posted to /v1/transactions:batch in batches of t.Batch, or as soon
// as the oldest waiting arrival has waited t.BatchWait. Each transaction's ack latency runs
// from its own intended time to the batch's answer, so batching's wait is part of it.
func DriveBatched(ctx context.Context, t Target, w *Workload, first int, prefix string, plan Plan, limit int) (*LoadResult, error) {
	arrivals, err := t.arrivals(w, first, plan, limit)
	if err != nil {
		return nil, err
	}
	if t.Batch < 2 {
		return nil, fmt.Errorf("batch size %d: want at least 2", t.Batch)
	}
	if t.BatchWait <= 0 {
		t.BatchWait = 5 * time.Millisecond
	}
	res := &LoadResult{Prefix: prefix, Plan: plan, Ack: NewHistogram(), ByStatus: map[string]int{}, Samples: map[string][]string{}, Records: make([]Sent, len(arrivals))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var last time.Time
	slots := make(chan struct{}, max(1, t.MaxInFlight/t.Batch))
	url := t.URL + "/v1/transactions:batch"
	res.Start = time.Now()
	res.AckSeries = NewSeries(res.Start)
	batchNo := 0
	var pending []int
	var bodies []json.RawMessage
	record := func(idx []int, status string, outcome func(j int) (Outcome, string, string)) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for j, i := range idx {
			o, st, detail := outcome(j)
			if st == "" {
				st = status
			}
			lat := now.Sub(res.Records[i].Intended)
			res.Ack.Record(lat)
			res.AckSeries.Record(res.Records[i].Intended, lat)
			res.Records[i].Outcome = o
			res.ByStatus[st]++
			if detail != "" && len(res.Samples[st]) < 3 {
				res.Samples[st] = append(res.Samples[st], detail)
			}
		}
		if now.After(last) {
			last = now
		}
	}
	flush := func() {
		if len(pending) == 0 {
			return
		}
		idx, items := pending, bodies
		pending, bodies = nil, nil
		key := t.Keys[batchNo%len(t.Keys)]
		batchNo++
		select {
		case slots <- struct{}{}:
		default:
			mu.Lock()
			for _, i := range idx {
				res.Records[i].Outcome = Rejected
				res.ByStatus["not_sent_inflight_cap"]++
			}
			mu.Unlock()
			return
		}
		body, err := json.Marshal(map[string]any{"transactions": items})
		if err != nil {
			panic(err) // raw JSON items always marshal
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			status, results, detail := postBatch(ctx, t, url, body, key)
			record(idx, status, func(j int) (Outcome, string, string) {
				if results == nil { // the whole batch failed
					if status == "transport_error" || (len(status) == 3 && status[0] == '5') {
						return Unknown, "", detail
					}
					return Rejected, "", detail
				}
				r, ok := results[j]
				if !ok {
					return Unknown, "batch_item_missing", ""
				}
				st := strconv.Itoa(r.Status)
				switch {
				case r.Status/100 == 2:
					return Acked, st, ""
				case r.Status >= 500:
					return Unknown, st, string(r.Problem)
				}
				return Rejected, st, string(r.Problem)
			})
		}()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i, a := range arrivals {
		due := res.Start.Add(a.At)
		for {
			wake := due
			if len(pending) > 0 {
				if flushAt := res.Records[pending[0]].Intended.Add(t.BatchWait); flushAt.Before(wake) {
					wake = flushAt
				}
			}
			wait := time.Until(wake)
			if wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					res.Records = res.Records[:i]
					wg.Wait()
					return res, ctx.Err()
				case <-timer.C:
				}
			}
			if wake.Equal(due) || !time.Now().Before(due) {
				break
			}
			flush() // the oldest waiting arrival has waited long enough
		}
		if time.Since(due) > 100*time.Millisecond {
			res.Lagging++
		}
		key := t.Keys[batchNo%len(t.Keys)]
		cid := ClientID(prefix, first+i)
		res.Records[i] = Sent{StoredID: key.Source + ":" + cid, Step: a.Step, Intended: due, Fraud: w.Fraud(first + i)}
		body, err := w.Body(first+i, cid)
		if err != nil {
			return nil, err
		}
		pending = append(pending, i)
		bodies = append(bodies, body)
		if len(pending) >= t.Batch {
			flush()
		}
	}
	flush()
	wg.Wait()
	res.SendSpan = last.Sub(res.Start)
	return res, nil
}

type batchResult struct {
	Index   int             `json:"index"`
	Status  int             `json:"status"`
	Problem json.RawMessage `json:"problem"`
}

// postBatch posts one batch; results is nil when the batch as a whole was not answered with
// per-item results (transport error, 4xx/5xx for the whole body).
func postBatch(ctx context.Context, t Target, url string, body []byte, key APIKey) (string, map[int]batchResult, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "error", nil, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key.Key)
	resp, err := t.Client.Do(req)
	if err != nil {
		return "transport_error", nil, err.Error()
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "transport_error", nil, err.Error()
	}
	status := strconv.Itoa(resp.StatusCode)
	if resp.StatusCode/100 != 2 {
		return status, nil, string(raw[:min(len(raw), 300)])
	}
	var out struct {
		Results []batchResult `json:"results"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "bad_batch_response", nil, err.Error()
	}
	byIndex := make(map[int]batchResult, len(out.Results))
	for _, r := range out.Results {
		byIndex[r.Index] = r
	}
	return status, byIndex, ""
}
