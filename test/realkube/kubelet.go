package realkube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// kernelTunables are the sysctls a kubelet sets at start (it would write
// them machine-wide, or refuse to start with protectKernelDefaults), with
// the values it wants.
var kernelTunables = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// KubeletConfig says which kubelet to run and how.
type KubeletConfig struct {
	Bin       string // the kubelet binary
	Dir       string // its root, certificates, pod logs, config: everything it writes
	NodeName  string
	Endpoint  string // its container runtime (unix:///PATH)
	Manifests string // its staticPodPath
	// Kubeconfig is its API server's; empty runs it standalone (static
	// pods only, no API server), as on a node with no control plane.
	Kubeconfig string
	// NodeIP is its --node-ip and the address its HTTPS API listens on
	// (127.0.0.1 without one). The kubelet refuses a loopback node IP:
	// NodeAddress gives the machine one that stays local.
	NodeIP string
	// PKI, when set, issues its serving certificate (for NodeIP and
	// 127.0.0.1) and signs the client certificates its API accepts
	// (kube-apiserver's kubelet client, Kubelet.Get's). Without it, it
	// serves a self-signed certificate and accepts no client.
	PKI *PKI
}

// Kubelet is a running kubelet.
type Kubelet struct {
	*Proc
	URL        string // its HTTPS API
	healthz    string
	client     *http.Client // with a client certificate of the PKI
	before     map[string]string
	hadVarLogC bool
	stopOnce   sync.Once
	stopErr    error
}

