package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// bproc is one long-running ballast command under test (init, join).
type bproc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	out    bytes.Buffer // stdout
	log    bytes.Buffer // stdout and stderr
}

func (p *bproc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *bproc) stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *bproc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startBallast runs `ballast ARGS...` (with no configuration file) and
// waits until it prints a line starting with "ready".
func startBallast(t *testing.T, name string, args ...string) *bproc {
	t.Helper()
	p := &bproc{t: t, name: name}
	p.cmd = exec.Command(ballastBinary(t), append(args, "--config-file=")...)
	p.cmd.Stderr = p
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.log.WriteString("stdout: " + sc.Text() + "\n")
			p.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "ready") && !once {
				once = true
				close(ready)
			}
		}
	}()
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.logText())
		}
	})
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("%s exited before it was ready:\n%s", name, p.logText())
	case <-time.After(90 * time.Second):
		t.Fatalf("%s not ready within 90s:\n%s", name, p.logText())
	}
	return p
}

// stop ends the agent with SIGTERM (pods, the control plane too, keep running).
func (p *bproc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.t.Errorf("%s did not stop within 20s of SIGTERM", p.name)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// ballastOnce runs a short ballast command and returns its combined output.
func ballastOnce(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ballastBinary(t), append(args, "--config-file=")...).CombinedOutput()
	return string(out), err
}

var joinLine = regexp.MustCompile(`ballast join (https://\S+) --token (\S+) --ca-cert-hash (sha256:[0-9a-f]+)`)

