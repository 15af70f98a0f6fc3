package chaos

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
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
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/containerd"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/wellknown"
	"github.com/ballast-dev/ballast/test/e2e/harness"
)

var (
	duration = flag.Duration("chaos.duration", time.Minute, "how long the schedule runs")
	seedFlag = flag.Uint64("chaos.seed", 0, "the schedule's seed (0: a new one, printed)")
)

const (
	nodeName = "chaos"
	// maxFiles bounds the manifest files the schedule keeps.
	maxFiles = 8
	// convergeTimeout bounds the wait for the node to reach what the
	// files ask after a step (slow, loaded machines included).
	convergeTimeout = 3 * time.Minute
)

// The seeded random schedule, checked after every step.
func TestChaos(t *testing.T) {
	harness.Require(t)
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos seed %d, for %s (replay: CHAOS_SEED=%d hack/test.sh chaos)", seed, *duration, seed)
	w := newWorld(t, seed)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED at step %d with seed %d; replay with: CHAOS_SEED=%d CHAOS_DURATION=%s hack/test.sh chaos\nlast steps:\n  %s\nmodel: %s\n--- agent log (tail) ---\n%s\n--- server log (tail) ---\n%s",
				w.step, seed, seed, *duration, strings.Join(w.history, "\n  "), w.m, w.agentLog, w.serverLog)
		}
	}()
	w.startServer()
	w.startAgent()
	w.converge("start")
	deadline := time.Now().Add(*duration)
	for w.step = 1; time.Now().Before(deadline); w.step++ {
		what := w.act()
		w.history = append(w.history, fmt.Sprintf("%d: %s", w.step, what))
		if len(w.history) > 15 {
			w.history = w.history[1:]
		}
		began := time.Now()
		w.converge(what)
		w.stopChurn()
		t.Logf("step %d: %s (converged in %s)", w.step, what, time.Since(began).Round(10*time.Millisecond))
	}
	if w.apiDown {
		w.startServer()
		w.converge("the API back at the end")
	}
	var kinds []string
	for k, n := range w.counts {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("chaos seed %d: %d steps in %s: %s; agent max %d goroutines, %d MiB; server max %d goroutines, %d MiB; at most %d mounts, %d veths, %d leases checked",
		seed, w.step-1, *duration, strings.Join(kinds, " "), w.maxAgentG, w.maxAgentRSS>>20, w.maxServerG, w.maxServerRSS>>20, w.maxMounts, w.maxVeths, w.maxLeases)
}

// world is the system under test and the model of what it must do.
type world struct {
	t    *testing.T
	rng  *rand.Rand
	bin  string
	mg   *harness.Managed
	m    *model
	step int

	manifests, serverDir, listen string
	server, agent                *proc
	serverLog, agentLog          *tail
	serverReady                  chan string
	client                       kubernetes.Interface
	rt                           runtimeapi.RuntimeServiceClient
	local                        *localapi.Client
	apiDown                      bool
	downFor                      int // steps the API stays down

	nextFile, nextPod int
	history           []string
	counts            map[string]int

	// prev is what ran at the end of the last step, by pod name.
	prev map[string]seen
	// churn stops the client churn of the current step.
	churn func()

	maxAgentG, maxServerG     int
	maxAgentRSS, maxServerRSS int64
	baseAgentG                int
	// The most mounts, veths and leases one converged step checked (a
	// check that never sees any proves nothing).
	maxMounts, maxVeths, maxLeases int
}

// seen is one pod as it ran.
type seen struct {
	uid        types.UID
	containers map[string]string // container name -> ID
	mirrorUID  types.UID
}

