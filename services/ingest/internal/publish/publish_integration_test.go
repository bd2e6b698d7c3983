package publish_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/ingest/internal/auth"
	"github.com/vigil-fraud/vigil/services/ingest/internal/httpapi"
	"github.com/vigil-fraud/vigil/services/ingest/internal/publish"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

// TestPublishThroughAPI posts a transaction to the real handler wired to a real producer and
// reads the record back from the broker: what reaches Kafka is what downstream services see,
// so the PAN check is made on the actual bytes there.
func TestPublishThroughAPI(t *testing.T) {
	brokers := testinfra.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close) // registered first, so it runs after the topic is deleted
	topic := testinfra.UniqueName("ingest-test-tx-")
	if err := kafka.EnsureTopics(ctx, admin, 3, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		if _, err := kadm.NewClient(admin).DeleteTopics(dctx, topic); err != nil {
			t.Errorf("delete topic %s: %v", topic, err)
		}
	})

	producer, err := publish.New(brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := producer.Close(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	if err := producer.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	keys, err := auth.ParseKeys("acme:sk_test_abc123")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := txn.NewTokenizer("k1", []byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	api := httpapi.New(httpapi.Config{
		MaxBodyBytes:   64 << 10,
		Rules:          txn.Rules{MaxClockSkew: 5 * time.Minute, MaxEventAge: time.Hour},
		PublishTimeout: 20 * time.Second,
	}, slog.New(slog.DiscardHandler), httpapi.Deps{
		Keys: auth.NewAuthenticator(keys, nil, time.Second, slog.New(slog.DiscardHandler)), Tokenizer: tok, Publisher: producer,
		Now: func() time.Time { return now },
	})
	handler := api.Handler(httpserver.NewHealth(nil), nil)

	const (
		pan     = "5555555555554444"
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	)
	body := `{"transaction_id":"it-1","account_id":"acct-integration","card_number":"` + pan + `",
		"merchant_id":"m-1","terminal_id":"t-1","mcc":"5999","amount_minor":4200,"currency":"USD",
		"country":"US","channel":"card_present","event_time":"` + now.Add(-time.Minute).Format(time.RFC3339) + `"}`
	req := httptest.NewRequest(http.MethodPost, "/v1/transactions", strings.NewReader(body)).WithContext(ctx)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk_test_abc123")
	req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}

	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var records []*kgo.Record
	for len(records) == 0 {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record on %s: %v", topic, err)
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, partition, err)
		})
		records = append(records, fetches.Records()...)
	}
	if len(records) != 1 {
		t.Fatalf("got %d records, want 1", len(records))
	}
	r := records[0]

	if string(r.Key) != "acct-integration" {
		t.Errorf("key %q, want the account id", r.Key)
	}
	if got := kafka.Header(r, kafka.HeaderType); got != "fraud.v1.Transaction" {
		t.Errorf("type header %q", got)
	}
	if got := kafka.Header(r, "traceparent"); !strings.Contains(got, traceID) {
		t.Errorf("traceparent header %q does not carry trace %s", got, traceID)
	}
	var tx fraudv1.Transaction
	if err := kafka.Decode(r, &tx); err != nil {
		t.Fatal(err)
	}
	if tx.GetId() != "acme:it-1" || tx.GetCard().GetToken() != tok.Tokenize(pan).Token ||
		tx.GetCard().GetBin() != "555555" || tx.GetCard().GetLast4() != "4444" || tx.GetAmountMinor() != 4200 {
		t.Errorf("unexpected transaction %v", &tx)
	}

	all := [][]byte{r.Key, r.Value}
	for _, h := range r.Headers {
		all = append(all, []byte(h.Key), h.Value)
	}
	for _, b := range all {
		if bytes.Contains(b, []byte(pan)) {
			t.Fatal("the record contains the card number")
		}
	}
}
