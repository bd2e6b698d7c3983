package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// SaveURL writes the body of a GET of url (a pprof profile, say) to the file path.
func SaveURL(ctx context.Context, client *http.Client, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Profile fetches, from every service's /debug/pprof at once, a CPU profile over d and then a
// heap (allocation) profile, into dir as <service>.cpu.pprof and <service>.heap.pprof. Read
// them with `go tool pprof -top <binary> <file>`.
func Profile(ctx context.Context, addrs map[string]string, d time.Duration, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	client := &http.Client{Timeout: d + 30*time.Second}
	fetch := func(url, path string) error { return SaveURL(ctx, client, url, path) }
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(addrs))
	for name, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := "http://" + addr + "/debug/pprof/"
			if err := fetch(fmt.Sprintf("%sprofile?seconds=%d", base, int(d.Seconds())), filepath.Join(dir, name+".cpu.pprof")); err != nil {
				errs <- fmt.Errorf("%s cpu profile: %w", name, err)
				return
			}
			if err := fetch(base+"allocs", filepath.Join(dir, name+".heap.pprof")); err != nil {
				errs <- fmt.Errorf("%s allocation profile: %w", name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}
