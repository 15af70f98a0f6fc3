package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// What the node <-> API issue asks for.
const (
	targetMirrorDelta  = 100 * time.Millisecond // mirror Running after the container serves
	targetMirrorRatio  = 1.2                    // 20 mirrors Running / 20 containers serving
	targetMirrorRecrea = 100 * time.Millisecond // mirror deleted -> new mirror on a watch
)

// The method.
var (
	mirrorRounds1, mirrorRounds20, mirrorDeletes = 5, 3, 5
	mirrorIdlePods                               = 50
)

type mirrorRound struct {
	serving, started, running time.Duration // from the write: last pod serving, last "container started", last mirror Running
	statusUpdates, requests   int           // node -> API during the round (until all mirrors Running)
}

type mirrorResults struct {
	when, runtimeVersion string
	r1, r20              []mirrorRound
	seen, running        []time.Duration // mirror deleted -> new mirror on the watch, -> new mirror Running
	idle                 mirrorIdle
}

type mirrorIdle struct {
	startAll      time.Duration // 50 files -> all 50 mirrors Running
	window        time.Duration
	byKind        map[string]int
	total, lease  int
	statusUpdates int
	changedPods   int // pods with a MODIFIED event on the watch in the window
	watchEvents   int // MODIFIED events on the watch in the window (status changes)
	events, other int // requests for events; for anything but Lease, pod status and events
	crashes       []string
	details       []string // the requests besides the Lease's, watch events, the agent's log lines
}

var (
	mirrorOnce   sync.Once
	mirrorReport *mirrorResults
)

// BenchmarkMirror measures a `ballast node` joined with a token to a
// separate `ballast server`: how soon mirror pods show Running on a watch
// after their containers serve, how fast a deleted mirror comes back, and
// what the node asks of the API at idle (counted by a reverse proxy
// between the node and the server). b.N is ignored (-benchtime 1x); it
// never fails on a missed target.
func BenchmarkMirror(b *testing.B) {
	mirrorOnce.Do(func() { mirrorReport = runMirror(b) })
	if mirrorReport == nil {
		b.Fatal("the mirror benchmark did not complete")
	}
	r := mirrorReport
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(r.delta1()), "mirror_after_serving_1pod_ms")
	b.ReportMetric(ms(r.deltaStarted1()), "mirror_after_started_1pod_ms")
	b.ReportMetric(r.ratio20(), "mirror_ratio_20pods")
	b.ReportMetric(ms(median(r.seen)), "mirror_recreated_ms")
	b.ReportMetric(float64(r.idle.total), "idle_api_requests_30s")
	b.ReportMetric(float64(r.idle.total-r.idle.lease), "idle_non_lease_requests_30s")
	b.ReportMetric(float64(r.idle.statusUpdates), "idle_status_updates_30s")
	b.ReportMetric(float64(r.idle.watchEvents), "idle_status_changes_30s")
}

// ---- the API server, the counting proxy, the node ----

type apiServer struct {
	url, kubeconfig, dataDir, caFile string
	pid                              int
}

// startAPIServer runs `ballast server` on dataDir and waits for its URL and
// admin kubeconfig.
func startAPIServer(b testing.TB, bin, dataDir string) *apiServer {
	s := &apiServer{dataDir: dataDir}
	s.caFile = filepath.Join(s.dataDir, "pki", "ca.crt")
	cmd := exec.Command(bin, "server", "--data-dir", s.dataDir, "--listen", "127.0.0.1:0", "--log-level", "warn")
	var logMu sync.Mutex
	var logBuf strings.Builder
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logBuf.Write(p) })
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	urls, kcs := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "ballast server ready at "); ok {
				urls <- strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(sc.Text(), "admin kubeconfig: "); ok {
				kcs <- strings.TrimSpace(v)
			}
		}
	}()
	for s.url == "" || s.kubeconfig == "" {
		select {
		case s.url = <-urls:
		case s.kubeconfig = <-kcs:
		case <-exited:
			logMu.Lock()
			defer logMu.Unlock()
			b.Fatalf("ballast server exited:\n%s", logBuf.String())
		case <-time.After(60 * time.Second):
			b.Fatal("ballast server not ready in 60 s")
		}
	}
	return s
}

