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
	"github.com/ballast-dev/ballast/test/realkube"
)

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

// TestKubeletAgainstBallastServer registers a real kubelet 1.32, with a
// node token, to `ballast server`: it lists and watches what it needs with
// no reflector error, registers its Node (Ready), runs a static pod and
// creates its mirror; a deleted mirror pod (deleted gracefully, as
// kube-apiserver does) is back at once, as against kube-apiserver (~2 s),
// not after the kubelet's periodic resync.
func TestKubeletAgainstBallastServer(t *testing.T) {
	bins := realkube.Binaries(t, "kubelet", "kubectl")
	harness.Require(t)
	kubectlBin := filepath.Join(bins, "kubectl")
	bin := ballastBinary(t)
	env := harness.Start(t)
	dir := t.TempDir()

	// ballast server, and a node token for the kubelet.
	dataDir := filepath.Join(dir, "server")
	listen := fmt.Sprintf("127.0.0.1:%d", realkube.FreePort(t))
	server := realkube.StartProc(t, dir, "ballast-server", bin, "server", "--data-dir", dataDir, "--listen", listen, "--log-level", "debug")
	admin := filepath.Join(dataDir, "kubeconfig")
	realkube.Eventually(t, "ballast server ready", 60*time.Second, func() error {
		if err := server.Running(); err != nil {
			return err
		}
		_, err := realkube.Kubectl(kubectlBin, admin, "get", "--raw", "/readyz")
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
	kubelet := realkube.StartKubelet(t, realkube.KubeletConfig{
		Bin: filepath.Join(bins, "kubelet"), Dir: filepath.Join(dir, "kubelet"), NodeName: nodeName,
		Endpoint: env.Endpoint, Manifests: manifests, Kubeconfig: nodeKC,
	})

	realkube.Eventually(t, "Node "+nodeName+" Ready", 120*time.Second, func() error {
		if err := kubelet.Running(); err != nil {
			return err
		}
		out, err := realkube.Kubectl(kubectlBin, admin, "get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
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
	realkube.Eventually(t, "mirror pod "+podName+" Running", 120*time.Second, func() error {
		if err := kubelet.Running(); err != nil {
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
	if out, err := realkube.Kubectl(kubectlBin, admin, "delete", "pod", "-n", "default", podName, "--wait=false"); err != nil {
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
			t.Fatalf("the mirror pod was not recreated within 30 s of its deletion (last: %v %+v); kubelet log:\n%s", err, p, realkube.Tail(kubelet.Log, 60))
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
	if b, err := os.ReadFile(kubelet.Log); err == nil {
		var noted []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "E") || strings.HasPrefix(l, "W") {
				noted = append(noted, l)
			}
		}
		t.Logf("the kubelet's warnings and errors (%d):\n%s", len(noted), strings.Join(noted, "\n"))
	}
	if errs := reflectorErrors(kubelet.Log); len(errs) > 0 {
		t.Errorf("the kubelet's log has %d failed lists or watches:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	// The machine's kernel settings and /var/log are as they were.
	if err := kubelet.Stop(); err != nil {
		t.Error(err)
	}
}
