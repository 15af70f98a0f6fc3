package kube

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
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

// startKubelet starts a real kubelet 1.32 that changes nothing on the
// machine outside dir: its root, certificate, pod log and volume plugin
// directories are in dir; no QoS cgroups, no iptables chains, no swap
// check; its runtime is the test's containerd. Two things it does not let
// a flag turn off are kept inside a mount namespace of its own: the kernel
// tunables it would set (files with the values it wants are mounted over
// /proc/sys's there) and the symlink directory it always creates,
// /var/log/containers (a directory of dir is mounted over /var/log).
func startKubelet(t *testing.T, bin, dir, kubeconfig, nodeName, endpoint, manifests string) *proc {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("the kubelet test needs unshare (util-linux) to keep the kubelet's kernel settings to itself: %v", err)
	}
	for _, d := range []string{"root", "pki", "pod-logs", "volume-plugins", "var-log", "sysctl"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
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
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
`, freePort(t), freePort(t), manifests, filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins"), endpoint)
	cfgFile := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	script := "set -e\n"
	for name, v := range kernelTunables {
		f := filepath.Join(dir, "sysctl", strings.ReplaceAll(name, "/", "."))
		if err := os.WriteFile(f, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		script += fmt.Sprintf("mount --bind %s /proc/sys/%s\n", f, name)
	}
	script += fmt.Sprintf("mount --bind %s /var/log\n", filepath.Join(dir, "var-log"))
	script += fmt.Sprintf(`exec %s --config %s --kubeconfig %s --root-dir %s --cert-dir %s --hostname-override %s --v=2`+"\n",
		bin, cfgFile, kubeconfig, filepath.Join(dir, "root"), filepath.Join(dir, "pki"), nodeName)
	// unshare execs the shell, which execs the kubelet: one PID, stopped by it.
	return startProc(t, dir, "kubelet", "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
}

// reflectorErrors returns the kubelet's log lines of failed lists and watches.
func reflectorErrors(log string) []string {
	b, _ := os.ReadFile(log)
	re := regexp.MustCompile(`(?i)reflector\.go.*(failed to (list|watch)|watch of .* ended with)`)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func sysctls(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name := range kernelTunables {
		b, err := os.ReadFile("/proc/sys/" + name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = strings.TrimSpace(string(b))
	}
	return out
}

// TestKubeletAgainstBallastServer registers a real kubelet 1.32, with a
// node token, to `ballast server`: it lists and watches what it needs with
// no reflector error, registers its Node (Ready), runs a static pod and
// creates its mirror; a deleted mirror pod (deleted gracefully, as
// kube-apiserver does) is back at once, as against kube-apiserver (~2 s),
// not after the kubelet's periodic resync.
func TestKubeletAgainstBallastServer(t *testing.T) {
	bins := binaries(t)
	harness.Require(t)
	kubeletBin := filepath.Join(bins, "kubelet")
	if _, err := os.Stat(kubeletBin); err != nil {
		t.Fatalf("no kubelet in %s: hack/kube-binaries.sh builds it", bins)
	}
	kubectlBin := filepath.Join(bins, "kubectl")
	before := sysctls(t)
	_, statErr := os.Stat("/var/log/containers")
	hadContainerLogs := statErr == nil
	bin := ballastBinary(t)
	env := harness.Start(t)
	dir := t.TempDir()

	// ballast server, and a node token for the kubelet.
	dataDir := filepath.Join(dir, "server")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	server := startProc(t, dir, "ballast-server", bin, "server", "--data-dir", dataDir, "--listen", listen, "--log-level", "debug")
	admin := filepath.Join(dataDir, "kubeconfig")
	eventually(t, "ballast server ready", 60*time.Second, func() error {
		if err := server.running(); err != nil {
			return err
		}
		_, err := kubectl(kubectlBin, admin, "get", "--raw", "/readyz")
		return err
	})
	nodeName := fmt.Sprintf("kubelet-%06x", rand.Uint32()&0xffffff)
	out, err := exec.Command(bin, "server", "token", "create", "--node", nodeName, "--data-dir", dataDir).Output()
	if err != nil {
		t.Fatalf("ballast server token create: %v", err)
	}
	token := strings.TrimSpace(string(out))
	nodeKC := filepath.Join(dir, "kubelet.kubeconfig")
	if err := os.WriteFile(nodeKC, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: ballast
  cluster: {server: "https://%s", certificate-authority: %q}
users:
- name: node
  user: {token: %q}
contexts:
- name: node
  context: {cluster: ballast, user: node}
current-context: node
`, listen, filepath.Join(dataDir, "pki", "ca.crt"), token)), 0o600); err != nil {
		t.Fatal(err)
	}

	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(manifests, "hello.yaml"), []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: hello
  namespace: default
