package bench

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/executor"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// What the node agent issue asks for.
const (
	targetRatio1  = 1.10 // Ballast / the floor, one pod
	targetRatio20 = 1.25 // Ballast / the floor, 20 pods at once
	targetIdleCPU = 0.2  // % of one core, 50 pods
	targetIdleRSS = 40.0 // MB, 50 pods
)

// The method.
const (
	nodeName     = "bench"
	idleSettle   = 15 * time.Second
	idleWindow   = 30 * time.Second
	probeGate    = 10 * time.Millisecond // after a lease appears, before the first GET
	leasePoll    = 2 * time.Millisecond
	roundTimeout = 90 * time.Second
	clockTicks   = 100 // USER_HZ on Linux
	quietMaxWait = 2 * time.Minute
)

// probeEvery is the pause between two GETs of one pod that does not answer yet.
func probeEvery(n int) time.Duration {
	if n == 1 {
		return 3 * time.Millisecond
	}
	return 5 * time.Millisecond
}

// Measured rounds per contender (each rung of the ladder), and the pods
// started for the idle measurement; flags for shorter runs while developing
// (go test ./test/bench/ -run '^$' -bench NodeAgent -benchtime 1x -args -node.rounds1 1 ...).
var (
	rounds1    = flag.Int("node.rounds1", 5, "node agent benchmark: measured rounds of one pod, per contender")
	rounds20   = flag.Int("node.rounds20", 5, "node agent benchmark: measured rounds of 20 pods, per contender")
	extra1     = flag.Int("node.extra1", 10, "node agent benchmark: further rounds of one pod for the floor and the Ballast node only, so the headline ratio rests on more than the ladder's rounds")
	idlePods   = flag.Int("node.idle", 50, "node agent benchmark: pods for the idle measurement (0: skip it)")
	quietIdle  = flag.Float64("node.quiet", 0.9, "node agent benchmark: before each round, wait until this share of the CPU was idle for 0.5 s (0: do not wait)")
	groups     = flag.String("node.groups", "p1,h1,p20,h20", "node agent benchmark: the groups to measure (p: pod network, h: host network; then the pod count)")
	fullLadder = flag.Bool("node.ladder", true, "node agent benchmark: measure every rung of the attribution ladder (false: the floor and Ballast only)")
)

var (
	doneOnce sync.Once
	report   *results
)

// BenchmarkNodeAgent runs the whole benchmark once (b.N is ignored: run it
// with -benchtime 1x, as `make bench` does). It never fails on a missed
// target: it prints the figures next to the targets.
func BenchmarkNodeAgent(b *testing.B) {
	doneOnce.Do(func() { report = run(b) })
	if report == nil {
		b.Fatal("the benchmark did not complete")
	}
	report.metrics(b)
}

// ---- one run ----

type bench struct {
	b         testing.TB
	env       *harness.Env
	rt        runtimeapi.RuntimeServiceClient
	imageRef  string
	image     string
	leaseDir  string
	manifests string
	tmpDir    string
	agent     *agent
	// The raw and replayed pods' node: its data directory, Ballast's executor
	// and its runtime reader (see ladder_test.go).
	rawDir   string
	exec     *executor.Executor
	observer *cri.Observer
	// busyBefore is the share of CPU others used just before the last round (see settle).
	busyBefore float64
	// sandboxSeccomp says which seccomp profile Ballast gives the hello pods' sandboxes.
	sandboxSeccomp []string
}

// group is one network mode and pod count: the rungs of the ladder it
// measures (indexes into ladder), in the same rounds.
type group struct {
	mode  netMode
	n     int
	rungs []int
	// rounds[k] are the measured rounds of rung rungs[k].
	rounds [][]roundResult
}

type results struct {
	when, runtimeVersion  string
	groups                []*group
	idle                  idleResult
	loadBefore, loadAfter string
	sandboxSeccomp        []string
}

