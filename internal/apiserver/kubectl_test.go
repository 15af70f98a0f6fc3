//go:build integration

package apiserver

// These tests run the real kubectl (1.32, /usr/bin/kubectl) against the
// API server: hack/test.sh runs them with -tags integration.

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/lifecycle"
	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

func kubectlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	if err != nil {
		p = "/usr/bin/kubectl"
		if _, err := os.Stat(p); err != nil {
			testutil.Need(t, "kubectl not found (/usr/bin/kubectl): these tests run the real kubectl 1.32 against the API server")
		}
	}
	return p
}

// kubectl runs kubectl with a timeout; it returns stdout, stderr and the error.
func (e *testEnv) kubectl(timeout time.Duration, args ...string) (string, string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	all := append([]string{"--kubeconfig", e.kubecfg, "--cache-dir", filepath.Join(e.dir, "cache")}, args...)
	cmd := exec.CommandContext(ctx, kubectlPath(e.t), all...)
	cmd.Env = append(os.Environ(), "HOME="+e.dir, "KUBECONFIG=", "KUBE_EDITOR="+e.editor)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	return so.String(), se.String(), err
}

// ok runs kubectl and fails the test unless it succeeds and prints every want.
func (e *testEnv) ok(args string, want ...string) string {
	e.t.Helper()
	out, errOut, err := e.kubectl(30*time.Second, strings.Fields(args)...)
	if err != nil {
		e.t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", args, err, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			e.t.Fatalf("kubectl %s: output does not contain %q:\n%s", args, w, out)
		}
	}
	return out
}

// fails runs kubectl and fails the test unless it fails with every want in stderr.
func (e *testEnv) fails(args []string, want ...string) string {
	e.t.Helper()
	out, errOut, err := e.kubectl(30*time.Second, args...)
	if err == nil {
		e.t.Fatalf("kubectl %s succeeded, want failure:\n%s", strings.Join(args, " "), out)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			e.t.Fatalf("kubectl %s: stderr does not contain %q:\n%s", strings.Join(args, " "), w, errOut)
		}
	}
	return errOut
}

func TestKubectl(t *testing.T) {
	kubectlPath(t)
	e := newTestEnv(t)
	e.addNode("n1")
	pod := e.addMirror("web", "n1")
	// kubectl describe finds a mirror pod's events by the static pod's UID,
	// which is the value of its kubernetes.io/config.mirror annotation.
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web-n1.1", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: pod.Name, UID: types.UID(pod.Annotations[wellknown.AnnotationConfigMirror]), APIVersion: "v1"},
		Reason:         "Started", Message: "Started container web", Type: "Normal", Count: 1,
		Source:         corev1.EventSource{Component: "ballast-node", Host: "n1"},
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now()}
	code, body := e.do("POST", "/api/v1/namespaces/default/events", "node:n1", "", ev, nil)
	e.must(code, body, 201)

	e.ok("get pods", "NAME", "READY", "web-n1", "1/1", "Running")
	e.ok("get pods -o wide", "10.88.0.7", "n1")
	e.ok("get pods -A", "default", "web-n1")
	e.ok("get pod web-n1 -o yaml", "kubernetes.io/config.mirror", "nodeName: n1", "kind: Pod")
	e.ok("get pod web-n1 -o json", `"phase": "Running"`)
	if out := e.ok("get pod web-n1 -o jsonpath={.spec.nodeName}"); out != "n1" {
		t.Fatalf("jsonpath: %q", out)
	}
	e.ok("get pods -o custom-columns=NAME:.metadata.name,NODE:.spec.nodeName", "web-n1", "n1")
	e.ok("get pods -l app=web", "web-n1")
	e.ok("get pods --field-selector spec.nodeName=n1", "web-n1")
	if out, _, _ := e.kubectl(20*time.Second, "get", "pods", "--field-selector", "spec.nodeName=n2"); strings.Contains(out, "web-n1") {
		t.Fatalf("field selector spec.nodeName=n2 lists web-n1:\n%s", out)
	}
	e.ok("describe pod web-n1", "Node:", "n1", "Events:", "Started container web", "Status:", "Running")
	e.ok("get events", "Started", "pod/web-n1")
	e.ok("get nodes", "n1", "Ready")
	e.ok("get nodes -o wide", "10.0.0.1", "containerd://1.6.20")
	e.ok("describe node n1", "Ready", "KubeletReady")
	e.ok("get namespaces", "default", "kube-system", "kube-public", "kube-node-lease", "Active")
	e.ok("get leases -n kube-node-lease", "n1")
	e.ok("label pod web-n1 tier=front", "labeled")
	e.ok("get pods -l tier=front", "web-n1")
	e.ok("annotate pod web-n1 note=hello", "annotated")
	e.ok("get pod web-n1 -o jsonpath={.metadata.annotations.note}", "hello")
	e.ok("auth can-i list pods", "yes")
	e.ok("api-resources", "pods", "leases", "events.k8s.io")

	errOut := e.fails([]string{"set", "image", "pod/web-n1", "web=nginx:2"},
		`pod "web-n1" is a mirror of a static pod on node "n1": its spec cannot be changed through the API; edit /etc/kubernetes/manifests/web.yaml on node n1 instead`)
	t.Logf("kubectl set image: %s", errOut)
	e.editor = "sed -i s/img:1/img:2/"
	errOut = e.fails([]string{"edit", "pod", "web-n1"}, `pod "web-n1" is a mirror of a static pod on node "n1"`, "/etc/kubernetes/manifests/web.yaml")
	t.Logf("kubectl edit: %s", errOut)
	e.ok("get pod web-n1 -o jsonpath={.spec.containers[0].image}", "img:1")
	e.ok("explain pod.spec.nodeName", "nodeName")
	errOut = e.fails([]string{"run", "x", "--image=nginx"}, "Ballast runs static pods only", "/etc/kubernetes/manifests")
	t.Logf("kubectl run: %s", errOut)

	// kubectl get -w: the list, then the label change as a watch event.
	w := e.watchKubectl("get", "pods", "-w")
	w.waitFor(t, "web-n1") // the list: kubectl now watches
	e.ok("label pod web-n1 tier=back --overwrite", "labeled")
	w.waitFor(t, "web-n1") // the change, as a watch event
	t.Logf("kubectl get pods -w:\n%s", w.String())

	// A pod on a node is deleted gracefully: Terminating until its node
	// finishes (here nobody does), unless forced.
	e.ok("delete pod web-n1 --wait=false", `pod "web-n1" deleted`)
	e.ok("get pod web-n1", "Terminating")
	e.ok("delete pod web-n1 --grace-period=0 --force", `pod "web-n1" force deleted`)
	_, errOut, _ = e.kubectl(20*time.Second, "get", "pod", "web-n1")
	if !strings.Contains(errOut, `pods "web-n1" not found`) {
		t.Fatalf("after delete: %s", errOut)
	}
}

