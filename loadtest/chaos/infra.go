package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/redis/go-redis/v9"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-fraud/vigil/loadtest/harness"
)

// PrivateInfra is a broker, Redis and Postgres of the harness's own, started and restarted
// through deploy/local/infra.sh on ports that are never the shared ones: the harness kills
// them, which would break every other user of the shared infrastructure.
type PrivateInfra struct {
	Script                    string // deploy/local/infra.sh
	VarDir                    string // VIGIL_VAR_DIR: state, pid files and logs
	KafkaPort, ControllerPort int
	RedisPort, PGPort         int
}

// sharedPorts are the ports of the shared infrastructure (deploy/local/infra.sh defaults).
var sharedPorts = map[int]string{9092: "Kafka", 9093: "the Kafka controller", 56379: "Redis", 55432: "Postgres"}

// Validate refuses the shared ports and duplicate ports.
func (p PrivateInfra) Validate() error {
	seen := map[int]string{}
	for flag, port := range map[string]int{"--kafka-port": p.KafkaPort, "--kafka-controller-port": p.ControllerPort,
		"--redis-port": p.RedisPort, "--pg-port": p.PGPort} {
		if port <= 0 || port > 65535 {
			return fmt.Errorf("%s: %d is not a port", flag, port)
		}
		if what, ok := sharedPorts[port]; ok {
			return fmt.Errorf("%s: %d is the shared %s; the chaos harness kills its infrastructure and needs a private one", flag, port, what)
		}
		if other, ok := seen[port]; ok {
			return fmt.Errorf("%s and %s: both %d", flag, other, port)
		}
		seen[port] = flag
	}
	if p.VarDir == "" {
		return fmt.Errorf("--var-dir: is required")
	}
	return nil
}

func (p PrivateInfra) env() []string {
	return append(os.Environ(),
		"VIGIL_VAR_DIR="+p.VarDir,
		"VIGIL_KAFKA_PORT="+strconv.Itoa(p.KafkaPort),
		"VIGIL_KAFKA_CONTROLLER_PORT="+strconv.Itoa(p.ControllerPort),
		"VIGIL_REDIS_PORT="+strconv.Itoa(p.RedisPort),
		"VIGIL_PG_PORT="+strconv.Itoa(p.PGPort))
}

// Infra is where the services find the private infrastructure.
func (p PrivateInfra) Infra() harness.Infra {
	return harness.Infra{
		Brokers:     []string{"127.0.0.1:" + strconv.Itoa(p.KafkaPort)},
		RedisAddr:   "127.0.0.1:" + strconv.Itoa(p.RedisPort),
		PostgresURL: fmt.Sprintf("postgres://vigil:vigil-local@127.0.0.1:%d/vigil?sslmode=disable", p.PGPort),
	}
}

func (p PrivateInfra) script(ctx context.Context, cmd string) error {
	c := exec.CommandContext(ctx, p.Script, cmd)
	c.Env = p.env()
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", p.Script, cmd, err, out)
	}
	return nil
}

// Up starts whatever component is not running (the script is idempotent) and waits until the
// broker answers metadata requests.
func (p PrivateInfra) Up(ctx context.Context) error { return p.script(ctx, "up") }

// Down stops all three.
func (p PrivateInfra) Down(ctx context.Context) error { return p.script(ctx, "down") }

// Reset stops them and deletes their data, so a run starts from empty topics and tables.
func (p PrivateInfra) Reset(ctx context.Context) error { return p.script(ctx, "reset") }

func (p PrivateInfra) kafkaPID() (int, error) {
	return readPID(filepath.Join(p.VarDir, "kafka", "kafka.pid"))
}
func (p PrivateInfra) redisPID() (int, error) {
	return readPID(filepath.Join(p.VarDir, "redis", "redis.pid"))
}

// pgDir mirrors infra.sh: the cluster lives under the var dir unless the postgres user cannot
// reach it, in which case it is under /var/tmp, named by a hash of the var dir.
func (p PrivateInfra) pgDir() string {
	d := filepath.Join(p.VarDir, "postgres")
	if _, err := os.Stat(filepath.Join(d, "data", "PG_VERSION")); err == nil {
		return d
	}
	sum := sha256.Sum256([]byte(p.VarDir))
	return "/var/tmp/vigil-postgres-" + hex.EncodeToString(sum[:])[:12]
}

func (p PrivateInfra) pgPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(p.pgDir(), "data", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// LogFiles lists the infrastructure's own logs, for the card-number scan.
func (p PrivateInfra) LogFiles() []string {
	return []string{filepath.Join(p.VarDir, "kafka", "kafka.log"), filepath.Join(p.VarDir, "redis", "redis.log"),
		filepath.Join(p.pgDir(), "postgres.log")}
}

// KillBroker kills the broker with SIGKILL and starts it again.
func (p PrivateInfra) KillBroker(ctx context.Context, down time.Duration) error {
	return p.killRestart(ctx, p.kafkaPID, filepath.Join(p.VarDir, "kafka", "kafka.pid"), syscall.SIGKILL, down)
}

// KillRedis kills Redis with SIGKILL and starts it again (the AOF brings its data back).
func (p PrivateInfra) KillRedis(ctx context.Context, down time.Duration) error {
	return p.killRestart(ctx, p.redisPID, filepath.Join(p.VarDir, "redis", "redis.pid"), syscall.SIGKILL, down)
}

// FlushRedis deletes every key of Redis (FLUSHALL): windows, checkpoints, idempotency claims
// and scoring's decision windows are gone, as after losing the Redis volume.
func (p PrivateInfra) FlushRedis(ctx context.Context) error {
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", p.RedisPort)})
	defer rdb.Close()
	return rdb.FlushAll(ctx).Err()
}

// RestartPostgres stops Postgres the way a crash does (SIGQUIT to the postmaster: immediate
// shutdown, WAL recovery at the next start) and starts it again.
func (p PrivateInfra) RestartPostgres(ctx context.Context, down time.Duration) error {
	return p.killRestart(ctx, p.pgPID, "", syscall.SIGQUIT, down)
}

// killRestart signals the process, waits until it is dead, removes its pid file (a killed
// daemon is adopted by whoever reaps orphans here, possibly late: until then its zombie
// passes infra.sh's kill -0 liveness test and `up` would think it still runs) and starts it.
func (p PrivateInfra) killRestart(ctx context.Context, pid func() (int, error), pidFile string, sig syscall.Signal, down time.Duration) error {
	n, err := pid()
	if err != nil {
		return fmt.Errorf("find pid: %w", err)
	}
	if err := syscall.Kill(n, sig); err != nil {
		return fmt.Errorf("kill %d: %w", n, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for alive(n) {
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still alive 60s after %v", n, sig)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pidFile != "" {
		if err := os.Remove(pidFile); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(down):
	}
	// Restart even when the run is ending: the checker needs the infrastructure back.
	return p.Up(context.WithoutCancel(ctx))
}

// alive reports whether pid runs: a zombie (dead, not yet reaped by whoever adopted it) is dead.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces, so read after the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
