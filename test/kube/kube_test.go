package kube

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
	"github.com/ballast-dev/ballast/test/realkube"
)

// ballastBinary builds cmd/ballast from the main module (two levels up).
func ballastBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ballast")
	cmd := exec.Command("go", "build", "-C", "../..", "-o", bin, "./cmd/ballast")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -C ../.. ./cmd/ballast: %v\n%s", err, out)
	}
	return bin
}

// nodeFlags returns the flags `ballast node --help` lists.
func nodeFlags(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, err := exec.Command(bin, "node", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("ballast node --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "--") {
			flags[strings.TrimSuffix(f, ",")] = true
		}
	}
	return flags
}

// getPod reads pod ns/name with kubectl.
func getPod(kubectlBin, kubeconfig, ns, name string) (*pod, error) {
	out, err := realkube.Kubectl(kubectlBin, kubeconfig, "get", "pod", "-n", ns, name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var p pod
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	return &p, nil
}

// pod is the part of a Pod the test reads.
type pod struct {
	Metadata struct {
		UID               string            `json:"uid"`
		Annotations       map[string]string `json:"annotations"`
		DeletionTimestamp *string           `json:"deletionTimestamp"`
		OwnerReferences   []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []struct {
			ContainerID  string `json:"containerID"`
			Ready        bool   `json:"ready"`
			RestartCount int    `json:"restartCount"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

// TestNodeAgainstKubeAPIServer runs `ballast node --kubeconfig` with node
// credentials (system:node:NAME in system:nodes) against kube-apiserver 1.32
// with Node,RBAC authorization and NodeRestriction, and checks with the real
// kubectl that the Node registers and is Ready, that its mirror pod is
// admitted and Running, comes back when deleted, goes when its file does,
// and that `kubectl logs` reaches the node through kube-apiserver.
func TestNodeAgainstKubeAPIServer(t *testing.T) {
	bins := realkube.Binaries(t)
	harness.Require(t)
	kubectlBin := realkube.KubectlIn(t, bins)
	bin := ballastBinary(t)
	flags := nodeFlags(t, bin)
	if !flags["--kubeconfig"] {
		t.Fatal("`ballast node` has no --kubeconfig flag: the node cannot talk to an API server yet (issue 5)")
	}

	env := harness.Start(t) // containerd and the registry with the hello image
	// With --tls-cert-file, the node serves a certificate from the cluster's
	// CA and kube-apiserver verifies it.
	servingCert := flags["--tls-cert-file"] && flags["--tls-private-key-file"]
	c := realkube.StartCluster(t, bins, servingCert)

	const nodeName = "kube-node"
	const podName = "hello-" + nodeName
	admin := func(args ...string) (string, error) { return realkube.Kubectl(kubectlBin, c.Admin, args...) }
	nodeKC := c.NodeKubeconfig(t, nodeName)

	// The node's credentials really are restricted by the Node authorizer.
	if out, err := realkube.Kubectl(kubectlBin, nodeKC, "get", "secrets", "-A"); err == nil || !strings.Contains(out, "Forbidden") {
		t.Fatalf("node credentials listed secrets (want Forbidden): %v %s", err, out)
	}

	manifests := filepath.Join(env.Dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: hello
  namespace: default
  labels:
    app: hello
spec:
  containers:
  - name: app
    image: %s
    env:
    - name: LOG_LINES
      value: "3"
`, env.HelloImage())
	if err := os.WriteFile(filepath.Join(manifests, "hello.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}

	// kube-apiserver proxies nodes/proxy only to a node address that is
	// not loopback, as to any real node: the node gets one of its own.
	nodeIP := realkube.NodeAddress(t)
	args := []string{"node",
		"--kubeconfig", nodeKC,
		"--node-name", nodeName,
		"--node-ip", nodeIP,
		"--container-runtime-endpoint", env.Endpoint,
		"--data-dir", filepath.Join(env.Dir, "ballast"),
		"--pod-manifest-path", manifests,
		"--images-dir", filepath.Join(env.Dir, "images"),
		"--log-level", "debug",
	}
	kubeletAPI := flags["--port"] && flags["--client-ca-file"]
	if kubeletAPI {
		// kube-apiserver reaches the node at InternalIP:port with its
		// kubelet-client certificate, issued by this CA.
		args = append(args, "--port", fmt.Sprint(realkube.FreePort(t)), "--client-ca-file", c.PKI.CA)
		if flags["--address"] {
			args = append(args, "--address", nodeIP)
		}
		if servingCert {
			cert, key := c.PKI.Issue(t, "kubelet-serving", "system:node:"+nodeName, []string{"system:nodes"}, nodeIP)
			args = append(args, "--tls-cert-file", cert, "--tls-private-key-file", key)
		}
	}
	node := realkube.StartProc(t, c.Dir, "ballast-node", bin, args...)

	// The Node registers and is Ready, with the address kube-apiserver uses.
	realkube.Eventually(t, "Node "+nodeName+" Ready", 90*time.Second, func() error {
		if err := node.Running(); err != nil {
			return err
		}
		out, err := admin("get", "node", nodeName, "-o",
			`jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.addresses[?(@.type=="InternalIP")].address} {.status.nodeInfo.containerRuntimeVersion}`)
		if err != nil {
			return err
		}
		if f := strings.Fields(out); len(f) < 3 || f[0] != "True" || f[1] != nodeIP {
			return fmt.Errorf("want Ready=True, InternalIP %s and a runtime version, got %q", nodeIP, out)
		}
		return nil
	})
	realkube.Eventually(t, "the node's Lease", 30*time.Second, func() error {
		out, err := admin("get", "lease", "-n", "kube-node-lease", nodeName, "-o", "jsonpath={.spec.holderIdentity}")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != nodeName {
			return fmt.Errorf("holderIdentity %q", out)
		}
		return nil
	})

	// The mirror pod is admitted (NodeRestriction) and Running.
	getPod := func() (*pod, error) { return getPod(kubectlBin, c.Admin, "default", podName) }
	waitRunning := func(what string, check func(p *pod) error) *pod {
		t.Helper()
		var got *pod
		realkube.Eventually(t, what, 2*time.Minute, func() error {
			if err := node.Running(); err != nil {
				return err
			}
			p, err := getPod()
			if err != nil {
				return err
			}
			if p.Metadata.DeletionTimestamp != nil {
				// kube-apiserver deletes a bound pod gracefully: it only sets
				// deletionTimestamp, and the node must finish the deletion
				// (grace period 0) and create the mirror again, as the kubelet does.
				return fmt.Errorf("mirror pod uid %s has deletionTimestamp %s and was neither removed nor recreated by the node", p.Metadata.UID, *p.Metadata.DeletionTimestamp)
			}
			if p.Status.Phase != "Running" || len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready {
				return fmt.Errorf("phase %q, containers %+v", p.Status.Phase, p.Status.ContainerStatuses)
			}
			got = p
			if check != nil {
				return check(p)
			}
			return nil
		})
		return got
	}
	first := waitRunning("mirror pod "+podName+" Running", nil)
	if _, ok := first.Metadata.Annotations["kubernetes.io/config.mirror"]; !ok {
		t.Errorf("mirror pod has no kubernetes.io/config.mirror annotation: %v", first.Metadata.Annotations)
	}
	if first.Spec.NodeName != nodeName {
		t.Errorf("mirror pod nodeName %q, want %q", first.Spec.NodeName, nodeName)
	}
	if o := first.Metadata.OwnerReferences; len(o) != 1 || o[0].Kind != "Node" || o[0].Name != nodeName {
		t.Errorf("mirror pod ownerReferences %+v, want the Node %s", o, nodeName)
	}

	// kubectl logs, proxied by kube-apiserver to the node's kubelet API.
	if !kubeletAPI {
		t.Errorf("kubectl logs: `ballast node` has no --port/--client-ca-file flags, so kube-apiserver cannot reach it (issue 5: the kubelet HTTPS API)")
	} else {
		realkube.Eventually(t, "kubectl logs "+podName, 60*time.Second, func() error {
			out, err := admin("logs", "-n", "default", podName)
			if err != nil {
				return err
			}
			if !strings.Contains(out, "line 3") {
				return fmt.Errorf("no %q in the logs: %s", "line 3", out)
			}
			return nil
		})
	}

	// The node's metrics and stats through kube-apiserver's node proxy
	// (nodes/proxy), and kube-apiserver's 400 for logs --previous with no
	// previous instance, from the node's kubelet API.
	if kubeletAPI {
		proxy := "/api/v1/nodes/" + nodeName + "/proxy/"
		realkube.Eventually(t, "the node's /metrics through kube-apiserver", 30*time.Second, func() error {
			out, err := admin("get", "--raw", proxy+"metrics")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			for _, want := range []string{"# TYPE ballast_node_pods gauge", `ballast_node_pods{phase="Running"} 1`, "ballast_node_runtime_operations_duration_seconds_bucket"} {
				if !strings.Contains(out, want) {
					return fmt.Errorf("no %q in the node's /metrics:\n%s", want, out)
				}
			}
			return nil
		})
		out, err := admin("get", "--raw", proxy+"stats/summary")
		if err != nil || !strings.Contains(out, `"nodeName": "`+nodeName+`"`) && !strings.Contains(out, `"nodeName":"`+nodeName+`"`) || !strings.Contains(out, `"name":"`+podName+`"`) {
			t.Errorf("the node's /stats/summary through kube-apiserver: %v\n%s", err, out)
		}
		out, err = admin("get", "--raw", proxy+"metrics/resource")
		if err != nil || !strings.Contains(out, "container_cpu_usage_seconds_total{") {
			t.Errorf("the node's /metrics/resource through kube-apiserver: %v\n%s", err, out)
		}
		out, err = admin("logs", "-n", "default", podName, "--previous")
		if err == nil || !strings.Contains(out, "BadRequest") || !strings.Contains(out, "previous terminated container") {
			t.Errorf("kubectl logs --previous through kube-apiserver, want 400 BadRequest: %v\n%s", err, out)
		}
	}

	// Deleted through the API, the mirror pod comes back at once; its
	// container keeps running.
	if out, err := admin("delete", "pod", "-n", "default", podName, "--wait=false"); err != nil {
		t.Fatalf("kubectl delete pod: %v %s", err, out)
	}
	again := waitRunning("mirror pod "+podName+" recreated", func(p *pod) error {
		if p.Metadata.UID == first.Metadata.UID {
			return fmt.Errorf("still the old mirror (uid %s)", p.Metadata.UID)
		}
		return nil
	})
	if a, b := first.Status.ContainerStatuses[0], again.Status.ContainerStatuses[0]; a.ContainerID != b.ContainerID || b.RestartCount != a.RestartCount {
		t.Errorf("the container changed when the mirror was deleted: before %+v, after %+v", a, b)
	}

	// The file removed, the mirror pod goes.
	if err := os.Remove(filepath.Join(manifests, "hello.yaml")); err != nil {
		t.Fatal(err)
	}
	realkube.Eventually(t, "mirror pod "+podName+" deleted", 90*time.Second, func() error {
		out, err := admin("get", "pod", "-n", "default", podName, "--ignore-not-found", "-o", "name")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("still there: %s", out)
		}
		return nil
	})
}
