package podplan

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/podruntime"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func testPod(policy corev1.RestartPolicy, names ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default", UID: "u1"}}
	p.Spec.RestartPolicy = policy
	for _, n := range names {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: "img:" + n})
	}
	return p
}

func sandbox(ready bool) podruntime.Sandbox {
	return podruntime.Sandbox{ID: "sb1", Ready: ready, CreatedAt: t0}
}

func running(name string, restarts int) podruntime.Container {
	return podruntime.Container{ID: name + "-" + string(rune('0'+restarts)), SandboxID: "sb1", Name: name, State: podruntime.StateRunning, RestartCount: restarts, CreatedAt: t0}
}

func exited(name string, restarts int, code int32, finished time.Time, backoff time.Duration, since time.Time) podruntime.Container {
	c := running(name, restarts)
	c.State, c.ExitCode, c.FinishedAt, c.Backoff, c.BackoffSince = podruntime.StateExited, code, finished, backoff, since
	return c
}

func rt(sbs []podruntime.Sandbox, cs ...podruntime.Container) *podruntime.Pod {
	return &podruntime.Pod{UID: "u1", Name: "web-node1", Namespace: "default", Sandboxes: sbs, Containers: cs}
}

func TestDecide(t *testing.T) {
	c := DefaultBackoff()
	ready := []podruntime.Sandbox{sandbox(true)}
	tests := []struct {
		name       string
		in         PodInput
		create     bool
		kill       bool
		remove     bool
		stopSB     bool
		starts     []Start
		waiting    map[string]string
		wake       time.Time
		removeCtrs int
	}{
		{name: "new pod gets a sandbox and all containers", in: PodInput{Desired: testPod("Always", "a", "b"), Now: t0},
			create: true, starts: []Start{{Name: "a"}, {Name: "b"}}},
		{name: "running pod needs nothing", in: PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready, running("a", 0)), Now: t0}},
		{name: "removed pod is killed and removed", in: PodInput{Runtime: rt(ready, running("a", 0)), Now: t0}, kill: true, remove: true},
		{name: "removed pod with nothing left needs nothing", in: PodInput{Runtime: rt(nil), Now: t0}},
		{name: "first crash restarts at once with initial back-off recorded",
			in:     PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready, exited("a", 0, 1, t0, 0, time.Time{})), Now: t0.Add(time.Second)},
			starts: []Start{{Name: "a", RestartCount: 1, Backoff: 10 * time.Second, BackoffSince: t0.Add(time.Second)}}},
		{name: "second crash waits for the back-off",
			in:      PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready, exited("a", 1, 1, t0, 10*time.Second, t0.Add(-time.Second))), Now: t0.Add(3 * time.Second)},
			waiting: map[string]string{"a": "CrashLoopBackOff"}, wake: t0.Add(10 * time.Second)},
		{name: "after the back-off it restarts with the delay doubled",
			in:     PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready, exited("a", 1, 1, t0, 10*time.Second, t0.Add(-time.Second))), Now: t0.Add(10 * time.Second)},
			starts: []Start{{Name: "a", RestartCount: 2, Backoff: 20 * time.Second, BackoffSince: t0.Add(10 * time.Second)}}},
		{name: "back-off is capped",
			in:     PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready, exited("a", 9, 1, t0, 5*time.Minute, t0.Add(-time.Second))), Now: t0.Add(5 * time.Minute)},
			starts: []Start{{Name: "a", RestartCount: 10, Backoff: 5 * time.Minute, BackoffSince: t0.Add(5 * time.Minute)}}},
		{name: "a container that ran over 10 minutes starts again from the initial back-off",
			in:     PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready, exited("a", 5, 1, t0, 5*time.Minute, t0.Add(-11*time.Minute))), Now: t0},
			starts: []Start{{Name: "a", RestartCount: 6, Backoff: 10 * time.Second, BackoffSince: t0}}},
		{name: "OnFailure does not restart a success", in: PodInput{Desired: testPod("OnFailure", "a", "b"), Runtime: rt(ready, exited("a", 0, 0, t0, 0, time.Time{}), running("b", 0)), Now: t0}},
		{name: "OnFailure restarts a failure",
			in:     PodInput{Desired: testPod("OnFailure", "a"), Runtime: rt(ready, exited("a", 0, 2, t0, 0, time.Time{})), Now: t0},
			starts: []Start{{Name: "a", RestartCount: 1, Backoff: 10 * time.Second, BackoffSince: t0}}},
		{name: "Never: finished pod stops its sandbox", in: PodInput{Desired: testPod("Never", "a"), Runtime: rt(ready, exited("a", 0, 3, t0, 0, time.Time{})), Now: t0}, stopSB: true},
		{name: "Never: finished pod with stopped sandbox needs nothing", in: PodInput{Desired: testPod("Never", "a"), Runtime: rt([]podruntime.Sandbox{sandbox(false)}, exited("a", 0, 3, t0, 0, time.Time{})), Now: t0}},
		{name: "OnFailure: all succeeded is finished", in: PodInput{Desired: testPod("OnFailure", "a"), Runtime: rt(ready, exited("a", 0, 0, t0, 0, time.Time{})), Now: t0}, stopSB: true},
		{name: "dead sandbox: kill what runs, new sandbox, restart all",
			in:   PodInput{Desired: testPod("Always", "a"), Runtime: rt([]podruntime.Sandbox{sandbox(false)}, running("a", 0)), Now: t0},
			kill: true, create: true, starts: []Start{{Name: "a", RestartCount: 1}}},
		{name: "Never: a dead sandbox is not replaced; what runs is killed",
			in:   PodInput{Desired: testPod("Never", "a", "b"), Runtime: rt([]podruntime.Sandbox{sandbox(false)}, running("a", 0), exited("b", 0, 0, t0, 0, time.Time{})), Now: t0},
			kill: true},
		{name: "image pull back-off", in: PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready), Now: t0.Add(5 * time.Second),
			Pulls: map[string]*PullFailure{"img:a": {Image: "img:a", Err: "not found", At: t0, Backoff: 10 * time.Second, Reason: "ErrImagePull"}}},
			waiting: map[string]string{"a": "ImagePullBackOff"}, wake: t0.Add(10 * time.Second)},
		{name: "fresh pull failure shows ErrImagePull", in: PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready), Now: t0.Add(time.Second),
			Pulls: map[string]*PullFailure{"img:a": {Image: "img:a", Err: "not found", At: t0, Backoff: 10 * time.Second, Reason: "ErrImagePull"}}},
			waiting: map[string]string{"a": "ErrImagePull"}, wake: t0.Add(2 * time.Second)},
		{name: "pull back-off over: try again", in: PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready), Now: t0.Add(10 * time.Second),
			Pulls: map[string]*PullFailure{"img:a": {Image: "img:a", Err: "not found", At: t0, Backoff: 10 * time.Second, Reason: "ErrImagePull"}}},
			starts: []Start{{Name: "a"}}},
		{name: "old exited instances are collected, two kept",
			in:         PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready, running("a", 3), exited("a", 2, 1, t0, 0, time.Time{}), exited("a", 1, 1, t0, 0, time.Time{}), exited("a", 0, 1, t0, 0, time.Time{})), Now: t0},
			removeCtrs: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := c.Decide(tt.in)
			if p.CreateSandbox != tt.create || p.KillPod != tt.kill || p.RemovePod != tt.remove || p.StopSandbox != tt.stopSB {
				t.Errorf("create/kill/remove/stopSandbox = %v/%v/%v/%v, want %v/%v/%v/%v", p.CreateSandbox, p.KillPod, p.RemovePod, p.StopSandbox, tt.create, tt.kill, tt.remove, tt.stopSB)
			}
			if len(p.Start) != len(tt.starts) {
				t.Fatalf("starts = %+v, want %+v", p.Start, tt.starts)
			}
			for i := range p.Start {
				if p.Start[i] != tt.starts[i] {
					t.Errorf("start[%d] = %+v, want %+v", i, p.Start[i], tt.starts[i])
				}
			}
			for name, reason := range tt.waiting {
				if p.Waiting[name].Reason != reason {
					t.Errorf("waiting[%s] = %q, want %q", name, p.Waiting[name].Reason, reason)
				}
			}
			if len(p.Waiting) != len(tt.waiting) {
				t.Errorf("waiting = %v, want %v", p.Waiting, tt.waiting)
			}
			if !p.WakeAt.Equal(tt.wake) {
				t.Errorf("wake = %v, want %v", p.WakeAt, tt.wake)
			}
			if len(p.RemoveContainers) != tt.removeCtrs {
				t.Errorf("removeContainers = %v, want %d", p.RemoveContainers, tt.removeCtrs)
			}
		})
	}
}

