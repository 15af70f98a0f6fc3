package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/wellknown"
	"github.com/ballast-dev/ballast/test/e2e/harness"
	"github.com/ballast-dev/ballast/test/realkube"
)

// This file holds what the side-by-side benchmarks against the real
// kubelet 1.32 share: the two node agents as contenders on one containerd
// (one at a time: a kubelet stops every pod of the runtime it did not start
// itself), what each reports of its pods, and the cleanup between rounds.

// kubeletNode is the kubelet's node name (Ballast's is nodeName).
const kubeletNode = "bench-kubelet"

// contender is one node agent under measurement on the harness's
// containerd, with its own static pod directory.
type contender struct {
	name      string // as printed: "Ballast", "kubelet"
	node      string // its node name: a pod is MANIFEST-NAME-node
	manifests string
	ballast   bool // reads Ballast's annotations (ballast.dev/after, rollouts)
	dataDir   string
	// pods is what the agent reports of its pods (Ballast's local /pods,
	// the kubelet's /pods): the same v1 PodList, polled the same way.
	pods func(ctx context.Context) (*corev1.PodList, error)
	stop func()
	// agent is Ballast's process, whose log says when it called the
	// runtime; nil for the kubelet.
	agent *agent
}

// sideBySide is one run of a side-by-side benchmark: one harness
// containerd with the hello image pulled once (neither contender pulls it),
// Ballast's binary and the kubelet's.
type sideBySide struct {
	env             *harness.Env
	bins, bin       string // the kubelet's directory, Ballast's binary
	image, dir      string // the hello image; a directory for the contenders
	when, load      string // when it started, and the load then
	loadAfter, kube string // the load at the end; the kubelet's version
}

func startSideBySide(b testing.TB, name string) *sideBySide {
	harness.Require(b)
	s := &sideBySide{bins: kubeletBinaries(b), bin: buildBallast(b)}
	s.env = harness.Start(b)
	s.image = s.env.HelloImage()
	pullOnce(b, s.env, s.image)
	s.dir = filepath.Join(s.env.Dir, name)
	s.when, s.load, s.kube = time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadavg(), kubeletVersion(s.bins)
	return s
}

// each runs rounds with Ballast, then with the kubelet, and stops each
// after its rounds.
func (s *sideBySide) each(b testing.TB, rounds func(c *contender)) {
	for _, start := range []func() *contender{
		func() *contender { return startBallast(b, s.bin, s.env, s.dir) },
		func() *contender { return startKubelet(b, s.bins, s.env, s.dir) },
	} {
		c := start()
		rounds(c)
		c.stop()
	}
	s.loadAfter = loadavg()
}

// clear ends a round (clearRound), or the benchmark if it cannot.
func (s *sideBySide) clear(b testing.TB, c *contender) {
	if err := clearRound(s.env, c); err != nil {
		b.Fatal(err)
	}
}

// header is the first lines of a report.
func (s *sideBySide) header(w io.Writer, title string) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\n==== %s ====\n", title)
	fmt.Fprintf(w, "date %s, host %s, %d CPUs, load %s (after: %s), %s, %s\n", s.when, host, runtime.NumCPU(), s.load, s.loadAfter, s.kube, runtime.Version())
	fmt.Fprintf(w, "one containerd (the e2e harness's), one contender at a time: ballast node, then the kubelet standalone (static pods, no API server)\n")
}

// startBallast runs `ballast node` (default flags) as a contender.
func startBallast(b testing.TB, bin string, env *harness.Env, dir string) *contender {
	manifests := filepath.Join(dir, "ballast-manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		b.Fatal(err)
	}
	a := startNodeAgent(b, bin, env, manifests, "ballast")
	c := localapi.NewClient(localapi.SocketPath(a.dataDir))
	return &contender{name: "Ballast", node: nodeName, manifests: manifests, ballast: true, dataDir: a.dataDir,
		pods: c.Pods, agent: a,
		stop: func() {
			_ = a.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-a.exited:
			case <-time.After(15 * time.Second):
				_ = a.cmd.Process.Kill()
				<-a.exited
			}
		}}
}

