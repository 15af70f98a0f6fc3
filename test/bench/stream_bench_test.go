package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
	"github.com/ballast-dev/ballast/test/realkube"
)

// The method.
var (
	execRounds     = 20
	forwardBytes   = int64(100 << 20)
	forwardRounds  = 3
	streamProtocol = []struct {
		name string
		env  []string
	}{
		{"websocket", nil}, // kubectl 1.32's default
		{"spdy", []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}},
	}
)

// streamPath is one way from kubectl to a pod's container, measured.
type streamPath struct {
	name    string
	exec    map[string][]time.Duration // by protocol: each `kubectl exec POD -- true`
	forward map[string][]float64       // by protocol: MB/s of each 100 MB transfer
}

// The paths, by what serves the API and what runs the pod.
const (
	pathUp      = "ballast up"
	pathKubeBal = "kube-apiserver + ballast node"
	pathKubelet = "kube-apiserver + kubelet"
)

type streamResults struct {
	when, kubectlVersion, load, loadAfter string
	paths                                 []streamPath
	// kubeSkipped says why the kube-apiserver paths were not measured.
	kubeSkipped string
}

func (r *streamResults) path(name string) *streamPath {
	for i := range r.paths {
		if r.paths[i].name == name {
			return &r.paths[i]
		}
	}
	return nil
}

var (
	streamOnce   sync.Once
	streamReport *streamResults
)

// BenchmarkStreaming measures streaming into a static pod with the real
// kubectl, on one containerd, by three paths: `ballast up` (its API server
// and node in one process); kube-apiserver 1.32 with `ballast node`; and
// kube-apiserver 1.32 with the real kubelet 1.32 (the kube-apiserver paths
// when BALLAST_KUBE_BINARIES names them, as make bench does). Each: the
// round trip of `kubectl exec POD -- true` (median of 20, the whole command
// as a person runs it) and port-forward throughput (100 MB through
// `kubectl port-forward`, from the request to the last byte), with kubectl's
// WebSocket protocols and with SPDY. b.N is ignored (-benchtime 1x).
func BenchmarkStreaming(b *testing.B) {
	streamOnce.Do(func() { streamReport = runStreaming(b) })
	if streamReport == nil {
		b.Fatal("the streaming benchmark did not complete")
	}
	r := streamReport
	b.ReportMetric(0, "ns/op")
	for _, path := range r.paths {
		prefix := map[string]string{pathUp: "", pathKubeBal: "kube_ballast_", pathKubelet: "kubelet_"}[path.name]
		for _, p := range streamProtocol {
			b.ReportMetric(ms(median(path.exec[p.name])), prefix+"exec_true_"+p.name+"_ms")
			b.ReportMetric(medianF(path.forward[p.name]), prefix+"portforward_"+p.name+"_MBps")
		}
	}
}