// kubectlPod is what the tests read of a pod through kubectl.
type kubectlPod struct {
	Status struct {
		Phase             string `json:"phase"`
		ContainerStatuses []struct {
			ContainerID  string `json:"containerID"`
			RestartCount int    `json:"restartCount"`
			Ready        bool   `json:"ready"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func getPod(k *kubectlRunner, ns, name string) (*kubectlPod, error) {
	out, err := k.run("get", "pod", "-n", ns, name, "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var p kubectlPod
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	if p.Status.Phase != "Running" || len(p.Status.ContainerStatuses) == 0 || !p.Status.ContainerStatuses[0].Ready {
		return &p, fmt.Errorf("pod %s/%s not Running and Ready: %s", ns, name, out)
	}
	return &p, nil
}

// TestInitJoin: `ballast init --etcd=pod` runs Ballast's control plane as
// static pods (etcd, and the server that waits for it), shown Running in
// kube-system by the real kubectl; running it again is safe and another
// control plane is refused; the API comes back by itself after a kill -9
// of the server's container. A second node, with its own containerd and
// bridge, refuses a wrong CA hash, then joins and its mirror pods appear;
// revoked and expired tokens are refused.
func TestInitJoin(t *testing.T) {
	kubectlPath(t)
	env := harness.Start(t)
	dataDir := filepath.Join(env.Dir, "cp")
	manifests := filepath.Join(env.Dir, "manifests")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	kubeletPort := strconv.Itoa(freePort(t))
	initArgs := func(dir string) []string {
		return []string{"init", "--etcd=pod", "--node-name", "cp", "--data-dir", dir, "--pod-manifest-path", manifests,
			"--container-runtime-endpoint", env.Endpoint, "--listen", listen, "--port", kubeletPort,
			"--crash-backoff-initial", "1s", "--crash-backoff-max", "2s"}
	}
	cp := startBallast(t, "ballast init", initArgs(dataDir)...)
	m := joinLine.FindStringSubmatch(cp.stdout())
	if m == nil || !strings.Contains(cp.stdout(), "admin kubeconfig: "+filepath.Join(dataDir, "kubeconfig")) {
		t.Fatalf("ballast init printed no join command or kubeconfig:\n%s", cp.stdout())
	}
	serverURL, token, hash := m[1], m[2], m[3]
	k := newKubectl(t, "--kubeconfig", filepath.Join(dataDir, "kubeconfig"))
	var server *kubectlPod
	eventuallyDo(t, "the control plane's mirror pods Running in kube-system", 90*time.Second, func() error {
		if _, err := getPod(k, "kube-system", "etcd-cp"); err != nil {
			return err
		}
		p, err := getPod(k, "kube-system", "ballast-server-cp")
		server = p
		return err
	})
	if out, err := k.run("get", "nodes"); err != nil || !regexp.MustCompile(`cp\s+Ready`).MatchString(out) {
		t.Errorf("kubectl get nodes:\n%s %v", out, err)
	}
	if out, err := k.run("logs", "-n", "kube-system", "ballast-server-cp", "--tail", "5"); err != nil || out == "" {
		t.Errorf("kubectl logs of the server's own pod: %v\n%s", err, out)
	}

	// Again: refused while the agent runs; with it stopped, the same
	// control plane comes back untouched.
	if out, err := ballastOnce(t, initArgs(dataDir)...); err == nil || !strings.Contains(out, "a node agent already runs") {
		t.Errorf("init while init runs: %v\n%s", err, out)
	}
	cp.stop()
	startBallast(t, "ballast init (again)", initArgs(dataDir)...)
	eventuallyDo(t, "the server's pod kept across init's second run", 60*time.Second, func() error {
		p, err := getPod(k, "kube-system", "ballast-server-cp")
		if err != nil {
			return err
		}
		if p.Status.ContainerStatuses[0].ContainerID != server.Status.ContainerStatuses[0].ContainerID || p.Status.ContainerStatuses[0].RestartCount != 0 {
			return fmt.Errorf("the server's container changed: %+v, was %+v", p.Status, server.Status)
		}
		return nil
	})
	if out, err := ballastOnce(t, initArgs(filepath.Join(env.Dir, "other"))...); err == nil || !strings.Contains(out, "is the control plane of data dir "+dataDir) {
		t.Errorf("init of another control plane in the same manifest dir: %v\n%s", err, out)
	}

	// kill -9 of the server's container: the agent restarts it.
	pid := serverPID(t, dataDir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventuallyDo(t, "the API back after kill -9 of the server", 60*time.Second, func() error {
		p, err := getPod(k, "kube-system", "ballast-server-cp")
		if err != nil {
			return err
		}
		if p.Status.ContainerStatuses[0].RestartCount < 1 {
			return fmt.Errorf("restart count %d", p.Status.ContainerStatuses[0].RestartCount)
		}
		return nil
	})

	// Editing the server's manifest rolls it, as any static pod.
	before, _ := getPod(k, "kube-system", "ballast-server-cp")
	file := filepath.Join(manifests, "ballast-server.yaml")
	data, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(data), `"--log-level=info"`) {
		t.Fatalf("%s: %v\n%s", file, err, data)
	}
	edited := strings.Replace(string(data), `"--log-level=info"`, `"--log-level=debug"`, 1)
	if err := os.WriteFile(file+".tmp", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		t.Fatal(err)
	}
	eventuallyDo(t, "the edited server rolled out", 90*time.Second, func() error {
		p, err := getPod(k, "kube-system", "ballast-server-cp")
		if err != nil {
			return err
		}
		if before != nil && p.Status.ContainerStatuses[0].ContainerID == before.Status.ContainerStatuses[0].ContainerID {
			return fmt.Errorf("still the old container")
		}
		out, err := k.run("get", "pod", "-n", "kube-system", "ballast-server-cp", "-o", "jsonpath={.spec.containers[0].command}")
		if err != nil || !strings.Contains(out, "--log-level=debug") {
			return fmt.Errorf("the mirror's command: %s %v", out, err)
		}
		return nil
	})

	// A second node, with its own containerd and bridge.
	env2 := harness.Start(t)
	wDir := filepath.Join(env2.Dir, "w1")
	wManifests := filepath.Join(env2.Dir, "manifests")
	joinArgs := func(name, dir, tok, h string) []string {
		return []string{"join", serverURL, "--token", tok, "--ca-cert-hash", h, "--node-name", name, "--data-dir", dir,
			"--pod-manifest-path", wManifests, "--container-runtime-endpoint", env2.Endpoint, "--port", strconv.Itoa(freePort(t))}
	}
	wrong := "sha256:" + strings.Repeat("0", 64)
	if out, err := ballastOnce(t, joinArgs("w1", wDir, token, wrong)...); err == nil || !strings.Contains(out, "refusing to join") || !strings.Contains(out, hash) {
		t.Errorf("join with a wrong CA hash: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(wDir, "node.kubeconfig")); !os.IsNotExist(err) {
		t.Errorf("a refused join left credentials: %v", err)
	}
	w := startBallast(t, "ballast join", joinArgs("w1", wDir, token, hash)...)
	if fi, err := os.Stat(filepath.Join(wDir, "node.kubeconfig")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the joined node's kubeconfig: %v %v", fi, err)
	}
	if err := os.MkdirAll(wManifests, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wManifests, "web.yaml"), []byte(manifest{Name: "web", Image: env2.HelloImage()}.yaml()), 0o644); err != nil {
		t.Fatal(err)
	}
	eventuallyDo(t, "the joined node Ready and its mirror pod Running", 90*time.Second, func() error {
		if out, err := k.run("get", "nodes"); err != nil || !regexp.MustCompile(`w1\s+Ready`).MatchString(out) {
			return fmt.Errorf("nodes: %s %v", out, err)
		}
		_, err := getPod(k, "default", "web-w1")
		return err
	})
	w.stop()

	// Revoked and expired join tokens are refused.
	revoked := createJoinToken(t, dataDir)
	if out, err := ballastOnce(t, "server", "token", "list", "--data-dir", dataDir); err != nil || !strings.Contains(out, revoked.id) {
		t.Fatalf("token list does not show the new token: %v\n%s", err, out)
	}
	if out, err := ballastOnce(t, "server", "token", "delete", "--data-dir", dataDir, revoked.id); err != nil {
		t.Fatalf("token delete: %v\n%s", err, out)
	}
	if out, err := ballastOnce(t, "server", "token", "list", "--data-dir", dataDir); err != nil || strings.Contains(out, revoked.id) {
		t.Errorf("token list still shows the revoked token: %v\n%s", err, out)
	}
	third := func(tok string) (string, error) {
		return ballastOnce(t, joinArgs("w2", filepath.Join(env2.Dir, "w2"), tok, hash)...)
	}
	if out, err := third(revoked.token); err == nil || !strings.Contains(out, "unknown or revoked bootstrap token") {
		t.Errorf("join with a revoked token: %v\n%s", err, out)
	}
	expiring := createJoinToken(t, dataDir, "--ttl", "1s")
	eventuallyDo(t, "token list shows the token expired", 30*time.Second, func() error {
		out, err := ballastOnce(t, "server", "token", "list", "--data-dir", dataDir, "-o", "json")
		if err != nil {
			return err
		}
		var items []struct {
			ID      string `json:"id"`
			Expired bool   `json:"expired"`
		}
		if err := json.Unmarshal([]byte(out), &items); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		for _, i := range items {
			if i.ID == expiring.id && i.Expired {
				return nil
			}
		}
		return fmt.Errorf("not expired yet: %s", out)
	})
	if out, err := third(expiring.token); err == nil || !strings.Contains(out, "expired at") {
		t.Errorf("join with an expired token: %v\n%s", err, out)
	}
}

type joinToken struct{ token, id string }

// createJoinToken runs `ballast server token create --join` and returns the
// token and its ID.
func createJoinToken(t *testing.T, dataDir string, extra ...string) joinToken {
	t.Helper()
	cmd := exec.Command(ballastBinary(t), append([]string{"server", "token", "create", "--join", "--data-dir", dataDir, "--config-file="}, extra...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("token create --join: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`join token ([0-9a-f]+),`).FindStringSubmatch(stderr.String())
	if m == nil || !strings.Contains(stderr.String(), "ballast join https://") {
		t.Fatalf("token create --join printed:\n%s", stderr.String())
	}
	return joinToken{token: strings.TrimSpace(string(out)), id: m[1]}
}

// serverPID finds the process of the control plane's server container
// (its command line names the data dir).
func serverPID(t *testing.T, dataDir string) int {
	t.Helper()
	want := "/ballast\x00server\x00--config-file=\x00--data-dir=" + dataDir + "\x00"
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), want) {
			return pid
		}
	}
	t.Fatalf("no process of the server of %s", dataDir)
	return 0
}
