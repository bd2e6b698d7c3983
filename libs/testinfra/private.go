package testinfra

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Private is a set of infrastructure started by deploy/local/infra.sh in its own directory on
// free ports, for a test that kills its broker. The script always starts Kafka, Redis and
// Postgres together; such tests use (and kill) only its Kafka.
type Private struct {
	Dir    string
	script string
	env    []string
	port   int
}

// RepoRoot is the directory holding go.work above the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the test's directory")
		}
		dir = parent
	}
}

// FreeTCPPort returns a loopback port nothing listens on at the moment.
func FreeTCPPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartPrivate starts a private set under var/<name> of the repository, or under the
// directory the environment variable dirEnv names. It must not be the shared infrastructure's
// directory: the test kills its broker. The set is killed and removed at cleanup.
func StartPrivate(t testing.TB, name, dirEnv string) *Private {
	t.Helper()
	root := RepoRoot(t)
	dir := os.Getenv(dirEnv)
	if dir == "" {
		dir = filepath.Join(root, "var", name)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if shared := filepath.Join(root, "var"); dir == shared || dir == os.Getenv("VIGIL_VAR_DIR") {
		t.Fatalf("%s=%s is the shared infrastructure's directory; the test kills its broker", dirEnv, dir)
	}
	p := &Private{Dir: dir, script: filepath.Join(root, "deploy", "local", "infra.sh"), port: FreeTCPPort(t)}
	p.env = append(os.Environ(),
		"VIGIL_VAR_DIR="+dir,
		"VIGIL_KAFKA_PORT="+strconv.Itoa(p.port),
		"VIGIL_KAFKA_CONTROLLER_PORT="+strconv.Itoa(FreeTCPPort(t)),
		"VIGIL_REDIS_PORT="+strconv.Itoa(FreeTCPPort(t)),
		"VIGIL_PG_PORT="+strconv.Itoa(FreeTCPPort(t)),
		"VIGIL_KAFKA_HEAP=384m",
	)
	// A run that crashed may have left its set running (on other ports).
	p.Kill9Kafka(t)
	p.Run(t, "down")
	t.Cleanup(func() {
		p.Kill9Kafka(t) // its data is thrown away, so no graceful stop to wait for
		p.Run(t, "down")
	})
	p.Run(t, "up")
	return p
}

// Brokers is the private broker's address.
func (p *Private) Brokers() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Run runs infra.sh command (up, down) on the private set.
func (p *Private) Run(t testing.TB, command string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.script, command)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("infra.sh %s (VIGIL_VAR_DIR=%s): %v\n%s", command, p.Dir, err, out)
	}
}

// Kill9Kafka kills the broker without letting it shut down, and waits until the process is
// gone: infra.sh up takes a dying JVM for a running broker.
func (p *Private) Kill9Kafka(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Dir, "kafka", "kafka.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("kafka pid file: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return // already gone
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("kafka pid %d still alive 30s after SIGKILL", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