// newBench is a run on env: its manifest directory (and the side directory
// files are written in first) made.
func newBench(b testing.TB, env *harness.Env) *bench {
	bn := &bench{
		b: b, env: env, rt: env.Runtime(), image: env.HelloImage(),
		leaseDir:  filepath.Join(env.Dir, "containerd", "cni-ipam", env.BridgeName),
		manifests: filepath.Join(env.Dir, "manifests"),
		tmpDir:    filepath.Join(env.Dir, "manifests-tmp"),
		rawDir:    filepath.Join(env.Dir, "raw"),
	}
	for _, d := range []string{bn.manifests, bn.tmpDir, bn.rawDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	return bn
}

func run(b testing.TB) *results {
	harness.Require(b)
	bin := buildBallast(b)
	env := harness.Start(b)
	bn := newBench(b, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// One pull for every contender, before anything is measured.
	pr, err := env.Images().PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: bn.image}})
	if err != nil {
		b.Fatalf("pulling %s: %v", bn.image, err)
	}
	bn.imageRef = pr.ImageRef
	res := &results{when: time.Now().UTC().Format(time.RFC3339), loadBefore: loadAvg()}
	if v, err := bn.rt.Version(ctx, &runtimeapi.VersionRequest{}); err == nil {
		res.runtimeVersion = v.RuntimeName + " " + v.RuntimeVersion
	}
	for _, m := range []netMode{podNet, hostNet} {
		bn.checkLadder(m)
	}
	bn.newReplay()
	bn.agent = startAgent(b, bin, env, bn.manifests)

	l1, l20 := allRungs(), ladder20
	if !*fullLadder {
		l1, l20 = headline(l1), headline(l20)
	}
	for _, g := range []*group{
		{mode: podNet, n: 1, rungs: l1}, {mode: hostNet, n: 1, rungs: l1},
		{mode: podNet, n: 20, rungs: l20}, {mode: hostNet, n: 20, rungs: l20},
	} {
		if slices.Contains(strings.Split(*groups, ","), g.tag()) {
			res.groups = append(res.groups, g)
		}
	}
	if len(res.groups) == 0 {
		b.Fatalf("-node.groups %q names no group (p1, h1, p20, h20)", *groups)
	}
	// Warm-up rounds (not counted): the first sandbox and container of each
	// rung and network, caches (the executors' image cache among them), the
	// pod bridge.
	for _, m := range []netMode{podNet, hostNet} {
		warm := map[int]bool{}
		for _, g := range res.groups {
			for _, r := range g.rungs {
				if g.mode == m && !warm[r] {
					warm[r] = true
					w := &group{mode: m, n: 1}
					bn.must(bn.round(m, 1, ladder[r], fmt.Sprintf("w%s-%d", w.tag(), r)))
				}
			}
		}
	}
	bn.tuneARP()
	for _, g := range res.groups {
		rounds := *rounds1
		if g.n > 1 {
			rounds = *rounds20
		}
		g.rounds = make([][]roundResult, len(g.rungs))
		for i := range rounds {
			// Each round runs every rung once, the order turning by one each round.
			for j := range g.rungs {
				k := (i + j) % len(g.rungs)
				r := bn.must(bn.round(g.mode, g.n, ladder[g.rungs[k]], fmt.Sprintf("%s-%d-%d", g.tag(), g.rungs[k], i)))
				g.rounds[k] = append(g.rounds[k], r)
			}
		}
		if g.n > 1 {
			continue
		}
		// One pod takes ~150-240 ms and its rounds spread by 40-80 ms: the
		// ratio of floor to Ballast gets more rounds than the ladder's
		// rungs between them (which explain it, and are measured above).
		ends := []int{0, len(g.rungs) - 1}
		for i := range *extra1 {
			for j := range ends {
				k := ends[(i+j)%2]
				r := bn.must(bn.round(g.mode, g.n, ladder[g.rungs[k]], fmt.Sprintf("%s-%d-x%d", g.tag(), g.rungs[k], i)))
				g.rounds[k] = append(g.rounds[k], r)
			}
		}
	}
	if *idlePods > 0 {
		res.idle = bn.idle()
	}
	res.loadAfter = loadAvg()
	res.sandboxSeccomp = bn.sandboxSeccomp
	res.print(os.Stdout)
	return res
}

// headline keeps the floor and the Ballast node of a ladder.
func headline(rs []int) []int { return []int{rs[0], rs[len(rs)-1]} }

// tag names a group in pod names: p1, h1, p20, h20.
func (g *group) tag() string {
	if g.mode == hostNet {
		return fmt.Sprintf("h%d", g.n)
	}
	return fmt.Sprintf("p%d", g.n)
}