// startKubelet runs the real kubelet 1.32 standalone (static pods, no API
// server, as on a node with no control plane) as a contender.
func startKubelet(b testing.TB, bins string, env *harness.Env, dir string) *contender {
	manifests := filepath.Join(dir, "kubelet-manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		b.Fatal(err)
	}
	k := realkube.StartKubelet(b, realkube.KubeletConfig{
		Bin: filepath.Join(bins, "kubelet"), Dir: filepath.Join(dir, "kubelet"), NodeName: kubeletNode,
		Endpoint: env.Endpoint, Manifests: manifests, PKI: realkube.NewPKI(b, filepath.Join(dir, "kubelet-pki")),
	})
	k.WaitHealthy(b, 2*time.Minute)
	return &contender{name: "kubelet", node: kubeletNode, manifests: manifests,
		pods: func(ctx context.Context) (*corev1.PodList, error) {
			raw, err := k.Get(ctx, "/pods")
			if err != nil {
				return nil, err
			}
			var l corev1.PodList
			if err := json.Unmarshal(raw, &l); err != nil {
				return nil, fmt.Errorf("the kubelet's /pods: %w", err)
			}
			return &l, nil
		},
		stop: func() {
			if err := k.Stop(); err != nil {
				b.Error(err)
			}
		}}
}

// kubeletBinaries returns the directory of the kubelet built by
// hack/kube-binaries.sh, or skips the benchmark (fails it when CI=true).
func kubeletBinaries(b testing.TB, need ...string) string {
	return realkube.Binaries(b, append([]string{"kubelet"}, need...)...)
}

// kubeletVersion is what `kubelet --version` prints.
func kubeletVersion(bins string) string {
	out, err := exec.Command(filepath.Join(bins, "kubelet"), "--version").Output()
	if err != nil {
		return "kubelet (version unknown: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// pullOnce pulls image through CRI before anything is measured, so that
// neither contender pulls.
func pullOnce(b testing.TB, env *harness.Env, image string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := env.Images().PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
		b.Fatalf("pulling %s: %v", image, err)
	}
}

// placeManifests writes each file (name -> content) beside the directory
// first, then renames them in: the clock starts before the first rename.
func placeManifests(dir string, files map[string]string) (time.Time, error) {
	tmp := dir + "-tmp"
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return time.Time{}, err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(tmp, name+".yaml"), []byte(content), 0o644); err != nil {
			return time.Time{}, err
		}
	}
	t0 := time.Now()
	for name := range files {
		if err := os.Rename(filepath.Join(tmp, name+".yaml"), filepath.Join(dir, name+".yaml")); err != nil {
			return t0, err
		}
	}
	return t0, nil
}

// clearRound removes the contender's manifests and waits until the
// runtime is empty again, so that each round starts from nothing. The
// kubelet removes the sandboxes of the pods it stopped itself, most at
// once, some later from its garbage collector: what is still there 5 s
// after every pod stopped is removed here.
func clearRound(env *harness.Env, c *contender) error {
	ents, err := os.ReadDir(c.manifests)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(c.manifests, e.Name())); err != nil {
			return err
		}
	}
	rt := env.Runtime()
	var stopped time.Time // when no sandbox was left running
	var last error
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		l, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			cancel()
			last = err
			continue
		}
		if len(l.Items) == 0 {
			cancel()
			return nil
		}
		running := false
		for _, sb := range l.Items {
			running = running || sb.State == runtimeapi.PodSandboxState_SANDBOX_READY
		}
		switch {
		case running:
			stopped = time.Time{}
		case stopped.IsZero():
			stopped = time.Now()
		case time.Since(stopped) > 5*time.Second:
			for _, sb := range l.Items {
				// An error (the kubelet removing it at the same time) is
				// seen on the next list.
				if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
					last = err
				}
			}
		}
		cancel()
		last = fmt.Errorf("%d sandboxes left (running: %v)", len(l.Items), running)
	}
	return fmt.Errorf("%s: the runtime is not empty 2 min after the pods' files were removed: %v", c.name, last)
}