// kubectlWatch is a kubectl that keeps running (get -w), its output read
// line by line as it comes.
type kubectlWatch struct {
	lines chan string
	mu    sync.Mutex
	all   strings.Builder
}

// watchKubectl starts kubectl with args; it is killed when the test ends.
func (e *testEnv) watchKubectl(args ...string) *kubectlWatch {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	all := append([]string{"--kubeconfig", e.kubecfg, "--cache-dir", filepath.Join(e.dir, "cache")}, args...)
	cmd := exec.CommandContext(ctx, kubectlPath(e.t), all...)
	cmd.Env = append(os.Environ(), "HOME="+e.dir, "KUBECONFIG=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	w := &kubectlWatch{lines: make(chan string, 100)}
	go func() {
		defer close(w.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.mu.Lock()
			w.all.WriteString(sc.Text() + "\n")
			w.mu.Unlock()
			w.lines <- sc.Text()
		}
	}()
	e.t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return w
}

// waitFor waits for the next line that contains want.
func (w *kubectlWatch) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				t.Fatalf("kubectl ended before printing %q:\n%s", want, w.String())
			}
			if strings.Contains(l, want) {
				return
			}
		case <-deadline:
			t.Fatalf("kubectl printed no line with %q:\n%s", want, w.String())
		}
	}
}

func (w *kubectlWatch) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.all.String() }

// kubectl shows a lost node's pods as not ready (TestNodeLifecycle).
func TestKubectlNodeLost(t *testing.T) {
	kubectlPath(t)
	e := lostNode(t)
	e.ok("get pods", "0/1", lifecycle.NodeLostReason)
	e.ok("get nodes", "NotReady")
}

// kubectl auth whoami reads who the server authenticated (SelfSubjectReview).
func TestKubectlAuthWhoami(t *testing.T) {
	e := newTestEnv(t)
	out, stderr, err := e.kubectl(30*time.Second, "auth", "whoami")
	if err != nil || !strings.Contains(out, apitest.AdminUser.Name) || !strings.Contains(out, "system:masters") {
		t.Fatalf("kubectl auth whoami: %v\n%s\n%s", err, out, stderr)
	}
}
