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

type streamResults struct {
	when, kubectlVersion string
	exec                 map[string][]time.Duration // by protocol: each `kubectl exec POD -- true`
	forward              map[string][]float64       // by protocol: MB/s of each 100 MB transfer
}

var (
	streamOnce   sync.Once
	streamReport *streamResults
)

// BenchmarkStreaming measures streaming into a mirror pod of `ballast up`
// with the real kubectl: the round trip of `kubectl exec POD -- true`
// (median of 20, the whole command as a person runs it) and port-forward
// throughput (100 MB through `kubectl port-forward`, from the request to
// the last byte), with kubectl's WebSocket protocols and with SPDY. b.N is
// ignored (-benchtime 1x).
func BenchmarkStreaming(b *testing.B) {
	streamOnce.Do(func() { streamReport = runStreaming(b) })
	if streamReport == nil {
		b.Fatal("the streaming benchmark did not complete")
	}
	r := streamReport
	b.ReportMetric(0, "ns/op")
	for _, p := range streamProtocol {
		b.ReportMetric(ms(median(r.exec[p.name])), "exec_true_"+p.name+"_ms")
		b.ReportMetric(medianF(r.forward[p.name]), "portforward_"+p.name+"_MBps")
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
	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(manifests, "web.yaml"), []byte(manifestYAML("web", env.HelloImage())), 0o644); err != nil {
		b.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	const nodeName = "bench"
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
	kc := filepath.Join(dataDir, "kubeconfig")
	home := b.TempDir()
	k := func(envv []string, args ...string) *exec.Cmd {
		cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kc, "--cache-dir", filepath.Join(home, "cache")}, args...)...)
		cmd.Env = append(append(os.Environ(), "HOME="+home), envv...)
		return cmd
	}
	pod := "web-" + nodeName
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _ := k(nil, "get", "pod", pod, "-o", "jsonpath={.status.phase}").Output()
		if string(out) == "Running" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("mirror pod %s not Running in 2 min (%q):\n%s", pod, out, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	var ver struct{ ClientVersion struct{ GitVersion string } }
	if out, err := k(nil, "version", "--client", "-o", "json").Output(); err == nil {
		_ = json.Unmarshal(out, &ver)
	}
	r := &streamResults{when: time.Now().UTC().Format("2006-01-02 15:04 UTC"), kubectlVersion: ver.ClientVersion.GitVersion,
		exec: map[string][]time.Duration{}, forward: map[string][]float64{}}

	for _, p := range streamProtocol {
		// Warm: kubectl's discovery cache, the node's first exec.
		for range 2 {
			if out, err := k(p.env, "exec", pod, "--", "true").CombinedOutput(); err != nil {
				b.Fatalf("kubectl exec (%s): %v\n%s", p.name, err, out)
			}
		}
		for range execRounds {
			t0 := time.Now()
			if out, err := k(p.env, "exec", pod, "--", "true").CombinedOutput(); err != nil {
				b.Fatalf("kubectl exec (%s): %v\n%s", p.name, err, out)
			}
			r.exec[p.name] = append(r.exec[p.name], time.Since(t0))
		}
		r.forward[p.name] = forwardThroughput(b, k(p.env, "port-forward", "--address", "127.0.0.1", "pod/"+pod, ":8080"))
	}
	r.print(os.Stdout)
	return r
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
	p("date %s, host %s, %d CPUs, kubectl %s, %s\n", r.when, host, runtime.NumCPU(), r.kubectlVersion, runtime.Version())
	p("kubectl -> ballast up (API server -> the node's local socket -> containerd's streaming server), hello pod\n\n")
	for _, pr := range streamProtocol {
		var parts []string
		for _, d := range r.exec[pr.name] {
			parts = append(parts, fmt.Sprintf("%.0f", ms(d)))
		}
		p("  %-9s kubectl exec POD -- true: median %6.1f ms of %d [%s]\n", pr.name, ms(median(r.exec[pr.name])), len(r.exec[pr.name]), strings.Join(parts, " "))
		var rates []string
		for _, x := range r.forward[pr.name] {
			rates = append(rates, fmt.Sprintf("%.0f", x))
		}
		p("  %-9s port-forward, %d MB: median %6.1f MB/s [%s]\n", pr.name, forwardBytes>>20, medianF(r.forward[pr.name]), strings.Join(rates, " "))
	}
	p("(the kubelet's figures are not measured here: see docs/benchmarks.md)\n\n")
}