// request is one request the node made to the API, as the proxy saw it.
type request struct {
	at   time.Time
	kind string // "GET leases", "PUT pods/status", "WATCH pods", ...
	path string
}

type countingProxy struct {
	srv    *httptest.Server
	caFile string
	mu     sync.Mutex
	reqs   []request
}

// startProxy serves HTTPS (HTTP/2) on 127.0.0.1 with its own certificate
// and forwards every request, bearer token included, to the server.
func startProxy(b testing.TB, s *apiServer) *countingProxy {
	target, err := url.Parse(s.url)
	if err != nil {
		b.Fatal(err)
	}
	caPEM, err := os.ReadFile(s.caFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	p := &countingProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 100},
		FlushInterval: -1, // watches stream
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, request{at: time.Now(), kind: requestKind(r), path: r.URL.Path})
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	p.srv.EnableHTTP2 = true
	p.srv.StartTLS()
	b.Cleanup(p.srv.Close)
	p.caFile = filepath.Join(b.TempDir(), "proxy-ca.crt")
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// requestKind is a request's verb and resource: "PUT pods/status".
func requestKind(r *http.Request) string {
	verb := r.Method
	if r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true" {
		verb = "WATCH"
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]], /apis/G/V/...
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return verb + " " + r.URL.Path
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) > 2 {
		parts = parts[2:]
	}
	res := ""
	if len(parts) > 0 {
		res = parts[0]
	}
	if len(parts) >= 3 {
		res += "/" + parts[2]
	}
	return verb + " " + res
}

// since returns the requests from t on, and how many of each kind.
func (p *countingProxy) since(t, until time.Time) ([]request, map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []request
	byKind := map[string]int{}
	for _, r := range p.reqs {
		if !r.at.Before(t) && (until.IsZero() || r.at.Before(until)) {
			out = append(out, r)
			byKind[r.kind]++
		}
	}
	return out, byKind
}

func startMirrorNode(b testing.TB, bin string, env *harness.Env, manifests string, s *apiServer, p *countingProxy) *agent {
	out, err := exec.Command(bin, "server", "token", "create", "--node", nodeName, "--data-dir", s.dataDir).Output()
	if err != nil {
		b.Fatalf("token create: %v", err)
	}
	token := strings.TrimSpace(string(out))
	return startNodeAgent(b, bin, env, manifests, "ballast-mirror",
		"--server", p.srv.URL, "--token", token, "--certificate-authority", p.caFile,
		"--node-ip", "127.0.0.1", "--port", "0")
}

// ---- the benchmark's own pod watch (admin, straight to the server) ----

type podEvent struct {
	at      time.Time
	typ     watch.EventType
	name    string
	uid     types.UID
	running bool // phase Running, every container ready
}

type podWatcher struct {
	mu     sync.Mutex
	events []podEvent
}

func isRunning(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready {
			return false
		}
	}
	return true
}

