package httpserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

func TestListenDebug(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		addr    string
		wantErr bool
		wantNil bool
	}{
		{"", false, true},
		{"127.0.0.1:0", false, false},
		{"0.0.0.0:0", true, false},
		{"10.1.2.3:6060", true, false},
		{"nonsense", true, false},
	} {
		s, err := ListenDebug(tc.addr, log)
		if (err != nil) != tc.wantErr || (s == nil) != (tc.wantNil || tc.wantErr) {
			t.Errorf("ListenDebug(%q) = %v, %v", tc.addr, s, err)
		}
		if s != nil {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			resp, err := http.Get("http://" + s.Addr() + "/debug/pprof/goroutine?debug=1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(body) == 0 {
				t.Errorf("goroutine profile: %d, %d bytes", resp.StatusCode, len(body))
			}
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := RunOrWait(ctx, nil); err != nil {
		t.Error(err)
	}
}
