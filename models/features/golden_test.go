package features

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden-*.json.gz from the current implementation")

// goldenHistory is a seeded history that exercises every feature: a few accounts sharing
// devices and terminals, several cards per account, events across a month with bursts, events
// late within and beyond the allowed lateness, refunds and tiny amounts, fraud and legitimate
// labels (some known too late, some duplicated) revealed as the stream would see them.
func goldenHistory() (events []Event, labelsBefore [][]Label) {
	rng := rand.New(rand.NewPCG(7, 11))
	start := time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)
	at := start
	var past []Event
	for i := range 3000 {
		at = at.Add(time.Duration(rng.ExpFloat64() * float64(15*time.Minute)))
		t := at
		switch r := rng.Float64(); {
		case r < 0.03: // late within the lateness
			t = at.Add(-time.Duration(rng.Int64N(int64(50 * time.Minute))))
		case r < 0.04: // beyond it
			t = at.Add(-time.Duration(2+rng.IntN(30)) * time.Hour)
		}
		acct := fmt.Sprint("acct-", rng.IntN(25))
		amount := 100 + rng.Int64N(30000)
		switch r := rng.Float64(); {
		case r < 0.02:
			amount = -amount
		case r < 0.05:
			amount = rng.Int64N(60)
		}
		ev := Event{
			TransactionID: fmt.Sprint("tx-", i),
			AccountID:     acct,
			CardToken:     fmt.Sprintf("card-%s-%d", acct, rng.IntN(2)),
			MerchantID:    fmt.Sprint("m-", rng.IntN(40)),
			TerminalID:    fmt.Sprint("t-", rng.IntN(15)),
			DeviceID:      fmt.Sprint("d-", rng.IntN(30)),
			Country:       []string{"FR", "FR", "FR", "DE", "US"}[rng.IntN(5)],
			Channel:       Channels[rng.IntN(len(Channels))],
			AmountMinor:   amount,
			EventTime:     t,
		}
		if rng.Float64() < 0.05 {
			ev.CardToken, ev.DeviceID, ev.Country = "", "", ""
		}
		// Labels of past transactions become known 0–9 days after them.
		var ls []Label
		for len(past) > 0 && past[0].EventTime.Add(8*24*time.Hour).Before(at) {
			p := past[0]
			past = past[1:]
			if rng.Float64() < 0.3 {
				l := Label{TransactionID: p.TransactionID, TerminalID: p.TerminalID, Fraud: rng.Float64() < 0.5,
					TransactionTime: p.EventTime, KnownAt: p.EventTime.Add(time.Duration(rng.IntN(9*24)) * time.Hour)}
				ls = append(ls, l)
				if rng.Float64() < 0.2 {
					l.Fraud = !l.Fraud
					ls = append(ls, l)
				}
			}
		}
		past = append(past, ev)
		events = append(events, ev)
		labelsBefore = append(labelsBefore, ls)
	}
	return events, labelsBefore
}

func goldenVectors() [][]float64 {
	events, labels := goldenHistory()
	o := NewOffline()
	out := make([][]float64, len(events))
	for i, ev := range events {
		for _, l := range labels[i] {
			o.AddLabel(l)
		}
		out[i] = o.Next(ev)
	}
	return out
}

// TestGolden pins the feature values of the current SchemaVersion: any change to how a value is
// computed fails here, and must come with a new SchemaVersion and `go test -run TestGolden -update`.
func TestGolden(t *testing.T) {
	t.Parallel()
	path := "testdata/golden-" + SchemaVersion + ".json.gz"
	got := goldenVectors()
	if *update {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if err := json.NewEncoder(zw).Encode(got); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update after bumping SchemaVersion)", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]float64
	if err := json.NewDecoder(zr).Decode(&want); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d vectors, golden has %d", len(got), len(want))
	}
	bad := 0
	for i := range got {
		for j := range got[i] {
			if got[i][j] != want[i][j] && bad < 20 {
				bad++
				t.Errorf("event %d: %s = %v, golden %v", i, Names[j], got[i][j], want[i][j])
			}
		}
	}
}
