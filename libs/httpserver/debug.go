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
	if err := CheckDebugAddr(addr); err != nil {
		return nil, err
	}
	// CPU profiles and traces stream for their whole duration.
	return Listen(Config{Addr: addr, WriteTimeout: 5 * time.Minute}, DebugHandler(), log.With("server", "debug"))
}

// CheckDebugAddr reports an error unless addr is a loopback host:port (127.0.0.1, ::1 or
// localhost): services validate their debug address with it when they load their config.
func CheckDebugAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q must be a loopback host:port (127.0.0.1, ::1 or localhost): profiles expose internals", addr)
	}
	return nil
}

// RunOrWait runs s, or waits for ctx when s is nil (a disabled optional server).
func RunOrWait(ctx context.Context, s *Server) error {
	if s == nil {
		<-ctx.Done()
		return nil
	}
	return s.Run(ctx)
}
