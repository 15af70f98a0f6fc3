package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// `ballast server --listen 127.0.0.1:0` prints its URL and kubeconfig; the
// kubeconfig and the keys are 0600; a restarted server keeps its data, its
// CA and its tokens, and the kubeconfig written before still works.
func TestServerDataDirRestart(t *testing.T) {
	d := filepath.Join(t.TempDir(), "data")
	s := newSrv(t, d)
	s.startArgs("127.0.0.1:0")
	u, err := url.Parse(s.URL)
	if err != nil || u.Scheme != "https" || u.Hostname() != "127.0.0.1" || u.Port() == "0" || u.Port() == "" {
		t.Fatalf("printed URL %q: want https://127.0.0.1:PORT (%v)", s.URL, err)
	}
	if s.Kubeconfig != filepath.Join(d, "kubeconfig") {
		t.Errorf("printed kubeconfig %q, want %q", s.Kubeconfig, filepath.Join(d, "kubeconfig"))
	}
	checkMode(t, s.Kubeconfig, 0o600)
	keys := 0
	ents, err := os.ReadDir(filepath.Join(d, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".key") {
			keys++
			checkMode(t, filepath.Join(d, "pki", e.Name()), 0o600)
		}
	}
	if keys == 0 {
		t.Errorf("no *.key in %s/pki: %v", d, ents)
	}

	kc := newKubectl(t, "--kubeconfig", s.Kubeconfig)
	if out, err := kc.run("create", "namespace", "keep"); err != nil {
		t.Fatalf("kubectl create namespace: %v\n%s", err, out)
	}
	tok := s.token("n1")
	checkMode(t, TokensPathFor(d), 0o600)
	oldKC, _ := os.ReadFile(s.Kubeconfig)
	oldCA, _ := os.ReadFile(filepath.Join(d, "pki", "ca.crt"))
	saved := filepath.Join(t.TempDir(), "old-kubeconfig")
	if err := os.WriteFile(saved, oldKC, 0o600); err != nil {
		t.Fatal(err)
	}

	s.stop()
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("ballast server exited %d on SIGTERM", code)
	}
	s.startArgs(u.Host) // the same port: the old kubeconfig names it
	if s.URL != "https://"+u.Host {
		t.Errorf("restarted at %s, want https://%s", s.URL, u.Host)
	}
	newKC, _ := os.ReadFile(s.Kubeconfig)
	newCA, _ := os.ReadFile(filepath.Join(d, "pki", "ca.crt"))
	if !bytes.Equal(oldCA, newCA) {
		t.Errorf("the CA changed across a restart")
	}
	if !bytes.Equal(oldKC, newKC) {
		t.Errorf("the admin kubeconfig was rewritten across a restart")
	}
	old := newKubectl(t, "--kubeconfig", saved)
	if out, err := old.run("get", "namespace", "keep", "-o", "name"); err != nil || strings.TrimSpace(out) != "namespace/keep" {
		t.Errorf("the old kubeconfig after a restart: %v\n%s", err, out)
	}
	node := clientFor(t, s.tokenConfig(tok))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := node.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the node token made before the restart: %v", err)
	}
}

// TokensPathFor is where `ballast server token create` keeps tokens.
func TokensPathFor(dataDir string) string {
	p, _ := filepath.Glob(filepath.Join(dataDir, "pki", "*token*"))
	if len(p) == 0 {
		return filepath.Join(dataDir, "pki", "tokens")
	}
	return p[0]
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if info.Mode().Perm() != want {
		t.Errorf("%s: mode %o, want %o", path, info.Mode().Perm(), want)
	}
}

