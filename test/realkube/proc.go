package realkube

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// Proc is a process a test started; Stop ends it by PID.
type Proc struct {
	Name   string
	Log    string // its stdout and stderr
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartProc starts bin with args in dir, its output to dir/name.log, and
// stops it when tb ends (logging the tail of its output if tb failed).
func StartProc(tb testing.TB, dir, name, bin string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{Name: name, Log: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	f, err := os.Create(p.Log)
	if err != nil {
		tb.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Dir = dir
	if err := p.cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.exited) }()
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("%s log (tail):\n%s", name, Tail(p.Log, 80))
		}
	})
	return p
}

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM to the process and SIGKILL after 15 s, and returns
// once it has exited.
func (p *Proc) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Running reports an error, with the tail of its log, if the process has
// exited.
func (p *Proc) Running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); log tail:\n%s", p.Name, p.cmd.ProcessState, Tail(p.Log, 40))
	default:
		return nil
	}
}

// Tail returns the last n lines of a file (or the error reading it).
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a TCP port free on every address of the machine (so
// also for a host-network pod, which listens on all of them).
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Eventually retries check every 200 ms until it passes, and fails tb
// once timeout has passed: for another process's state, which nothing
// signals.
func Eventually(tb testing.TB, what string, timeout time.Duration, check func() error) {
	tb.Helper()
	if err := testutil.PollEvery(200*time.Millisecond, timeout, check); err != nil {
		tb.Fatalf("waited for %s: %v", what, err)
	}
}
