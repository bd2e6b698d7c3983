package httpserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// DebugHandler serves the Go runtime profiles (net/http/pprof) under /debug/pprof/.
func DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// ListenDebug binds the profiling server on addr, which must be a loopback address: profiles
// reveal memory contents and are never served on a service's public port. An empty addr
// disables it (nil server, nil error); Run on a nil *Server returns when ctx ends.
func ListenDebug(addr string, log *slog.Logger) (*Server, error) {
	if addr == "" {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("debug address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("debug address %q: profiles are served on loopback only", addr)
	}
	// CPU profiles and traces stream for their whole duration.
	return Listen(Config{Addr: addr, WriteTimeout: 5 * time.Minute}, DebugHandler(), log.With("server", "debug"))
}

// RunOrWait runs s, or waits for ctx when s is nil (a disabled optional server).
func RunOrWait(ctx context.Context, s *Server) error {
	if s == nil {
		<-ctx.Done()
		return nil
	}
	return s.Run(ctx)
}
