package containerd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run fake containerds (shell scripts that never answer CRI) as
// the current user: they need neither root nor containerd.

// logWatch is a log sink that lets a test wait for a line.
type logWatch struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogWatch() *logWatch { return &logWatch{changed: make(chan struct{}, 1)} }

func (l *logWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *logWatch) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

// waitFor waits until the log holds want.
func (l *logWatch) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(l.String(), want) {
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("the log never said %q:\n%s", want, l.String())
		}
	}
}

// fakeProcess is a Process whose "containerd" is script (run by /bin/sh),
// which never answers CRI Version.
func fakeProcess(t *testing.T, script string, hungAfter time.Duration) (*Process, *logWatch) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "containerd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := Config{Dir: dir, HungAfter: hungAfter}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	logs := newLogWatch()
	p := &Process{cfg: cfg, configPath: ConfigPath(dir), bin: bin, log: slog.New(slog.NewTextHandler(logs, nil))}
	t.Cleanup(func() {
		if pid := p.Pid(); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	return p, logs
}

// waitPidFile waits until startProcess has written the pid file, that is
// until the fake containerd runs and Ballast is waiting for it to answer.
func waitPidFile(t *testing.T, p *Process) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(p.pidPath()); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no pid file: the fake containerd was not started")
		}
		<-tick.C
	}
}

// A caller shutting down while containerd starts must not kill it: it is
// left running, with its pid file, for the next agent to adopt.
func TestCancelledStartLeavesContainerdRunning(t *testing.T) {
	p, _ := fakeProcess(t, "exec sleep 600", time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.startProcess(ctx) }()
	pid := waitPidFile(t, p)
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("startProcess after cancel: %v, want context.Canceled", err)
	}
	if !alive(pid) {
		t.Fatalf("containerd (pid %d) was killed because its caller was shutting down", pid)
	}
	if _, err := os.Stat(p.pidPath()); err != nil {
		t.Errorf("pid file of the running containerd: %v", err)
	}
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		t.Fatal("the process is recorded as exited")
	default:
	}
}

// When Supervise returns while it is restarting containerd, the fresh
// containerd keeps running (TestAdoptAndSupervise's flake, issue 8).
func TestSuperviseReturningDuringRestartLeavesContainerd(t *testing.T) {
	p, _ := fakeProcess(t, "exec sleep 600", time.Hour)
	// A previous containerd that has just exited.
	gone := make(chan struct{})
	close(gone)
	p.mu.Lock()
	p.pid, p.exited, p.started = 0, gone, time.Now()
	p.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Supervise(ctx) }()
	pid := waitPidFile(t, p)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Supervise: %v", err)
	}
	if !alive(pid) {
		t.Fatalf("the containerd Supervise was starting (pid %d) was killed when Supervise returned", pid)
	}
}

// A containerd that neither answers nor uses CPU for HungAfter is killed.
func TestHungContainerdIsKilled(t *testing.T) {
	p, logs := fakeProcess(t, "exec sleep 600", 300*time.Millisecond)
	err := p.startProcess(context.Background())
	if !errors.Is(err, errHung) {
		t.Fatalf("startProcess: %v, want a hung containerd", err)
	}
	for _, want := range []string{"did not answer CRI Version", "used no CPU for 300ms", p.LogPath()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	<-exited // closed once the killed process is reaped
	if _, err := os.Stat(p.pidPath()); !os.IsNotExist(err) {
		t.Errorf("pid file of the killed containerd: %v", err)
	}
	if !strings.Contains(logs.String(), "containerd is hung") {
		t.Errorf("kill not logged:\n%s", logs.String())
	}
}

// A containerd that is busy (using CPU) is waited for past HungAfter, and
// Ballast says so.
func TestBusyContainerdIsWaitedFor(t *testing.T) {
	p, logs := fakeProcess(t, "while :; do :; done", 300*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.startProcess(ctx) }()
	pid := waitPidFile(t, p)
	// The report comes once the wait has lasted HungAfter: the moment an
	// idle containerd would have been killed.
	logs.waitFor(t, "containerd is busy but does not answer yet")
	if !alive(pid) {
		t.Fatalf("busy containerd (pid %d) was killed", pid)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("startProcess: %v", err)
	}
	if !alive(pid) {
		t.Fatalf("busy containerd (pid %d) was killed on cancel", pid)
	}
}

func TestProgress(t *testing.T) {
	t0 := time.Unix(1000, 0)
	after := 10 * time.Second
	steps := []struct {
		at   time.Duration
		cpu  uint64
		ok   bool
		hung bool
	}{
		{at: 0, cpu: 5, ok: true},
		{at: 9 * time.Second, cpu: 5, ok: true},              // idle, not long enough
		{at: 11 * time.Second, cpu: 6, ok: true},             // moved just in time
		{at: 20 * time.Second, cpu: 6, ok: true},             // idle 9 s
		{at: 21 * time.Second, cpu: 0, ok: false},            // unreadable counts as idle: 10 s, not more
		{at: 22 * time.Second, cpu: 6, ok: true, hung: true}, // idle 11 s
	}
	g := progress{last: t0, cpu: 5}
	for i, s := range steps {
		if got := g.hung(t0.Add(s.at), s.cpu, s.ok, after); got != s.hung {
			t.Errorf("step %d (at %v, cpu %d, ok %v): hung = %v, want %v", i, s.at, s.cpu, s.ok, got, s.hung)
		}
	}
}

func TestParseCPUTicks(t *testing.T) {
	for _, c := range []struct {
		stat string
		want uint64
		ok   bool
	}{
		{"1234 (containerd) S 1 1234 1234 0 -1 4194560 100 0 0 0 70 30 0 0 20 0 12 0 500 0 0", 100, true},
		{"42 (a b) c) R 1 42 42 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 1 0 0", 15, true},
		{"42 (x) R 1 2", 0, false},
		{"no parenthesis", 0, false},
		{"1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 8 0", 0, false},
	} {
		got, ok := parseCPUTicks(c.stat)
		if got != c.want || ok != c.ok {
			t.Errorf("parseCPUTicks(%q) = %d, %v; want %d, %v", c.stat, got, ok, c.want, c.ok)
		}
	}
}