func watchPods(b testing.TB, c kubernetes.Interface) *podWatcher {
	pw := &podWatcher{}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	started := make(chan struct{})
	go func() {
		rv := ""
		first := true
		for ctx.Err() == nil {
			w, err := c.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: rv, TimeoutSeconds: new(int64(3600))})
			if err != nil {
				rv = ""
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if first {
				close(started)
				first = false
			}
			for ev := range w.ResultChan() {
				now := time.Now()
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				rv = p.ResourceVersion
				pw.mu.Lock()
				pw.events = append(pw.events, podEvent{at: now, typ: ev.Type, name: p.Name, uid: p.UID, running: isRunning(p) && ev.Type != watch.Deleted})
				pw.mu.Unlock()
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		b.Fatal("cannot watch pods")
	}
	return pw
}

// waitAll waits until match holds for an event of every name after t, and
// returns the time of the last of these first matches.
func (pw *podWatcher) waitAll(t time.Time, names []string, match func(podEvent) bool, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		pw.mu.Lock()
		firsts := map[string]time.Time{}
		want := map[string]bool{}
		for _, n := range names {
			want[n] = true
		}
		for _, e := range pw.events {
			if !e.at.Before(t) && want[e.name] && match(e) {
				if _, ok := firsts[e.name]; !ok {
					firsts[e.name] = e.at
				}
			}
		}
		pw.mu.Unlock()
		if len(firsts) == len(names) {
			var last time.Time
			for _, at := range firsts {
				if at.After(last) {
					last = at
				}
			}
			return last, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d of %d mirror pods matched after %s", len(firsts), len(names), timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (pw *podWatcher) between(t, until time.Time) []podEvent {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	var out []podEvent
	for _, e := range pw.events {
		if !e.at.Before(t) && e.at.Before(until) {
			out = append(out, e)
		}
	}
	return out
}

// ---- one run ----

func runMirror(b testing.TB) *mirrorResults {
	harness.Require(b)
	bin := buildBallast(b)
	env := harness.Start(b)
	bn := newBench(b, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pr, err := env.Images().PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: bn.image}})
	if err != nil {
		b.Fatalf("pulling %s: %v", bn.image, err)
	}
	bn.imageRef = pr.ImageRef
	res := &mirrorResults{when: time.Now().UTC().Format(time.RFC3339)}
	if v, err := bn.rt.Version(ctx, &runtimeapi.VersionRequest{}); err == nil {
		res.runtimeVersion = v.RuntimeName + " " + v.RuntimeVersion
	}

	s := startAPIServer(b, bin, filepath.Join(b.TempDir(), "data"))
	proxy := startProxy(b, s)
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	cfg.ContentType = "application/json"
	cfg.QPS, cfg.Burst = 1000, 1000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	pw := watchPods(b, client)
	bn.agent = startMirrorNode(b, bin, env, bn.manifests, s, proxy)
	// The node is registered before anything is timed.
	if err := testutil.PollEvery(50*time.Millisecond, 30*time.Second, func() error {
		_, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		return err
	}); err != nil {
		b.Fatalf("node not registered after 30 s: %v\n%s", err, bn.agent.text())
	}
	mr := &mirrorRunner{bn: bn, pw: pw, proxy: proxy, client: client}
	mr.must(mr.round(1, "mw")) // warm-up, not counted (it also creates the pod bridge)
	bn.tuneARP()
	for i := range mirrorRounds1 {
		res.r1 = append(res.r1, mr.must(mr.round(1, fmt.Sprintf("m1-%d", i))))
	}
	for i := range mirrorRounds20 {
		res.r20 = append(res.r20, mr.must(mr.round(20, fmt.Sprintf("m20-%d", i))))
	}
	res.seen, res.running = mr.deletes()
	if mirrorIdlePods > 0 {
		res.idle = mr.idle()
	}
	res.print(os.Stdout)
	return res
}

type mirrorRunner struct {
	bn     *bench
	pw     *podWatcher
	proxy  *countingProxy
	client kubernetes.Interface
}

func (mr *mirrorRunner) must(r mirrorRound, err error) mirrorRound {
	mr.bn.b.Helper()
	if err != nil {
		mr.bn.b.Logf("ballast node log:\n%s", mr.bn.agent.text())
		mr.bn.b.Fatal(err)
	}
	return r
}

func mirrorNames(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, n+"-"+nodeName)
	}
	return out
}