// podTimeline is what one pod did in a round, from the start of the round.
type podTimeline struct {
	running  time.Duration // the agent first reports a running container (-1: never)
	ready    time.Duration // the agent first reports it Ready (-1: never)
	served   time.Duration // it first answered GET / on its port (-1: never)
	restarts int32
	state    string // the last state the agent reported
}

// podWatch polls each pod's port on 127.0.0.1 (GET / on a new connection)
// and, if asked, the contender's pod list, from t0.
type podWatch struct {
	c     *contender
	t0    time.Time
	mu    sync.Mutex
	pods  map[string]*podTimeline
	stop  chan struct{}
	wg    sync.WaitGroup
	lastE error // the last error reading the pod list
}

// watchTimelines starts a podWatch of the pods (manifest name -> port):
// ports every probeEvery, the pod list every podsEvery (never if 0).
func watchTimelines(c *contender, t0 time.Time, ports map[string]int, probeEvery, podsEvery time.Duration) *podWatch {
	w := &podWatch{c: c, t0: t0, pods: map[string]*podTimeline{}, stop: make(chan struct{})}
	for name, port := range ports {
		w.pods[name] = &podTimeline{running: -1, ready: -1, served: -1}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			for {
				if _, err := get(addr); err == nil {
					w.mu.Lock()
					w.pods[name].served = time.Since(t0)
					w.mu.Unlock()
					return
				}
				select {
				case <-w.stop:
					return
				case <-time.After(probeEvery):
				}
			}
		}()
	}
	if podsEvery == 0 {
		return w
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			l, err := c.pods(ctx)
			cancel()
			now := time.Since(t0)
			w.mu.Lock()
			w.lastE = err
			if err == nil {
				for i := range l.Items {
					w.update(&l.Items[i], now)
				}
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(podsEvery):
			}
		}
	}()
	return w
}

// update records what the agent says of p (called with w.mu held).
func (w *podWatch) update(p *corev1.Pod, now time.Duration) {
	pt := w.pods[strings.TrimSuffix(p.Name, "-"+w.c.node)]
	if pt == nil || len(p.Status.ContainerStatuses) == 0 {
		return
	}
	cs := p.Status.ContainerStatuses[0]
	if cs.State.Running != nil && pt.running < 0 {
		pt.running = now
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && pt.ready < 0 {
			pt.ready = now
		}
	}
	pt.restarts = cs.RestartCount
	pt.state = describeState(p, cs)
}

// describeState is a pod's container state as kubectl would summarize it.
func describeState(p *corev1.Pod, cs corev1.ContainerStatus) string {
	var s string
	switch st := cs.State; {
	case st.Waiting != nil:
		s = "Waiting " + st.Waiting.Reason
		if st.Waiting.Message != "" {
			s += ": " + st.Waiting.Message
		}
	case st.Running != nil:
		s = "Running"
		if cs.Ready {
			s += ", Ready"
		}
	case st.Terminated != nil:
		s = fmt.Sprintf("Terminated %s (exit %d)", st.Terminated.Reason, st.Terminated.ExitCode)
	default:
		s = "no state"
	}
	if cs.Image != "" {
		s += "; image " + cs.Image
	}
	if why := p.Annotations[wellknown.AnnotationRolloutReverted]; why != "" {
		s += "; reverted: " + why
	}
	return s
}

// waitServed waits until every watched pod has served, or timeout.
func (w *podWatch) waitServed(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		var waiting []string
		for name, pt := range w.pods {
			if pt.served < 0 {
				waiting = append(waiting, fmt.Sprintf("%s (%s)", name, pt.state))
			}
		}
		lastE := w.lastE
		w.mu.Unlock()
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			slices.Sort(waiting)
			return fmt.Errorf("not serving %v after the manifests were written: %s (last error reading the pods: %v)", timeout, strings.Join(waiting, ", "), lastE)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// close stops the watch and returns what it saw.
func (w *podWatch) close() map[string]*podTimeline {
	close(w.stop)
	w.wg.Wait()
	return w.pods
}

// loadavg is /proc/loadavg's 1-, 5- and 15-minute load.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