func newWorld(t *testing.T, seed uint64) *world {
	mg := harness.NewManaged(t)
	w := &world{
		t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), bin: harness.BallastBinary(t), mg: mg,
		manifests: filepath.Join(mg.Dir, "manifests"), serverDir: filepath.Join(mg.Dir, "server"),
		serverLog: &tail{max: 300}, agentLog: &tail{max: 300},
		counts: map[string]int{}, prev: map[string]seen{},
	}
	w.m = newModel(nodeName, w.manifests)
	if err := os.MkdirAll(w.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.listen = ln.Addr().String()
	ln.Close()
	w.serverReady = make(chan string, 1)
	w.serverLog.watch = func(line string) {
		if u, ok := strings.CutPrefix(line, "ballast server ready at "); ok {
			select {
			case w.serverReady <- strings.TrimSpace(u):
			default:
			}
		}
	}
	conn, err := containerd.Dial(filepath.Join(mg.Dir, "containerd", "containerd.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	w.rt = runtimeapi.NewRuntimeServiceClient(conn)
	w.local = localapi.NewClient(localapi.SocketPath(mg.Dir))
	t.Cleanup(func() {
		w.stopChurn()
		if w.agent != nil {
			w.agent.stop()
		}
		if w.server != nil {
			w.server.stop()
		}
		// The pods go with the managed containerd (harness cleanup).
	})
	return w
}

// ---- processes

func (w *world) startServer() {
	w.t.Helper()
	w.server = start(w.t, "server", w.bin, w.serverLog, "server", "--data-dir", w.serverDir, "--listen", w.listen)
	select {
	case <-w.serverReady:
	case <-w.server.exited:
		w.t.Fatalf("ballast server exited before it was ready")
	case <-time.After(2 * time.Minute):
		w.t.Fatalf("ballast server not ready in 2m")
	}
	w.apiDown = false
	if w.client == nil {
		cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(w.serverDir, "kubeconfig"))
		if err != nil {
			w.t.Fatal(err)
		}
		cfg.Timeout = 10 * time.Second
		if w.client, err = kubernetes.NewForConfig(cfg); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) startAgent() {
	w.t.Helper()
	tokFile := filepath.Join(w.mg.Dir, "node-token")
	tok, err := os.ReadFile(tokFile)
	if err != nil {
		out, err := exec.Command(w.bin, "server", "token", "create", "--node", nodeName, "--data-dir", w.serverDir).Output()
		if err != nil {
			w.t.Fatalf("token create: %v", err)
		}
		tok = []byte(strings.TrimSpace(string(out)))
		if err := os.WriteFile(tokFile, tok, 0o600); err != nil {
			w.t.Fatal(err)
		}
	}
	port, err := freePort()
	if err != nil {
		w.t.Fatal(err)
	}
	w.agent = start(w.t, "agent", w.bin, w.agentLog, "node", "--node-name", nodeName, "--data-dir", w.mg.Dir,
		"--pod-manifest-path", w.manifests, "--images-dir", w.mg.ImagesDir,
		"--cni-bridge", w.mg.BridgeName, "--pod-cidr", w.mg.Subnet, "--pod-infra-image", harness.SandboxImage,
		"--server", "https://"+w.listen, "--token", string(tok), "--certificate-authority", filepath.Join(w.serverDir, "pki", "ca.crt"),
		"--node-ip", "127.0.0.1", "--address", "127.0.0.1", "--port", strconv.Itoa(port))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := w.local.Pods(ctx)
		cancel()
		if err == nil {
			return
		}
		if !w.agent.alive() || time.Now().After(deadline) {
			w.t.Fatalf("the agent does not answer on its socket: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ---- the schedule

// act takes one step, chosen by the seeded generator, and says what it did.
func (w *world) act() string {
	if w.apiDown {
		w.downFor--
		if w.downFor <= 0 {
			w.startServer()
			w.count("api-back")
			return "the API server back after an outage"
		}
	}
	type choice struct {
		name   string
		weight int
		ok     bool
		do     func() string
	}
	n := len(w.m.files)
	choices := []choice{
		{"add", 4, n < maxFiles, w.add},
		{"edit", 3, n > 0, w.edit},
		{"break", 2, n > 0, w.breakFile},
		{"fix", 2, w.anyBroken(), w.fix},
		{"remove", 2, n > 2, w.remove},
		{"duplicate", 2, n > 0 && n < maxFiles, w.duplicate},
		{"rename", 1, n > 0, w.rename},
		{"kill-agent", 2, true, w.killAgent},
		{"kill-agent-starting", 1, n < maxFiles, w.killAgentStarting},
		{"kill-containerd", 2, true, w.killContainerd},
		{"kill-server", 1, !w.apiDown, w.killServer},
		{"api-outage", 1, !w.apiDown, w.outage},
		{"client-churn", 2, !w.apiDown, w.clientChurn},
	}
	total := 0
	for _, c := range choices {
		if c.ok {
			total += c.weight
		}
	}
	r := w.rng.IntN(total)
	for _, c := range choices {
		if !c.ok {
			continue
		}
		if r < c.weight {
			w.count(c.name)
			return c.do()
		}
		r -= c.weight
	}
	panic("unreachable")
}

func (w *world) count(kind string) { w.counts[kind]++ }

func (w *world) pickFile() string {
	names := w.m.sorted()
	return names[w.rng.IntN(len(names))]
}

func (w *world) anyBroken() bool {
	for _, f := range w.m.files {
		if !f.valid {
			return true
		}
	}
	return false
}

// podName is the metadata.name a file's content (or its last good one)
// defines.
func (w *world) podName(file string) string {
	f := w.m.files[file]
	for _, c := range []string{f.content, f.good, f.kept} {
		if p := w.m.parse(file, c); p != nil {
			return strings.TrimSuffix(p.name, "-"+nodeName)
		}
	}
	w.nextPod++
	return fmt.Sprintf("pod%d", w.nextPod)
}

// write writes a manifest atomically (a temp file, then a rename) and
// records it in the model.
func (w *world) write(file, content string) {
	w.t.Helper()
	tmp := filepath.Join(w.mg.Dir, ".tmp-"+file)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(w.manifests, file)); err != nil {
		w.t.Fatal(err)
	}
	w.m.write(file, content)
}

func (w *world) version() string { return strconv.Itoa(w.rng.IntN(1 << 20)) }

func (w *world) add() string {
	w.nextFile++
	w.nextPod++
	file := fmt.Sprintf("f%03d.yaml", w.nextFile)
	name := fmt.Sprintf("pod%d", w.nextPod)
	w.write(file, podYAML(name, w.version(), 1+w.rng.IntN(3)))
	return "add " + file + " (" + name + ")"
}

func (w *world) edit() string {
	file := w.pickFile()
	w.write(file, podYAML(w.podName(file), w.version(), 1+w.rng.IntN(3)))
	return "edit " + file
}

var broken = []string{
	"apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: [\n",
	"apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  bogusField: 1\n  containers:\n  - name: c\n    image: i\n",
	"apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: []\n",
	"",
}

func (w *world) breakFile() string {
	file := w.pickFile()
	w.write(file, broken[w.rng.IntN(len(broken))])
	return "break " + file
}

func (w *world) fix() string {
	var bad []string
	for _, n := range w.m.sorted() {
		if !w.m.files[n].valid {
			bad = append(bad, n)
		}
	}
	file := bad[w.rng.IntN(len(bad))]
	f := w.m.files[file]
	if prev := f.good + f.kept; prev != "" && w.rng.IntN(2) == 0 {
		w.write(file, prev)
		return "fix " + file + " (its last good content)"
	}
	w.write(file, podYAML(w.podName(file), w.version(), 1+w.rng.IntN(3)))
	return "fix " + file
}

func (w *world) remove() string {
	file := w.pickFile()
	if err := os.Remove(filepath.Join(w.manifests, file)); err != nil {
		w.t.Fatal(err)
	}
	w.m.remove(file)
	return "remove " + file
}

// duplicate writes a new file defining a pod name another file defines,
// sorting before or after it.
func (w *world) duplicate() string {
	of := w.pickFile()
	name := w.podName(of)
	w.nextFile++
	prefix := "a"
	if w.rng.IntN(2) == 0 {
		prefix = "z"
	}
	file := fmt.Sprintf("%s%03d.yaml", prefix, w.nextFile)
	w.write(file, podYAML(name, w.version(), 1+w.rng.IntN(3)))
	return fmt.Sprintf("duplicate %s's %s in %s", of, name, file)
}

func (w *world) rename() string {
	file := w.pickFile()
	w.nextPod++
	name := fmt.Sprintf("pod%d", w.nextPod)
	w.write(file, podYAML(name, w.version(), 1+w.rng.IntN(3)))
	return "rename the pod of " + file + " to " + name
}

func (w *world) killAgent() string {
	w.agent.kill9()
	w.m.agentRestarted()
	w.startAgent()
	return "kill -9 the agent, start it again"
}

// killAgentStarting adds a pod and kills the agent once its start is under
// way (its sandbox exists).
func (w *world) killAgentStarting() string {
	what := w.add()
	name := ""
	for _, wt := range w.m.want() {
		if wt.file == fmt.Sprintf("f%03d.yaml", w.nextFile) {
			name = wt.name
		}
	}
	deadline := time.Now().Add(time.Minute)
	for name != "" && time.Now().Before(deadline) {
		sbs, _, err := w.runtimeOf(name)
		if err == nil && len(sbs) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.agent.kill9()
	w.m.agentRestarted()
	w.startAgent()
	return what + ", kill -9 the agent during its start, start it again"
}

func (w *world) killContainerd() string {
	b, err := os.ReadFile(filepath.Join(w.mg.Dir, "containerd", "containerd.pid"))
	if err != nil {
		w.t.Fatalf("the managed containerd's pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		w.t.Fatalf("the managed containerd's pid file: %q", b)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		w.t.Fatalf("kill -9 containerd (pid %d): %v", pid, err)
	}
	return fmt.Sprintf("kill -9 the managed containerd (pid %d)", pid)
}

func (w *world) killServer() string {
	w.server.kill9()
	w.startServer()
	return "kill -9 the API server, start it again"
}

func (w *world) outage() string {
	w.server.kill9()
	w.apiDown = true
	w.downFor = 1 + w.rng.IntN(3)
	return fmt.Sprintf("an API outage for %d steps", w.downFor)
}

// clientChurn runs clients that list and watch, each for a moment, again
// and again, until the step ends.
func (w *world) clientChurn() string {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	n := 2 + w.rng.IntN(6)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), uint64(w.step)))
			for ctx.Err() == nil {
				cctx, c := context.WithTimeout(ctx, time.Duration(50+r.IntN(2000))*time.Millisecond)
				switch r.IntN(4) {
				case 0:
					_, _ = w.client.CoreV1().Pods("").List(cctx, metav1.ListOptions{})
				case 1:
					if wi, err := w.client.CoreV1().Pods("").Watch(cctx, metav1.ListOptions{}); err == nil {
						for range wi.ResultChan() {
						}
					}
				case 2:
					_, _ = w.client.CoreV1().Events("").List(cctx, metav1.ListOptions{Limit: 50})
				case 3:
					if wi, err := w.client.CoreV1().Events("").Watch(cctx, metav1.ListOptions{}); err == nil {
						for range wi.ResultChan() {
						}
					}
				}
				c()
			}
		}()
	}
	w.churn = func() { cancel(); wg.Wait() }
	return fmt.Sprintf("client churn: %d clients listing and watching", n)
}

func (w *world) stopChurn() {
	if w.churn != nil {
		w.churn()
		w.churn = nil
	}
}

// ---- checking

// converge waits until the node is what the model says, failing at once on
// a broken safety rule (a restart, a flapping mirror).
func (w *world) converge(what string) {
	w.t.Helper()
	want := w.m.want()
	deadline := time.Now().Add(convergeTimeout)
	var last error
	for {
		now, err := w.check(want)
		if err == nil {
			w.prev = now
			w.resources()
			return
		}
		var unsafe *unsafeErr
		if errors.As(err, &unsafe) {
			w.t.Fatalf("step %d (%s): %v", w.step, what, err)
		}
		last = err
		if time.Now().After(deadline) {
			w.t.Fatalf("step %d (%s): not converged after %s: %v", w.step, what, convergeTimeout, last)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// unsafeErr is a broken rule that no waiting mends.
type unsafeErr struct{ msg string }

func (e *unsafeErr) Error() string { return e.msg }

func unsafef(format string, args ...any) error { return &unsafeErr{fmt.Sprintf(format, args...)} }

func (w *world) runtimeOf(name string) ([]*runtimeapi.PodSandbox, []*runtimeapi.Container, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var f map[string]string
	if name != "" {
		f = map[string]string{"io.kubernetes.pod.name": name}
	}
	sbs, err := w.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: f}})
	if err != nil {
		return nil, nil, err
	}
	cs, err := w.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: f}})
	if err != nil {
		return nil, nil, err
	}
	return sbs.Items, cs.Containers, nil
}

