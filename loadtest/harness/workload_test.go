package harness

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestWorkloadBodiesCarryIDAndRecentTimes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	w, err := NewWorkload(WorkloadConfig{Customers: 50, Terminals: 100, Days: 6, SkipDays: 2, Seed: 3}, 100, now)
	if err != nil {
		t.Fatal(err)
	}
	if w.Len() != 100 {
		t.Fatalf("len %d", w.Len())
	}
	b, err := w.Body(99, ClientID("Lx0", 99))
	if err != nil {
		t.Fatal(err)
	}
	var req struct {
		TransactionID string    `json:"transaction_id"`
		EventTime     time.Time `json:"event_time"`
		CardNumber    string    `json:"card_number"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	if req.TransactionID != "Lx0-99" {
		t.Fatalf("id %q", req.TransactionID)
	}
	// The last transaction lands a minute before now; the first no earlier than the span.
	if d := now.Sub(req.EventTime); d < time.Minute || d > time.Minute+time.Second {
		t.Fatalf("last event time %s is %s before now", req.EventTime, d)
	}
	if !strings.HasPrefix(req.CardNumber, "400000") {
		t.Fatalf("card %q is not a simulator test PAN", req.CardNumber)
	}
	if _, err := NewWorkload(WorkloadConfig{Customers: 50, Terminals: 100, Days: 3, SkipDays: 2, Seed: 3}, 1_000_000, now); err == nil || !strings.Contains(err.Error(), "--sim-days") {
		t.Fatalf("too small a simulation: %v", err)
	}
}

func TestWorkloadNeverSendsAZeroAmount(t *testing.T) {
	t.Parallel()
	w, err := NewWorkload(WorkloadConfig{Customers: 300, Terminals: 600, Days: 40, SkipDays: 0, Seed: 1}, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	zeros := 0
	for i := range w.Len() {
		if w.Sample(i).Amount < 0.005 {
			zeros++
		}
		b, _ := w.Body(i, "x")
		var req struct {
			AmountMinor int64 `json:"amount_minor"`
		}
		if err := json.Unmarshal(b, &req); err != nil || req.AmountMinor < 1 {
			t.Fatalf("transaction %d: amount_minor %d (%v)", i, req.AmountMinor, err)
		}
	}
	t.Logf("%d of %d simulated amounts round to 0 cents", zeros, w.Len())
}
