package publish_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
	"github.com/vigil-fraud/vigil/services/ingest/internal/httpapi"
	"github.com/vigil-fraud/vigil/services/ingest/internal/publish"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

// TestBrokerDownAnswers503 drives the real producer at an address where no broker listens:
// the request must end within the publish timeout as a 503 with Retry-After, for a single
// transaction and for a batch, instead of hanging or buffering.
func TestBrokerDownAnswers503(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	producer, err := publish.New([]string{addr}, "tx.v1")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = producer.Close(ctx)
	}()
	keys, _ := auth.ParseKeys("acme:sk_test_abc123")
	tok, _ := txn.NewTokenizer("k1", []byte(strings.Repeat("k", 32)))
	now := time.Now()
	api := httpapi.New(httpapi.Config{
		MaxBodyBytes:   64 << 10,
		Rules:          txn.Rules{MaxClockSkew: 5 * time.Minute, MaxEventAge: time.Hour},
		PublishTimeout: 300 * time.Millisecond,
		RetryAfter:     3 * time.Second,
	}, slog.New(slog.DiscardHandler), httpapi.Deps{
		Keys: auth.NewAuthenticator(keys, nil, time.Second, slog.New(slog.DiscardHandler)), Tokenizer: tok, Publisher: producer,
		Now: func() time.Time { return now },
	})
	handler := api.Handler(httpserver.NewHealth(nil), nil)
	tx := `{"transaction_id":"down-1","account_id":"a","card_number":"4111111111111111","merchant_id":"m","terminal_id":"t",
		"mcc":"5999","amount_minor":1,"currency":"USD","country":"US","channel":"ecommerce","event_time":"` + now.Add(-time.Minute).Format(time.RFC3339) + `"}`
	for path, body := range map[string]string{"/v1/transactions": tx, "/v1/transactions:batch": `{"transactions":[` + tx + `]}`} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer sk_test_abc123")
		rec := httptest.NewRecorder()
		start := time.Now()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "3" {
			t.Errorf("%s: status %d, Retry-After %q: %s", path, rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: took %s with a 300ms publish timeout", path, took)
		}
	}
}
