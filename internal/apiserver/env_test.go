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
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/apitest"
	"github.com/ballast-dev/ballast/internal/apiserver/rest"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/storage"
	"github.com/ballast-dev/ballast/internal/storage/etcd"
)

// testEnv is an API server on embedded etcd behind httptest, with a
// kubeconfig for it (kubectl_test.go, an integration test, runs kubectl).
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
		return apitest.NodeUser(name), true, nil
	}
	if tok == "bad" {
		return auth.User{}, false, auth.ErrInvalidToken
	}
	return apitest.AdminUser, true, nil
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
		WatchCache: rest.WatchCacheConfig{BookmarkInterval: time.Second},
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
		_ = srv.rest.Run(cacheCtx)
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
	p := apitest.MirrorPod(name, node)
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