// round writes n files at once, waits until every pod serves and every
// mirror is Running on the watch, then removes the files and waits until
// the mirrors are gone and the runtime is clean.
func (mr *mirrorRunner) round(n int, label string) (mirrorRound, error) {
	bn := mr.bn
	if err := bn.waitClean(); err != nil {
		return mirrorRound{}, err
	}
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("%s-p%02d", label, i))
	}
	mirrors := mirrorNames(names)
	w := bn.watchServing(n)
	t0, err := bn.writeManifests(names)
	if err != nil {
		close(w.stop)
		return mirrorRound{}, err
	}
	got, werr := w.wait(roundTimeout)
	if werr != nil {
		return mirrorRound{}, fmt.Errorf("mirror round %s: %w", label, werr)
	}
	runAt, err := mr.pw.waitAll(t0, mirrors, func(e podEvent) bool { return e.running }, 30*time.Second)
	if err != nil {
		return mirrorRound{}, fmt.Errorf("mirror round %s: %w", label, err)
	}
	r := mirrorRound{serving: latest(got).Sub(t0), running: runAt.Sub(t0)}
	want := map[string]bool{}
	for _, m := range mirrors {
		want["default/"+m] = true
	}
	bn.agent.waitStarted(t0, want)
	var started []time.Time
	for _, l := range bn.agent.since(t0) {
		if f := logFields(l.text); f["msg"] == "container started" && want[f["pod"]] {
			started = append(started, l.at)
		}
	}
	r.started = maxSince(t0, started)
	reqs, byKind := mr.proxy.since(t0, runAt.Add(time.Millisecond))
	r.requests, r.statusUpdates = len(reqs), byKind["PUT pods/status"]
	for _, name := range names {
		if err := os.Remove(filepath.Join(bn.manifests, name+".yaml")); err != nil {
			return r, err
		}
	}
	gone := time.Now()
	if _, err := mr.pw.waitAll(gone, mirrors, func(e podEvent) bool { return e.typ == watch.Deleted }, 60*time.Second); err != nil {
		return r, fmt.Errorf("mirror round %s: removing: %w", label, err)
	}
	return r, nil
}

// deletes runs one pod and deletes its mirror through the API, as kubectl
// does (default options), mirrorDeletes times: the time until a new mirror
// (another UID) is on the watch, and until it is Running.
func (mr *mirrorRunner) deletes() (seen, running []time.Duration) {
	bn := mr.bn
	if err := bn.waitClean(); err != nil {
		bn.b.Fatal(err)
	}
	name := "mdel"
	mirror := name + "-" + nodeName
	w := bn.watchServing(1)
	t0, err := bn.writeManifests([]string{name})
	if err != nil {
		bn.b.Fatal(err)
	}
	if _, err := w.wait(roundTimeout); err != nil {
		bn.b.Fatal(err)
	}
	if _, err := mr.pw.waitAll(t0, []string{mirror}, func(e podEvent) bool { return e.running }, 30*time.Second); err != nil {
		bn.b.Fatal(err)
	}
	ctx := context.Background()
	for range mirrorDeletes {
		time.Sleep(500 * time.Millisecond)
		cur, err := mr.client.CoreV1().Pods("default").Get(ctx, mirror, metav1.GetOptions{})
		if err != nil {
			bn.b.Fatal(err)
		}
		t := time.Now()
		if err := mr.client.CoreV1().Pods("default").Delete(ctx, mirror, metav1.DeleteOptions{}); err != nil {
			bn.b.Fatal(err)
		}
		at, err := mr.pw.waitAll(t, []string{mirror}, func(e podEvent) bool { return e.uid != cur.UID && e.typ != watch.Deleted }, 30*time.Second)
		if err != nil {
			bn.b.Logf("ballast node log:\n%s", bn.agent.text())
			bn.b.Fatal(err)
		}
		seen = append(seen, at.Sub(t))
		at, err = mr.pw.waitAll(t, []string{mirror}, func(e podEvent) bool { return e.uid != cur.UID && e.running }, 30*time.Second)
		if err != nil {
			bn.b.Fatal(err)
		}
		running = append(running, at.Sub(t))
	}
	if err := os.Remove(filepath.Join(bn.manifests, name+".yaml")); err != nil {
		bn.b.Fatal(err)
	}
	if _, err := mr.pw.waitAll(time.Now(), []string{mirror}, func(e podEvent) bool { return e.typ == watch.Deleted }, 60*time.Second); err != nil {
		bn.b.Fatal(err)
	}
	return seen, running
}

