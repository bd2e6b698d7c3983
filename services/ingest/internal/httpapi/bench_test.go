package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkCreateTransaction is the handler's own CPU cost per transaction (auth, decode,
// validation, tokenization, proto) with a publisher that only records: what ingest adds on
// top of HTTP and the broker, which ingestbench measures end to end.
func BenchmarkCreateTransaction(b *testing.B) {
	h := newHarness(b, nil)
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