// check compares the node with want; it returns what runs when they agree.
func (w *world) check(want map[string]*want) (map[string]seen, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := w.local.Pods(ctx)
	if err != nil {
		return nil, fmt.Errorf("ballast pods: %w", err)
	}
	now := map[string]seen{}
	local := map[string]corev1.Pod{}
	for _, p := range list.Items {
		local[p.Name] = p
		s := seen{uid: p.UID, containers: map[string]string{}}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount != 0 {
				return nil, unsafef("pod %s: container %s restarted %d times (these containers never exit)", p.Name, cs.Name, cs.RestartCount)
			}
			if cs.ContainerID != "" {
				s.containers[cs.Name] = cs.ContainerID
			}
		}
		if before, ok := w.prev[p.Name]; ok && before.uid == p.UID && want[p.Name] != nil && want[p.Name].uid == p.UID {
			for c, id := range before.containers {
				if cur, ok := s.containers[c]; ok && cur != id {
					return nil, unsafef("pod %s: container %s was replaced (%s -> %s) though its pod did not change", p.Name, c, id, cur)
				}
			}
		}
		now[p.Name] = s
	}
	for name, wt := range want {
		p, ok := local[name]
		if !ok {
			return nil, fmt.Errorf("pod %s (%s) is not listed by ballast pods", name, wt.file)
		}
		if p.UID != wt.uid {
			return nil, fmt.Errorf("pod %s runs UID %s, want %s (%s)", name, p.UID, wt.uid, wt.file)
		}
		if p.Status.Phase != corev1.PodRunning {
			return nil, fmt.Errorf("pod %s: phase %s", name, p.Status.Phase)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if !cs.Ready || cs.State.Running == nil {
				return nil, fmt.Errorf("pod %s: container %s not running and ready", name, cs.Name)
			}
		}
	}
	for name := range local {
		if want[name] == nil {
			return nil, fmt.Errorf("pod %s is listed but no file asks for it", name)
		}
	}
	if err := w.checkRuntime(want, local); err != nil {
		return nil, err
	}
	if !w.apiDown {
		if err := w.checkAPI(want, local, now); err != nil {
			return nil, err
		}
	}
	return now, nil
}

