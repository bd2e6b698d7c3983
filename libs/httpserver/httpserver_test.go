package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	failing := errors.New("redis down")
	var fail bool
	h := NewHealth(map[string]Check{"redis": func(context.Context) error {
		if fail {
			return failing
		}
		return nil
	}})
	get := func() (int, map[string]any) {
		rec := httptest.NewRecorder()
		h.Ready()(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Fatalf("before MarkReady: %d", code)
	}
	h.MarkReady()
	if code, _ := get(); code != http.StatusOK {
		t.Fatalf("ready: %d", code)
	}
	fail = true
	code, body := get()
	if code != http.StatusServiceUnavailable || body["checks"].(map[string]any)["redis"] != "redis down" {
		t.Fatalf("failing check: %d %v", code, body)
	}
}

func TestServerRunsAndDrains(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	entered := make(chan struct{})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		time.Sleep(200 * time.Millisecond)
		_, _ = w.Write([]byte("done"))
	})
	s, err := Listen(Config{Addr: "127.0.0.1:0"}, mux, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-entered
	cancel() // shutdown while the request is in flight: it must still complete
	if body := <-got; body != "done" {
		t.Fatalf("in-flight request got %q", body)
	}
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
}

func TestWriteProblem(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	WriteProblem(rec, Problem{Status: 422, Errors: []FieldError{{Field: "amount_minor", Detail: "must be > 0"}}})
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q", ct)
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Title != "Unprocessable Entity" || p.Errors[0].Field != "amount_minor" {
		t.Fatalf("problem %+v %v", p, err)
	}
}

func TestWaitReady(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	go func() { time.Sleep(250 * time.Millisecond); ready.Store(true) }()
	if err := WaitReady(ctx, addr, 10*time.Second, nil); err != nil {
		t.Fatalf("becomes ready: %v", err)
	}
	exited := make(chan struct{})
	close(exited)
	if err := WaitReady(ctx, freeAddr(t), 10*time.Second, exited); !errors.Is(err, ErrExited) {
		t.Fatalf("process gone: %v, want ErrExited", err)
	}
	if err := WaitReady(ctx, freeAddr(t), 300*time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), "within") {
		t.Fatalf("never ready: %v, want a timeout", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := WaitReady(cctx, freeAddr(t), 10*time.Second, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
