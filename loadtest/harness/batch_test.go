package harness

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDriveBatched: arrivals go out in batches no larger than asked, a partial batch leaves
// once its oldest arrival waited BatchWait, and every item gets its own outcome.
func TestDriveBatched(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/transactions:batch" || r.Header.Get("Authorization") == "" {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		var body struct {
			Transactions []struct {
				TransactionID string `json:"transaction_id"`
			} `json:"transactions"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		sizes = append(sizes, len(body.Transactions))
		mu.Unlock()
		type item struct {
			Index   int            `json:"index"`
			Status  int            `json:"status"`
			Problem map[string]any `json:"problem,omitempty"`
		}
		var out struct {
			Results []item `json:"results"`
		}
		for i, tx := range body.Transactions {
			if strings.HasSuffix(tx.TransactionID, "-7") { // one bad item
				out.Results = append(out.Results, item{Index: i, Status: 422, Problem: map[string]any{"title": "bad"}})
				continue
			}
			out.Results = append(out.Results, item{Index: i, Status: 202})
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMultiStatus)
		_ = json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	w, err := NewWorkload(WorkloadConfig{Customers: 50, Terminals: 100, Days: 6, SkipDays: 2, Seed: 3}, 200, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	target := Target{URL: srv.URL, Keys: []APIKey{{Source: "s1", Key: "k1"}, {Source: "s2", Key: "k2"}},
		Client: NewClient(), Batch: 10, BatchWait: 20 * time.Millisecond}
	// 43 arrivals at 400/s: four full batches and a partial one the wait sends.
	res, err := DriveBatched(context.Background(), target, w, 0, "Lb0", Plan{{Rate: 400, Duration: time.Second}}, 43)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 43 || res.Acked() != 42 || res.ByStatus["422"] != 1 || res.ByStatus["207"] != 0 {
		t.Fatalf("records %d, acked %d, by status %v", len(res.Records), res.Acked(), res.ByStatus)
	}
	total := 0
	for _, n := range sizes {
		if n > 10 {
			t.Errorf("a batch of %d", n)
		}
		total += n
	}
	if total != 43 || len(sizes) < 5 {
		t.Errorf("batches %v", sizes)
	}
	if res.Ack.Summary().Count != 43 {
		t.Errorf("ack latencies recorded: %d", res.Ack.Summary().Count)
	}
	for _, s := range res.Records {
		if !strings.HasPrefix(s.StoredID, "s1:Lb0-") && !strings.HasPrefix(s.StoredID, "s2:Lb0-") {
			t.Fatalf("stored id %q", s.StoredID)
		}
	}
}