// checkRuntime: one ready sandbox per pod, one running container per
// container, and nothing else: no orphan sandbox, container, mount, veth
// or IP lease.
func (w *world) checkRuntime(want map[string]*want, local map[string]corev1.Pod) error {
	sbs, cs, err := w.runtimeOf("")
	if err != nil {
		return fmt.Errorf("the runtime: %w", err)
	}
	ready := map[string]bool{} // sandbox IDs
	byUID := map[types.UID]int{}
	uids := map[types.UID]bool{}
	for _, wt := range want {
		uids[wt.uid] = true
	}
	for _, sb := range sbs {
		uid := types.UID(sb.Metadata.Uid)
		if !uids[uid] {
			return fmt.Errorf("orphan sandbox %s of pod %s (uid %s, %s)", sb.Id[:12], sb.Metadata.Name, uid, sb.State)
		}
		if sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			return fmt.Errorf("sandbox %s of pod %s is %s", sb.Id[:12], sb.Metadata.Name, sb.State)
		}
		ready[sb.Id] = true
		byUID[uid]++
	}
	running := map[string]bool{}
	perPod := map[string]map[string]int{}
	for _, c := range cs {
		if !ready[c.PodSandboxId] {
			return fmt.Errorf("orphan container %s (%s) in sandbox %s", c.Id[:12], c.Metadata.Name, c.PodSandboxId[:min(12, len(c.PodSandboxId))])
		}
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			return fmt.Errorf("container %s (%s) is %s", c.Id[:12], c.Metadata.Name, c.State)
		}
		running[c.Id] = true
		pod := c.Labels["io.kubernetes.pod.name"]
		if perPod[pod] == nil {
			perPod[pod] = map[string]int{}
		}
		perPod[pod][c.Metadata.Name]++
	}
	for name, wt := range want {
		if byUID[wt.uid] != 1 {
			return fmt.Errorf("pod %s has %d ready sandboxes, want 1", name, byUID[wt.uid])
		}
		p := local[name]
		for _, c := range p.Spec.Containers {
			if n := perPod[name][c.Name]; n != 1 {
				return fmt.Errorf("pod %s container %s: %d running, want 1", name, c.Name, n)
			}
		}
	}
	if err := w.checkMounts(uids, ready, running); err != nil {
		return err
	}
	if err := w.checkNetwork(ready); err != nil {
		return err
	}
	// Logs: one directory per pod that runs.
	entries, _ := os.ReadDir(filepath.Join(w.mg.Dir, "pods"))
	for _, e := range entries {
		parts := strings.Split(e.Name(), "_")
		if len(parts) == 3 && !uids[types.UID(parts[2])] {
			return fmt.Errorf("orphan log directory %s", e.Name())
		}
	}
	return nil
}