// loadAvg is the machine's load average (1, 5 and 15 minutes).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// freePort returns a TCP port free on every address of the host (host-network pods listen on all).
func freePort(b testing.TB) int {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (bn *bench) must(r roundResult, err error) roundResult {
	bn.b.Helper()
	if err != nil {
		bn.b.Logf("ballast node log:\n%s", bn.agent.text())
		bn.b.Fatal(err)
	}
	return r
}

func buildBallast(b testing.TB) string {
	root, err := harness.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "ballast")
	// As `make build` builds it.
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/ballast")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// ---- the agent process ----

type logLine struct {
	at   time.Time
	text string
}

type agent struct {
	cmd     *exec.Cmd
	dataDir string
	exited  chan struct{}
	mu      sync.Mutex
	lines   []logLine
	partial []byte
}

// Write keeps the agent's log, each line with the time it arrived.
func (a *agent) Write(p []byte) (int, error) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.partial = append(a.partial, p...)
	for {
		i := bytes.IndexByte(a.partial, '\n')
		if i < 0 {
			break
		}
		a.lines = append(a.lines, logLine{now, string(a.partial[:i])})
		a.partial = a.partial[i+1:]
	}
	return len(p), nil
}

func (a *agent) since(t time.Time) []logLine {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.lines), func(i int) bool { return !a.lines[i].at.Before(t) })
	return slices.Clone(a.lines[i:])
}

// waitStarted waits (up to a few seconds) until the agent has logged
// "container started" since t0 for each pod in pods ("namespace/name"): a
// pod may serve before the agent logs that it started it.
func (a *agent) waitStarted(t0 time.Time, pods map[string]bool) {
	_ = testutil.PollEvery(10*time.Millisecond, 5*time.Second, func() error {
		seen := map[string]bool{}
		for _, l := range a.since(t0) {
			if f := logFields(l.text); f["msg"] == "container started" && pods[f["pod"]] {
				seen[f["pod"]] = true
			}
		}
		if len(seen) < len(pods) {
			return fmt.Errorf("%d of %d pods logged as started", len(seen), len(pods))
		}
		return nil
	})
}

func (a *agent) text() string {
	var sb strings.Builder
	for _, l := range a.since(time.Time{}) {
		sb.WriteString(l.text)
		sb.WriteByte('\n')
	}
	return sb.String()
}

func (a *agent) pid() int { return a.cmd.Process.Pid }

func startAgent(b testing.TB, bin string, env *harness.Env, manifests string) *agent {
	return startNodeAgent(b, bin, env, manifests, "ballast")
}

