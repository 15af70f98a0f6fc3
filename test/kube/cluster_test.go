package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// binariesEnv names the directory of kube-apiserver, etcd and kubectl that
// hack/kube-binaries.sh printed.
const binariesEnv = "BALLAST_KUBE_BINARIES"

// binaries returns the control plane's binary directory, or skips t (fails
// it when CI=true) when there is none.
func binaries(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(binariesEnv)
	why := ""
	if dir == "" {
		why = binariesEnv + " is not set: run BALLAST_KUBE_BINARIES=$(hack/kube-binaries.sh) go test ./... (as hack/test.sh does)"
	} else {
		for _, b := range []string{"kube-apiserver", "etcd"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				why = fmt.Sprintf("%s: no %s: %v", binariesEnv, b, err)
			}
		}
	}
	testutil.Need(t, why)
	return dir
}

// proc is a process this test started; stop ends it by PID.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// startProc starts bin with args, its output to dir/name.log, and stops it
// when t ends (logging the tail of its output if t failed).
func startProc(t *testing.T, dir, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Dir = dir
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, tail(p.log, 80))
		}
	})
	return p
}

// stop sends SIGTERM to the process and SIGKILL after 15 s.
func (p *proc) stop() {
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

// running reports an error if the process has exited.
func (p *proc) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); log tail:\n%s", p.name, p.cmd.ProcessState, tail(p.log, 40))
	default:
		return nil
	}
}

func tail(path string, n int) string {
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

// freePort returns a free TCP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// eventually retries check every 200 ms until it passes or timeout ends.
func eventually(t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	if err := testutil.PollEvery(200*time.Millisecond, timeout, check); err != nil {
		t.Fatalf("waited for %s: %v", what, err)
	}
}

// cluster is etcd and kube-apiserver on 127.0.0.1.
type cluster struct {
	dir       string
	pki       *pki
	URL       string // https://127.0.0.1:PORT
	Admin     string // admin kubeconfig (system:masters)
	apiserver *proc

	// The kubelet-facing credentials: kube-apiserver presents
	// kubelet-client to nodes, which verify it against pki.CA.
	KubeletClientCert, KubeletClientKey string
}

// startCluster starts etcd and kube-apiserver (Node,RBAC authorization and
// the NodeRestriction admission plugin) and waits until /readyz is ok.
// With verifyKubelet, kube-apiserver verifies the nodes' serving
// certificates against the CA (--kubelet-certificate-authority).
func startCluster(t *testing.T, bins string, verifyKubelet bool) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{dir: dir, pki: newPKI(t, dir)}

	// etcd, plain HTTP on loopback.
	clientPort, peerPort := freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd := startProc(t, dir, "etcd", filepath.Join(bins, "etcd"),
		"--name", "default",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL,
		"--unsafe-no-fsync", // a test's throwaway data
	)
	eventually(t, "etcd /health", 60*time.Second, func() error {
		if err := etcd.running(); err != nil {
			return err
		}
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"health":"true"`) {
			return fmt.Errorf("%s: %s", resp.Status, b)
		}
		return nil
	})

	// kube-apiserver.
	servingCert, servingKey := c.pki.issue(t, "apiserver", "kube-apiserver", nil,
		"127.0.0.1", "10.96.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
	c.KubeletClientCert, c.KubeletClientKey = c.pki.issue(t, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"})
	saKey, saPub := c.pki.keyPair(t, "sa")
	adminCert, adminKey := c.pki.issue(t, "admin", "admin", []string{"system:masters"})
	var kubeletCA []string
	if verifyKubelet {
		kubeletCA = []string{"--kubelet-certificate-authority", c.pki.CA}
	}
	port := freePort(t)
	c.URL = fmt.Sprintf("https://127.0.0.1:%d", port)
	c.apiserver = startProc(t, dir, "kube-apiserver", filepath.Join(bins, "kube-apiserver"), append(kubeletCA,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port),
		"--etcd-servers", etcdURL,
		"--tls-cert-file", servingCert, "--tls-private-key-file", servingKey,
		"--client-ca-file", c.pki.CA,
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--kubelet-client-certificate", c.KubeletClientCert,
		"--kubelet-client-key", c.KubeletClientKey,
		"--kubelet-preferred-address-types", "InternalIP",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.96.0.0/24",
		// No Endpoints for the kubernetes Service: its address is loopback.
		"--endpoint-reconciler-type", "none",
		"--cert-dir", filepath.Join(dir, "apiserver-certs"),
		"--profiling=false",
		"--v", "1",
	)...)

	admin, err := tls.LoadX509KeyPair(adminCert, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.pki.caCert)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{admin},
	}}}
	defer hc.CloseIdleConnections()
	eventually(t, "kube-apiserver /readyz", 3*time.Minute, func() error {
		if err := c.apiserver.running(); err != nil {
			return err
		}
		resp, err := hc.Get(c.URL + "/readyz?verbose")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", resp.Status, b)
		}
		return nil
	})
	c.Admin = c.kubeconfig(t, "admin", adminCert, adminKey)
	return c
}

// kubeconfig writes a kubeconfig for this cluster with a client
// certificate, and returns its path.
func (c *cluster) kubeconfig(t *testing.T, name, certFile, keyFile string) string {
	t.Helper()
	b64 := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kube
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: %s
  context:
    cluster: kube
    user: %s
current-context: %s
`, c.URL, b64(c.pki.CA), name, b64(certFile), b64(keyFile), name, name, name)
	path := filepath.Join(c.dir, name+".kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeKubeconfig issues a node's credentials (CN=system:node:NAME,
// O=system:nodes, as the kubelet's) and writes its kubeconfig.
func (c *cluster) nodeKubeconfig(t *testing.T, node string) string {
	t.Helper()
	cert, key := c.pki.issue(t, "node-"+node, "system:node:"+node, []string{"system:nodes"})
	return c.kubeconfig(t, "node-"+node, cert, key)
}

// kubectl runs kubectl with a kubeconfig and returns its combined output.
func kubectl(kubectlBin, kubeconfig string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{"--kubeconfig", kubeconfig}, args...)
	out, err := exec.CommandContext(ctx, kubectlBin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args[2:], " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