// checkMounts: the mounts under the node's and its containerd's
// directories belong to pods, sandboxes and containers that run.
func (w *world) checkMounts(uids map[types.UID]bool, sandboxes, containers map[string]bool) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	volumes := filepath.Join(w.mg.Dir, "volumes") + "/"
	ctrd := filepath.Join(w.mg.Dir, "containerd") + "/"
	sc := bufio.NewScanner(f)
	mounts := 0
	defer func() { w.maxMounts = max(w.maxMounts, mounts) }()
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := fields[4]
		switch {
		case strings.HasPrefix(mp, volumes):
			mounts++
			uid := strings.SplitN(strings.TrimPrefix(mp, volumes), "/", 2)[0]
			if !uids[types.UID(uid)] {
				return fmt.Errorf("orphan mount %s", mp)
			}
		case strings.HasPrefix(mp, ctrd):
			parts := strings.Split(mp, "/")
			last := parts[len(parts)-1]
			if len(parts) < 2 {
				continue
			}
			id := parts[len(parts)-2]
			mounts++
			switch last {
			case "shm":
				if !sandboxes[id] {
					return fmt.Errorf("orphan sandbox shm mount %s", mp)
				}
			case "rootfs":
				if !sandboxes[id] && !containers[id] {
					return fmt.Errorf("orphan rootfs mount %s", mp)
				}
			}
		}
	}
	return sc.Err()
}