spec:
  containers:
  - name: app
    image: %s
`, env.HelloImage())), 0o644); err != nil {
		t.Fatal(err)
	}
	kubelet := startKubelet(t, kubeletBin, filepath.Join(dir, "kubelet"), nodeKC, nodeName, env.Endpoint, manifests)

	eventually(t, "Node "+nodeName+" Ready", 120*time.Second, func() error {
		if err := kubelet.running(); err != nil {
			return err
		}
		out, err := kubectl(kubectlBin, admin, "get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return err
		}
		if out != "True" {
			return fmt.Errorf("Ready=%q", out)
		}
		return nil
	})
	podName := "hello-" + nodeName
	getPod := func() (*pod, error) { return getPod(kubectlBin, admin, "default", podName) }
	var first *pod
	eventually(t, "mirror pod "+podName+" Running", 120*time.Second, func() error {
		if err := kubelet.running(); err != nil {
			return err
		}
		p, err := getPod()
		if err != nil {
			return err
		}
		if p.Status.Phase != "Running" || p.Metadata.Annotations["kubernetes.io/config.mirror"] == "" {
			return fmt.Errorf("phase %q, mirror annotation %q", p.Status.Phase, p.Metadata.Annotations["kubernetes.io/config.mirror"])
		}
		first = p
		return nil
	})

	// Delete the mirror pod as a user does; the kubelet sees the graceful
	// deletion (deletionTimestamp set) and brings a new mirror back.
	deleted := time.Now()
	if out, err := kubectl(kubectlBin, admin, "delete", "pod", "-n", "default", podName, "--wait=false"); err != nil {
		t.Fatalf("kubectl delete: %v: %s", err, out)
	}
	var back time.Duration
	deadline := deleted.Add(30 * time.Second)
	for {
		p, err := getPod()
		if err == nil && p.Metadata.UID != first.Metadata.UID && p.Metadata.DeletionTimestamp == nil {
			back = time.Since(deleted)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror pod was not recreated within 30 s of its deletion (last: %v %+v); kubelet log:\n%s", err, p, tail(kubelet.log, 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("mirror pod deleted through ballast server: a new one (new UID) after %v", back.Round(time.Millisecond))
	// kubelet 1.32 against kube-apiserver takes ~2 s; its periodic resync,
	// which is all a missed update would leave, is 10 min apart here.
	if back > 10*time.Second {
		t.Errorf("the mirror pod came back %v after its deletion; the kubelet did not react to the graceful deletion", back)
	}

	// Nothing the kubelet reads at start failed.
	if b, err := os.ReadFile(kubelet.log); err == nil {
		var noted []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "E") || strings.HasPrefix(l, "W") {
				noted = append(noted, l)
			}
		}
		t.Logf("the kubelet's warnings and errors (%d):\n%s", len(noted), strings.Join(noted, "\n"))
	}
	if errs := reflectorErrors(kubelet.log); len(errs) > 0 {
		t.Errorf("the kubelet's log has %d failed lists or watches:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	kubelet.stop()
	if after := sysctls(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("kernel settings changed on the machine: before %v, after %v", before, after)
	}
	if _, err := os.Stat("/var/log/containers"); err == nil && !hadContainerLogs {
		t.Error("/var/log/containers was created on the machine")
	}
}