// startNodeAgent runs `ballast node` on the harness's containerd, its data
// in env.Dir/dataDirName, with extra flags, and waits until its local API
// answers (it reads the runtime's state as it starts; it logs nothing about
// that, so the warm-up rounds, not counted, absorb what is left of it).
func startNodeAgent(b testing.TB, bin string, env *harness.Env, manifests, dataDirName string, extra ...string) *agent {
	a := &agent{dataDir: filepath.Join(env.Dir, dataDirName), exited: make(chan struct{})}
	images := filepath.Join(env.Dir, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		b.Fatal(err)
	}
	a.cmd = exec.Command(bin, append([]string{"node", "--node-name", nodeName, "--data-dir", a.dataDir,
		"--pod-manifest-path", manifests, "--images-dir", images,
		"--container-runtime-endpoint", env.Endpoint}, extra...)...)
	a.cmd.Stdout, a.cmd.Stderr = a, a
	if err := a.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = a.cmd.Wait(); close(a.exited) }()
	b.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(15 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
	})
	c := localapi.NewClient(localapi.SocketPath(a.dataDir))
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Pods(ctx)
		cancel()
		if err == nil {
			return a
		}
		select {
		case <-a.exited:
			b.Fatalf("ballast node exited:\n%s", a.text())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("ballast node not ready after 30s: %v\n%s", err, a.text())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- knowing when pods serve ----
//
// The same path for every contender, which asks nothing of the agent or of
// containerd. On the pod network, the CNI host-local IPAM of the harness's
// network records each pod IP it hands out as a file named by the IP (a
// lease). A new lease is probed with GET http://IP:8080/ every few ms (from
// probeGate after it appears, so the address is configured in the pod
// before the first SYN); the pod serves at the first 200 whose body is the
// hello image's. On the host network there is no lease: each pod listens on
// its own port (the hello image's PORT), probed on 127.0.0.1 the same way
// from the start of the round.

type served struct {
	ip, body string
	at       time.Time
}

type servingWatch struct {
	dir      string
	n        int
	interval time.Duration
	results  chan served
	stop     chan struct{}
	stalls   atomic.Int64 // failed GETs that took over 100 ms (none expected)
	probes   atomic.Int64
	slowMu   sync.Mutex
	slow     []string // the first few of them
}

func leases(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var ips []string
	for _, e := range ents {
		if net.ParseIP(e.Name()) != nil {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

func (bn *bench) watchServing(n int) *servingWatch {
	w := &servingWatch{dir: bn.leaseDir, n: n, interval: probeEvery(n), results: make(chan served, 512), stop: make(chan struct{})}
	seen := map[string]bool{}
	for _, ip := range leases(w.dir) {
		seen[ip] = true
	}
	go func() {
		t := time.NewTicker(leasePoll)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
			for _, ip := range leases(w.dir) {
				if !seen[ip] {
					seen[ip] = true
					go w.probe(net.JoinHostPort(ip, strconv.Itoa(harness.HelloPort)), time.Now().Add(probeGate))
				}
			}
		}
	}()
	return w
}

// watchPorts probes each host-network pod's port on 127.0.0.1 from now on.
func (bn *bench) watchPorts(ports []int) *servingWatch {
	w := &servingWatch{n: len(ports), interval: probeEvery(len(ports)), results: make(chan served, 512), stop: make(chan struct{})}
	now := time.Now()
	for _, p := range ports {
		go w.probe(net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), now)
	}
	return w
}

// watch watches a round's pods, on their network.
func (bn *bench) watch(m netMode, specs []podSpec) *servingWatch {
	if m == podNet {
		return bn.watchServing(len(specs))
	}
	ports := make([]int, len(specs))
	for i, s := range specs {
		ports[i] = s.port
	}
	return bn.watchPorts(ports)
}

// probe GETs addr from from on, every interval, until it answers.
func (w *servingWatch) probe(addr string, from time.Time) {
	time.Sleep(time.Until(from))
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		t0 := time.Now()
		body, err := get(addr)
		w.probes.Add(1)
		if err == nil {
			w.results <- served{ip: addr, body: body, at: time.Now()}
			return
		}
		if d := time.Since(t0); d > 100*time.Millisecond {
			if w.stalls.Add(1) <= 3 {
				w.slowMu.Lock()
				w.slow = append(w.slow, fmt.Sprintf("%s: %v after %s (probed since %s before)", addr, err, d.Round(time.Millisecond), t0.Sub(from).Round(time.Millisecond)))
				w.slowMu.Unlock()
			}
		}
		time.Sleep(w.interval)
	}
}

// get does GET / on one new connection (no HTTP client machinery: a probe of
// a pod that does not listen yet costs one refused connect) and returns the
// hello image's answer.
func get(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "hello from ") {
		return "", fmt.Errorf("%s: %q", resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// wait returns when n pods serve, or fails after the timeout.
func (w *servingWatch) wait(timeout time.Duration) ([]served, error) {
	defer close(w.stop)
	var got []served
	deadline := time.After(timeout)
	for len(got) < w.n {
		select {
		case s := <-w.results:
			got = append(got, s)
		case <-deadline:
			return got, fmt.Errorf("%d of %d pods serve after %s", len(got), w.n, timeout)
		}
	}
	return got, nil
}

// tuneARP makes the host re-send ARP requests on the harness's pod bridge
// every 10 ms instead of every second. Probing a pod whose IP is leased but
// not yet configured in its network namespace (CNI sets it a few ms after
// the lease, more under load) leaves the neighbour entry incomplete, and
// with the default the next try waits up to a second: a stall of the probe,
// not of the pod. Only this bridge (the harness deletes it at the end) is
// touched; the pods' own ARP is not.
func (bn *bench) tuneARP() {
	p := filepath.Join("/proc/sys/net/ipv4/neigh", bn.env.BridgeName, "retrans_time_ms")
	if err := os.WriteFile(p, []byte("10"), 0o644); err != nil {
		bn.b.Logf("cannot shorten ARP retries on %s (probes may stall up to 1s): %v", bn.env.BridgeName, err)
	}
}

// ---- rounds ----

type roundResult struct {
	n      int
	total  time.Duration   // start -> every pod serving
	phases []time.Duration // per contender, see phaseNames
	stalls int64
	probes int64
	slow   []string
	// CPU time used during the round (start -> all serving), ms
	agentCPU, containerdCPU float64
	// raw rounds: each call's median over the round's pods
	calls callTimes
	// busyBefore is the share of the CPU busy just before the round started.
	busyBefore float64
}

// cpuMs is the CPU time a process has used so far (utime+stime, which
// keeps the time of exited threads), in ms.
func cpuMs(pid int) float64 { return float64(sample(pid).ticks) * 1000 / clockTicks }

// schedMs is the CPU time of a process's current threads, in ns precision, as ms.
func schedMs(pid int) float64 { return float64(sample(pid).schedNs) / 1e6 }

// Phases, medians over pods (first/last for n > 1), from the start.
var rawPhaseNames = []string{"last RunPodSandbox returned", "last StartContainer returned"}
var balPhaseNames = []string{"file read: \"manifest file loaded\" (last)", "RunPodSandbox called (first)", "RunPodSandbox called (last)", "RunPodSandbox returned (last)", "\"container started\" (last)"}

func manifestYAML(name, image string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  labels:\n    app: %s\nspec:\n  containers:\n  - name: app\n    image: %s\n", name, name, image)
}

// writeManifests writes the hello pod named each of names on the pod network.
func (bn *bench) writeManifests(names []string) (time.Time, error) {
	specs := make([]podSpec, len(names))
	for i, n := range names {
		specs[i].name = n
	}
	return bn.writePods(specs)
}

// writePods writes each pod's file completely elsewhere first, then renames
// them into the manifest directory (the timed part is the renames).
func (bn *bench) writePods(specs []podSpec) (time.Time, error) {
	for _, s := range specs {
		if err := os.WriteFile(filepath.Join(bn.tmpDir, s.name+".yaml"), []byte(s.yaml(bn.image)), 0o644); err != nil {
			return time.Time{}, err
		}
	}
	t0 := time.Now()
	for _, s := range specs {
		if err := os.Rename(filepath.Join(bn.tmpDir, s.name+".yaml"), filepath.Join(bn.manifests, s.name+".yaml")); err != nil {
			return t0, err
		}
	}
	return t0, nil
}

// ballastRound writes n manifest files at once and waits until each pod
// serves; then removes the files (the next round waits until the pods are gone).
func (bn *bench) ballastRound(m netMode, n int, label string) (roundResult, error) {
	if err := bn.waitClean(); err != nil {
		return roundResult{}, err
	}
	specs := bn.podSpecs(m, n, label)
	names := make([]string, n)
	for i, s := range specs {
		names[i] = s.name
	}
	w := bn.watch(m, specs)
	a0, c0 := cpuMs(bn.agent.pid()), cpuMs(bn.env.Containerd.Pid())
	t0, err := bn.writePods(specs)
	if err != nil {
		close(w.stop)
		return roundResult{}, err
	}
	got, werr := w.wait(roundTimeout)
	res := roundResult{n: n, stalls: w.stalls.Load(), probes: w.probes.Load(), slow: w.slow,
		agentCPU: cpuMs(bn.agent.pid()) - a0, containerdCPU: cpuMs(bn.env.Containerd.Pid()) - c0}
	if werr == nil {
		res.total = latest(got).Sub(t0)
		want := map[string]bool{}
		for _, n := range names {
			want["default/"+n+"-"+nodeName] = true
		}
		bn.agent.waitStarted(t0, want)
		res.phases = bn.ballastPhases(t0, names)
		for _, s := range got {
			// On the host network the port tells the pods apart; the hello
			// image answers with the host's name.
			if m == podNet && !strings.HasPrefix(s.body, "hello from "+label+"-p") {
				werr = fmt.Errorf("pod at %s answered %q", s.ip, s.body)
			}
		}
	}
	for _, name := range names {
		if err := os.Remove(filepath.Join(bn.manifests, name+".yaml")); err != nil {
			return res, err
		}
	}
	if werr != nil {
		return res, fmt.Errorf("ballast round %s: %w", label, werr)
	}
	return res, nil
}

// ballastPhases reads the agent's own log (each line timed as it arrived).
func (bn *bench) ballastPhases(t0 time.Time, names []string) []time.Duration {
	want, files := map[string]bool{}, map[string]bool{}
	for _, n := range names {
		want["default/"+n+"-"+nodeName] = true
		files[filepath.Join(bn.manifests, n+".yaml")] = true
	}
	var added, runCall, runDone, started []time.Time
	for _, l := range bn.agent.since(t0) {
		f := logFields(l.text)
		if f["msg"] == "manifest file loaded" && files[f["file"]] {
			added = append(added, l.at)
			continue
		}
		if !want[f["pod"]] {
			continue
		}
		switch f["msg"] {
		case "pod sandbox started":
			runDone = append(runDone, l.at)
			if d, err := time.ParseDuration(f["took"]); err == nil {
				runCall = append(runCall, l.at.Add(-d))
			}
		case "container started":
			started = append(started, l.at)
		}
	}
	return []time.Duration{maxSince(t0, added), minSince(t0, runCall), maxSince(t0, runCall), maxSince(t0, runDone), maxSince(t0, started)}
}

// logFields parses a slog text line (key=value, values maybe quoted).
func logFields(s string) map[string]string {
	m := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ")
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			if q, err := strconv.QuotedPrefix(rest); err == nil {
				v, _ = strconv.Unquote(q)
				rest = rest[len(q):]
			}
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		m[k] = v
		s = rest
	}
	return m
}

// waitClean waits until no pod of either contender is left in the runtime
// and every IP lease is released.
func (bn *bench) waitClean() error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		l, err := bn.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		cancel()
		if err == nil && len(l.Items) == 0 && len(leases(bn.leaseDir)) == 0 {
			bn.settle() // let exiting shims go, and others' work
			return nil
		}
		if time.Now().After(deadline) {
			n := -1
			if l != nil {
				n = len(l.Items)
			}
			return fmt.Errorf("runtime not clean after 2m: %d sandboxes, leases %v, err %v", n, leases(bn.leaseDir), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settle waits until the machine has been quiet for a moment: at least
// -node.quiet of its CPU time idle over half a second, in which the
// benchmark itself does nothing. On a machine others use, that keeps their
// bursts out of the rounds (up to quietMaxWait, then the round runs anyway).
// What was busy in the last window is kept for the round's record.
func (bn *bench) settle() {
	deadline := time.Now().Add(quietMaxWait)
	for {
		busy := cpuBusy(500 * time.Millisecond)
		if busy <= 1-*quietIdle || time.Now().After(deadline) {
			bn.busyBefore = busy
			return
		}
	}
}

// cpuBusy is the share of the machine's CPU time not idle over d.
func cpuBusy(d time.Duration) float64 {
	read := func() (idle, total float64) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseFloat(f, 64)
			if i < 8 { // user nice system idle iowait irq softirq steal
				total += v
			}
			if i == 3 || i == 4 {
				idle += v
			}
		}
		return idle, total
	}
	i0, t0 := read()
	time.Sleep(d)
	i1, t1 := read()
	if t1 <= t0 {
		return 0
	}
	return 1 - (i1-i0)/(t1-t0)
}

// ---- idle ----

type procSample struct {
	at           time.Time
	ticks        int64 // utime+stime
	schedNs      int64 // sum over threads of time on CPU
	rssKB        int64
	volCtx       int64 // voluntary context switches (sum over threads)
	syscr, syscw int64
}

func sample(pid int) procSample {
	s := procSample{at: time.Now()}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		str := string(b)
		f := strings.Fields(str[strings.LastIndexByte(str, ')')+2:])
		// Fields after the command: state is f[0]; utime is field 14 overall (f[11]), stime f[12].
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		s.ticks = u + st
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				s.rssKB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			}
		}
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name())); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				s.schedNs += ns
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name())); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					s.volCtx += n
				}
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ": ")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "syscr":
				s.syscr = n
			case "syscw":
				s.syscw = n
			}
		}
	}
	return s
}