// checkNetwork: one veth on the bridge and one IP lease per ready sandbox.
func (w *world) checkNetwork(sandboxes map[string]bool) error {
	links, _ := os.ReadDir("/sys/class/net")
	veths := 0
	for _, l := range links {
		if target, err := os.Readlink(filepath.Join("/sys/class/net", l.Name(), "master")); err == nil && filepath.Base(target) == w.mg.BridgeName {
			veths++
		}
	}
	if veths != len(sandboxes) {
		return fmt.Errorf("%d veths on bridge %s for %d ready sandboxes", veths, w.mg.BridgeName, len(sandboxes))
	}
	nets, _ := os.ReadDir(filepath.Join(w.mg.Dir, "containerd", "cni-ipam"))
	leases := map[string]bool{}
	for _, n := range nets {
		files, _ := os.ReadDir(filepath.Join(w.mg.Dir, "containerd", "cni-ipam", n.Name()))
		for _, f := range files {
			if net.ParseIP(f.Name()) == nil {
				continue
			}
			b, err := os.ReadFile(filepath.Join(w.mg.Dir, "containerd", "cni-ipam", n.Name(), f.Name()))
			if err != nil {
				continue
			}
			id := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
			if !sandboxes[id] {
				return fmt.Errorf("orphan IP lease %s (sandbox %s)", f.Name(), id[:min(12, len(id))])
			}
			leases[id] = true
		}
	}
	if len(leases) != len(sandboxes) {
		return fmt.Errorf("%d IP leases for %d ready sandboxes", len(leases), len(sandboxes))
	}
	w.maxVeths, w.maxLeases = max(w.maxVeths, veths), max(w.maxLeases, len(leases))
	return nil
}

