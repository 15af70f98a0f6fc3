package fleet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ballast-dev/ballast/internal/testutil"
)

// The method, set from the environment (see docs/benchmarks.md):
//
//	FLEET_NODES      fleet sizes, in order (250,500,1000,2000)
//	FLEET_PODS       mirror pods per node (30)
//	FLEET_WATCHERS   informers on all pods per run (100)
//	FLEET_CHANGES    status changes per second across the fleet (100)
//	FLEET_DURATION   how long each run is measured once the fleet is up (2m)
//	FLEET_SERVERS    which setups: ballast, ballast-ha, kube (all three)
//	FLEET_REPORT     a file the table is also written to
//	BALLAST_KUBE_BINARIES  hack/kube-binaries.sh's directory (kube-apiserver, etcd 3.5)
//
// Each run starts its servers on a new 3-member etcd cluster; a setup
// whose fleet does not come up (every mirror pod listed within a time
// that grows with the fleet) or whose Lease renewals fail is recorded as
// broken at that size and not run at larger ones.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envList(name, def string) []string {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	return strings.Split(v, ",")
}

// result is one row of the table.
type result struct {
	setup                string
	nodes, pods          int
	up                   time.Duration
	lease, status, delay Summary
	list                 time.Duration
	listItems            int
	cpuPct               float64 // of one core, servers summed, during the measured window
	writesPerSec         float64 // Lease renewals and status updates answered per second
	eventsPerSec         float64 // pod events the informers received per second, all summed
	rssMB                float64 // servers summed, the most seen
	etcdMB               float64
	broken               string
}

func (r result) row() string {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) }
	if r.broken != "" {
		return fmt.Sprintf("| %s | %d × %d | broken: %s | | | | | | | | | |", r.setup, r.nodes, r.pods, r.broken)
	}
	return fmt.Sprintf("| %s | %d × %d | %s / %s | %s | %s | %s (%d) | %.0f%% | %.0f / %.0f | %.0f | %.1f | %v |", r.setup, r.nodes, r.pods,
		ms(r.lease.P50), ms(r.lease.P99), ms(r.status.P99), ms(r.delay.P99), ms(r.list), r.listItems,
		r.cpuPct, r.writesPerSec, r.eventsPerSec, r.rssMB, r.etcdMB, r.up.Round(time.Second))
}

// The server's CPU is only comparable with the work done in the same
// window: writes answered and events delivered per second are in the table.
const tableHead = "| setup | nodes × pods | lease renewal p50 / p99 (ms) | status update p99 (ms) | informer delay p99 (ms) | full list (ms, pods) | server CPU | writes / events per s | server RSS (MB) | etcd DB (MB) | fleet up in |\n" +
	"| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"

// BenchmarkFleet runs the simulated fleet against `ballast server` on a
// 3-member etcd, two `ballast server`s on one, and kube-apiserver 1.32 on
// its own, at each size, with informers on all pods. `make bench-fleet`.
func BenchmarkFleet(b *testing.B) {
	testutil.Need(b, benchNeeds())
	sizes := envList("FLEET_NODES", "250,500,1000,2000")
	pods := envInt("FLEET_PODS", 30)
	watchers := envInt("FLEET_WATCHERS", 100)
	changes := envInt("FLEET_CHANGES", 100)
	duration, err := time.ParseDuration(envList("FLEET_DURATION", "2m")[0])
	if err != nil {
		b.Fatalf("FLEET_DURATION: %v", err)
	}
	bins := os.Getenv("BALLAST_KUBE_BINARIES")
	setups := envList("FLEET_SERVERS", "ballast,ballast-ha,kube")
	// The simulator stands for machines of their own, so it should take
	// as little of this one's CPU from the servers under test as it can.
	// Its heap is mostly the informers' copies of every pod, kept for the
	// whole run: at Go's default the collector took a quarter of its CPU
	// scanning them again and again. It runs less often here, bounded by
	// a memory limit (the servers, other processes, keep the default).
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(12 << 30))
	}
	bin := buildBallast(b)
	// Both sides on the same etcd release where there is one: 3.5 from
	// hack/kube-binaries.sh, else the machine's (Debian's 3.4).
	etcdBin := ""
	if bins != "" {
		etcdBin = filepath.Join(bins, "etcd")
	}
	var rows []string
	for range b.N {
		for _, setup := range setups {
			if setup == "kube" && bins == "" {
				testutil.Need(b, "BALLAST_KUBE_BINARIES is not set: kube-apiserver is built by hack/kube-binaries.sh (make bench-fleet runs it)")
			}
			broken := false
			for _, sz := range sizes {
				n, err := strconv.Atoi(sz)
				if err != nil {
					b.Fatalf("FLEET_NODES: %q is not a number", sz)
				}
				if broken {
					rows = append(rows, result{setup: setup, nodes: n, pods: pods, broken: "a smaller fleet broke it"}.row())
					continue
				}
				var r result
				b.Run(fmt.Sprintf("%s/%d", setup, n), func(b *testing.B) {
					r = runFleet(b, setup, bin, etcdBin, bins, n, pods, watchers, changes, duration)
				})
				broken = r.broken != ""
				rows = append(rows, r.row())
				b.Log(r.row())
			}
		}
	}
	table := fmt.Sprintf("%s\n%s\n", tableHead, strings.Join(rows, "\n"))
	fmt.Printf("\nfleet benchmark (%d pods per node, %d informers on all pods, %d status changes/s, %v per run):\n%s",
		pods, watchers, changes, duration, table)
	if p := os.Getenv("FLEET_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
			b.Error(err)
		}
	}
}

