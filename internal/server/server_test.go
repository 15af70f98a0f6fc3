//go:build integration

package server

// This test runs the real kubectl: hack/test.sh runs it with -tags integration.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/testutil"
)

func u64(v uint64) *uint64 { return &v }

// fakeKubelet answers a node's kubelet API paths the server reads.
func fakeKubelet(t *testing.T) (*httptest.Server, *[]string) {
	var seen []string
	now := metav1.Now()
	sum := statsapi.Summary{
		Node: statsapi.NodeStats{NodeName: "n1",
			CPU:    &statsapi.CPUStats{Time: now, UsageNanoCores: u64(350_000_000)},
			Memory: &statsapi.MemoryStats{Time: now, WorkingSetBytes: u64(700 << 20)}},
		Pods: []statsapi.PodStats{{PodRef: statsapi.PodReference{Name: "web-n1", Namespace: "default"},
			Containers: []statsapi.ContainerStats{{Name: "web",
				CPU:    &statsapi.CPUStats{Time: now, UsageNanoCores: u64(12_000_000)},
				Memory: &statsapi.MemoryStats{Time: now, WorkingSetBytes: u64(33 << 20)}}}}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.Path)
		switch r.URL.Path {
		case "/stats/summary":
			_ = json.NewEncoder(w).Encode(sum)
		case "/healthz":
			fmt.Fprint(w, "ok")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

// TestServerWithKubectl starts the whole server (embedded etcd) with a node
// reached through LocalNodes, and drives it with the real kubectl 1.32:
// kubectl top node and top pod, auth can-i --list, get --raw /metrics and
// a node's proxy, and create -f of a kind the server does not serve.
func TestServerWithKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		testutil.Need(t, "kubectl not found: this test runs the real kubectl 1.32 against the server")
	}
	kubelet, seen := fakeKubelet(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Start(ctx, Options{DataDir: dir, Listen: "127.0.0.1:0", LocalNodes: map[string]NodeDialer{
		"n1": func(context.Context, string) (*http.Client, *url.URL, error) {
			u, _ := url.Parse(kubelet.URL)
			return kubelet.Client(), u, nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = s.Wait() }()

	// The node registers and its mirror pod appears, as a node would do it.
	u, _ := auth.NodeUser("n1")
	certPEM, keyPEM, err := s.PKI.IssueClientCert(u)
	if err != nil {
		t.Fatal(err)
	}
	node, err := kubernetes.NewForConfig(&rest.Config{Host: s.URL,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.PKI.CAPEM(), CertData: certPEM, KeyData: keyPEM}})
	if err != nil {
		t.Fatal(err)
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resourceQ("2"), corev1.ResourceMemory: resourceQ("4Gi")}
	n.Status.Allocatable = n.Status.Capacity
	if n, err = node.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resourceQ("2"), corev1.ResourceMemory: resourceQ("4Gi")}
	n.Status.Allocatable = n.Status.Capacity
	if _, err := node.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default",
		Annotations:     map[string]string{"kubernetes.io/config.mirror": "h", "kubernetes.io/config.source": "file"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "n1", UID: n.UID}}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "web", Image: "img:1"}}}}
	if _, err := node.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, string, error) {
		cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
		defer ccancel()
		cmd := exec.CommandContext(cctx, kubectl, append([]string{"--kubeconfig", s.Kubeconfig, "--cache-dir", filepath.Join(dir, "cache")}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "KUBECONFIG=")
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		return so.String(), se.String(), err
	}
	ok := func(args string, want ...string) string {
		t.Helper()
		out, errOut, err := run(strings.Fields(args)...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s%s", args, err, out, errOut)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("kubectl %s: no %q in:\n%s", args, w, out)
			}
		}
		return out
	}
	t.Log(ok("top node", "n1", "350m", "17%", "700Mi"))
	t.Log(ok("top pod", "web-n1", "12m", "33Mi"))
	t.Log(ok("top pod --containers", "web-n1", "web", "12m"))
	ok("auth can-i --list", "*.*")
	ok("get --raw /api/v1/nodes/n1/proxy/healthz", "ok")
	if (*seen)[len(*seen)-1] != "/healthz" {
		t.Errorf("the node's proxy did not reach the node: %v", *seen)
	}
	// An open watch, counted while it lasts.
	w, err := node.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	raw := ok("get --raw /metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"apiserver_request_total", "apiserver_request_duration_seconds", "etcd_request_duration_seconds", "apiserver_longrunning_requests"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if !strings.Contains(raw, `apiserver_longrunning_requests{group="",resource="pods",scope="cluster",verb="WATCH",version="v1"} 1`) {
		t.Errorf("/metrics does not count the open watch")
	}
	if !strings.Contains(raw, `resource="nodes"`) || !strings.Contains(raw, `group="metrics.k8s.io"`) {
		t.Errorf("/metrics does not count the requests made:\n%s", raw)
	}

	// A kind the server does not serve: the OpenAPI v2 download (protobuf)
	// now succeeds, so kubectl goes on and prints the server's answers:
	// validating, that it serves no CustomResourceDefinitions; without
	// validation, that no resource has kind ConfigMap.
	cm := filepath.Join(dir, "cm.yaml")
	if err := os.WriteFile(cm, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := run("create", "-f", cm)
	if err == nil || strings.Contains(errOut, "failed to download openapi") || !strings.Contains(errOut, `the server does not serve resource "customresourcedefinitions"`) {
		t.Fatalf("kubectl create -f configmap: err %v\n%s%s", err, out, errOut)
	}
	t.Logf("kubectl create -f configmap: %s", errOut)
	out, errOut, err = run("create", "--validate=false", "-f", cm)
	if err == nil || !strings.Contains(errOut, `no matches for kind "ConfigMap" in version "v1"`) {
		t.Fatalf("kubectl create --validate=false -f configmap: err %v\n%s%s", err, out, errOut)
	}
	t.Logf("kubectl create -f configmap: %s", errOut)
}

func resourceQ(s string) resource.Quantity { return resource.MustParse(s) }