func runStreaming(b testing.TB) *streamResults {
	harness.Require(b)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		b.Skip("kubectl is not installed: the streaming benchmark runs the real kubectl")
	}
	env := harness.Start(b)
	bin := buildBallast(b)
	dir := b.TempDir()
	pod := manifestYAML("web", env.HelloImage())
	r := &streamResults{when: time.Now().UTC().Format("2006-01-02 15:04 UTC"), load: loadavg()}

	// ballast up.
	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(manifests, "web.yaml"), []byte(pod), 0o644); err != nil {
		b.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	up := exec.Command(bin, "up", "--node-name", nodeName, "--data-dir", dataDir, "--pod-manifest-path", manifests,
		"--container-runtime-endpoint", env.Endpoint, "--listen", "127.0.0.1:0", "--log-level", "warn")
	stdout, err := up.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var log lockedLog
	up.Stderr = &log
	if err := up.Start(); err != nil {
		b.Fatal(err)
	}
	upDone := make(chan struct{})
	go func() { _ = up.Wait(); close(upDone) }()
	stopUp := func() {
		_ = up.Process.Kill()
		<-upDone
	}
	b.Cleanup(stopUp)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") && !once {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(90 * time.Second):
		b.Fatalf("ballast up not ready in 90 s:\n%s", log.String())
	}
	k := kubectlFor(b, kubectl, filepath.Join(dataDir, "kubeconfig"))
	waitMirrorRunning(b, k, "web-"+nodeName, log.String)
	var ver struct{ ClientVersion struct{ GitVersion string } }
	if out, err := k(nil, "version", "--client", "-o", "json").Output(); err == nil {
		_ = json.Unmarshal(out, &ver)
	}
	r.kubectlVersion = ver.ClientVersion.GitVersion
	r.paths = append(r.paths, measureStreams(b, pathUp, k, "web-"+nodeName))
	stopUp()
	env.RemoveAllPods(b)

	// kube-apiserver, with the kubelet and then with ballast node, each
	// on a node address of its own (the kubelet refuses a loopback one).
	bins, err := realkube.FindBinaries("kube-apiserver", "etcd", "kubelet")
	if err != nil {
		r.kubeSkipped = err.Error()
		r.loadAfter = loadavg()
		r.print(os.Stdout)
		return r
	}
	c := realkube.StartCluster(b, bins, true)
	nodeIP := realkube.NodeAddress(b)
	k = kubectlFor(b, kubectl, c.Admin)

	kubeletManifests := filepath.Join(dir, "kubelet-manifests")
	if err := os.MkdirAll(kubeletManifests, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kubeletManifests, "web.yaml"), []byte(pod), 0o644); err != nil {
		b.Fatal(err)
	}
	kubelet := realkube.StartKubelet(b, realkube.KubeletConfig{
		Bin: filepath.Join(bins, "kubelet"), Dir: filepath.Join(dir, "kubelet"), NodeName: kubeletNode,
		Endpoint: env.Endpoint, Manifests: kubeletManifests, Kubeconfig: c.NodeKubeconfig(b, kubeletNode),
		NodeIP: nodeIP, PKI: c.PKI,
	})
	waitMirrorRunning(b, k, "web-"+kubeletNode, func() string { return realkube.Tail(kubelet.Log, 40) })
	r.paths = append(r.paths, measureStreams(b, pathKubelet, k, "web-"+kubeletNode))
	if err := kubelet.Stop(); err != nil {
		b.Error(err)
	}
	env.RemoveAllPods(b)

	const balNode = "bench-node"
	cert, key := c.PKI.Issue(b, "ballast-serving", "system:node:"+balNode, []string{"system:nodes"}, nodeIP)
	node := realkube.StartProc(b, dir, "ballast-node", bin, "node",
		"--kubeconfig", c.NodeKubeconfig(b, balNode), "--node-name", balNode, "--node-ip", nodeIP,
		"--container-runtime-endpoint", env.Endpoint, "--data-dir", filepath.Join(dir, "node-data"),
		"--pod-manifest-path", manifests, "--images-dir", filepath.Join(dir, "node-images"),
		"--port", fmt.Sprint(realkube.FreePort(b)), "--address", nodeIP, "--client-ca-file", c.PKI.CA,
		"--tls-cert-file", cert, "--tls-private-key-file", key, "--log-level", "warn")
	waitMirrorRunning(b, k, "web-"+balNode, func() string { return realkube.Tail(node.Log, 40) })
	r.paths = append(r.paths, measureStreams(b, pathKubeBal, k, "web-"+balNode))
	node.Stop()
	env.RemoveAllPods(b)

	r.loadAfter = loadavg()
	r.print(os.Stdout)
	return r
}

// kubectlCmd makes a kubectl command with extra environment.
type kubectlCmd func(env []string, args ...string) *exec.Cmd

// kubectlFor runs kubectl with a kubeconfig and a cache of its own.
func kubectlFor(b testing.TB, kubectl, kubeconfig string) kubectlCmd {
	home := b.TempDir()
	return func(envv []string, args ...string) *exec.Cmd {
		cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(home, "cache")}, args...)...)
		cmd.Env = append(append(os.Environ(), "HOME="+home), envv...)
		return cmd
	}
}

