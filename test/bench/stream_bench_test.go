package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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
// kubectl by three paths, all up at once and measured in turn: `ballast up`
// (its API server and node in one process); kube-apiserver 1.32 with
// `ballast node`; and kube-apiserver 1.32 with the real kubelet 1.32, on a
// containerd of its own configured as Ballast's (the kube-apiserver paths
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
	r := &streamResults{when: time.Now().UTC().Format("2006-01-02 15:04 UTC"), load: loadavg()}

	// ballast up.
	manifests := webManifests(b, filepath.Join(dir, "manifests"), env.HelloImage())
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
	b.Cleanup(func() { _ = up.Process.Kill(); _ = up.Wait() })
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
	targets := []streamTarget{{pathUp, k, "web-" + nodeName}}

	// kube-apiserver, with the kubelet and with ballast node, each on a
	// node address of its own (the kubelet refuses a loopback one). The
	// kubelet gets a containerd of its own, configured as Ballast's: it
	// stops every pod of its runtime it did not start.
	bins, err := realkube.FindBinaries("kube-apiserver", "etcd", "kubelet")
	if err != nil {
		r.kubeSkipped = err.Error()
	} else {
		c := realkube.StartCluster(b, bins, true)
		k := kubectlFor(b, kubectl, c.Admin)

		kubeletEnv := harness.Start(b)
		kubelet := realkube.StartKubelet(b, realkube.KubeletConfig{
			Bin: filepath.Join(bins, "kubelet"), Dir: filepath.Join(dir, "kubelet"), NodeName: kubeletNode,
			Endpoint: kubeletEnv.Endpoint, Manifests: webManifests(b, filepath.Join(dir, "kubelet-manifests"), kubeletEnv.HelloImage()),
			Kubeconfig: c.NodeKubeconfig(b, kubeletNode), NodeIP: realkube.NodeAddress(b), PKI: c.PKI,
		})

		const balNode = "bench-node"
		nodeIP := realkube.NodeAddress(b)
		cert, key := c.PKI.Issue(b, "ballast-serving", "system:node:"+balNode, []string{"system:nodes"}, nodeIP)
		node := realkube.StartProc(b, dir, "ballast-node", bin, "node",
			"--kubeconfig", c.NodeKubeconfig(b, balNode), "--node-name", balNode, "--node-ip", nodeIP,
			"--container-runtime-endpoint", env.Endpoint, "--data-dir", filepath.Join(dir, "node-data"),
			"--pod-manifest-path", webManifests(b, filepath.Join(dir, "node-manifests"), env.HelloImage()),
			"--images-dir", filepath.Join(dir, "node-images"),
			"--port", fmt.Sprint(realkube.FreePort(b)), "--address", nodeIP, "--client-ca-file", c.PKI.CA,
			"--tls-cert-file", cert, "--tls-private-key-file", key, "--log-level", "warn")

		waitMirrorRunning(b, k, "web-"+kubeletNode, func() string { return realkube.Tail(kubelet.Log, 40) })
		waitMirrorRunning(b, k, "web-"+balNode, func() string { return realkube.Tail(node.Log, 40) })
		targets = append(targets, streamTarget{pathKubelet, k, "web-" + kubeletNode}, streamTarget{pathKubeBal, k, "web-" + balNode})
	}
	r.paths = measureStreams(b, targets)
	r.loadAfter = loadavg()
	r.print(os.Stdout)
	return r
}

// webManifests writes the hello pod's manifest in a new directory.
func webManifests(b testing.TB, dir, image string) string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(manifestYAML("web", image)), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
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

// streamTarget is a path ready to measure: kubectl for its API server, and
// the pod.
type streamTarget struct {
	name string
	k    kubectlCmd
	pod  string
}

