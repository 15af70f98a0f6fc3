package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/agent"
	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/cri/fakecri"
	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/source"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

const (
	nodeA    = "node-a"
	nodeB    = "node-b"
	image    = "registry.example/app:v1"
	manifDir = "/etc/kubernetes/manifests"
	timeout  = 20 * time.Second
)

func testEngine() podplan.Backoff {
	return podplan.Backoff{
		BackoffInitial:     200 * time.Millisecond,
		BackoffMax:         400 * time.Millisecond,
		PullBackoffInitial: 500 * time.Millisecond,
		PullBackoffMax:     500 * time.Millisecond,
		ErrImagePullShown:  200 * time.Millisecond,
	}
}

func podYAML(name, restartPolicy, img string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: kube-system
spec:
  restartPolicy: %s
  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: %s
`, name, restartPolicy, img)
}

// desired parses a manifest as the source does, so the pod's identity is real.
func desired(t *testing.T, file, yaml, node string) source.Desired {
	t.Helper()
	path := filepath.Join(manifDir, file)
	pods, err := manifest.Parse(path, []byte(yaml), node)
	if err != nil {
		t.Fatalf("manifest %s: %v", file, err)
	}
	if len(pods) != 1 {
		t.Fatalf("manifest %s: %d pods", file, len(pods))
	}
	return source.Desired{Pod: pods[0], File: path}
}

func snap(ds ...source.Desired) source.Snapshot { return source.Snapshot{Pods: ds} }

// lockedBuffer collects an agent's log, shown when a test fails.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type harness struct {
	t    *testing.T
	fake *fakecri.Runtime
	down bool
}

func (h *harness) setDown(down bool) {
	h.down = down
	h.fake.SetDown(down)
}

func newHarness(t *testing.T) *harness {
	fake := fakecri.Start(t)
	fake.AddImage(image)
	return &harness{t: t, fake: fake}
}

type running struct {
	*agent.Agent
	stop func() // stops the agent and waits for Run to return
	send func(source.Snapshot)
	node string
}

// start runs an agent on the harness's runtime. mod may change its options.
func (h *harness) start(node string, mod func(*agent.Options)) *running {
	t := h.t
	t.Helper()
	rt, err := cri.Dial(h.fake.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	logs := &lockedBuffer{}
	opts := agent.Options{
		NodeName:     node,
		DataDir:      t.TempDir(),
		HostIP:       "192.168.7.1",
		Runtime:      rt,
		Backoff:      testEngine(),
		RetryInitial: 20 * time.Millisecond,
		RetryMax:     200 * time.Millisecond,
		ResolvConf:   filepath.Join(t.TempDir(), "no-resolv.conf"),
		Log:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	a := agent.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	subs := h.fake.Subscribers()
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(timeout):
				t.Errorf("agent %s: Run did not return after its context ended", node)
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("log of agent %s:\n%s", node, logs.String())
		}
	})
	r := &running{Agent: a, stop: stop, node: node}
	r.send = func(s source.Snapshot) {
		t.Helper()
		select {
		case a.Snapshots() <- s:
		case <-time.After(timeout):
			t.Fatalf("agent %s does not take a snapshot", node)
		}
	}
	// Exits are reported by events: wait until the agent listens, unless the
	// runtime is down.
	eventually(t, "the agent subscribes to runtime events", func() (bool, string) {
		if h.fake.Subscribers() > subs {
			return true, ""
		}
		return h.down, fmt.Sprintf("%d subscribers", h.fake.Subscribers())
	})
	return r
}

// eventually polls cond until it holds, or fails the test with its last word.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s; last: %s", what, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func findPod(a *agent.Agent, name string) *corev1.Pod {
	for _, p := range a.Pods() {
		if p.Name == name {
			return &p
		}
	}
	return nil
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "pod not reported"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s podIP=%s", p.Status.Phase, p.Status.PodIP)
	for _, cs := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, " [%s restarts=%d ready=%v", cs.Name, cs.RestartCount, cs.Ready)
		switch {
		case cs.State.Running != nil:
			b.WriteString(" running")
		case cs.State.Waiting != nil:
			fmt.Fprintf(&b, " waiting %s %q", cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			fmt.Fprintf(&b, " terminated %s %d", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		}
		if lt := cs.LastTerminationState.Terminated; lt != nil {
			fmt.Fprintf(&b, " last=%s/%d", lt.Reason, lt.ExitCode)
		}
		b.WriteString("]")
	}
	return b.String()
}

// waitPod waits until the agent reports the pod and check accepts it.
func waitPod(t *testing.T, a *running, name, what string, check func(p *corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var got *corev1.Pod
	eventually(t, fmt.Sprintf("agent %s reports %s %s", a.node, name, what), func() (bool, string) {
		got = findPod(a.Agent, name)
		return got != nil && check(got), describe(got)
	})
	return got
}

func runningWith(restarts int32) func(p *corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running == nil || !cs.Ready || cs.RestartCount != restarts {
				return false
			}
		}
		return true
	}
}

func sandboxesOf(f *fakecri.Runtime, uid string) []fakecri.Sandbox {
	var out []fakecri.Sandbox
	for _, s := range f.Sandboxes() {
		if s.UID == uid {
			out = append(out, s)
		}
	}
	return out
}

func containersOf(f *fakecri.Runtime, uid string) []fakecri.Container {
	var out []fakecri.Container
	for _, c := range f.Containers() {
		if c.Labels[wellknown.LabelPodUID] == uid {
			out = append(out, c)
		}
	}
	return out
}

func runningContainers(f *fakecri.Runtime, uid string) []fakecri.Container {
	var out []fakecri.Container
	for _, c := range containersOf(f, uid) {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			out = append(out, c)
		}
	}
	return out
}

func TestPodStarts(t *testing.T) {
	h := newHarness(t)
	a := h.start(nodeA, nil)
	web := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	a.send(snap(web))

	p := waitPod(t, a, "web-node-a", "running", runningWith(0))
	uid := string(web.Pod.UID)
	if p.UID != web.Pod.UID {
		t.Errorf("reported UID %s, want the manifest's %s", p.UID, web.Pod.UID)
	}
	sbs := sandboxesOf(h.fake, uid)
	if len(sbs) != 1 || !sbs[0].Ready() {
		t.Fatalf("sandboxes of the pod: %+v", sbs)
	}
	sb := sbs[0]
	if sb.Name != "web-node-a" || sb.Namespace != "kube-system" || sb.Labels[wellknown.LabelNode] != nodeA {
		t.Errorf("sandbox metadata/labels: %+v", sb)
	}
	cs := containersOf(h.fake, uid)
	if len(cs) != 1 || cs[0].Name != "app" || cs[0].SandboxID != sb.ID || cs[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("containers of the pod: %+v", cs)
	}
	if p.Status.PodIP == "" || p.Status.PodIP != sb.IP {
		t.Errorf("podIP = %q, want the sandbox's %q", p.Status.PodIP, sb.IP)
	}
	if p.Status.HostIP != "192.168.7.1" {
		t.Errorf("hostIP = %q", p.Status.HostIP)
	}
	st := p.Status.ContainerStatuses[0]
	if st.ContainerID != "containerd://"+cs[0].ID {
		t.Errorf("containerID = %q, want containerd://%s", st.ContainerID, cs[0].ID)
	}
	if st.ImageID != cs[0].ImageRef || st.Image != image {
		t.Errorf("image = %q, imageID = %q; runtime has %q", st.Image, st.ImageID, cs[0].ImageRef)
	}
	if p.Status.StartTime == nil {
		t.Errorf("no startTime")
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			t.Errorf("condition %s = %s, want True", c.Type, c.Status)
		}
	}
	if p.Annotations[wellknown.AnnotationManifestError] != "" {
		t.Errorf("manifest error annotation on a good pod: %q", p.Annotations[wellknown.AnnotationManifestError])
	}
	if calls := h.fake.Calls(); calls["RunPodSandbox"] != 1 || calls["CreateContainer"] != 1 || calls["StartContainer"] != 1 {
		t.Errorf("calls: %v", calls)
	}
}

func TestHostNetworkPodIP(t *testing.T) {
	h := newHarness(t)
	a := h.start(nodeA, nil)
	y := strings.Replace(podYAML("hn", "Always", image), "spec:\n", "spec:\n  hostNetwork: true\n", 1)
	d := desired(t, "hn.yaml", y, nodeA)
	a.send(snap(d))
	p := waitPod(t, a, "hn-node-a", "running", runningWith(0))
	if p.Status.PodIP != "192.168.7.1" {
		t.Errorf("podIP of a host-network pod = %q, want the host IP", p.Status.PodIP)
	}
	if sbs := sandboxesOf(h.fake, string(d.Pod.UID)); len(sbs) != 1 || !sbs[0].HostNetwork {
		t.Errorf("sandbox not in the host network: %+v", sbs)
	}
}

func TestCrashLoop(t *testing.T) {
	h := newHarness(t)
	a := h.start(nodeA, nil)
	web := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	a.send(snap(web))
	waitPod(t, a, "web-node-a", "running", runningWith(0))

	// The first exit restarts at once (no back-off yet).
	if err := h.fake.ExitByName("web-node-a", "app", 1); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, a, "web-node-a", "running again", runningWith(1))
	last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if last == nil || last.ExitCode != 1 || last.Reason != "Error" {
		t.Errorf("lastState after a crash: %+v", p.Status.ContainerStatuses[0].LastTerminationState)
	}

	// The second waits in CrashLoopBackOff, with the exit as its last state.
	if err := h.fake.ExitByName("web-node-a", "app", 2); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, a, "web-node-a", "in CrashLoopBackOff", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses[0]
		return cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	})
	cs := p.Status.ContainerStatuses[0]
	if cs.RestartCount != 1 || cs.Ready || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 2 {
		t.Errorf("status in back-off: %s", describe(p))
	}
	if !strings.Contains(cs.State.Waiting.Message, "back-off") {
		t.Errorf("back-off message: %q", cs.State.Waiting.Message)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase in back-off = %s, want Running", p.Status.Phase)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && (c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotReady") {
			t.Errorf("Ready in back-off: %+v", c)
		}
	}

	waitPod(t, a, "web-node-a", "running after the back-off", runningWith(2))
	cs2 := containersOf(h.fake, string(web.Pod.UID))
	if n := len(runningContainers(h.fake, string(web.Pod.UID))); n != 1 {
		t.Errorf("%d running containers, want 1", n)
	}
	if len(sandboxesOf(h.fake, string(web.Pod.UID))) != 1 {
		t.Errorf("a container crash must not replace the sandbox: %+v", sandboxesOf(h.fake, string(web.Pod.UID)))
	}
	// Only the newest instance and the one before it are kept.
	eventually(t, "old instances are removed", func() (bool, string) {
		cs2 = containersOf(h.fake, string(web.Pod.UID))
		return len(cs2) == 2, fmt.Sprintf("%d containers", len(cs2))
	})
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		policy   string
		codes    []int32 // exit codes, one per run
		phase    corev1.PodPhase
		restarts int32
		reason   string
	}{
		{"Never", []int32{1}, corev1.PodFailed, 0, "Error"},
		{"Never", []int32{0}, corev1.PodSucceeded, 0, "Completed"},
		{"OnFailure", []int32{0}, corev1.PodSucceeded, 0, "Completed"},
		{"OnFailure", []int32{3, 0}, corev1.PodSucceeded, 1, "Completed"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v", tc.policy, tc.codes), func(t *testing.T) {
			h := newHarness(t)
			a := h.start(nodeA, nil)
			job := desired(t, "job.yaml", podYAML("job", tc.policy, image), nodeA)
			uid := string(job.Pod.UID)
			a.send(snap(job))
			for i, code := range tc.codes {
				waitPod(t, a, "job-node-a", "running", runningWith(int32(i)))
				if err := h.fake.ExitByName("job-node-a", "app", code); err != nil {
					t.Fatal(err)
				}
			}
			waitPod(t, a, "job-node-a", "finished", func(p *corev1.Pod) bool { return p.Status.Phase == tc.phase })
			// A finished pod's sandbox is stopped; nothing runs again.
			eventually(t, "the sandbox is stopped", func() (bool, string) {
				sbs := sandboxesOf(h.fake, uid)
				return len(sbs) == 1 && !sbs[0].Ready(), fmt.Sprintf("%+v", sbs)
			})
			if n := h.fake.Calls()["CreateContainer"]; n != len(tc.codes) {
				t.Errorf("%d containers created, want %d", n, len(tc.codes))
			}
			p := findPod(a.Agent, "job-node-a")
			cs := p.Status.ContainerStatuses[0]
			if p.Status.Phase != tc.phase || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != tc.codes[len(tc.codes)-1] ||
				cs.State.Terminated.Reason != tc.reason || cs.RestartCount != tc.restarts {
				t.Errorf("finished pod: %s", describe(p))
			}
		})
	}
}

func TestPodRemoved(t *testing.T) {
	h := newHarness(t)
	a := h.start(nodeA, nil)
	web := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	db := desired(t, "db.yaml", podYAML("db", "Always", image), nodeA)
	a.send(snap(db, web))
	waitPod(t, a, "web-node-a", "running", runningWith(0))
	waitPod(t, a, "db-node-a", "running", runningWith(0))
	dbCtr := runningContainers(h.fake, string(db.Pod.UID))

	a.send(snap(db))
	uid := string(web.Pod.UID)
	eventually(t, "the removed pod's sandbox and containers are gone", func() (bool, string) {
		sbs, cs := sandboxesOf(h.fake, uid), containersOf(h.fake, uid)
		return len(sbs) == 0 && len(cs) == 0, fmt.Sprintf("%d sandboxes, %d containers", len(sbs), len(cs))
	})
	eventually(t, "the agent stops reporting the pod", func() (bool, string) {
		return findPod(a.Agent, "web-node-a") == nil, describe(findPod(a.Agent, "web-node-a"))
	})
	calls := h.fake.Calls()
	if calls["StopContainer"] < 1 || calls["StopPodSandbox"] < 1 || calls["RemovePodSandbox"] < 1 {
		t.Errorf("the pod must be stopped, then removed: calls %v", calls)
	}
	// The other pod is untouched.
	if now := runningContainers(h.fake, string(db.Pod.UID)); len(now) != 1 || now[0].ID != dbCtr[0].ID {
		t.Errorf("the remaining pod's containers changed: %+v", now)
	}
	if p := findPod(a.Agent, "db-node-a"); p == nil || !runningWith(0)(p) {
		t.Errorf("remaining pod: %s", describe(p))
	}
}

// recordingRS records the order of the runtime calls that create and destroy.
type recordingRS struct {
	runtimeapi.RuntimeServiceClient
	mu  sync.Mutex
	ops []string
}

func (r *recordingRS) add(op string) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recordingRS) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ops...)
}

func (r *recordingRS) RunPodSandbox(ctx context.Context, in *runtimeapi.RunPodSandboxRequest, opts ...grpc.CallOption) (*runtimeapi.RunPodSandboxResponse, error) {
	r.add("run-sandbox " + in.GetConfig().GetMetadata().GetUid())
	return r.RuntimeServiceClient.RunPodSandbox(ctx, in, opts...)
}

func (r *recordingRS) StopContainer(ctx context.Context, in *runtimeapi.StopContainerRequest, opts ...grpc.CallOption) (*runtimeapi.StopContainerResponse, error) {
	resp, err := r.RuntimeServiceClient.StopContainer(ctx, in, opts...)
	r.add("stopped-container " + in.ContainerId)
	return resp, err
}

func (r *recordingRS) RemovePodSandbox(ctx context.Context, in *runtimeapi.RemovePodSandboxRequest, opts ...grpc.CallOption) (*runtimeapi.RemovePodSandboxResponse, error) {
	resp, err := r.RuntimeServiceClient.RemovePodSandbox(ctx, in, opts...)
	if err == nil {
		r.add("removed-sandbox " + in.PodSandboxId)
	}
	return resp, err
}

func TestPodReplacedStopsOldFirst(t *testing.T) {
	h := newHarness(t)
	rec := &recordingRS{}
	a := h.start(nodeA, func(o *agent.Options) {
		rec.RuntimeServiceClient = o.Runtime.RS
		o.Runtime.RS = rec
	})
	v1 := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	v2 := desired(t, "web.yaml", podYAML("web", "Always", image)+"    env:\n    - name: V\n      value: \"2\"\n", nodeA)
	if v1.Pod.UID == v2.Pod.UID || v1.Pod.Name != v2.Pod.Name {
		t.Fatalf("the changed manifest must give a new UID and keep the name: %s %s", v1.Pod.UID, v2.Pod.UID)
	}
	a.send(snap(v1))
	waitPod(t, a, "web-node-a", "running", runningWith(0))
	oldSB := sandboxesOf(h.fake, string(v1.Pod.UID))[0].ID
	oldCtr := runningContainers(h.fake, string(v1.Pod.UID))[0].ID

	a.send(snap(v2))
	p := waitPod(t, a, "web-node-a", "running its new version", func(p *corev1.Pod) bool {
		return p.UID == v2.Pod.UID && runningWith(0)(p)
	})
	if got := p.Spec.Containers[0].Env; len(got) != 1 || got[0].Value != "2" {
		t.Errorf("reported spec is not the new one: %+v", got)
	}
	if n := len(sandboxesOf(h.fake, string(v1.Pod.UID))) + len(containersOf(h.fake, string(v1.Pod.UID))); n != 0 {
		t.Errorf("the old version still has %d objects in the runtime", n)
	}
	if n := len(findPods(a.Agent, "web-node-a")); n != 1 {
		t.Errorf("the agent reports %d pods named web-node-a", n)
	}
	ops := rec.list()
	index := func(op string) int {
		for i, o := range ops {
			if o == op {
				return i
			}
		}
		return -1
	}
	stopped, removed, created := index("stopped-container "+oldCtr), index("removed-sandbox "+oldSB), index("run-sandbox "+string(v2.Pod.UID))
	if stopped < 0 || removed < 0 || created < 0 || !(stopped < removed && removed < created) {
		t.Errorf("want the old container stopped, then the old sandbox removed, then the new sandbox created; calls:\n%s", strings.Join(ops, "\n"))
	}
}

func findPods(a *agent.Agent, name string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range a.Pods() {
		if p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

func TestRuntimeDownAtStart(t *testing.T) {
	h := newHarness(t)
	h.setDown(true)
	a := h.start(nodeA, nil)
	web := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	a.send(snap(web))
	// The agent keeps trying to reach the runtime.
	before := h.fake.Calls()
	eventually(t, "the agent retries the runtime", func() (bool, string) {
		c := h.fake.Calls()
		return c["Version"]+c["Subscribe"] >= before["Version"]+before["Subscribe"]+2, fmt.Sprintf("%v", c)
	})
	if len(h.fake.Sandboxes()) != 0 {
		t.Fatalf("sandboxes while the runtime is down: %+v", h.fake.Sandboxes())
	}
	h.setDown(false)
	waitPod(t, a, "web-node-a", "running once the runtime is back", runningWith(0))
	if n := len(sandboxesOf(h.fake, string(web.Pod.UID))); n != 1 {
		t.Errorf("%d sandboxes, want 1", n)
	}
}

func TestRuntimeDownWhileRunning(t *testing.T) {
	h := newHarness(t)
	a := h.start(nodeA, nil)
	web := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	a.send(snap(web))
	waitPod(t, a, "web-node-a", "running", runningWith(0))

	h.setDown(true)
	db := desired(t, "db.yaml", podYAML("db", "Always", image), nodeA)
	before := h.fake.Calls()["RunPodSandbox"]
	a.send(snap(web, db))
	eventually(t, "creating the new pod's sandbox is retried", func() (bool, string) {
		n := h.fake.Calls()["RunPodSandbox"]
		return n >= before+3, fmt.Sprintf("%d RunPodSandbox calls", n-before)
	})
	p := waitPod(t, a, "db-node-a", "pending", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodPending })
	if w := p.Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "ContainerCreating" {
		t.Errorf("pod waiting for the runtime: %s", describe(p))
	}
	// A container that dies while the runtime is down is restarted once it is back.
	if err := h.fake.ExitByName("web-node-a", "app", 1); err != nil {
		t.Fatal(err)
	}
	h.setDown(false)
	waitPod(t, a, "db-node-a", "running once the runtime is back", runningWith(0))
	waitPod(t, a, "web-node-a", "restarted once the runtime is back", runningWith(1))
	if n := len(sandboxesOf(h.fake, string(db.Pod.UID))); n != 1 {
		t.Errorf("%d sandboxes for the new pod, want 1", n)
	}
}

func TestSandboxFailureRetried(t *testing.T) {
	h := newHarness(t)
	a := h.start(nodeA, nil)
	h.fake.FailNext("RunPodSandbox", status.Error(codes.Unknown, "failed to setup network for sandbox: cni plugin not initialized"))
	web := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	a.send(snap(web))
	waitPod(t, a, "web-node-a", "running", runningWith(0))
	if n := h.fake.Calls()["RunPodSandbox"]; n != 2 {
		t.Errorf("%d RunPodSandbox calls, want 2 (one failed, one retried)", n)
	}
	if n := len(sandboxesOf(h.fake, string(web.Pod.UID))); n != 1 {
		t.Errorf("%d sandboxes, want 1", n)
	}
}

func TestSandboxFailureShown(t *testing.T) {
	h := newHarness(t)
	// Fail long enough to see the status.
	a := h.start(nodeA, func(o *agent.Options) { o.RetryInitial, o.RetryMax = 300*time.Millisecond, 300*time.Millisecond })
	for range 3 {
		h.fake.FailNext("RunPodSandbox", errors.New("cni plugin not initialized"))
	}
	web := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	a.send(snap(web))
	p := waitPod(t, a, "web-node-a", "waiting with the sandbox error", func(p *corev1.Pod) bool {
		w := p.Status.ContainerStatuses[0].State.Waiting
		return w != nil && strings.Contains(w.Message, "cni plugin not initialized")
	})
	if w := p.Status.ContainerStatuses[0].State.Waiting; w.Reason != "ContainerCreating" || p.Status.Phase != corev1.PodPending {
		t.Errorf("status while the sandbox fails: %s", describe(p))
	}
	waitPod(t, a, "web-node-a", "running", runningWith(0))
	if n := h.fake.Calls()["RunPodSandbox"]; n != 4 {
		t.Errorf("%d RunPodSandbox calls, want 4", n)
	}
}

func TestImagePullBackOff(t *testing.T) {
	h := newHarness(t)
	a := h.start(nodeA, nil)
	const missing = "registry.example/missing:v2"
	web := desired(t, "web.yaml", podYAML("web", "Always", missing), nodeA)
	a.send(snap(web))

	seen := map[string]string{}
	eventually(t, "ErrImagePull and then ImagePullBackOff are shown", func() (bool, string) {
		p := findPod(a.Agent, "web-node-a")
		if p != nil {
			if w := p.Status.ContainerStatuses[0].State.Waiting; w != nil {
				seen[w.Reason] = w.Message
			}
			if p.Status.Phase != corev1.PodPending {
				t.Fatalf("phase while the image cannot be pulled: %s", describe(p))
			}
		}
		_, e := seen["ErrImagePull"]
		_, b := seen["ImagePullBackOff"]
		return e && b, fmt.Sprintf("seen %v", seen)
	})
	if msg := seen["ErrImagePull"]; !strings.Contains(msg, missing) || !strings.Contains(msg, "not found") {
		t.Errorf("ErrImagePull message: %q", msg)
	}
	if msg := seen["ImagePullBackOff"]; !strings.HasPrefix(msg, `Back-off pulling image "`+missing+`"`) {
		t.Errorf("ImagePullBackOff message: %q", msg)
	}
	if n := h.fake.Calls()["PullImage"]; n < 1 {
		t.Errorf("%d pulls", n)
	}
	if n := len(containersOf(h.fake, string(web.Pod.UID))); n != 0 {
		t.Errorf("%d containers without their image", n)
	}

	h.fake.SetPullable(missing, true)
	waitPod(t, a, "web-node-a", "running once the image can be pulled", runningWith(0))
	if n := len(sandboxesOf(h.fake, string(web.Pod.UID))); n != 1 {
		t.Errorf("%d sandboxes, want 1", n)
	}
}

func TestImagesArrived(t *testing.T) {
	h := newHarness(t)
	// A long pull back-off: only ImagesArrived can make the pod start soon.
	a := h.start(nodeA, func(o *agent.Options) {
		o.Backoff.PullBackoffInitial, o.Backoff.PullBackoffMax = time.Hour, time.Hour
	})
	const missing = "registry.example/imported:v1"
	web := desired(t, "web.yaml", podYAML("web", "Always", missing), nodeA)
	a.send(snap(web))
	waitPod(t, a, "web-node-a", "failing to pull", func(p *corev1.Pod) bool {
		w := p.Status.ContainerStatuses[0].State.Waiting
		return w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff")
	})
	h.fake.AddImage(missing)
	a.ImagesArrived()
	waitPod(t, a, "web-node-a", "running once the image is imported", runningWith(0))
}

// runThenStop runs pods on one agent, makes it restart once, stops that agent and
// returns the runtime and the pod's running container.
func runThenStop(t *testing.T, h *harness, ds ...source.Desired) fakecri.Container {
	t.Helper()
	a := h.start(nodeA, nil)
	a.send(snap(ds...))
	name := ds[0].Pod.Name
	waitPod(t, a, name, "running", runningWith(0))
	if err := h.fake.ExitByName(name, "app", 1); err != nil {
		t.Fatal(err)
	}
	waitPod(t, a, name, "restarted", runningWith(1))
	a.stop()
	eventually(t, "the stopped agent's event subscription ends", func() (bool, string) {
		return h.fake.Subscribers() == 0, fmt.Sprintf("%d subscribers", h.fake.Subscribers())
	})
	cs := runningContainers(h.fake, string(ds[0].Pod.UID))
	if len(cs) != 1 {
		t.Fatalf("running containers after the first agent stopped: %+v", cs)
	}
	return cs[0]
}

func TestRestartedAgentAdopts(t *testing.T) {
	h := newHarness(t)
	web := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	ctr := runThenStop(t, h, web)
	before := h.fake.Calls()

	// One worker: the barrier pod's calls come after any call for web.
	b := h.start(nodeA, func(o *agent.Options) { o.Workers = 1 })
	b.send(snap(web))
	p := waitPod(t, b, "web-node-a", "adopted", runningWith(1))
	if got := p.Status.ContainerStatuses[0].ContainerID; got != "containerd://"+ctr.ID {
		t.Errorf("containerID = %s, want the adopted %s", got, ctr.ID)
	}
	barrier := desired(t, "barrier.yaml", podYAML("barrier", "Always", image), nodeA)
	b.send(snap(web, barrier))
	waitPod(t, b, "barrier-node-a", "running", runningWith(0))

	after := h.fake.Calls()
	for _, m := range []string{"RunPodSandbox", "CreateContainer", "StartContainer"} {
		if after[m] != before[m]+1 { // the barrier's
			t.Errorf("%s called %d times by the restarted agent, want 1 (for the barrier pod only)", m, after[m]-before[m])
		}
	}
	for _, m := range []string{"StopContainer", "StopPodSandbox", "RemovePodSandbox", "RemoveContainer"} {
		if after[m] != before[m] {
			t.Errorf("%s called %d times by the restarted agent, want 0", m, after[m]-before[m])
		}
	}
	if cs := runningContainers(h.fake, string(web.Pod.UID)); len(cs) != 1 || cs[0].ID != ctr.ID {
		t.Errorf("web's running containers: %+v", cs)
	}
	// The restart count carries on from the adopted instance.
	if err := h.fake.ExitByName("web-node-a", "app", 1); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, b, "web-node-a", "restarted with the next restart count", func(p *corev1.Pod) bool {
		return runningWith(2)(p)
	})
	if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ContainerID != "containerd://"+ctr.ID {
		t.Errorf("lastState after the adopted container exited: %s", describe(p))
	}
}

func TestRestartedAgentKeepsPodOfBrokenFile(t *testing.T) {
	h := newHarness(t)
	web := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	ctr := runThenStop(t, h, web)
	before := h.fake.Calls()

	b := h.start(nodeA, func(o *agent.Options) { o.Workers = 1 })
	broken := errors.New(web.File + ":7: spec.containers[0].image: Required value")
	b.send(source.Snapshot{Problems: []source.Problem{{File: web.File, Err: broken}}})
	p := waitPod(t, b, "web-node-a", "kept running with the manifest error", func(p *corev1.Pod) bool {
		return runningWith(1)(p) && p.Annotations[wellknown.AnnotationManifestError] != ""
	})
	if got := p.Annotations[wellknown.AnnotationManifestError]; got != broken.Error() {
		t.Errorf("manifest error annotation = %q, want %q", got, broken.Error())
	}
	if p.UID != web.Pod.UID || p.Spec.Containers[0].Image != image {
		t.Errorf("kept pod is not the recorded one: uid %s, spec %+v", p.UID, p.Spec.Containers)
	}
	if len(b.View().Problems) != 1 {
		t.Errorf("view problems: %+v", b.View().Problems)
	}

	barrier := desired(t, "barrier.yaml", podYAML("barrier", "Always", image), nodeA)
	b.send(source.Snapshot{Pods: []source.Desired{barrier}, Problems: []source.Problem{{File: web.File, Err: broken}}})
	waitPod(t, b, "barrier-node-a", "running", runningWith(0))
	after := h.fake.Calls()
	for _, m := range []string{"StopContainer", "StopPodSandbox", "RemovePodSandbox", "RemoveContainer"} {
		if after[m] != before[m] {
			t.Errorf("%s called %d times: the kept pod must not be touched", m, after[m]-before[m])
		}
	}
	if cs := runningContainers(h.fake, string(web.Pod.UID)); len(cs) != 1 || cs[0].ID != ctr.ID {
		t.Errorf("web's running containers: %+v", cs)
	}
	if p := findPod(b.Agent, "web-node-a"); p == nil || p.Annotations[wellknown.AnnotationManifestError] != broken.Error() {
		t.Errorf("kept pod after another snapshot: %v", p)
	}

	// The file is fixed (same content): the pod is the same and loses the annotation.
	b.send(snap(barrier, web))
	waitPod(t, b, "web-node-a", "without the manifest error", func(p *corev1.Pod) bool {
		_, has := p.Annotations[wellknown.AnnotationManifestError]
		return runningWith(1)(p) && !has
	})
	// The file is gone for good: the pod is stopped.
	b.send(snap(barrier))
	eventually(t, "the pod of the deleted file is removed", func() (bool, string) {
		n := len(sandboxesOf(h.fake, string(web.Pod.UID)))
		return n == 0, fmt.Sprintf("%d sandboxes", n)
	})
}

func TestTwoNodesShareARuntime(t *testing.T) {
	h := newHarness(t)
	a := h.start(nodeA, nil)
	webA := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	a.send(snap(webA))
	waitPod(t, a, "web-node-a", "running", runningWith(0))
	ctrA := runningContainers(h.fake, string(webA.Pod.UID))[0]
	sbA := sandboxesOf(h.fake, string(webA.Pod.UID))[0]

	// Node B starts with no pods, then runs, restarts and removes its own.
	b := h.start(nodeB, func(o *agent.Options) { o.Workers = 1 })
	b.send(snap())
	webB := desired(t, "web.yaml", podYAML("web", "Always", image), nodeB)
	b.send(snap(webB))
	waitPod(t, b, "web-node-b", "running", runningWith(0))
	if len(b.Pods()) != 1 {
		t.Errorf("node B reports pods it does not own: %d", len(b.Pods()))
	}
	if err := h.fake.ExitByName("web-node-b", "app", 1); err != nil {
		t.Fatal(err)
	}
	waitPod(t, b, "web-node-b", "restarted", runningWith(1))
	b.send(snap())
	eventually(t, "node B's pod is removed", func() (bool, string) {
		n := len(sandboxesOf(h.fake, string(webB.Pod.UID)))
		return n == 0, fmt.Sprintf("%d sandboxes", n)
	})

	if cs := runningContainers(h.fake, string(webA.Pod.UID)); len(cs) != 1 || cs[0].ID != ctrA.ID {
		t.Errorf("node A's containers were touched: %+v", cs)
	}
	if sbs := sandboxesOf(h.fake, string(webA.Pod.UID)); len(sbs) != 1 || sbs[0].ID != sbA.ID || !sbs[0].Ready() {
		t.Errorf("node A's sandbox was touched: %+v", sbs)
	}
	if p := findPod(a.Agent, "web-node-a"); p == nil || !runningWith(0)(p) || len(a.Pods()) != 1 {
		t.Errorf("node A's view: %s (%d pods)", describe(p), len(a.Pods()))
	}
	if len(b.Pods()) != 0 {
		t.Errorf("node B still reports %d pods", len(b.Pods()))
	}
}

func TestLogFile(t *testing.T) {
	h := newHarness(t)
	var dataDir string
	a := h.start(nodeA, func(o *agent.Options) { dataDir = o.DataDir })
	web := desired(t, "web.yaml", podYAML("web", "Always", image), nodeA)
	a.send(snap(web))
	waitPod(t, a, "web-node-a", "running", runningWith(0))
	podDir := filepath.Join(dataDir, "pods", "kube-system_web-node-a_"+string(web.Pod.UID))

	cur, running, err := a.LogFile("kube-system", "web-node-a", "", false)
	if err != nil || cur != filepath.Join(podDir, "app", "0.log") || !running() {
		t.Errorf("current log = %q, %v; running %v", cur, err, running != nil && running())
	}
	if _, _, err := a.LogFile("kube-system", "web-node-a", "app", true); err == nil || !strings.Contains(err.Error(), "previous terminated container") {
		t.Errorf("previous log before any restart: err = %v", err)
	}
	if _, _, err := a.LogFile("kube-system", "nope", "app", false); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown pod: err = %v", err)
	}
	if _, _, err := a.LogFile("kube-system", "web-node-a", "sidecar", false); err == nil || !strings.Contains(err.Error(), "[app]") {
		t.Errorf("unknown container: err = %v", err)
	}
	if _, err := os.Stat(podDir); err != nil {
		t.Errorf("pod log directory: %v", err)
	}

	if err := h.fake.ExitByName("web-node-a", "app", 1); err != nil {
		t.Fatal(err)
	}
	if running() {
		// The old instance's follower must stop, eventually.
		eventually(t, "the old instance is no longer running", func() (bool, string) { return !running(), "" })
	}
	waitPod(t, a, "web-node-a", "restarted", runningWith(1))
	cur, running2, err := a.LogFile("kube-system", "web-node-a", "app", false)
	if err != nil || cur != filepath.Join(podDir, "app", "1.log") || !running2() {
		t.Errorf("current log after a restart = %q, %v", cur, err)
	}
	prev, stillRunning, err := a.LogFile("kube-system", "web-node-a", "app", true)
	if err != nil || prev != filepath.Join(podDir, "app", "0.log") || stillRunning() {
		t.Errorf("previous log = %q, %v", prev, err)
	}
}

// TestNeverPodSandboxDies: the kubelet kills a pod whose sandbox died and, with
// restartPolicy Never, does not start it again (computePodActions returns with
// CreateSandbox false once a container has run): the pod ends Failed.
func TestNeverPodSandboxDies(t *testing.T) {
	h := newHarness(t)
	a := h.start(nodeA, nil)
	job := desired(t, "job.yaml", podYAML("job", "Never", image), nodeA)
	a.send(snap(job))
	waitPod(t, a, "job-node-a", "running", runningWith(0))
	sb := sandboxesOf(h.fake, string(job.Pod.UID))[0]
	if err := h.fake.Exit(sb.ID, 0); err != nil {
		t.Fatal(err)
	}
	waitPod(t, a, "job-node-a", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if n := h.fake.Calls()["RunPodSandbox"]; n != 1 {
		t.Errorf("%d sandboxes created, want 1", n)
	}
	if n := h.fake.Calls()["CreateContainer"]; n != 1 {
		t.Errorf("%d containers created, want 1", n)
	}
}