// waitMirrorRunning waits until the pod is Running in the API.
func waitMirrorRunning(b testing.TB, k kubectlCmd, pod string, log func() string) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _ := k(nil, "get", "pod", pod, "-o", "jsonpath={.status.phase}").Output()
		if string(out) == "Running" {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("mirror pod %s not Running in 2 min (%q):\n%s", pod, out, log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// measureStreams runs, for each protocol, 2 warm-up and execRounds timed
// `kubectl exec POD -- true`, then the port-forward transfers.
func measureStreams(b testing.TB, name string, k kubectlCmd, pod string) streamPath {
	sp := streamPath{name: name, exec: map[string][]time.Duration{}, forward: map[string][]float64{}}
	for _, p := range streamProtocol {
		// Warm: kubectl's discovery cache, the node's first exec.
		for range 2 {
			if out, err := k(p.env, "exec", pod, "--", "true").CombinedOutput(); err != nil {
				b.Fatalf("%s: kubectl exec (%s): %v\n%s", name, p.name, err, out)
			}
		}
		for range execRounds {
			t0 := time.Now()
			if out, err := k(p.env, "exec", pod, "--", "true").CombinedOutput(); err != nil {
				b.Fatalf("%s: kubectl exec (%s): %v\n%s", name, p.name, err, out)
			}
			sp.exec[p.name] = append(sp.exec[p.name], time.Since(t0))
		}
		sp.forward[p.name] = forwardThroughput(b, k(p.env, "port-forward", "--address", "127.0.0.1", "pod/"+pod, ":8080"))
	}
	return sp
}

// forwardThroughput runs a kubectl port-forward command and fetches
// forwardBytes through it forwardRounds times: MB/s of each.
func forwardThroughput(b testing.TB, cmd *exec.Cmd) []float64 {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	local := 0
	for local == 0 && sc.Scan() {
		var r int
		fmt.Sscanf(sc.Text(), "Forwarding from 127.0.0.1:%d -> %d", &local, &r)
	}
	if local == 0 {
		b.Fatal("kubectl port-forward printed no forwarding line")
	}
	go io.Copy(io.Discard, stdout)
	var rates []float64
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	for range forwardRounds {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/bytes?n=%d", local, forwardBytes), nil)
		t0 := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			b.Fatalf("through the forwarded port: %v", err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil || n != forwardBytes {
			b.Fatalf("through the forwarded port: %d of %d bytes, %v", n, forwardBytes, err)
		}
		rates = append(rates, float64(n)/1e6/d.Seconds())
	}
	return rates
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (r *streamResults) print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	host, _ := os.Hostname()
	p("\n==== Ballast streaming benchmark ====\n")
	p("date %s, host %s, %d CPUs, load %s (after: %s), kubectl %s, %s\n", r.when, host, runtime.NumCPU(), r.load, r.loadAfter, r.kubectlVersion, runtime.Version())
	p("kubectl -> the API server -> the node -> containerd's streaming server, one containerd, the hello pod;\n")
	p("%s: the API server and the node in one process (the node's local socket); through kube-apiserver 1.32:\n", pathUp)
	p("it calls the node's HTTPS API (/exec, /portForward: SPDY, WebSocket translated) with its kubelet client certificate\n\n")
	for _, path := range r.paths {
		p("  %s\n", path.name)
		for _, pr := range streamProtocol {
			var parts []string
			for _, d := range path.exec[pr.name] {
				parts = append(parts, fmt.Sprintf("%.0f", ms(d)))
			}
			p("    %-9s kubectl exec POD -- true: median %6.1f ms of %d [%s]\n", pr.name, ms(median(path.exec[pr.name])), len(path.exec[pr.name]), strings.Join(parts, " "))
			var rates []string
			for _, x := range path.forward[pr.name] {
				rates = append(rates, fmt.Sprintf("%.0f", x))
			}
			p("    %-9s port-forward, %d MB: median %6.1f MB/s [%s]\n", pr.name, forwardBytes>>20, medianF(path.forward[pr.name]), strings.Join(rates, " "))
		}
	}
	kubelet := r.path(pathKubelet)
	if kubelet == nil {
		p("  the kubelet's path was not measured: %s\n\n", r.kubeSkipped)
		return
	}
	// The goal: exec round trip no slower than the kubelet's path, with
	// kubectl's default protocol.
	def := streamProtocol[0].name
	ref := median(kubelet.exec[def])
	for _, name := range []string{pathUp, pathKubeBal} {
		if bp := r.path(name); bp != nil {
			got := median(bp.exec[def])
			p("  goal: exec round trip (%s) no slower than the kubelet's path: %s %.1f ms vs %.1f ms: %s\n", def, name, ms(got), ms(ref), verdict(got <= ref))
		}
	}
	p("\n")
}
