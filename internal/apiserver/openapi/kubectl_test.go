//go:build integration

// These tests run the real kubectl (1.32, /usr/bin/kubectl): hack/test.sh
// runs them with -tags integration.

package openapi_test

import (
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

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/ballast-dev/ballast/internal/apiserver/discovery"
	"github.com/ballast-dev/ballast/internal/apiserver/openapi"
	"github.com/ballast-dev/ballast/internal/apiserver/resource"
	"github.com/ballast-dev/ballast/internal/apiserver/tables"

	"github.com/ballast-dev/ballast/internal/testutil"
)

const kubectlPath = "/usr/bin/kubectl"

var codecs = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	if err := authorizationv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return serializer.NewCodecFactory(s)
}()

// kubectl runs the real kubectl against a test server that serves
// discovery, OpenAPI and a few hand-built lists as Tables.
type kubectl struct {
	t          *testing.T
	kubeconfig string
	cacheDir   string
	home       string
}

func needKubectl(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(kubectlPath); err != nil {
		testutil.Need(t, fmt.Sprintf("%s not found (%v): discovery, OpenAPI and tables are checked against the real kubectl 1.32", kubectlPath, err))
	}
}

func newKubectl(t *testing.T, url string) *kubectl {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: ` + url + `
users:
- name: test
  user:
    token: test-token
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: default
current-context: test
`
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return &kubectl{t: t, kubeconfig: kc, cacheDir: filepath.Join(dir, "cache"), home: home}
}

func (k *kubectl) run(args ...string) string {
	k.t.Helper()
	args = append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)
	cmd := exec.Command(kubectlPath, args...)
	cmd.Env = []string{"HOME=" + k.home, "KUBECONFIG=" + k.kubeconfig, "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	k.t.Logf("$ kubectl %s\n%s", strings.Join(args[4:], " "), out)
	return string(out)
}

func mustContain(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// listHandler serves objs of info as a Table when asked, else as a list.
func listHandler(t *testing.T, info resource.Info, objs []runtime.Object, now time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			// Echo the created object back, and what kubectl asked for.
			var obj map[string]any
			if err := json.NewDecoder(r.Body).Decode(&obj); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Query", r.URL.RawQuery)
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(obj)
			return
		}
		if ok, _ := tables.WantsTable(r.Header.Get("Accept")); ok {
			include, err := tables.ParseIncludeObject(r.URL.Query().Get("includeObject"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			tbl, err := tables.ForList(info, objs, include, now)
			if err != nil {
				t.Errorf("ForList: %v", err)
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			tbl.ResourceVersion = "7"
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(tbl)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"apiVersion": info.GroupVersion(), "kind": info.ListKind,
			"metadata": map[string]any{"resourceVersion": "7"}, "items": objs,
		})
	}
}

func TestRealKubectl(t *testing.T) {
	needKubectl(t)
	infos := resource.Served()
	spec, err := openapi.New(infos)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	info := func(group, res string) resource.Info {
		in, ok := resource.Lookup(infos, group, "v1", res)
		if !ok {
			t.Fatalf("%s/%s not served", group, res)
		}
		return in
	}
	pods, nodes, events := samplePods(now), sampleNodes(now), sampleEvents(now)

	mux := http.NewServeMux()
	disc := discovery.Handler(infos)
	for _, p := range discovery.Paths(infos) {
		mux.Handle(p, disc)
	}
	mux.Handle("/openapi/", spec)
	mux.Handle("/api/v1/namespaces/default/pods", listHandler(t, info("", "pods"), pods, now))
	mux.Handle("/api/v1/nodes", listHandler(t, info("", "nodes"), nodes, now))
	mux.Handle("/api/v1/namespaces/default/events", listHandler(t, info("", "events"), events, now))
	mux.HandleFunc("POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews", func(w http.ResponseWriter, r *http.Request) {
		// kubectl sends this one as protobuf.
		body, _ := io.ReadAll(r.Body)
		obj, _, err := codecs.UniversalDeserializer().Decode(body, nil, nil)
		if err != nil {
			t.Errorf("SelfSubjectAccessReview body (Content-Type %s): %v", r.Header.Get("Content-Type"), err)
			http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
			return
		}
		ssar := obj.(*authorizationv1.SelfSubjectAccessReview)
		if ra := ssar.Spec.ResourceAttributes; ra == nil || ra.Verb != "list" || ra.Resource != "pods" {
			t.Errorf("SelfSubjectAccessReview asks %+v, want list pods", ra)
		}
		ssar.Status.Allowed = true
		ssar.APIVersion, ssar.Kind = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(ssar)
	})
	var mu = make(chan struct{}, 1)
	var unexpected, seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		mu <- struct{}{}
		if pattern == "" {
			unexpected = append(unexpected, r.Method+" "+r.URL.String())
		}
		seen = append(seen, r.Method+" "+r.URL.String()+" Accept: "+r.Header.Get("Accept"))
		<-mu
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	k := newKubectl(t, srv.URL)

	out := k.run("version", "-o", "json")
	mustContain(t, "kubectl version", out, `"gitVersion": "`+discovery.GitVersion+`"`)

	out = k.run("api-resources")
	for _, want := range []string{
		"namespaces   ns   v1   false   Namespace",
		"nodes        no   v1   false   Node",
		"pods         po   v1   true    Pod",
		"events       ev   v1   true    Event",
		"leases            coordination.k8s.io/v1",
		"events       ev   events.k8s.io/v1",
		"selfsubjectaccessreviews",
	} {
		if !strings.Contains(squeeze(out), squeeze(want)) {
			t.Errorf("api-resources lacks %q:\n%s", want, out)
		}
	}
	out = k.run("api-resources", "--categories=all", "-o", "name")
	if strings.TrimSpace(out) != "pods" {
		t.Errorf("api-resources --categories=all: want pods, got:\n%s", out)
	}
	out = k.run("api-versions")
	mustContain(t, "api-versions", out, "v1\n", "coordination.k8s.io/v1", "events.k8s.io/v1", "authorization.k8s.io/v1")

	out = k.run("explain", "pod.spec.containers")
	mustContain(t, "explain pod.spec.containers", out,
		"KIND:       Pod", "VERSION:    v1", "FIELD: containers <[]Container>",
		"List of containers belonging to the pod.", "image\t<string>", "name\t<string> -required-")
	out = k.run("explain", "lease")
	mustContain(t, "explain lease", out,
		"GROUP:      coordination.k8s.io", "KIND:       Lease", "Lease defines a lease concept.",
		"spec\t<LeaseSpec>", "metadata\t<ObjectMeta>")
	out = k.run("explain", "pod.metadata.creationTimestamp")
	mustContain(t, "explain creationTimestamp", out, "<string>", "CreationTimestamp is a timestamp")
	out = k.run("explain", "pod.spec.containers.resources.limits")
	mustContain(t, "explain limits", out, "<map[string]Quantity>")
	out = k.run("explain", "events", "--api-version=events.k8s.io/v1")
	mustContain(t, "explain events.k8s.io", out, "GROUP:      events.k8s.io", "regarding\t<ObjectReference>")

	out = k.run("get", "pods")
	mustContain(t, "get pods", out,
		"NAME", "READY", "STATUS", "RESTARTS", "AGE",
		"web-node1", "1/1", "Running", "2 (5m ago)",
		"db-node1", "0/1", "CrashLoopBackOff")
	if strings.Contains(out, "NODE") {
		t.Errorf("get pods shows wide columns:\n%s", out)
	}
	out = k.run("get", "pods", "-o", "wide")
	mustContain(t, "get pods -o wide", out, "IP", "NODE", "NOMINATED NODE", "READINESS GATES", "10.88.0.5", "node1", "<none>")
	out = k.run("get", "nodes")
	mustContain(t, "get nodes", out, "NAME", "STATUS", "ROLES", "VERSION", "node1", "Ready", "control-plane", "v1.32.0")
	out = k.run("get", "nodes", "-o", "wide")
	mustContain(t, "get nodes -o wide", out, "INTERNAL-IP", "CONTAINER-RUNTIME", "192.168.1.10", "containerd://2.0.0", "Debian GNU/Linux 13")
	out = k.run("get", "events")
	mustContain(t, "get events", out, "LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE",
		"Normal", "Pulled", "pod/web-node1", "Successfully pulled image")
	out = k.run("get", "events", "-o", "wide")
	mustContain(t, "get events -o wide", out, "SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "spec.containers{web}", "kubelet, node1")
	out = k.run("get", "pods", "-o", "name")
	mustContain(t, "get pods -o name", out, "pod/web-node1")

	out = k.run("auth", "can-i", "list", "pods")
	if strings.TrimSpace(out) != "yes" {
		t.Errorf("auth can-i list pods: want yes, got %q", out)
	}

	// kubectl probes the OpenAPI v3 paths for server-side field
	// validation; finding it, it sends fieldValidation=Strict and never
	// needs /openapi/v2 for client-side validation.
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: c\n    image: i\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = k.run("create", "-f", manifest)
	mustContain(t, "create -f", out, "pod/x created")

	mu <- struct{}{}
	var posted bool
	for _, req := range seen {
		if strings.HasPrefix(req, "POST /api/v1/namespaces/default/pods?") {
			posted = true
			if !strings.Contains(req, "fieldValidation=Strict") {
				t.Errorf("kubectl create did not use server-side field validation: %s", req)
			}
		}
		if strings.HasPrefix(req, "GET /openapi/v2") {
			t.Errorf("kubectl fetched the OpenAPI v2 document: %s", req)
		}
	}
	if !posted {
		t.Errorf("kubectl create did not POST the pod")
	}
	t.Logf("requests:\n%s", strings.Join(seen, "\n"))
	for _, req := range seen {
		// Aggregated discovery answers everything at once: kubectl must
		// not fall back to the per-group documents. (auth can-i reads
		// /api/v1 itself, without the discovery client's timeout.)
		if strings.HasPrefix(req, "GET /apis/") || strings.HasPrefix(req, "GET /api/v1?timeout") {
			t.Errorf("kubectl fell back to legacy discovery: %s", req)
		}
	}
	if len(unexpected) > 0 {
		t.Errorf("kubectl asked for paths the test server does not serve: %v", unexpected)
	}
	<-mu
}

func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

func samplePods(now time.Time) []runtime.Object {
	ago := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }
	return []runtime.Object{
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default", UID: "u1", CreationTimestamp: ago(time.Hour)},
			Spec:       corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
			Status: corev1.PodStatus{
				Phase: corev1.PodRunning, PodIP: "10.88.0.5", PodIPs: []corev1.PodIP{{IP: "10.88.0.5"}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
				ContainerStatuses: []corev1.ContainerStatus{{
					Name: "web", Ready: true, RestartCount: 2,
					State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: ago(5 * time.Minute)}},
					LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: ago(5 * time.Minute)}},
				}},
			},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "db-node1", Namespace: "default", UID: "u2", CreationTimestamp: ago(2 * time.Hour)},
			Spec:       corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "db", Image: "postgres"}}},
			Status: corev1.PodStatus{
				Phase: corev1.PodRunning,
				ContainerStatuses: []corev1.ContainerStatus{{
					Name: "db", RestartCount: 4,
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				}},
			},
		},
	}
}

func sampleNodes(now time.Time) []runtime.Object {
	return []runtime.Object{&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node1", UID: "n1", CreationTimestamp: metav1.NewTime(now.Add(-48 * time.Hour)),
			Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.32.0+ballast", OSImage: "Debian GNU/Linux 13 (trixie)",
				KernelVersion: "6.12.0", ContainerRuntimeVersion: "containerd://2.0.0"},
		},
	}}
}

func sampleEvents(now time.Time) []runtime.Object {
	return []runtime.Object{&corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "web-node1.1", Namespace: "default", UID: "e1", CreationTimestamp: metav1.NewTime(now.Add(-time.Minute))},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-node1", Namespace: "default",
			FieldPath: "spec.containers{web}"},
		Reason: "Pulled", Message: "Successfully pulled image \"nginx\"", Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "kubelet", Host: "node1"},
		FirstTimestamp: metav1.NewTime(now.Add(-time.Minute)), LastTimestamp: metav1.NewTime(now.Add(-time.Minute)), Count: 1,
	}}
}