func TestCrashLoopMessageNamesPod(t *testing.T) {
	p := DefaultBackoff().Decide(PodInput{Desired: testPod("Always", "a"), Runtime: rt([]podruntime.Sandbox{sandbox(true)}, exited("a", 1, 1, t0, 10*time.Second, t0)), Now: t0.Add(time.Second)})
	want := "back-off 10s restarting failed container=a pod=web-node1_default(u1)"
	if got := p.Waiting["a"].Message; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func withInit(p *corev1.Pod, names ...string) *corev1.Pod {
	for _, n := range names {
		c := corev1.Container{Name: n, Image: "img:" + n}
		if strings.HasPrefix(n, "side") {
			always := corev1.ContainerRestartPolicyAlways
			c.RestartPolicy = &always
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
	return p
}

func TestDecideInitContainers(t *testing.T) {
	c := DefaultBackoff()
	ready := []podruntime.Sandbox{sandbox(true)}
	names := func(p Plan) string {
		var s []string
		for _, st := range p.Start {
			s = append(s, st.Name)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		name    string
		in      PodInput
		starts  string
		waiting string // reason of container "a"
		stopSB  bool
	}{
		{name: "first init container starts first", in: PodInput{Desired: withInit(testPod("Always", "a"), "i1", "i2"), Runtime: rt(ready), Now: t0}, starts: "i1", waiting: "PodInitializing"},
		{name: "running init container: wait", in: PodInput{Desired: withInit(testPod("Always", "a"), "i1", "i2"), Runtime: rt(ready, running("i1", 0)), Now: t0}, waiting: "PodInitializing"},
		{name: "done init container: next", in: PodInput{Desired: withInit(testPod("Always", "a"), "i1", "i2"), Runtime: rt(ready, exited("i1", 0, 0, t0, 0, time.Time{})), Now: t0}, starts: "i2", waiting: "PodInitializing"},
		{name: "all init done: app containers", in: PodInput{Desired: withInit(testPod("Always", "a"), "i1"), Runtime: rt(ready, exited("i1", 0, 0, t0, 0, time.Time{})), Now: t0}, starts: "a"},
		{name: "failed init container retried (Always pod)", in: PodInput{Desired: withInit(testPod("Always", "a"), "i1"), Runtime: rt(ready, exited("i1", 0, 1, t0, 0, time.Time{})), Now: t0}, starts: "i1", waiting: "PodInitializing"},
		{name: "failed init container fails a Never pod", in: PodInput{Desired: withInit(testPod("Never", "a"), "i1"), Runtime: rt(ready, exited("i1", 0, 1, t0, 0, time.Time{})), Now: t0}, stopSB: true},
		{name: "sidecar started without startup probe: next init runs", in: PodInput{Desired: withInit(testPod("Always", "a"), "side", "i1"), Runtime: rt(ready, running("side", 0)), Now: t0}, starts: "i1", waiting: "PodInitializing"},
		{name: "exited sidecar is restarted, even after init", in: PodInput{Desired: withInit(testPod("Always", "a"), "side"), Runtime: rt(ready, exited("side", 0, 0, t0, 0, time.Time{}), running("a", 0)), Now: t0}, starts: "side", waiting: "PodInitializing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := c.Decide(tt.in)
			if got := names(p); got != tt.starts {
				t.Errorf("starts %q, want %q", got, tt.starts)
			}
			if got := p.Waiting["a"].Reason; got != tt.waiting {
				t.Errorf("waiting[a] %q, want %q", got, tt.waiting)
			}
			if p.StopSandbox != tt.stopSB {
				t.Errorf("stopSandbox %v", p.StopSandbox)
			}
		})
	}
}

func TestDecideProbesAndDeadline(t *testing.T) {
	c := DefaultBackoff()
	ready := []podruntime.Sandbox{sandbox(true)}
	a := running("a", 0)
	p := c.Decide(PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready, a), Now: t0,
		Probes: map[string]podruntime.ProbeState{"a": {ContainerID: a.ID, LivenessFailed: true, Message: "HTTP probe failed with statuscode: 500", GraceSeconds: 7}}})
	if len(p.KillContainers) != 1 || p.KillContainers[0].ID != a.ID || p.KillContainers[0].GraceSeconds != 7 {
		t.Errorf("liveness failure: kill %+v", p.KillContainers)
	}
	// A result about an older instance does not kill the new one.
	p = c.Decide(PodInput{Desired: testPod("Always", "a"), Runtime: rt(ready, a), Now: t0,
		Probes: map[string]podruntime.ProbeState{"a": {ContainerID: "old", LivenessFailed: true}}})
	if len(p.KillContainers) != 0 {
		t.Errorf("stale probe result killed: %+v", p.KillContainers)
	}
	d := int64(60)
	dp := testPod("Always", "a")
	dp.Spec.ActiveDeadlineSeconds = &d
	p = c.Decide(PodInput{Desired: dp, Runtime: rt(ready, a), StartTime: t0, Now: t0.Add(30 * time.Second)})
	if p.DeadlineExceeded || !p.WakeAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("before the deadline: %+v", p)
	}
	p = c.Decide(PodInput{Desired: dp, Runtime: rt(ready, a), StartTime: t0, Now: t0.Add(time.Minute)})
	if !p.DeadlineExceeded || !p.KillPod || len(p.Start) != 0 {
		t.Errorf("after the deadline: %+v", p)
	}
}

