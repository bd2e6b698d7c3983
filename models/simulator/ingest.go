package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// IngestRequest is the body of POST /v1/transactions.
type IngestRequest struct {
	TransactionID string `json:"transaction_id"`
	AccountID     string `json:"account_id"`
	CardNumber    string `json:"card_number"`
	MerchantID    string `json:"merchant_id"`
	TerminalID    string `json:"terminal_id"`
	MCC           string `json:"mcc"`
	AmountMinor   int64  `json:"amount_minor"`
	Currency      string `json:"currency"`
	Country       string `json:"country"`
	Channel       string `json:"channel"`
	DeviceID      string `json:"device_id"`
	IP            string `json:"ip"`
	EventTime     string `json:"event_time"`
}

// AccountID, TerminalID and MerchantID name the simulator's entities the same way in the
// ingest stream and in the offline dataset builder, so features computed on either side join.
func AccountID(customer int) string  { return "cust-" + strconv.Itoa(customer) }
func TerminalID(terminal int) string { return "term-" + strconv.Itoa(terminal) }
func MerchantID(terminal int) string { return "merch-" + strconv.Itoa(terminal/10) }

// CardNumber is a 16-digit test PAN (prefix 4000 00) derived from the customer id, with a
// valid Luhn check digit, so each simulated customer always pays with the same card.
func CardNumber(customer int) string {
	body := fmt.Sprintf("400000%09d", customer%1_000_000_000)
	return body + strconv.Itoa(luhnCheckDigit(body))
}

func luhnCheckDigit(body string) int {
	sum := 0
	double := true // the check digit will be at position 0 from the right
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return (10 - sum%10) % 10
}

// ToIngest maps one transaction to the API request, with its time shifted by offset.
func ToIngest(t Transaction, offset time.Duration) IngestRequest {
	return IngestRequest{
		TransactionID: "sim-" + strconv.Itoa(t.ID),
		AccountID:     AccountID(t.CustomerID),
		CardNumber:    CardNumber(t.CustomerID),
		MerchantID:    MerchantID(t.TerminalID),
		TerminalID:    TerminalID(t.TerminalID),
		MCC:           "5411",
		// Ingest rejects 0: a simulated amount under half a cent is sent as one cent.
		AmountMinor: max(1, int64(t.Amount*100+0.5)),
		Currency:    "EUR",
		Country:     "FR",
		Channel:     "card_present",
		DeviceID:    "pos-" + strconv.Itoa(t.TerminalID),
		IP:          "10.0." + strconv.Itoa(t.TerminalID/256%256) + "." + strconv.Itoa(t.TerminalID%256),
		EventTime:   t.Time.Add(offset).UTC().Format(time.RFC3339),
	}
}

// StreamConfig bounds a stream to the ingest API.
type StreamConfig struct {
	URL    string // must be a loopback http(s) URL
	APIKey string
	Rate   float64 // requests per second, > 0
	Count  int     // at most this many transactions, > 0
	Client *http.Client
	Now    func() time.Time
	OnSent func(sent int)
}

// CheckLoopback refuses any URL whose host is not a loopback address: the streamer is a demo
// and load-test tool, and must not be pointed at someone else's API by a typo.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: scheme must be http or https", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("url %q: host must be a loopback address (127.0.0.1, ::1, localhost)", raw)
	}
	return nil
}

// Stream posts up to cfg.Count transactions in order, at most cfg.Rate per second. Times are
// shifted so that the last transaction sent is "now", keeping relative times. It stops at the
// first non-2xx response, reporting its status (never the API key).
func Stream(ctx context.Context, txs []Transaction, cfg StreamConfig) (int, error) {
	if err := CheckLoopback(cfg.URL); err != nil {
		return 0, err
	}
	if cfg.Rate <= 0 || cfg.Count <= 0 {
		return 0, fmt.Errorf("rate and count must be > 0, got %v and %d", cfg.Rate, cfg.Count)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	txs = txs[:min(len(txs), cfg.Count)]
	if len(txs) == 0 {
		return 0, nil
	}
	offset := cfg.Now().Truncate(time.Second).Sub(txs[len(txs)-1].Time)
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	for i, t := range txs {
		if i > 0 {
			select {
			case <-ctx.Done():
				return i, ctx.Err()
			case <-tick.C:
			}
		}
		body, err := json.Marshal(ToIngest(t, offset))
		if err != nil {
			return i, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
		if err != nil {
			return i, err
		}
		req.Header.Set("Content-Type", "application/json")
		if cfg.APIKey != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
		}
		resp, err := cfg.Client.Do(req)
		if err != nil {
			return i, fmt.Errorf("post transaction %d: %w", t.ID, err)
		}
		detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return i, fmt.Errorf("post transaction %d: status %d: %s", t.ID, resp.StatusCode, bytes.TrimSpace(detail))
		}
		if cfg.OnSent != nil {
			cfg.OnSent(i + 1)
		}
	}
	return len(txs), nil
}