type bin struct {
	at    time.Duration
	cpuMs float64
}

type idleResult struct {
	startAll                 time.Duration // 50 files written -> all serving
	window                   time.Duration
	cpuPct, cpuPctSched      float64 // % of one core
	rssMB, rssStartMB        float64
	wakeupsPerSec            float64
	syscrPerSec, syscwPerSec float64
	containerdCPUPct         float64
	logLines                 []string
	bins                     []bin
	stalls                   int64
}

func (bn *bench) idle() idleResult {
	b := bn.b
	if err := bn.waitClean(); err != nil {
		b.Fatal(err)
	}
	var names []string
	for i := range *idlePods {
		names = append(names, fmt.Sprintf("idle-p%02d", i))
	}
	w := bn.watchServing(*idlePods)
	t0, err := bn.writeManifests(names)
	if err != nil {
		b.Fatal(err)
	}
	got, err := w.wait(3 * time.Minute)
	if err != nil {
		b.Logf("ballast node log:\n%s", bn.agent.text())
		b.Fatal(err)
	}
	var r idleResult
	r.startAll = latest(got).Sub(t0)
	r.stalls = w.stalls.Load()
	r.rssStartMB = float64(sample(bn.agent.pid()).rssKB) / 1024
	time.Sleep(idleSettle)

	cpid := bn.env.Containerd.Pid()
	a0, c0 := sample(bn.agent.pid()), sample(cpid)
	mark := time.Now()
	// Where the agent's CPU goes within the window: 100 ms bins.
	prev := a0.schedNs
	for t := time.NewTicker(100 * time.Millisecond); time.Since(mark) < idleWindow; {
		<-t.C
		now := schedMs(bn.agent.pid())
		r.bins = append(r.bins, bin{at: time.Since(mark), cpuMs: now - float64(prev)/1e6})
		prev = int64(now * 1e6)
	}
	a1, c1 := sample(bn.agent.pid()), sample(cpid)
	el := a1.at.Sub(a0.at).Seconds()
	r.window = a1.at.Sub(a0.at)
	r.cpuPct = float64(a1.ticks-a0.ticks) / clockTicks / el * 100
	r.cpuPctSched = float64(a1.schedNs-a0.schedNs) / 1e9 / el * 100
	r.containerdCPUPct = float64(c1.ticks-c0.ticks) / clockTicks / el * 100
	r.rssMB = float64(a1.rssKB) / 1024
	r.wakeupsPerSec = float64(a1.volCtx-a0.volCtx) / el
	r.syscrPerSec = float64(a1.syscr-a0.syscr) / el
	r.syscwPerSec = float64(a1.syscw-a0.syscw) / el
	for _, l := range bn.agent.since(mark) {
		if l.at.Before(a1.at) {
			r.logLines = append(r.logLines, fmt.Sprintf("+%.1fs %s", l.at.Sub(mark).Seconds(), l.text))
		}
	}
	return r
}

// ---- figures ----

func latest(s []served) time.Time {
	var t time.Time
	for _, x := range s {
		if x.at.After(t) {
			t = x.at
		}
	}
	return t
}

func maxSince(t0 time.Time, ts []time.Time) time.Duration {
	var d time.Duration = -1
	for _, t := range ts {
		if !t.IsZero() && t.Sub(t0) > d {
			d = t.Sub(t0)
		}
	}
	return d
}

func minSince(t0 time.Time, ts []time.Time) time.Duration {
	var d time.Duration = -1
	for _, t := range ts {
		if !t.IsZero() && (d < 0 || t.Sub(t0) < d) {
			d = t.Sub(t0)
		}
	}
	return d
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func totals(rs []roundResult) []time.Duration {
	var ds []time.Duration
	for _, r := range rs {
		ds = append(ds, r.total)
	}
	return ds
}

func phaseMedian(rs []roundResult, i int) time.Duration {
	var ds []time.Duration
	for _, r := range rs {
		if i < len(r.phases) && r.phases[i] >= 0 {
			ds = append(ds, r.phases[i])
		}
	}
	return median(ds)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}
