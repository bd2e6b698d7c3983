package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// boxMonitor watches the machine while a phase runs, because on a shared two-core box a tail
// latency says little without knowing how long runnable threads waited for a CPU:
//
//   - how late a goroutine of this process wakes from a 1 ms sleep (a probe that does no I/O:
//     its lateness is scheduling delay alone, and every hop of a request pays it);
//   - the kernel's CPU pressure (share of the time some runnable task waited for a CPU);
//   - per watched process (ingest, this bench), CPU time used and time spent runnable but
//     waiting in the run queue (schedstat), summed over its threads.
type boxMonitor struct {
	pids  map[string]int
	start time.Time
	psi0  float64
	proc0 map[string]procTimes
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	late  []time.Duration
}

// boxStats is what a boxMonitor saw over one phase.
type boxStats struct {
	wall time.Duration
	// sleepLate are the quantiles of a 1 ms sleep's lateness.
	sleepLateP50, sleepLateP99 time.Duration
	// pressure is the share of wall time some runnable task waited for a CPU (-1 if unknown).
	pressure float64
	procs    map[string]procTimes
}

// procTimes are a process's CPU and run-queue wait times, summed over its threads.
type procTimes struct {
	cpu, wait time.Duration
}

func watchBox(pids map[string]int) *boxMonitor {
	m := &boxMonitor{pids: pids, start: time.Now(), psi0: cpuPressureTotal(), proc0: map[string]procTimes{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for name, pid := range pids {
		m.proc0[name] = readProcTimes(pid)
	}
	go m.probe()
	return m
}

func (m *boxMonitor) probe() {
	defer close(m.done)
	for {
		t := time.Now()
		select {
		case <-m.stop:
			return
		case <-time.After(time.Millisecond):
		}
		late := time.Since(t) - time.Millisecond
		m.mu.Lock()
		m.late = append(m.late, late)
		m.mu.Unlock()
	}
}

// finish stops the monitor and returns what it saw.
func (m *boxMonitor) finish() boxStats {
	close(m.stop)
	<-m.done
	s := boxStats{wall: time.Since(m.start), pressure: -1, procs: map[string]procTimes{}}
	if p0, p1 := m.psi0, cpuPressureTotal(); p0 >= 0 && p1 >= 0 {
		s.pressure = (p1 - p0) / float64(s.wall.Microseconds())
	}
	for name, pid := range m.pids {
		t := readProcTimes(pid)
		s.procs[name] = procTimes{cpu: t.cpu - m.proc0[name].cpu, wait: t.wait - m.proc0[name].wait}
	}
	slices.Sort(m.late)
	s.sleepLateP50, s.sleepLateP99 = quantileOf(m.late, 0.5), quantileOf(m.late, 0.99)
	return s
}

// line renders the stats, with CPU per transaction when n transactions went through.
func (s boxStats) line(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  box: 1 ms sleep wakes late p50 %.2f ms p99 %.2f ms", ms(s.sleepLateP50), ms(s.sleepLateP99))
	if s.pressure >= 0 {
		fmt.Fprintf(&b, "; CPU pressure %.0f%%", 100*s.pressure)
	}
	names := make([]string, 0, len(s.procs))
	for name := range s.procs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := s.procs[name]
		fmt.Fprintf(&b, "; %s CPU %.0f%% of a core", name, 100*p.cpu.Seconds()/s.wall.Seconds())
		if n > 0 {
			fmt.Fprintf(&b, " (%.0f µs/tx)", float64(p.cpu.Microseconds())/float64(n))
		}
		fmt.Fprintf(&b, ", waited for a CPU %.0f ms/s", float64(p.wait.Milliseconds())/s.wall.Seconds())
	}
	return b.String()
}

func quantileOf(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuPressureTotal is the "some" total of /proc/pressure/cpu in microseconds, -1 if unknown.
func cpuPressureTotal() float64 {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	_, total, ok := strings.Cut(line, "total=")
	if !ok {
		return -1
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(total), 64)
	if err != nil {
		return -1
	}
	return v
}

// readProcTimes sums /proc/PID/task/*/schedstat: nanoseconds on a CPU, nanoseconds runnable
// but waiting. Threads that exited since the last read drop out, so a phase's delta can be
// a little low; zero when unknown.
func readProcTimes(pid int) procTimes {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var t procTimes
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b))
		if len(fields) < 2 {
			continue
		}
		run, err1 := strconv.ParseInt(fields[0], 10, 64)
		wait, err2 := strconv.ParseInt(fields[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		t.cpu += time.Duration(run)
		t.wait += time.Duration(wait)
	}
	return t
}

// listenerPID finds the process listening on a loopback TCP address such as 127.0.0.1:9092
// (the local broker), so its CPU can be watched too; 0 when not found (another namespace, a
// remote broker).
func listenerPID(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// local_address is HEXIP:HEXPORT, st 0A is LISTEN, inode is the tenth field.
			if len(f) < 10 || f[3] != "0A" || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", p)) {
				continue
			}
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && inodes[target] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	return 0
}
