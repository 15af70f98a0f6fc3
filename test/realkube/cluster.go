package realkube

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Cluster is etcd and kube-apiserver on 127.0.0.1.
type Cluster struct {
	Dir       string // their data, certificates, kubeconfigs and logs
	PKI       *PKI
	URL       string // https://127.0.0.1:PORT
	Admin     string // admin kubeconfig (system:masters)
	APIServer *Proc

	// The kubelet-facing credentials: kube-apiserver presents
	// kubelet-client to nodes, which verify it against pki.CA.
	KubeletClientCert, KubeletClientKey string
}

// StartCluster starts etcd and kube-apiserver from bins (Node,RBAC
// authorization and the NodeRestriction admission plugin) and waits until
// /readyz is ok. With verifyKubelet, kube-apiserver verifies the nodes'
// serving certificates against the CA (--kubelet-certificate-authority).
func StartCluster(t testing.TB, bins string, verifyKubelet bool) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c := &Cluster{Dir: dir, PKI: NewPKI(t, dir)}

	// etcd, plain HTTP on loopback.
	clientPort, peerPort := FreePort(t), FreePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd := StartProc(t, dir, "etcd", filepath.Join(bins, "etcd"),
		"--name", "default",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL,
		"--unsafe-no-fsync", // a test's throwaway data
	)
	Eventually(t, "etcd /health", 60*time.Second, func() error {
		if err := etcd.Running(); err != nil {
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
	servingCert, servingKey := c.PKI.Issue(t, "apiserver", "kube-apiserver", nil,
		"127.0.0.1", "10.96.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
	c.KubeletClientCert, c.KubeletClientKey = c.PKI.Issue(t, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"})
	saKey, saPub := c.PKI.KeyPair(t, "sa")
	adminCert, adminKey := c.PKI.Issue(t, "admin", "admin", []string{"system:masters"})
	var kubeletCA []string
	if verifyKubelet {
		kubeletCA = []string{"--kubelet-certificate-authority", c.PKI.CA}
	}
	port := FreePort(t)
	c.URL = fmt.Sprintf("https://127.0.0.1:%d", port)
	c.APIServer = StartProc(t, dir, "kube-apiserver", filepath.Join(bins, "kube-apiserver"), append(kubeletCA,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port),
		"--etcd-servers", etcdURL,
		"--tls-cert-file", servingCert, "--tls-private-key-file", servingKey,
		"--client-ca-file", c.PKI.CA,
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

	hc := c.PKI.client(t, adminCert, adminKey)
	defer hc.CloseIdleConnections()
	Eventually(t, "kube-apiserver /readyz", 3*time.Minute, func() error {
		if err := c.APIServer.Running(); err != nil {
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
	c.Admin = c.Kubeconfig(t, "admin", adminCert, adminKey)
	return c
}

// Kubeconfig writes a kubeconfig for this cluster with a client
// certificate, and returns its path.
func (c *Cluster) Kubeconfig(t testing.TB, name, certFile, keyFile string) string {
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
`, c.URL, b64(c.PKI.CA), name, b64(certFile), b64(keyFile), name, name, name)
	path := filepath.Join(c.Dir, name+".kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// NodeKubeconfig issues a node's credentials (CN=system:node:NAME,
// O=system:nodes, as the kubelet's) and writes its kubeconfig.
func (c *Cluster) NodeKubeconfig(t testing.TB, node string) string {
	t.Helper()
	cert, key := c.PKI.Issue(t, "node-"+node, "system:node:"+node, []string{"system:nodes"})
	return c.Kubeconfig(t, "node-"+node, cert, key)
}

// KubectlIn is the kubectl of the Kubernetes binaries in bins, or else
// the one on PATH.
func KubectlIn(t testing.TB, bins string) string {
	t.Helper()
	kubectlBin := filepath.Join(bins, "kubectl")
	if _, err := os.Stat(kubectlBin); err != nil {
		if kubectlBin, err = exec.LookPath("kubectl"); err != nil {
			t.Fatalf("no kubectl in %s nor on PATH", bins)
		}
	}
	return kubectlBin
}

// Kubectl runs kubectl with a kubeconfig and returns its combined output.
func Kubectl(kubectlBin, kubeconfig string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{"--kubeconfig", kubeconfig}, args...)
	out, err := exec.CommandContext(ctx, kubectlBin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args[2:], " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