// StartKubelet starts a real kubelet 1.32 that changes nothing on the
// machine outside cfg.Dir: its root, certificate, pod log and volume plugin
// directories are there; no QoS cgroups, no iptables chains, no swap
// check; its runtime is cfg.Endpoint (a test's containerd). Two things it
// does not let a flag turn off are kept inside a mount namespace of its
// own: the kernel tunables it would set (files with the values it wants
// are mounted over /proc/sys's there) and the symlink directory it always
// creates, /var/log/containers (a directory of Dir is mounted over
// /var/log). It is stopped by PID when tb ends, and Stop says if the
// machine's settings changed anyway.
func StartKubelet(tb testing.TB, cfg KubeletConfig) *Kubelet {
	tb.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		tb.Fatalf("running a kubelet needs unshare (util-linux) to keep the kubelet's kernel settings to itself: %v", err)
	}
	dir := cfg.Dir
	for _, d := range []string{"root", "pki", "pod-logs", "volume-plugins", "var-log", "sysctl"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	k := &Kubelet{before: sysctls(tb)}
	_, err := os.Stat("/var/log/containers")
	k.hadVarLogC = err == nil

	address := "127.0.0.1"
	var nodeIP []string
	if cfg.NodeIP != "" {
		address = cfg.NodeIP
		nodeIP = []string{"--node-ip", cfg.NodeIP}
	}
	port, healthzPort := FreePort(tb), FreePort(tb)
	k.URL = "https://" + net.JoinHostPort(address, fmt.Sprint(port))
	k.healthz = fmt.Sprintf("http://127.0.0.1:%d/healthz", healthzPort)
	tlsConfig := ""
	if cfg.PKI != nil {
		hosts := []string{"127.0.0.1"}
		if cfg.NodeIP != "" {
			hosts = append(hosts, cfg.NodeIP)
		}
		cert, key := cfg.PKI.Issue(tb, "kubelet-serving-"+cfg.NodeName, "system:node:"+cfg.NodeName, []string{"system:nodes"}, hosts...)
		tlsConfig = fmt.Sprintf("tlsCertFile: %s\ntlsPrivateKeyFile: %s\n", cert, key)
		clientCert, clientKey := cfg.PKI.Issue(tb, "kubelet-api-client-"+cfg.NodeName, "kubelet-api-client", []string{"system:masters"})
		k.client = cfg.PKI.client(tb, clientCert, clientKey)
	}
	clientCA := ""
	if cfg.PKI != nil {
		clientCA = cfg.PKI.CA
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
staticPodPath: %s
fileCheckFrequency: 1s
# A periodic resync must not hide a missed watch event: far apart.
syncFrequency: 10m
podLogsDir: %s
volumePluginDir: %s
containerRuntimeEndpoint: %s
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
makeIPTablesUtilChains: false
protectKernelDefaults: false
failSwapOn: false
registerNode: true
resolvConf: ""
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: %q}}
authorization: {mode: AlwaysAllow}
%s`, address, port, healthzPort, cfg.Manifests, filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins"), cfg.Endpoint, clientCA, tlsConfig)
	cfgFile := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o644); err != nil {
		tb.Fatal(err)
	}
	script := "set -e\n"
	for name, v := range kernelTunables {
		f := filepath.Join(dir, "sysctl", strings.ReplaceAll(name, "/", "."))
		if err := os.WriteFile(f, []byte(v+"\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
		script += fmt.Sprintf("mount --bind %s /proc/sys/%s\n", f, name)
	}
	script += fmt.Sprintf("mount --bind %s /var/log\n", filepath.Join(dir, "var-log"))
	args := []string{"--config", cfgFile, "--root-dir", filepath.Join(dir, "root"), "--cert-dir", filepath.Join(dir, "pki"),
		"--hostname-override", cfg.NodeName, "--v=2"}
	if cfg.Kubeconfig != "" {
		args = append(args, "--kubeconfig", cfg.Kubeconfig)
	}
	args = append(args, nodeIP...)
	script += "exec " + cfg.Bin + " " + strings.Join(args, " ") + "\n"
	// unshare execs the shell, which execs the kubelet: one PID, stopped by it.
	k.Proc = StartProc(tb, dir, "kubelet", "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	tb.Cleanup(func() {
		if err := k.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return k
}

// WaitHealthy waits until the kubelet's /healthz answers ok.
func (k *Kubelet) WaitHealthy(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	defer c.CloseIdleConnections()
	Eventually(tb, "the kubelet's /healthz", timeout, func() error {
		if err := k.Running(); err != nil {
			return err
		}
		resp, err := c.Get(k.healthz)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", resp.Status, b)
		}
		return nil
	})
}

// Get reads path from the kubelet's API (/pods, /healthz, ...) with a
// client certificate of its PKI.
func (k *Kubelet) Get(ctx context.Context, path string) ([]byte, error) {
	if k.client == nil {
		return nil, errors.New("the kubelet was started without a PKI: it accepts no client")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.URL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, nil
}

// Stop stops the kubelet by PID (its pods keep running, as they do when
// a kubelet stops) and returns an error if the machine's kernel settings
// or /var/log/containers changed while it ran.
func (k *Kubelet) Stop() error {
	k.stopOnce.Do(func() {
		k.Proc.Stop()
		if k.client != nil {
			k.client.CloseIdleConnections()
		}
		var errs []error
		after, err := readSysctls()
		if err != nil {
			errs = append(errs, err)
		} else if fmt.Sprint(after) != fmt.Sprint(k.before) {
			errs = append(errs, fmt.Errorf("kernel settings changed on the machine while the kubelet ran: before %v, after %v", k.before, after))
		}
		if _, err := os.Stat("/var/log/containers"); err == nil && !k.hadVarLogC {
			errs = append(errs, errors.New("/var/log/containers was created on the machine while the kubelet ran"))
		}
		k.stopErr = errors.Join(errs...)
	})
	return k.stopErr
}

func sysctls(tb testing.TB) map[string]string {
	tb.Helper()
	m, err := readSysctls()
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func readSysctls() (map[string]string, error) {
	out := map[string]string{}
	for name := range kernelTunables {
		b, err := os.ReadFile("/proc/sys/" + name)
		if err != nil {
			return nil, err
		}
		out[name] = strings.TrimSpace(string(b))
	}
	return out, nil
}

// client is an HTTPS client that trusts the CA and presents a
// certificate.
func (p *PKI) client(tb testing.TB, certFile, keyFile string) *http.Client {
	tb.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{cert},
	}}}
}

// NodeAddress gives a node an address of its own that is not a loopback
// address: a random 10.254.x.y/32 added to the lo device (removed when tb
// ends), so it stays local to this machine. kube-apiserver proxies
// nodes/proxy only to such an address, and the kubelet refuses a loopback
// node IP.
func NodeAddress(tb testing.TB) string {
	tb.Helper()
	used := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				used[n.IP.String()] = true
			}
		}
	}
	var ip string
	for {
		ip = fmt.Sprintf("10.254.%d.%d", 1+rand.IntN(250), 1+rand.IntN(250))
		if !used[ip] {
			break
		}
	}
	if out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
		tb.Fatalf("ip addr add %s/32 dev lo: %v: %s (a node address needs root)", ip, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
			tb.Errorf("removing the node's address %s: %v: %s", ip, err, out)
		}
	})
	return ip
}
