package kube

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
	"github.com/ballast-dev/ballast/test/realkube"
)

// Node-local ConfigMaps and Secrets under a real kube-apiserver with
// NodeRestriction and the Node authorizer. What happens, as docs/node-agent.md
// says: a node may not create ConfigMaps or Secrets (nor list them), so the
// node logs it once per kind and carries on; kube-apiserver refuses the
// mirror pod of a static pod that uses them (logged once), and the pod runs
// anyway; a pod that uses none has its mirror as always; nothing on the
// node's path waits for the API: the ConfigMap's change reaches the running
// container.
func TestConfigsAgainstKubeAPIServer(t *testing.T) {
	bins := realkube.Binaries(t)
	harness.Require(t)
	kubectlBin := realkube.KubectlIn(t, bins)
	bin := ballastBinary(t)
	env := harness.Start(t)
	c := realkube.StartCluster(t, bins, false)
	const nodeName = "config-node"
	admin := func(args ...string) (string, error) { return realkube.Kubectl(kubectlBin, c.Admin, args...) }

	manifests := filepath.Join(env.Dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		tmp := filepath.Join(env.Dir, ".tmp-"+name)
		if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(manifests, name)); err != nil {
			t.Fatal(err)
		}
	}
	config := func(v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata: {a: " + v + "}\n"
	}
	write("app-config.yaml", config("v1"), 0o644)
	write("creds.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {password: kube-marker}\n", 0o600)
	write("web.yaml", `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes: [{name: cfg, configMap: {name: app-config}}]
  containers:
  - name: app
    image: `+env.HelloImage()+`
    env: [{name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}]
    volumeMounts: [{name: cfg, mountPath: /etc/app}]
`, 0o644)
	write("plain.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  containers: [{name: app, image: "+env.HelloImage()+"}]\n", 0o644)

	dataDir := filepath.Join(env.Dir, "ballast")
	node := realkube.StartProc(t, c.Dir, "ballast-node", bin, "node",
		"--kubeconfig", c.NodeKubeconfig(t, nodeName),
		"--node-name", nodeName,
		"--container-runtime-endpoint", env.Endpoint,
		"--data-dir", dataDir,
		"--pod-manifest-path", manifests,
		"--images-dir", filepath.Join(env.Dir, "images"),
		"--port", "0",
	)
	nodeLog := func() string { b, _ := os.ReadFile(node.Log); return string(b) }

	// The pod without config has its mirror.
	realkube.Eventually(t, "the mirror pod of plain Running", 2*time.Minute, func() error {
		if err := node.Running(); err != nil {
			return err
		}
		p, err := getPod(kubectlBin, c.Admin, "default", "plain-"+nodeName)
		if err != nil {
			return err
		}
		if p.Status.Phase != "Running" {
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		return nil
	})
	// The pod with config runs, on the node alone.
	var podIP string
	realkube.Eventually(t, "web Running on the node", 2*time.Minute, func() error {
		out, err := exec.Command(bin, "pods", "-o", "json", "--data-dir", dataDir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		var list struct {
			Items []struct {
				Metadata struct{ Name string }
				Status   struct {
					Phase string
					PodIP string
				}
			}
		}
		if err := json.Unmarshal(out, &list); err != nil {
			return err
		}
		for _, p := range list.Items {
			if p.Metadata.Name == "web-"+nodeName && p.Status.Phase == "Running" {
				podIP = p.Status.PodIP
				return nil
			}
		}
		return fmt.Errorf("%s", out)
	})
	read := func() (string, error) {
		cl := http.Client{Timeout: 3 * time.Second}
		r, err := cl.Get(fmt.Sprintf("http://%s:%d/file?path=/etc/app/a", podIP, harness.HelloPort))
		if err != nil {
			return "", err
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		return string(b), err
	}
	realkube.Eventually(t, "the container reads its ConfigMap", 30*time.Second, func() error {
		if got, err := read(); err != nil || got != "v1" {
			return fmt.Errorf("%q %v", got, err)
		}
		return nil
	})

	// kube-apiserver lets the node publish neither kind: logged once each.
	realkube.Eventually(t, "the node says it cannot publish its ConfigMaps and Secrets", time.Minute, func() error {
		log := nodeLog()
		for _, kind := range []string{"ConfigMaps", "Secrets"} {
			if !strings.Contains(log, "does not let this node publish its "+kind) {
				return fmt.Errorf("no word about %s yet", kind)
			}
		}
		if !strings.Contains(log, "creating mirror pod (logged once; the pod runs without it") || !strings.Contains(log, "web-"+nodeName) {
			return fmt.Errorf("no word about web's refused mirror pod yet")
		}
		return nil
	})
	if out, err := admin("get", "configmaps,secrets", "-A", "-l", "ballast.dev/node="+nodeName, "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("mirrors in kube-apiserver: %v %q", err, out)
	}
	if out, err := admin("get", "pod", "-n", "default", "web-"+nodeName, "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("kube-apiserver admitted a mirror pod that uses ConfigMaps: %v %q", err, out)
	}

	// Nothing on the node's path waits for the API.
	write("app-config.yaml", config("v2"), 0o644)
	realkube.Eventually(t, "the running container sees the new data", 30*time.Second, func() error {
		if got, err := read(); err != nil || got != "v2" {
			return fmt.Errorf("%q %v", got, err)
		}
		return nil
	})
	log := nodeLog()
	for _, kind := range []string{"ConfigMaps", "Secrets"} {
		if n := strings.Count(log, "does not let this node publish its "+kind); n != 1 {
			t.Errorf("the refusal of %s logged %d times, want once", kind, n)
		}
	}
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "creating mirror pod (logged once; the pod runs without it") && strings.Contains(l, "pod=default/web-"+nodeName) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the refused mirror pod logged %d times, want once", n)
	}
	if strings.Contains(log, "kube-marker") {
		t.Errorf("the node's log shows the secret value")
	}
}