// Anonymous requests get only health and version; a node token may write
// its own Node, Lease and mirror pods and nothing of another node's; pods
// that are not mirror pods are refused with a message; kubectl auth can-i
// answers for each user.
func TestServerSecurity(t *testing.T) {
	s := newSrv(t, filepath.Join(t.TempDir(), "data"))
	s.start()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Anonymous, over TLS trusting the server's CA.
	caPEM, err := os.ReadFile(filepath.Join(s.dataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := anon.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/healthz", "/livez", "/readyz", "/version", "/readyz?verbose", "/livez/ping"} {
		if code, body := do("GET", p, ""); code != 200 {
			t.Errorf("anonymous GET %s: %d %s, want 200", p, code, body)
		}
	}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api", ""}, {"GET", "/apis", ""}, {"GET", "/api/v1", ""}, {"GET", "/api/v1/pods", ""},
		{"GET", "/api/v1/namespaces/default/pods", ""}, {"GET", "/api/v1/nodes", ""}, {"GET", "/openapi/v2", ""},
		{"GET", "/api/v1/namespaces/kube-system/secrets", ""}, {"GET", "/metrics", ""}, {"GET", "/", ""},
		{"GET", "/api/v1/pods?watch=1", ""},
		{"POST", "/api/v1/namespaces", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"anon"}}`},
		{"DELETE", "/api/v1/namespaces/default", ""},
		{"POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", `{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"verb":"get","resource":"pods"}}}`},
	} {
		if code, body := do(r.method, r.path, r.body); code != 401 && code != 403 {
			t.Errorf("anonymous %s %s: %d %s, want 401 or 403", r.method, r.path, code, body)
		}
	}
	if _, err := s.admin().CoreV1().Namespaces().Get(ctx, "anon", metav1.GetOptions{}); err == nil {
		t.Errorf("an anonymous POST created a namespace")
	}

	// A node token, through kubectl flags (no kubeconfig).
	tok := s.token("n1")
	empty := filepath.Join(t.TempDir(), "empty-kubeconfig")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(s.dataDir, "pki", "ca.crt")
	n1 := newKubectl(t, "--kubeconfig", empty, "--server", s.URL, "--token", tok, "--certificate-authority", ca)
	admin := newKubectl(t, "--kubeconfig", s.Kubeconfig)
	files := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nodeYAML := func(name string) string {
		return write(name+".yaml", fmt.Sprintf("apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n", name))
	}
	mustOK := func(k *kubectlRunner, args ...string) string {
		t.Helper()
		out, err := k.run(args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	mustForbid := func(what string, k *kubectlRunner, want []string, args ...string) {
		t.Helper()
		out, err := k.run(args...)
		if err == nil {
			t.Errorf("%s: kubectl %s succeeded:\n%s", what, strings.Join(args, " "), out)
			return
		}
		for _, w := range append([]string{"Forbidden"}, want...) {
			if !strings.Contains(out, w) {
				t.Errorf("%s: kubectl %s: output lacks %q:\n%s", what, strings.Join(args, " "), w, out)
			}
		}
	}

	mustOK(n1, "create", "-f", nodeYAML("n1"))
	mustForbid("node n1 creates Node n2", n1, []string{"n2", "own Node"}, "create", "-f", nodeYAML("n2"))
	mustOK(admin, "create", "-f", nodeYAML("n2"))
	mustForbid("node n1 deletes Node n2", n1, []string{"n2"}, "delete", "node", "n2")
	mustForbid("node n1 labels Node n2", n1, []string{"n2"}, "label", "node", "n2", "x=y")
	mustOK(n1, "label", "node", "n1", "x=y")

	leaseYAML := func(name string) string {
		return write("lease-"+name+".yaml", fmt.Sprintf("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: %s\n  namespace: kube-node-lease\nspec:\n  holderIdentity: %s\n  leaseDurationSeconds: 40\n", name, name))
	}
	mustOK(n1, "create", "-f", leaseYAML("n1"))
	mustOK(admin, "create", "-f", leaseYAML("n2"))
	mustForbid("node n1 deletes n2's lease", n1, []string{"n2"}, "delete", "lease", "n2", "-n", "kube-node-lease")
	mustForbid("node n1 updates n2's lease", n1, []string{"n2"}, "annotate", "lease", "n2", "-n", "kube-node-lease", "a=b")
	if out := mustOK(admin, "get", "lease", "n2", "-n", "kube-node-lease", "-o", "name"); !strings.Contains(out, "lease.coordination.k8s.io/n2") {
		t.Errorf("n2's lease: %s", out)
	}

	uids := map[string]string{}
	for _, n := range []string{"n1", "n2"} {
		uids[n] = strings.TrimSpace(mustOK(admin, "get", "node", n, "-o", "jsonpath={.metadata.uid}"))
	}
	podYAML := func(file, name, node string, mirror bool) string {
		meta := ""
		if mirror {
			meta = fmt.Sprintf("  annotations:\n    kubernetes.io/config.mirror: abc\n    kubernetes.io/config.source: file\n  ownerReferences:\n  - apiVersion: v1\n    kind: Node\n    name: %s\n    uid: %s\n    controller: true\n", node, uids[node])
		}
		return write(file, fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n%sspec:\n  nodeName: %s\n  containers:\n  - name: app\n    image: ballast.local/hello:v1\n", name, meta, node))
	}
	mustOK(n1, "create", "-f", podYAML("own.yaml", "web-n1", "n1", true))
	mustForbid("node n1 creates a mirror pod for n2", n1, []string{"n2"}, "create", "-f", podYAML("other.yaml", "web-n2", "n2", true))
	mustForbid("node n1 creates a pod that is not a mirror", n1, []string{"must carry the annotation kubernetes.io/config.mirror"}, "create", "-f", podYAML("plain-n1.yaml", "plain", "n1", false))
	mustForbid("admin creates a pod that is not a mirror", admin, []string{"Ballast runs static pods only", "pod manifest directory"}, "run", "nginx", "--image=nginx")
	mustForbid("admin creates a pod that is not a mirror", admin, []string{"Ballast runs static pods only"}, "create", "-f", podYAML("plain.yaml", "plain", "n1", false))
	if out, err := admin.run("set", "image", "pod/web-n1", "app=other:v2"); err == nil ||
		!strings.Contains(out, `mirror of a static pod on node "n1"`) || !strings.Contains(out, "manifest") {
		t.Errorf("kubectl set image on a mirror pod must fail naming the node and the manifest: %v\n%s", err, out)
	}

	// The same through client-go as the node (JSON), on n2's objects.
	nc := clientFor(t, s.tokenConfig(tok))
	if _, err := nc.CoordinationV1().Leases("kube-node-lease").Update(ctx, &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n2", Namespace: "kube-node-lease"}}, metav1.UpdateOptions{}); err == nil || !isForbidden(err) {
		t.Errorf("node n1 updating n2's lease through client-go: %v, want 403", err)
	}
	if err := nc.CoreV1().Nodes().Delete(ctx, "n2", metav1.DeleteOptions{}); err == nil || !isForbidden(err) {
		t.Errorf("node n1 deleting Node n2 through client-go: %v, want 403", err)
	}
	if _, err := nc.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sneaky", Annotations: map[string]string{"kubernetes.io/config.mirror": "x"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "n2", UID: "u"}}},
		Spec: corev1.PodSpec{NodeName: "n2", Containers: []corev1.Container{{Name: "a", Image: "a"}}},
	}, metav1.CreateOptions{}); err == nil || !isForbidden(err) {
		t.Errorf("node n1 creating a pod on n2 through client-go: %v, want 403", err)
	}

	// kubectl auth can-i, per user.
	for _, c := range []struct {
		k    *kubectlRunner
		who  string
		args []string
		want string
	}{
		{admin, "admin", []string{"create", "pods"}, "yes"},
		{admin, "admin", []string{"delete", "nodes"}, "yes"},
		{admin, "admin", []string{"*", "*"}, "yes"},
		{n1, "n1", []string{"list", "pods"}, "yes"},
		{n1, "n1", []string{"watch", "nodes"}, "yes"},
		{n1, "n1", []string{"update", "nodes/n1"}, "yes"},
		{n1, "n1", []string{"update", "nodes/n2"}, "no"},
		{n1, "n1", []string{"update", "leases/n1", "-n", "kube-node-lease"}, "yes"},
		{n1, "n1", []string{"delete", "leases/n2", "-n", "kube-node-lease"}, "no"},
		{n1, "n1", []string{"create", "namespaces"}, "no"},
		{n1, "n1", []string{"list", "secrets"}, "no"},
	} {
		out, _ := c.k.run(append([]string{"auth", "can-i"}, c.args...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		got := ""
		if f := strings.Fields(lines[len(lines)-1]); len(f) > 0 {
			got = f[0]
		}
		if got != c.want {
			t.Errorf("%s: kubectl auth can-i %s: %q, want %q", c.who, strings.Join(c.args, " "), out, c.want)
		}
	}
}

func isForbidden(err error) bool { return apierrors.IsForbidden(err) }
