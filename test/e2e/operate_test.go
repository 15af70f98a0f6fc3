package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/tools/clientcmd"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// parseMetrics parses Prometheus text with the Prometheus text parser and
// returns the family names.
func parseMetrics(t *testing.T, what, text string) map[string]bool {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%s does not parse as Prometheus text: %v\n%s", what, err, text)
	}
	names := map[string]bool{}
	for n := range fams {
		names[n] = true
	}
	return names
}

// topValue finds the row starting with name in kubectl top's output and
// returns its CPU (millicores) and memory (Mi) columns.
func topValue(out, name string) (cpu, mem int, ok bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+(\d+)m\s+(?:\d+%\s+)?(\d+)Mi`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, false
	}
	cpu, _ = strconv.Atoi(m[1])
	mem, _ = strconv.Atoi(m[2])
	return cpu, mem, true
}

// Operating a static pod through `ballast up` with the real kubectl 1.32:
// top node/pod with non-zero figures (and ballast top's, from the socket),
// /metrics of the server and of the node parsed by the Prometheus parser,
// node and pod proxy, auth can-i --list, and the clean refusals: kubectl
// debug (no crash), logs --previous (400), proxy for a node's credentials
// (403) and for anonymous callers (401).
func TestUpOperate(t *testing.T) {
	env := harness.Start(t)
	u := startUp(t, env)
	u.write("web.yaml", manifest{Name: "web", Image: env.HelloImage(), Env: map[string]string{"ALLOC_MB": "24"}}.yaml())
	pod := "web-" + u.name
	u.eventually("kubectl get pods shows the static pod Running", 60*time.Second, func() error {
		return kubectlShowsRunning(u.k, pod)
	})

	// kubectl top, read from the node's /stats/summary through the server.
	u.eventually("kubectl top node and pod show non-zero figures", 30*time.Second, func() error {
		out, err := u.k("top", "node")
		if cpu, mem, ok := topValue(out, u.name); err != nil || !ok || cpu == 0 || mem == 0 {
			return fmt.Errorf("top node: %v\n%s", err, out)
		}
		out, err = u.k("top", "pod", pod)
		if cpu, mem, ok := topValue(out, pod); err != nil || !ok || cpu == 0 || mem < 24 {
			return fmt.Errorf("top pod: %v\n%s", err, out)
		}
		return nil
	})
	out, err := u.k("top", "pod", "--containers")
	if _, _, ok := topValue(out, pod+"   app"); err != nil || !ok {
		t.Errorf("kubectl top pod --containers:\n%s %v", out, err)
	}
	// ballast top: the same figures, from the socket, with no API.
	bt := func(args ...string) string {
		cmd := exec.Command(u.bin, append([]string{"top"}, append(args, "--data-dir", u.dataDir)...)...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ballast top %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	if out := bt("node"); !strings.Contains(out, "CPU(%)") {
		t.Errorf("ballast top node:\n%s", out)
	} else if cpu, mem, ok := topValue(out, u.name); !ok || cpu == 0 || mem == 0 {
		t.Errorf("ballast top node shows no figures:\n%s", out)
	}
	if out := bt("pod", "-n", "default"); true {
		if cpu, mem, ok := topValue(out, pod); !ok || cpu == 0 || mem < 24 {
			t.Errorf("ballast top pod:\n%s", out)
		}
	}

	// The server's /metrics.
	out, err = u.k("get", "--raw", "/metrics")
	if err != nil {
		t.Fatalf("get --raw /metrics: %v\n%s", err, out)
	}
	names := parseMetrics(t, "the server's /metrics", out)
	for _, n := range []string{"apiserver_request_total", "apiserver_request_duration_seconds", "etcd_request_duration_seconds"} {
		if !names[n] {
			t.Errorf("the server's /metrics lacks %s", n)
		}
	}

	// The node's paths through nodes/proxy.
	base := "/api/v1/nodes/" + u.name + "/proxy"
	out, err = u.k("get", "--raw", base+"/metrics")
	if err != nil {
		t.Fatalf("node /metrics: %v\n%s", err, out)
	}
	names = parseMetrics(t, "the node's /metrics", out)
	for _, n := range []string{"ballast_node_pods", "ballast_node_container_restarts_total", "ballast_node_manifest_problems",
		"ballast_node_runtime_operations_duration_seconds", "ballast_node_pod_start_duration_seconds", "ballast_node_mirror_sync_lag_seconds"} {
		if !names[n] {
			t.Errorf("the node's /metrics lacks %s", n)
		}
	}
	if !strings.Contains(out, `ballast_node_pods{phase="Running"} 1`) {
		t.Errorf("the node's /metrics does not count the running pod")
	}
	if !strings.Contains(out, `method="RunPodSandbox"`) {
		t.Errorf("the node's /metrics has no RunPodSandbox latency")
	}
	// Every figure above came from the containers' cgroups (this host's are
	// readable): the runtime's ListContainerStats was never needed.
	if strings.Contains(out, `method="ListContainerStats"`) {
		t.Errorf("the node read container stats from the runtime, not from the containers' cgroups:\n%s", grepLines(out, "ListContainerStats"))
	}
	out, err = u.k("get", "--raw", base+"/metrics/resource")
	if err != nil || !parseMetrics(t, "/metrics/resource", out)["container_cpu_usage_seconds_total"] {
		t.Errorf("node /metrics/resource: %v\n%s", err, out)
	}
	out, err = u.k("get", "--raw", base+"/stats/summary")
	var sum statsapi.Summary
	if err != nil || json.Unmarshal([]byte(out), &sum) != nil || sum.Node.NodeName != u.name || len(sum.Pods) != 1 ||
		sum.Pods[0].Containers[0].Memory == nil || *sum.Pods[0].Containers[0].Memory.WorkingSetBytes < 24<<20 {
		t.Errorf("node /stats/summary: %v\n%s", err, out)
	}
	if out, err = u.k("get", "--raw", base+"/pods"); err != nil || !strings.Contains(out, pod) {
		t.Errorf("node /pods: %v\n%s", err, out)
	}
	if out, err = u.k("get", "--raw", base+"/healthz"); err != nil || out != "ok" {
		t.Errorf("node /healthz: %v %q", err, out)
	}
	// The pod's own port through pods/proxy (ballast up routes to the pod's IP).
	out, err = u.k("get", "--raw", fmt.Sprintf("/api/v1/namespaces/default/pods/%s:%d/proxy/", pod, harness.HelloPort))
	if err != nil || !strings.Contains(out, "hello") {
		t.Errorf("pod proxy: %v\n%s", err, out)
	}

	// kubectl auth can-i --list.
	if out, err = u.k("auth", "can-i", "--list"); err != nil || !strings.Contains(out, "*.*") {
		t.Errorf("auth can-i --list: %v\n%s", err, out)
	}

	// kubectl debug: kube-apiserver's refusal, no crash.
	out, err = u.k("debug", pod, "--image="+env.HelloImage(), "--target=app")
	if err == nil || strings.Contains(out, "panic") || strings.Contains(out, "nil pointer") ||
		!strings.Contains(out, "static pods do not support ephemeral containers") || !strings.Contains(out, "web.yaml") {
		t.Errorf("kubectl debug must be refused cleanly:\n%s %v", out, err)
	}
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
		t.Errorf("kubectl debug: exit %v, want 1 (an error, not a crash)", err)
	}
	// kubectl logs --previous with no previous instance: 400 BadRequest.
	out, err = u.k("logs", pod, "--previous")
	if err == nil || !strings.Contains(out, "BadRequest") || !strings.Contains(out, "previous terminated container") {
		t.Errorf("kubectl logs --previous:\n%s %v", out, err)
	}

	// Refusals: a node's credentials may not proxy; anonymous callers neither.
	cfg, err := clientcmd.LoadFromFile(u.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	server := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster].Server
	tok, err := exec.Command(u.bin, "server", "token", "create", "--node", "other", "--data-dir", u.dataDir).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	ca := filepath.Join(u.dataDir, "pki", "ca.crt")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, path := range []string{base + "/metrics", fmt.Sprintf("/api/v1/namespaces/default/pods/%s:%d/proxy/", pod, harness.HelloPort), "/metrics"} {
		cmd := exec.CommandContext(ctx, u.kubectl, "--kubeconfig", os.DevNull, "--server", server, "--token", strings.TrimSpace(string(tok)),
			"--certificate-authority", ca, "get", "--raw", path)
		cmd.Env = append(os.Environ(), "HOME="+u.cacheDir)
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), "Forbidden") {
			t.Errorf("a node's token on %s: want Forbidden:\n%s %v", path, b, err)
		}
		code, err := anonymousGet(server+path, ca)
		if err != nil || code != http.StatusUnauthorized {
			t.Errorf("anonymous on %s: %d %v, want 401", path, code, err)
		}
	}
}

// anonymousGet sends a GET with no credentials (trusting the server's CA)
// and returns the status code.
func anonymousGet(url, caFile string) (int, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return 0, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// grepLines are the lines of text that contain s.
func grepLines(text, s string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			b.WriteString(line)
		}
	}
	return b.String()
}
