package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hello-test-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "hello")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

type proc struct {
	cmd    *exec.Cmd
	stdout *syncBuf
	stderr *syncBuf
	port   string
	done   chan error
}

func start(t *testing.T, env ...string) *proc {
	p := &proc{port: freePort(t), stdout: &syncBuf{}, stderr: &syncBuf{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append([]string{"PORT=" + p.port, "POD_NAME=test-pod"}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done; p.done <- nil })
	return p
}

func (p *proc) get(t *testing.T, path string) string {
	t.Helper()
	var body string
	testutil.Eventually(t, 5*time.Second, func() error {
		resp, err := http.Get("http://127.0.0.1:" + p.port + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err
	})
	return body
}

func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		t.Fatalf("still running after %s", timeout)
		return -1
	}
}

func TestServeAndSIGTERM(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sub", "f.txt")
	p := start(t, "LOG_LINES=3", "WRITE_FILE="+file+"=data=1", "FOO=bar")
	if got := p.get(t, "/"); got != "hello from test-pod\n" {
		t.Errorf("/ = %q", got)
	}
	if got := p.get(t, "/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q", got)
	}
	if got := p.get(t, "/env"); !strings.Contains(got, "FOO=bar\n") {
		t.Errorf("/env = %q", got)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "data=1" {
		t.Errorf("WRITE_FILE: %q %v", b, err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	out := p.stdout.String()
	for _, want := range []string{"hello: starting as test-pod", "line 1\nline 2\nline 3\n", "GET /healthz", "got SIGTERM"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(p.stderr.String(), "stderr startup line") {
		t.Errorf("stderr: %q", p.stderr.String())
	}
}

func TestIgnoreSIGTERM(t *testing.T) {
	p := start(t, "IGNORE_SIGTERM_FOR=2s")
	p.get(t, "/healthz")
	t0 := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	// Once it says it got the signal, it serves on until the time is up.
	testutil.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(p.stdout.String(), "got SIGTERM") {
			return fmt.Errorf("no \"got SIGTERM\" on stdout: %s", p.stdout.String())
		}
		return nil
	})
	if got := p.get(t, "/healthz"); got != "ok\n" {
		t.Errorf("not serving during grace: %q", got)
	}
	if code := p.wait(t, 10*time.Second); code != 0 || time.Since(t0) < 2*time.Second {
		t.Errorf("exit %d after %s, want 0 after 2s", code, time.Since(t0))
	}
}

func TestExitAfterAndExitPath(t *testing.T) {
	p := start(t, "EXIT_AFTER=200ms", "EXIT_CODE=7")
	if code := p.wait(t, 5*time.Second); code != 7 {
		t.Errorf("EXIT_AFTER: exit %d", code)
	}
	p = start(t)
	if got := p.get(t, "/exit?code=3"); got != "exiting 3\n" {
		t.Errorf("/exit = %q", got)
	}
	if code := p.wait(t, 5*time.Second); code != 3 {
		t.Errorf("/exit: exit %d", code)
	}
}

// TestNeedsAndServeAfter: a server that needs another exits 1 while the
// other does not listen yet (SERVE_AFTER), and runs once it does.
func TestNeedsAndServeAfter(t *testing.T) {
	first := start(t, "SERVE_AFTER=3s")
	testutil.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(first.stdout.String(), "SERVE_AFTER 3s") {
			return fmt.Errorf("no SERVE_AFTER line on stdout: %s", first.stdout.String())
		}
		return nil
	})
	second := start(t, "NEEDS=127.0.0.1:"+first.port)
	if code := second.wait(t, 5*time.Second); code != 1 {
		t.Errorf("NEEDS a server that does not listen yet: exit %d, want 1", code)
	}
	if out := second.stdout.String(); !strings.Contains(out, "NEEDS 127.0.0.1:"+first.port+", which does not answer") {
		t.Errorf("stdout does not say what it needs: %s", out)
	}
	if got := first.get(t, "/"); got != "hello from test-pod\n" {
		t.Errorf("after SERVE_AFTER: / = %q", got)
	}
	third := start(t, "NEEDS=127.0.0.1:"+first.port)
	if got := third.get(t, "/"); got != "hello from test-pod\n" {
		t.Errorf("NEEDS a server that answers: / = %q", got)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
