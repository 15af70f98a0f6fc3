package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/storage"
	"github.com/ballast-dev/ballast/internal/storage/etcd"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// testEnv is an API server on embedded etcd behind httptest.
type testEnv struct {
	t       *testing.T
	srv     *Server
	store   storage.Store
	ts      *httptest.Server
	dir     string
	kubecfg string
	now     func() time.Time
	editor  string // KUBE_EDITOR for kubectl edit
}

// testAuthenticate: "Bearer node:<name>" is that node; anything else is the admin.
func testAuthenticate(r *http.Request) (auth.User, bool, error) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if name, ok := strings.CutPrefix(tok, "node:"); ok {
		return nodeUser(name), true, nil
	}
	if tok == "bad" {
		return auth.User{}, false, auth.ErrInvalidToken
	}
	return adminUser, true, nil
}

// newTestEnv starts the server; opts may change its Config first.
func newTestEnv(t *testing.T, opts ...func(*Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := etcd.Open(ctx, etcd.Config{DataDir: filepath.Join(dir, "etcd"), ProgressInterval: time.Second})
	if err != nil {
		t.Fatalf("opening embedded etcd: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	e := &testEnv{t: t, store: st, dir: dir}
	conf := Config{Store: st, Authenticate: testAuthenticate, Authorize: auth.Authorize,
		WatchCache: WatchCacheConfig{BookmarkInterval: time.Second},
		Now: func() time.Time {
			if e.now != nil {
				return e.now()
			}
			return time.Now()
		}}
	for _, o := range opts {
		o(&conf)
	}
	srv, err := New(conf)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	cacheCtx, stopCaches := context.WithCancel(context.Background())
	cachesDone := make(chan struct{})
	go func() {
		defer close(cachesDone)
		_ = srv.runWatchCaches(cacheCtx)
	}()
	t.Cleanup(func() {
		stopCaches()
		<-cachesDone
	})
	e.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(e.ts.Close)
	e.kubecfg = filepath.Join(dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: ballast
  cluster: {server: %q}
users:
- name: admin
  user: {token: admin}
contexts:
- name: ballast
  context: {cluster: ballast, user: admin, namespace: default}
current-context: ballast
`, e.ts.URL)
	if err := os.WriteFile(e.kubecfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// do sends a JSON request as token and decodes the answer into out (if not nil).
func (e *testEnv) do(method, path, token, contentType string, body any, out any) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.ts.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType == "" {
		contentType = "application/json"
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, string(data)
}

func (e *testEnv) must(code int, body string, want int) {
	e.t.Helper()
	if code != want {
		e.t.Fatalf("status %d, want %d: %s", code, want, body)
	}
}

// addNode registers node name with a Lease, as the node agent will.
func (e *testEnv) addNode(name string) *corev1.Node {
	tok := "node:" + name
	now := metav1.NewTime(time.Now())
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "ballast node is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}},
			NodeInfo:  corev1.NodeSystemInfo{KubeletVersion: "v1.32.0-ballast", OSImage: "Debian", ContainerRuntimeVersion: "containerd://1.6.20"},
		}}
	var out corev1.Node
	code, body := e.do("POST", "/api/v1/nodes", tok, "", n, &out)
	e.must(code, body, 201)
	n.ResourceVersion = out.ResourceVersion
	code, body = e.do("PUT", "/api/v1/nodes/"+name+"/status", tok, "", n, &out)
	e.must(code, body, 200)
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &name, RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	code, body = e.do("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", tok, "", l, nil)
	e.must(code, body, 201)
	return &out
}

// addMirror creates the mirror pod of static pod `name` on node, Running.
func (e *testEnv) addMirror(name, node string) *corev1.Pod {
	tok := "node:" + node
	p := mirrorPod(name, node)
	p.Labels = map[string]string{"app": name}
	var out corev1.Pod
	code, body := e.do("POST", "/api/v1/namespaces/default/pods", tok, "", p, &out)
	e.must(code, body, 201)
	now := metav1.NewTime(time.Now())
	out.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.88.0.7", HostIP: "10.0.0.1", StartTime: &now,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: name, Image: "img:1", Ready: true, Started: new(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}}
	code, body = e.do("PUT", "/api/v1/namespaces/default/pods/"+out.Name+"/status", tok, "", &out, &out)
	e.must(code, body, 200)
	return &out
}

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
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: pod.Name, UID: types.UID(pod.Annotations[AnnotationMirror]), APIVersion: "v1"},
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
	done := make(chan string)
	go func() {
		out, _, _ := e.kubectl(6*time.Second, "get", "pods", "-w")
		done <- out
	}()
	time.Sleep(3 * time.Second)
	e.ok("label pod web-n1 tier=back --overwrite", "labeled")
	out := <-done
	if strings.Count(out, "web-n1") < 2 {
		t.Fatalf("kubectl get pods -w printed no watch event:\n%s", out)
	}
	t.Logf("kubectl get pods -w:\n%s", out)

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
