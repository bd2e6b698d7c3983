// Package httpserver runs an HTTP server with sane timeouts, health endpoints and a graceful stop.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Config of one listener.
type Config struct {
	Addr            string
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	ShutdownTimeout time.Duration
}

// Server owns one http.Server and its listener.
type Server struct {
	cfg Config
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
}

// Listen binds the address now, so a taken port fails start-up rather than a goroutine later.
func Listen(cfg Config, h http.Handler, log *slog.Logger) (*Server, error) {
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	return &Server{
		cfg: cfg,
		ln:  ln,
		log: log,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then stops accepting and drains in-flight requests.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info("http server listening", "addr", s.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", s.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown %s: %w", s.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Check reports whether one dependency is usable.
type Check func(ctx context.Context) error

// Health serves /livez (the process runs) and /readyz (every dependency answers). It is not
// ready until MarkReady, so orchestrators send no traffic before start-up finished.
type Health struct {
	checks map[string]Check
	ready  atomic.Bool
}

// NewHealth returns health endpoints over the named checks.
func NewHealth(checks map[string]Check) *Health { return &Health{checks: checks} }

// MarkReady flips /readyz to consult the checks.
func (h *Health) MarkReady() { h.ready.Store(true) }

// Live always answers 200 while the process serves HTTP.
func (h *Health) Live() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}
}

// Ready runs every check with a short deadline.
func (h *Health) Ready() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status := map[string]string{}
		ok := h.ready.Load()
		if !ok {
			status["startup"] = "starting"
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		for name, check := range h.checks {
			if err := check(ctx); err != nil {
				status[name] = err.Error()
				ok = false
			} else {
				status[name] = "ok"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": ok, "checks": status})
	}
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors names each bad field of the request.
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError is one bad field, addressed as a JSON pointer-ish path ("amount_minor", "items/3/currency").
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// ErrExited is WaitReady's error when the process ended before it was ready.
var ErrExited = errors.New("exited during start-up")

// WaitReady polls http://addr/readyz every 100 ms until it answers 200 OK, for up to limit.
// It gives up early when exited is closed (the process ended: ErrExited) or ctx ends. It is
// how tests and the load harness wait for a service they started.
func WaitReady(ctx context.Context, addr string, limit time.Duration, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready at %s within %s", addr, limit)
		}
		select {
		case <-exited:
			return ErrExited
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