// TestInterrupted: which failed starts were cut short by the agent's own
// death (replaced without counting a restart), with the messages
// containerd 1.6 gives, and which are real failures.
func TestInterrupted(t *testing.T) {
	started := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	startErr := func(msg string) podruntime.Container {
		return podruntime.Container{State: podruntime.StateExited, ExitCode: 128, Reason: "StartError", Message: msg}
	}
	for _, tc := range []struct {
		name string
		c    podruntime.Container
		want bool
	}{
		{"created, never started", podruntime.Container{State: podruntime.StateCreated}, true},
		{"StartContainer cancelled", startErr("failed to start containerd task: context canceled: unknown"), true},
		{"the shim's start killed with the request", startErr("failed to create containerd task: failed to start shim: start failed: : signal: killed: unknown"), true},
		{"a missing executable", startErr(`failed to create containerd task: failed to create shim task: OCI runtime create failed: exec: "nope": executable file not found in $PATH: unknown`), false},
		{"the shim failed for another reason", startErr("failed to create containerd task: failed to start shim: start failed: exit status 1: unknown"), false},
		{"killed, but not a start error", podruntime.Container{State: podruntime.StateExited, ExitCode: 137, Reason: "Error", Message: "signal: killed"}, false},
		{"ran, then exited", podruntime.Container{State: podruntime.StateExited, StartedAt: started, Reason: "StartError", Message: "context canceled"}, false},
		{"running", podruntime.Container{State: podruntime.StateRunning, StartedAt: started}, false},
	} {
		if got := interrupted(&tc.c); got != tc.want {
			t.Errorf("%s: interrupted = %v, want %v", tc.name, got, tc.want)
		}
	}
}