// checkAPI: the Node is Ready, one mirror pod per pod, of its config hash,
// with the status `ballast pods` shows; a mirror whose pod did not change
// is never deleted and recreated.
func (w *world) checkAPI(want map[string]*want, local map[string]corev1.Pod, now map[string]seen) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := w.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("the Node: %w", err)
	}
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		return fmt.Errorf("the Node is not Ready")
	}
	pods, err := w.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + nodeName})
	if err != nil {
		return fmt.Errorf("listing mirror pods: %w", err)
	}
	mirrors := map[string]corev1.Pod{}
	for _, p := range pods.Items {
		if _, ok := p.Annotations[wellknown.AnnotationConfigMirror]; ok {
			mirrors[p.Name] = p
		}
	}
	for name, m := range mirrors {
		wt := want[name]
		if wt == nil {
			return fmt.Errorf("mirror pod %s matches no file", name)
		}
		if before, ok := w.prev[name]; ok && before.uid == wt.uid && before.mirrorUID != "" && before.mirrorUID != m.UID &&
			m.Annotations[wellknown.AnnotationConfigMirror] == string(wt.uid) {
			return unsafef("mirror pod %s was deleted and created again (%s -> %s) though its pod did not change", name, before.mirrorUID, m.UID)
		}
	}
	for name, wt := range want {
		m, ok := mirrors[name]
		if !ok {
			return fmt.Errorf("no mirror pod for %s", name)
		}
		if m.Annotations[wellknown.AnnotationConfigMirror] != string(wt.uid) {
			return fmt.Errorf("mirror pod %s mirrors %s, want %s", name, m.Annotations[wellknown.AnnotationConfigMirror], wt.uid)
		}
		if m.Status.Phase != local[name].Status.Phase {
			return fmt.Errorf("mirror pod %s: phase %s, ballast pods says %s", name, m.Status.Phase, local[name].Status.Phase)
		}
		ids := func(st []corev1.ContainerStatus) string {
			var out []string
			for _, c := range st {
				out = append(out, c.Name+"="+c.ContainerID+fmt.Sprintf("/%v", c.Ready))
			}
			slices.Sort(out)
			return strings.Join(out, ",")
		}
		if a, b := ids(m.Status.ContainerStatuses), ids(local[name].Status.ContainerStatuses); a != b {
			return fmt.Errorf("mirror pod %s shows containers %s, ballast pods %s", name, a, b)
		}
		s := now[name]
		s.mirrorUID = m.UID
		now[name] = s
	}
	return nil
}

// resources reads the agent's and the server's goroutines and memory and
// fails when they grow past their bounds.
func (w *world) resources() {
	w.t.Helper()
	hc := localapi.HTTPClient(localapi.SocketPath(w.mg.Dir))
	hc.Timeout = 10 * time.Second
	g, rss, err := scrape(hc, "http://ballast/metrics")
	if err != nil {
		w.t.Fatalf("the agent's /metrics: %v", err)
	}
	w.maxAgentG, w.maxAgentRSS = max(w.maxAgentG, g), max(w.maxAgentRSS, rss)
	if w.step == 5 {
		w.baseAgentG = g
	}
	// Bounds with room for a busy moment: pods are few, so a leak shows.
	if g > 1000 || (w.baseAgentG > 0 && g > w.baseAgentG+300) || rss > 512<<20 {
		w.t.Fatalf("step %d: the agent has %d goroutines (%d after warm-up) and %d MiB resident", w.step, g, w.baseAgentG, rss>>20)
	}
	if w.apiDown || w.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := w.client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		w.t.Fatalf("the server's /metrics: %v", err)
	}
	g, rss = parseMetrics(string(body))
	w.maxServerG, w.maxServerRSS = max(w.maxServerG, g), max(w.maxServerRSS, rss)
	if g > 2000 || rss > 1<<30 {
		w.t.Fatalf("step %d: the server has %d goroutines and %d MiB resident", w.step, g, rss>>20)
	}
}

func scrape(c *http.Client, url string) (int, int64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	g, rss := parseMetrics(string(b))
	return g, rss, nil
}

// parseMetrics reads go_goroutines and process_resident_memory_bytes.
func parseMetrics(text string) (goroutines int, rss int64) {
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "go_goroutines":
			goroutines = int(v)
		case "process_resident_memory_bytes":
			rss = int64(v)
		}
	}
	return goroutines, rss
}