// idle starts 50 pods, waits for their mirrors, lets things settle, and
// counts what the node asks of the API over idleWindow.
func (mr *mirrorRunner) idle() mirrorIdle {
	bn := mr.bn
	if err := bn.waitClean(); err != nil {
		bn.b.Fatal(err)
	}
	var names []string
	for i := range mirrorIdlePods {
		names = append(names, fmt.Sprintf("midle-p%02d", i))
	}
	w := bn.watchServing(mirrorIdlePods)
	t0, err := bn.writeManifests(names)
	if err != nil {
		bn.b.Fatal(err)
	}
	if _, err := w.wait(3 * time.Minute); err != nil {
		bn.b.Fatal(err)
	}
	runAt, err := mr.pw.waitAll(t0, mirrorNames(names), func(e podEvent) bool { return e.running }, 60*time.Second)
	if err != nil {
		bn.b.Logf("ballast node log:\n%s", bn.agent.text())
		bn.b.Fatal(err)
	}
	r := mirrorIdle{startAll: runAt.Sub(t0)}
	time.Sleep(idleSettle)
	mark := time.Now()
	time.Sleep(idleWindow)
	end := time.Now()
	r.window = end.Sub(mark)
	reqs, byKind := mr.proxy.since(mark, end)
	r.byKind, r.total = byKind, len(reqs)
	for _, q := range reqs {
		if !strings.HasSuffix(q.kind, " leases") {
			r.details = append(r.details, fmt.Sprintf("+%.1fs request %s %s", q.at.Sub(mark).Seconds(), strings.Fields(q.kind)[0], q.path))
		}
	}
	for _, e := range mr.pw.between(mark, end) {
		r.details = append(r.details, fmt.Sprintf("+%.1fs watch %s %s running=%v", e.at.Sub(mark).Seconds(), e.typ, e.name, e.running))
	}
	for _, l := range bn.agent.since(mark) {
		if l.at.Before(end) {
			r.details = append(r.details, fmt.Sprintf("+%.1fs agent log: %s", l.at.Sub(mark).Seconds(), l.text))
		}
	}
	for k, v := range byKind {
		if strings.HasSuffix(k, " leases") {
			r.lease += v
		}
	}
	r.statusUpdates = byKind["PUT pods/status"]
	for k, v := range byKind {
		switch {
		case strings.HasSuffix(k, " leases"), k == "PUT pods/status":
		case strings.HasSuffix(k, " events"):
			r.events += v
		default:
			r.other += v
		}
	}
	changed := map[string]bool{}
	for _, e := range mr.pw.between(mark, end) {
		if e.typ == watch.Modified {
			r.watchEvents++
			changed[e.name] = true
		}
	}
	// Containers that exited in the idle phase: the first run's log.
	dirs, _ := filepath.Glob(filepath.Join(bn.env.LogDir, "default_midle-*", "app", "1.log"))
	for _, d := range dirs {
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(d), "0.log"))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 4 {
			lines = lines[len(lines)-4:]
		}
		r.crashes = append(r.crashes, fmt.Sprintf("%s restarted; its first run's log ends: %s", filepath.Base(filepath.Dir(filepath.Dir(d))), strings.Join(lines, " | ")))
	}
	r.changedPods = len(changed)
	return r
}

// ---- figures ----

func mirrorMedian(rs []mirrorRound, f func(mirrorRound) time.Duration) time.Duration {
	var ds []time.Duration
	for _, r := range rs {
		ds = append(ds, f(r))
	}
	return median(ds)
}

func (r *mirrorResults) delta1() time.Duration {
	return mirrorMedian(r.r1, func(x mirrorRound) time.Duration { return x.running - x.serving })
}

func (r *mirrorResults) deltaStarted1() time.Duration {
	return mirrorMedian(r.r1, func(x mirrorRound) time.Duration { return x.running - x.started })
}

func (r *mirrorResults) ratio20() float64 {
	var xs []float64
	for _, x := range r.r20 {
		xs = append(xs, ms(x.running)/ms(x.serving))
	}
	return medianF(xs)
}