// measureStreams measures every path in turn, round by round (the order
// rotating), so that a change of the machine's load falls on all of them:
// for each protocol, 2 warm-up runs each, then execRounds timed `kubectl
// exec POD -- true` each, then forwardRounds port-forward transfers each.
func measureStreams(b testing.TB, targets []streamTarget) []streamPath {
	paths := make([]streamPath, len(targets))
	for i, t := range targets {
		paths[i] = streamPath{name: t.name, exec: map[string][]time.Duration{}, forward: map[string][]float64{}}
	}
	execOnce := func(t streamTarget, p string, env []string) time.Duration {
		t0 := time.Now()
		if out, err := t.k(env, "exec", t.pod, "--", "true").CombinedOutput(); err != nil {
			b.Fatalf("%s: kubectl exec (%s): %v\n%s", t.name, p, err, out)
		}
		return time.Since(t0)
	}
	for _, p := range streamProtocol {
		// Warm: kubectl's discovery cache, the node's first exec.
		for _, t := range targets {
			execOnce(t, p.name, p.env)
			execOnce(t, p.name, p.env)
		}
		for round := range execRounds {
			for j := range targets {
				i := (round + j) % len(targets)
				paths[i].exec[p.name] = append(paths[i].exec[p.name], execOnce(targets[i], p.name, p.env))
			}
		}
		locals := make([]int, len(targets))
		for i, t := range targets {
			locals[i] = startForward(b, t.k(p.env, "port-forward", "--address", "127.0.0.1", "pod/"+t.pod, ":8080"))
		}
		for round := range forwardRounds {
			for j := range targets {
				i := (round + j) % len(targets)
				paths[i].forward[p.name] = append(paths[i].forward[p.name], transfer(b, targets[i].name, locals[i]))
			}
		}
	}
	return paths
}

// startForward runs a kubectl port-forward command (stopped when b ends)
// and returns the local port it forwards.
func startForward(b testing.TB, cmd *exec.Cmd) int {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
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
	return local
}

// transfer fetches forwardBytes through a forwarded port (one connection,
// from the request to the last byte) and returns the MB/s.
func transfer(b testing.TB, name string, local int) float64 {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	t0 := time.Now()
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/bytes?n=%d", local, forwardBytes))
	if err != nil {
		b.Fatalf("%s: through the forwarded port: %v", name, err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil || n != forwardBytes {
		b.Fatalf("%s: through the forwarded port: %d of %d bytes, %v", name, n, forwardBytes, err)
	}
	return float64(n) / 1e6 / d.Seconds()
}

// quartiles are the first and third quartiles (nearest rank) of ds: the
// middle half of the runs lies between them.
func quartiles(ds []time.Duration) (lo, hi time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)+3)/4-1], s[(3*len(s)+3)/4-1]
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
	p("kubectl -> the API server -> the node -> containerd's streaming server, the hello pod; the paths measured in turn, round by round;\n")
	p("Ballast's two nodes share a containerd, the kubelet has one of its own, configured the same (it stops pods it did not start)\n")
	p("%s: the API server and the node in one process (the node's local socket); through kube-apiserver 1.32:\n", pathUp)
	p("it calls the node's HTTPS API (/exec, /portForward: SPDY, WebSocket translated) with its kubelet client certificate\n\n")
	for _, path := range r.paths {
		p("  %s\n", path.name)
		for _, pr := range streamProtocol {
			var parts []string
			for _, d := range path.exec[pr.name] {
				parts = append(parts, fmt.Sprintf("%.0f", ms(d)))
			}
			lo, hi := quartiles(path.exec[pr.name])
			p("    %-9s kubectl exec POD -- true: median %6.1f ms of %d (middle half %.0f-%.0f) [%s]\n",
				pr.name, ms(median(path.exec[pr.name])), len(path.exec[pr.name]), ms(lo), ms(hi), strings.Join(parts, " "))
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
			p("  goal: exec round trip (%s) no slower than the kubelet's path: %s %.1f ms vs %.1f ms (%+.1f ms): %s\n",
				def, name, ms(got), ms(ref), ms(got-ref), verdict(got <= ref))
		}
	}
	p("\n")
}
