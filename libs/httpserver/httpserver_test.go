package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