func (r *mirrorResults) print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	host, _ := os.Hostname()
	p("\n==== Ballast mirror pod benchmark ====\n")
	p("date %s, host %s, %d CPUs, %s, %s\n", r.when, host, runtime.NumCPU(), r.runtimeVersion, runtime.Version())
	p("one ballast node -> counting proxy -> ballast server; times from the rename of the manifest file(s); \"Running\" is the first event\n")
	p("on the benchmark's own pod watch (admin, JSON, straight to the server) with phase Running and every container ready\n\n")
	row := func(name string, rs []mirrorRound) {
		var parts []string
		for _, x := range rs {
			parts = append(parts, fmt.Sprintf("%.0f/%.0f/%.0f", ms(x.serving), ms(x.started), ms(x.running)))
		}
		var upd, req []string
		for _, x := range rs {
			upd = append(upd, fmt.Sprint(x.statusUpdates))
			req = append(req, fmt.Sprint(x.requests))
		}
		p("  %-9s serving %7.1f  started %7.1f  mirror Running %7.1f ms (medians)  rounds serving/started/Running [%s]\n", name,
			ms(mirrorMedian(rs, func(x mirrorRound) time.Duration { return x.serving })),
			ms(mirrorMedian(rs, func(x mirrorRound) time.Duration { return x.started })),
			ms(mirrorMedian(rs, func(x mirrorRound) time.Duration { return x.running })), strings.Join(parts, " "))
		p("  %-9s node -> API until all Running: requests [%s], of which pod status updates [%s]\n", "", strings.Join(req, " "), strings.Join(upd, " "))
	}
	row("1 pod", r.r1)
	row("20 pods", r.r20)
	var seen, run []string
	for i := range r.seen {
		seen = append(seen, fmt.Sprintf("%.1f", ms(r.seen[i])))
		run = append(run, fmt.Sprintf("%.1f", ms(r.running[i])))
	}
	p("\nmirror deleted (DELETE, default options) -> new mirror on the watch [%s] ms, -> new mirror Running [%s] ms\n", strings.Join(seen, " "), strings.Join(run, " "))
	i := r.idle
	p("\nidle, %d pods (all mirrors Running %.0f ms after the files were written; then %s settle, %s counted)\n", mirrorIdlePods, ms(i.startAll), idleSettle, i.window.Round(time.Millisecond))
	var kinds []string
	for k := range i.byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, i.byKind[k]))
	}
	p("  node -> API requests: %d [%s]; of them Lease %d; pods changed on the watch %d (%d events)\n", i.total, strings.Join(parts, ", "), i.lease, i.changedPods, i.watchEvents)
	p("  besides the Lease: %d pod status updates for %d status changes seen on the watch (%d pods), %d event requests, %d other\n", i.statusUpdates, i.watchEvents, i.changedPods, i.events, i.other)
	for _, c := range i.crashes {
		p("    %s\n", c)
	}
	for _, d := range i.details {
		p("    %s\n", d)
	}

	// No relist, nothing but the Lease, one status update per status change,
	// and the events of those changes.
	idleOK := i.other == 0 && i.statusUpdates <= i.watchEvents
	p("\n%-44s %10s %10s %10s  %s\n", "figure", "measured", "", "target", "result")
	p("%-44s %8.1f ms %10s %10s  %s\n", "1 pod: mirror Running - container serving", ms(r.delta1()), "", "<= 100 ms", verdict(r.delta1() <= targetMirrorDelta))
	p("%-44s %8.1f ms %10s %10s  %s\n", "1 pod: mirror Running - \"container started\"", ms(r.deltaStarted1()), "", "<= 100 ms", verdict(r.deltaStarted1() <= targetMirrorDelta))
	p("%-44s %9.2fx %10s %10s  %s\n", "20 pods: all mirrors Running / all serving", r.ratio20(), "", "<= 1.2x", verdict(r.ratio20() <= targetMirrorRatio))
	p("%-44s %8.1f ms %10s %10s  %s\n", "mirror deleted -> new mirror on a watch", ms(median(r.seen)), "", "< 100 ms", verdict(median(r.seen) < targetMirrorRecrea))
	p("%-44s %11d %10s %10s  %s\n", "idle 30 s, 50 pods: pod status updates", i.statusUpdates, "", fmt.Sprintf("<= %d", i.watchEvents), verdict(idleOK))
	p("%-44s %11d %10s %10s  %s\n", "idle 30 s, 50 pods: other non-Lease requests", i.other, "", "0", verdict(i.other == 0))
	p("(kubelet: mirror Running 0.5-1.0 s after the container; a deleted mirror back after ~2 s)\n\n")
}
