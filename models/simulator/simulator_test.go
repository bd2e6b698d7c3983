package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func small() Config {
	c := Default()
	c.Customers, c.Terminals, c.Days = 500, 1000, 60
	return c
}

func TestGenerateStatistics(t *testing.T) {
	t.Parallel()
	d, err := Generate(small(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := d.Summary()
	t.Log(s)
	// 500 customers × mean 2 tx/day × 60 days, minus ~3% times outside the day and customers
	// without a terminal in reach (density 0.1/unit² → ~7.8 terminals in reach on average).
	if s.Transactions < 50_000 || s.Transactions > 70_000 {
		t.Errorf("transactions = %d, want ~58k", s.Transactions)
	}
	// The Handbook's data set has 0.84% fraud; with 10× fewer terminals and customers the
	// same absolute daily compromises weigh 10× more, so the rate is higher here.
	if s.FraudRate < 0.02 || s.FraudRate > 0.15 {
		t.Errorf("fraud rate = %.4f", s.FraudRate)
	}
	if s.PerScenario[1] < 10 || s.PerScenario[1] > 400 {
		t.Errorf("scenario 1 count = %d", s.PerScenario[1])
	}
	if s.PerScenario[2] == 0 || s.PerScenario[3] == 0 {
		t.Errorf("scenario 2/3 counts = %d/%d, want both > 0", s.PerScenario[2], s.PerScenario[3])
	}
	if s.Frauds != s.PerScenario[1]+s.PerScenario[2]+s.PerScenario[3] {
		t.Errorf("frauds %d != sum of scenarios %v", s.Frauds, s.PerScenario)
	}
	prev := int64(-1)
	for i, tx := range d.Transactions {
		if tx.ID != i || tx.TimeSeconds < prev {
			t.Fatalf("row %d: id %d time %d after %d: not sorted/numbered", i, tx.ID, tx.TimeSeconds, prev)
		}
		prev = tx.TimeSeconds
		if tx.TimeSeconds%86400 == 0 || tx.TimeDays != int(tx.TimeSeconds/86400) {
			t.Fatalf("row %d: time %d day %d", i, tx.TimeSeconds, tx.TimeDays)
		}
		if tx.Amount < 0 {
			t.Fatalf("row %d: negative amount %v", i, tx.Amount)
		}
		if tx.FraudScenario == 0 && tx.Amount > 220 {
			t.Fatalf("row %d: amount %v > 220 not fraud", i, tx.Amount)
		}
		if tx.Fraud != (tx.FraudScenario != 0) {
			t.Fatalf("row %d: fraud %v scenario %d", i, tx.Fraud, tx.FraudScenario)
		}
	}
	for _, c := range d.Customers {
		if c.MeanAmount < 5 || c.MeanAmount > 100 || c.StdAmount != c.MeanAmount/2 || c.MeanTxPerDay < 0 || c.MeanTxPerDay > 4 {
			t.Fatalf("customer %+v out of the Handbook's ranges", c)
		}
		for _, id := range c.AvailableTerms {
			tm := d.Terminals[id]
			if (tm.X-c.X)*(tm.X-c.X)+(tm.Y-c.Y)*(tm.Y-c.Y) >= 25 {
				t.Fatalf("customer %d uses terminal %d outside radius 5", c.ID, id)
			}
		}
	}
}

func TestScenarioInvariants(t *testing.T) {
	t.Parallel()
	d, err := Generate(small(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Scenario 2 marks every transaction of a compromised terminal on a compromised day, so
	// on such a (terminal, day) no transaction may stay legitimate (scenario 3 may relabel).
	type termDay struct{ term, day int }
	compromised := map[termDay]bool{}
	for _, tx := range d.Transactions {
		if tx.FraudScenario == 2 {
			compromised[termDay{tx.TerminalID, tx.TimeDays}] = true
		}
	}
	for _, tx := range d.Transactions {
		if compromised[termDay{tx.TerminalID, tx.TimeDays}] && !tx.Fraud {
			t.Fatalf("tx %d on compromised terminal %d day %d is legitimate", tx.ID, tx.TerminalID, tx.TimeDays)
		}
		// Scenario 3 multiplies a cent amount by 5.
		if tx.FraudScenario == 3 && int64(tx.Amount*100+0.5)%5 != 0 {
			t.Fatalf("scenario-3 amount %v is not 5× a cent amount", tx.Amount)
		}
	}
}

func TestGenerateIsReproducible(t *testing.T) {
	t.Parallel()
	c := small()
	c.Days = 20
	var a, b bytes.Buffer
	for _, buf := range []*bytes.Buffer{&a, &b} {
		d, err := Generate(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WriteCSV(buf); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same seed produced different CSVs")
	}
	c.Seed = 2
	d, _ := Generate(c, nil)
	var other bytes.Buffer
	d.WriteCSV(&other)
	if bytes.Equal(a.Bytes(), other.Bytes()) {
		t.Fatal("a different seed produced the same CSV")
	}
	first := strings.SplitN(a.String(), "\n", 3)
	if first[0] != Header || !strings.HasPrefix(first[1], "0,2018-04-01 ") {
		t.Errorf("csv starts %q / %q", first[0], first[1])
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(*Config){
		"customers": func(c *Config) { c.Customers = 2 },
		"terminals": func(c *Config) { c.Terminals = 1 },
		"days":      func(c *Config) { c.Days = 0 },
		"start":     func(c *Config) { c.Start = time.Time{} },
	} {
		c := small()
		edit(&c)
		if _, err := Generate(c, nil); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name it", name, err)
		}
	}
}

func TestCardNumberIsLuhnValid(t *testing.T) {
	t.Parallel()
	valid := func(pan string) bool {
		sum, double := 0, false
		for i := len(pan) - 1; i >= 0; i-- {
			d := int(pan[i] - '0')
			if double {
				if d *= 2; d > 9 {
					d -= 9
				}
			}
			sum += d
			double = !double
		}
		return sum%10 == 0
	}
	seen := map[string]bool{}
	for _, id := range []int{0, 1, 7, 42, 4999, 123456789} {
		pan := CardNumber(id)
		if len(pan) != 16 || !valid(pan) || seen[pan] {
			t.Errorf("CardNumber(%d) = %s: len %d luhn %v dup %v", id, pan, len(pan), valid(pan), seen[pan])
		}
		seen[pan] = true
		if CardNumber(id) != pan {
			t.Errorf("CardNumber(%d) not deterministic", id)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	for raw, ok := range map[string]bool{
		"http://127.0.0.1:8080/v1/transactions": true,
		"http://localhost:8080/v1/transactions": true,
		"http://[::1]:8080/":                    true,
		"http://10.0.0.1/":                      false,
		"https://example.com/":                  false,
		"ftp://127.0.0.1/":                      false,
	} {
		if err := CheckLoopback(raw); (err == nil) != ok {
			t.Errorf("CheckLoopback(%q) = %v", raw, err)
		}
	}
}

func TestStream(t *testing.T) {
	t.Parallel()
	var got []IngestRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req IngestRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got = append(got, req)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	c := small()
	c.Days = 3
	d, _ := Generate(c, nil)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	n, err := Stream(context.Background(), d.Transactions, StreamConfig{URL: srv.URL, APIKey: "k", Rate: 1000, Count: 5, Now: func() time.Time { return now }})
	if err != nil || n != 5 || len(got) != 5 {
		t.Fatalf("Stream = %d, %v; server got %d", n, err, len(got))
	}
	if got[4].EventTime != now.Format(time.RFC3339) || got[0].CardNumber != CardNumber(d.Transactions[0].CustomerID) || got[0].Currency != "EUR" {
		t.Errorf("requests: first %+v last %+v", got[0], got[4])
	}
	if _, err := Stream(context.Background(), d.Transactions, StreamConfig{URL: srv.URL, APIKey: "wrong", Rate: 1000, Count: 5}); err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad key: %v", err)
	}
}
