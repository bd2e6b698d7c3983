package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one supervised service process. Like an orchestrator, the supervisor starts it again
// whenever it exits, until Stop: a SIGKILL from the fault injector is followed by a restart,
// and so is a crash the faults provoked (counted apart: the checker's invariants must hold
// either way, but an unplanned exit is worth reading the log for).
type Proc struct {
	Name string // service name plus instance suffix ("scoring", "scoring-b")
	bin  string
	addr string
	env  []string
	log  *slog.Logger
	out  *os.File

	mu         sync.Mutex
	cmd        *exec.Cmd
	stopping   bool
	expectKill bool
	paused     bool
	starts     int
	unplanned  []string // exit statuses nobody asked for
	done       chan struct{}
}

// StartProc starts bin and waits until it answers /readyz.
func StartProc(ctx context.Context, name, bin, addr string, env []string, logDir string, log *slog.Logger) (*Proc, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("service binary: %w", err)
	}
	out, err := os.OpenFile(filepath.Join(logDir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	p := &Proc{Name: name, bin: bin, addr: addr, env: env, log: log, out: out, done: make(chan struct{})}
	if err := p.spawn(); err != nil {
		out.Close()
		return nil, err
	}
	go p.supervise()
	if err := p.WaitReady(ctx, 90*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func (p *Proc) spawn() error {
	cmd := exec.Command(p.bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, p.env...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// The services die with the harness instead of outliving a crashed run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.mu.Lock()
	p.cmd = cmd
	p.starts++
	p.paused = false
	p.mu.Unlock()
	fmt.Fprintf(p.out, "{\"chaos\":\"started\",\"pid\":%d,\"at\":%q}\n", cmd.Process.Pid, time.Now().UTC().Format(time.RFC3339Nano))
	return nil
}

// supervise restarts the process whenever it exits, until Stop.
func (p *Proc) supervise() {
	defer close(p.done)
	backoff := 200 * time.Millisecond
	for {
		p.mu.Lock()
		cmd := p.cmd
		p.mu.Unlock()
		began := time.Now()
		err := cmd.Wait()
		p.mu.Lock()
		stopping, planned := p.stopping, p.expectKill
		p.expectKill = false
		if !stopping && !planned {
			p.unplanned = append(p.unplanned, fmt.Sprintf("%s: %v", time.Now().UTC().Format("15:04:05"), err))
		}
		p.mu.Unlock()
		fmt.Fprintf(p.out, "{\"chaos\":\"exited\",\"err\":%q,\"planned\":%v,\"at\":%q}\n", fmt.Sprint(err), planned || stopping, time.Now().UTC().Format(time.RFC3339Nano))
		if stopping {
			return
		}
		if !planned {
			p.log.Warn("service exited on its own; restarting", "service", p.Name, "err", err)
		}
		// A process that dies right after starting (say the broker is down) is retried with a
		// growing delay, as an orchestrator would.
		if time.Since(began) > 10*time.Second {
			backoff = 200 * time.Millisecond
		} else {
			backoff = min(2*backoff, 3*time.Second)
		}
		time.Sleep(backoff)
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for p.spawn() != nil {
			time.Sleep(time.Second)
		}
	}
}

// WaitReady polls /readyz until it answers 200.
func (p *Proc) WaitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	cl := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		resp, err := cl.Get("http://" + p.addr + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("%s stopped", p.Name)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s within %s (see %s.log)", p.Name, p.addr, d, p.Name)
}

func (p *Proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return fmt.Errorf("%s: not running", p.Name)
	}
	if sig == syscall.SIGKILL {
		p.expectKill = true
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	fmt.Fprintf(p.out, "{\"chaos\":\"signal\",\"signal\":%q,\"pid\":%d,\"at\":%q}\n", sig, p.cmd.Process.Pid, time.Now().UTC().Format(time.RFC3339Nano))
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL; the supervisor starts the process again.
func (p *Proc) Kill() error { return p.signal(syscall.SIGKILL) }

// Pause freezes the process (SIGSTOP): it holds its group membership and open transaction
// until the broker times them out, and then comes back as a zombie.
func (p *Proc) Pause() error { return p.signal(syscall.SIGSTOP) }

// Resume thaws it (SIGCONT).
func (p *Proc) Resume() error { return p.signal(syscall.SIGCONT) }

// Stop ends the process for good: SIGTERM, then SIGKILL after 30 s.
func (p *Proc) Stop() {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		<-p.done
		return
	}
	p.stopping = true
	cmd, paused := p.cmd, p.paused
	p.mu.Unlock()
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.log.Warn("service did not stop within 30s; killing", "service", p.Name)
		p.mu.Lock()
		_ = p.cmd.Process.Kill()
		p.mu.Unlock()
		<-p.done
	}
	p.out.Close()
}

// Unplanned lists the exits the harness did not cause.
func (p *Proc) Unplanned() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unplanned...)
}

// LogPath is the process's log file.
func (p *Proc) LogPath() string { return p.out.Name() }

// withEnv returns env with key set to value (replacing any earlier value).
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// envValue is the last value of key in env.
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