func benchNeeds() string {
	if os.Geteuid() != 0 {
		return "the fleet benchmark starts etcd clusters and servers: run it as root (make bench-fleet)"
	}
	if _, err := exec.LookPath("etcd"); err != nil && os.Getenv("BALLAST_KUBE_BINARIES") == "" {
		return "no etcd: apt-get install -y etcd-server, or set BALLAST_KUBE_BINARIES"
	}
	return ""
}

func buildBallast(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "ballast")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/ballast")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building ballast: %v\n%s", err, out)
	}
	return bin
}

// runFleet runs one setup at one size and measures it.
func runFleet(b *testing.B, setup, bin, etcdBin, bins string, nodes, pods, watchers, changes int, duration time.Duration) result {
	r := result{setup: setup, nodes: nodes, pods: pods}
	var u *under
	switch setup {
	case "ballast":
		u = startBallast(b, bin, etcdBin, 1)
	case "ballast-ha":
		u = startBallast(b, bin, etcdBin, 2)
	case "kube":
		u = startKube(b, bins)
	default:
		b.Fatalf("FLEET_SERVERS: unknown setup %q (ballast, ballast-ha, kube)", setup)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var kcs []string
	for _, s := range u.servers {
		kcs = append(kcs, s.kubeconfig)
	}
	admin, err := kubernetes.NewForConfig(u.servers[0].rest(b))
	if err != nil {
		b.Fatal(err)
	}
	// Peak RSS, sampled every second for the whole run.
	var peakMu sync.Mutex
	peak := int64(0)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go func() {
		for {
			var sum int64
			for _, s := range u.servers {
				sum += s.usage().rss
			}
			peakMu.Lock()
			peak = max(peak, sum)
			peakMu.Unlock()
			select {
			case <-sampleCtx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()

	start := time.Now()
	f, err := Start(ctx, Config{Servers: kcs, Nodes: nodes, PodsPerNode: pods, StatusChangesPerSecond: float64(changes),
		StartRate: 100, NodeCACert: u.servers[0].caCert, NodeCAKey: u.servers[0].caKey})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := f.Stop(); err != nil {
			b.Logf("fleet: %v", err)
		}
	}()
	upCtx, upCancel := context.WithTimeout(ctx, time.Minute+time.Duration(nodes)*200*time.Millisecond)
	err = f.WaitMirrors(upCtx, admin)
	upCancel()
	if err != nil {
		r.broken = err.Error()
		return r
	}
	r.up = time.Since(start)
	var ws []*Watchers
	per := (watchers + len(u.servers) - 1) / len(u.servers)
	for i, s := range u.servers {
		nw := min(per, watchers-i*per)
		if nw <= 0 {
			break
		}
		w, err := StartWatchers(ctx, s.rest(b), nw)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Stop()
		syncCtx, c := context.WithTimeout(ctx, 10*time.Minute)
		err = w.WaitSynced(syncCtx, nw)
		c()
		if err != nil {
			r.broken = err.Error()
			return r
		}
		ws = append(ws, w)
	}

	// The measured window.
	f.Lat.Reset()
	for _, w := range ws {
		w.Reset()
	}
	cpu0 := cpuOf(u)
	events0 := eventsOf(ws)
	t0 := time.Now()
	time.Sleep(duration)
	window := time.Since(t0)
	r.cpuPct = float64(cpuOf(u)-cpu0) / float64(window) * 100
	r.lease, r.status = f.Lat.Summary(LeaseRenewal), f.Lat.Summary(StatusUpdate)
	r.writesPerSec = float64(r.lease.N+r.status.N) / window.Seconds()
	r.eventsPerSec = float64(eventsOf(ws)-events0) / window.Seconds()
	var delays []time.Duration
	for _, w := range ws {
		w.mu.Lock()
		delays = append(delays, w.delays...)
		w.mu.Unlock()
	}
	r.delay = Summarize(delays, 0)

	// A full list of every pod, as the latest state (a consistent read).
	t1 := time.Now()
	l, err := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	r.list = time.Since(t1)
	if err == nil {
		r.listItems = len(l.Items)
	}
	peakMu.Lock()
	r.rssMB = float64(peak) / (1 << 20)
	peakMu.Unlock()
	if st, err := u.etcd.Client().Status(ctx, u.etcd.Endpoints[0]); err == nil {
		r.etcdMB = float64(st.DbSize) / (1 << 20)
	}
	if r.lease.Errors > 0 && r.lease.Errors > r.lease.N/100 {
		r.broken = fmt.Sprintf("Lease renewals failing (%v)", r.lease)
	}
	return r
}

// eventsOf is how many pod updates the informers of ws received in all.
func eventsOf(ws []*Watchers) int64 {
	var n int64
	for _, w := range ws {
		n += w.Events()
	}
	return n
}

func cpuOf(u *under) time.Duration {
	var sum time.Duration
	for _, s := range u.servers {
		sum += s.usage().cpu
	}
	return sum
}
