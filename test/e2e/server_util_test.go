package e2e

// Helpers for the tests of `ballast server` as a process: start, kill -9,
// restart on the same data dir and port, run the real kubectl, build
// client-go clients from its kubeconfig or a node token.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// srvProc is one `ballast server` process under test.
type srvProc struct {
	t       *testing.T
	bin     string
	dataDir string
	listen  string   // 127.0.0.1:PORT, fixed so a restart keeps the URL
	extra   []string // more flags (external etcd)

	URL, Kubeconfig string

	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	log    bytes.Buffer
}

func (s *srvProc) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

func (s *srvProc) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// newSrv prepares a server on a free loopback port; start runs it.
func newSrv(t *testing.T, dataDir string, extra ...string) *srvProc {
	t.Helper()
	s := &srvProc{t: t, bin: ballastBinary(t), dataDir: dataDir, listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), extra: extra}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("ballast server (%s) log:\n%s", s.dataDir, s.logText())
		}
	})
	return s
}

// startSrv runs `ballast server` and waits until it prints its URL and
// kubeconfig path.
func (s *srvProc) start() {
	s.startArgs(s.listen)
}

func (s *srvProc) startArgs(listen string) {
	t := s.t
	t.Helper()
	args := append([]string{"server", "--data-dir", s.dataDir, "--listen", listen, "--log-level", "warn"}, s.extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stderr = s
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	var url, kc string
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		closed := false
		for sc.Scan() {
			l := sc.Text()
			s.Write([]byte("stdout: " + l + "\n"))
			if v, ok := strings.CutPrefix(l, "ballast server ready at "); ok {
				url = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "admin kubeconfig: "); ok && !closed {
				kc = strings.TrimSpace(v)
				closed = true
				close(ready)
			}
		}
	}()
	go func(c *exec.Cmd, ch chan struct{}) { _ = c.Wait(); close(ch) }(cmd, s.exited)
	select {
	case <-ready:
	case <-s.exited:
		t.Fatalf("ballast server exited before printing its URL:\n%s", s.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("ballast server did not print its URL within 60 s:\n%s", s.logText())
	}
	if url == "" || kc == "" {
		t.Fatalf("ballast server printed URL %q, kubeconfig %q:\n%s", url, kc, s.logText())
	}
	s.URL, s.Kubeconfig = url, kc
}

// kill sends SIGKILL to the server (by its pid) and waits for it to exit.
func (s *srvProc) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// stop sends SIGTERM and waits (SIGKILL after 15 s).
func (s *srvProc) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.t.Errorf("ballast server did not stop within 15 s of SIGTERM")
		s.kill()
	}
}

// admin is a client-go client from the admin kubeconfig, JSON on the wire.
func (s *srvProc) admin() kubernetes.Interface {
	s.t.Helper()
	return clientFor(s.t, s.restConfig(s.Kubeconfig))
}

func (s *srvProc) restConfig(kubeconfig string) *rest.Config {
	s.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.ContentType = "application/json"
	cfg.AcceptContentTypes = "application/json"
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.Timeout = 20 * time.Second
	return cfg
}

// tokenConfig is a client-go config for a bearer token, trusting the
// server's CA from its data dir.
func (s *srvProc) tokenConfig(token string) *rest.Config {
	return &rest.Config{
		Host: s.URL, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(s.dataDir, "pki", "ca.crt")},
		ContentConfig:   rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"},
		QPS:             500, Burst: 1000, Timeout: 20 * time.Second,
	}
}

func clientFor(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// token runs `ballast server token create --node NODE` and returns the token.
func (s *srvProc) token(node string) string {
	s.t.Helper()
	cmd := exec.Command(s.bin, "server", "token", "create", "--data-dir", s.dataDir, "--node", node)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("ballast server token create --node %s: %v\n%s", node, err, stderr.String())
	}
	tok := strings.TrimSpace(string(out))
	if tok == "" || strings.ContainsAny(tok, " \n") {
		s.t.Fatalf("token create printed %q", out)
	}
	return tok
}

// kubectlRunner runs the real kubectl with a private cache and HOME.
type kubectlRunner struct {
	t     *testing.T
	bin   string
	cache string
	base  []string // e.g. --kubeconfig FILE, or --server/--token/--certificate-authority
}

func newKubectl(t *testing.T, base ...string) *kubectlRunner {
	return &kubectlRunner{t: t, bin: kubectlPath(t), cache: t.TempDir(), base: base}
}

func (k *kubectlRunner) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append(append([]string{"--cache-dir", k.cache}, k.base...), args...)
	cmd := exec.CommandContext(ctx, k.bin, full...)
	cmd.Env = append(os.Environ(), "HOME="+k.cache, "KUBECONFIG=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// eventuallyDo retries f until it succeeds or the timeout passes.
func eventuallyDo(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	if err := testutil.PollEvery(100*time.Millisecond, timeout, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
