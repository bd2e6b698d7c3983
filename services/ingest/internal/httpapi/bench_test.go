package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkCreateTransaction is the handler's own CPU cost per transaction (auth, decode,
// validation, tokenization, proto; logs at info as in production) with a publisher that only records: what ingest adds on
// top of HTTP and the broker, which ingestbench measures end to end.
func BenchmarkCreateTransaction(b *testing.B) {
	h := newHarnessWith(b, options{production: true})
	body := encode(b, validBody())
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/transactions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		h.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d", rec.Code)
		}
		h.pub.mu.Lock()
		h.pub.msgs, h.pub.ctxs = h.pub.msgs[:0], h.pub.ctxs[:0]
		h.pub.mu.Unlock()
	}
}

// BenchmarkCreateBatch is the handler's CPU cost of a 500-item batch; ns/op / 500 is the cost
// per transaction on the batch endpoint.
func BenchmarkCreateBatch(b *testing.B) {
	h := newHarnessWith(b, options{production: true})
	items := make([]string, 500)
	for i := range items {
		v := validBody()
		v["transaction_id"] = fmt.Sprintf("tx-%d", i)
		items[i] = encode(b, v)
	}
	body := `{"transactions":[` + strings.Join(items, ",") + `]}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/transactions:batch", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		h.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
		h.pub.mu.Lock()
		h.pub.msgs, h.pub.ctxs = h.pub.msgs[:0], h.pub.ctxs[:0]
		h.pub.mu.Unlock()
	}
}

// BenchmarkDecodeBatch compares the fast decoder with encoding/json on a 500-item batch.
func BenchmarkDecodeBatch(b *testing.B) {
	items := make([]string, 500)
	for i := range items {
		v := validBody()
		v["transaction_id"] = fmt.Sprintf("tx-%d", i)
		items[i] = encode(b, v)
	}
	body := []byte(`{"transactions":[` + strings.Join(items, ",") + `]}`)
	for _, d := range []struct {
		name   string
		decode func([]byte) error
	}{
		{"fast", func(b []byte) error { _, err := parseBatch(b); return err }},
		{"encoding_json", func(b []byte) error { _, err := slowBatch(b); return err }},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := d.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
