package chaos

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tail keeps the last lines a process wrote, to show when a check fails.
type tail struct {
	mu    sync.Mutex
	lines []string
	max   int
	// watch, if set, is called with each line.
	watch func(string)
}

func (l *tail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.lines = append(l.lines, s)
		if l.watch != nil {
			l.watch(s)
		}
	}
	if len(l.lines) > l.max {
		l.lines = append([]string(nil), l.lines[len(l.lines)-l.max:]...)
	}
	return len(p), nil
}

func (l *tail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// proc is one ballast process under test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// start runs bin with args; each stdout and stderr line goes to log.
func start(t *testing.T, name, bin string, log *tail, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			log.Write([]byte(sc.Text() + "\n"))
		}
	}()
	go func() { _ = cmd.Wait(); pw.Close(); close(p.exited) }()
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill9 ends the process with SIGKILL, by its PID.
func (p *proc) kill9() {
	_ = syscall.Kill(p.pid(), syscall.SIGKILL)
	<-p.exited
}

// stop ends the process with SIGTERM (SIGKILL after 20 s).
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.kill9()
	}
}

// alive tells whether the process still runs.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}
