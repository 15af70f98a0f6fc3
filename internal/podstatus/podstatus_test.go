package podstatus

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/podruntime"
)

var (
	t0  = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	now = t0.Add(time.Hour)
)

func pod(policy corev1.RestartPolicy, names ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default", UID: "u1"}}
	p.Spec.RestartPolicy = policy
	for _, n := range names {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: "registry.example/" + n + ":v1"})
	}
	return p
}

func hostNet(p *corev1.Pod) *corev1.Pod { p.Spec.HostNetwork = true; return p }

func sandbox(id string, ready bool, ip string) podruntime.Sandbox {
	return podruntime.Sandbox{ID: id, Ready: ready, IP: ip, CreatedAt: t0}
}

func running(name string, restarts int) podruntime.Container {
	return podruntime.Container{
		ID: name + "-id" + string(rune('0'+restarts)), SandboxID: "sb1", Name: name, State: podruntime.StateRunning,
		RestartCount: restarts, CreatedAt: t0.Add(time.Duration(restarts) * time.Minute),
		StartedAt: t0.Add(time.Duration(restarts)*time.Minute + time.Second),
		Image:     "sha256:abc", ImageRef: "sha256:" + name + "ref",
	}
}

func exited(name string, restarts int, code int32, reason string) podruntime.Container {
	c := running(name, restarts)
	c.State, c.ExitCode, c.Reason = podruntime.StateExited, code, reason
	c.FinishedAt = c.StartedAt.Add(10 * time.Second)
	return c
}

func created(name string, restarts int) podruntime.Container {
	c := running(name, restarts)
	c.State, c.StartedAt = podruntime.StateCreated, time.Time{}
	return c
}

func rt(sbs []podruntime.Sandbox, cs ...podruntime.Container) *podruntime.Pod {
	return &podruntime.Pod{UID: "u1", Name: "web-node1", Namespace: "default", Sandboxes: sbs, Containers: cs}
}

var ready = []podruntime.Sandbox{sandbox("sb1", true, "10.88.0.5")}
var notReady = []podruntime.Sandbox{sandbox("sb1", false, "")}

func wait(pairs ...string) map[string]podruntime.Waiting {
	m := map[string]podruntime.Waiting{}
	for i := 0; i+2 < len(pairs); i += 3 {
		m[pairs[i]] = podruntime.Waiting{Reason: pairs[i+1], Message: pairs[i+2]}
	}
	return m
}

func cond(st corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

func TestPhase(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		rt   *podruntime.Pod
		w    map[string]podruntime.Waiting
		want corev1.PodPhase
	}{
		{"nothing in the runtime yet", pod("Always", "a"), nil, nil, corev1.PodPending},
		{"sandbox only", pod("Always", "a"), rt(ready), nil, corev1.PodPending},
		{"image pull failing", pod("Always", "a"), rt(ready), wait("a", "ImagePullBackOff", "x"), corev1.PodPending},
		{"created, not started", pod("Always", "a"), rt(ready, created("a", 0)), nil, corev1.PodPending},
		{"running", pod("Always", "a"), rt(ready, running("a", 0)), nil, corev1.PodRunning},
		{"one running, one still waiting", pod("Always", "a", "b"), rt(ready, running("a", 0)), nil, corev1.PodPending},
		{"one running, one exited for good", pod("Never", "a", "b"), rt(ready, running("a", 0), exited("b", 0, 1, "Error")), nil, corev1.PodRunning},
		{"Always: exited, in back-off", pod("Always", "a"), rt(ready, exited("a", 1, 1, "Error")), wait("a", "CrashLoopBackOff", "back-off"), corev1.PodRunning},
		{"Always: exited 0, about to restart", pod("Always", "a"), rt(ready, exited("a", 0, 0, "Completed")), nil, corev1.PodRunning},
		{"Always: exited 1, about to restart", pod("Always", "a"), rt(ready, exited("a", 0, 1, "Error")), nil, corev1.PodRunning},
		{"Never: all exited 0", pod("Never", "a", "b"), rt(notReady, exited("a", 0, 0, ""), exited("b", 0, 0, "")), nil, corev1.PodSucceeded},
		{"Never: one exited 1", pod("Never", "a", "b"), rt(notReady, exited("a", 0, 0, ""), exited("b", 0, 1, "")), nil, corev1.PodFailed},
		{"Never: killed", pod("Never", "a"), rt(notReady, exited("a", 0, 137, "")), nil, corev1.PodFailed},
		{"OnFailure: exited 0", pod("OnFailure", "a"), rt(notReady, exited("a", 0, 0, "Completed")), nil, corev1.PodSucceeded},
		{"OnFailure: exited 1, in back-off", pod("OnFailure", "a"), rt(ready, exited("a", 0, 1, "Error")), wait("a", "CrashLoopBackOff", "back-off"), corev1.PodRunning},
		{"OnFailure: exited 1, restarting", pod("OnFailure", "a"), rt(ready, exited("a", 0, 1, "Error")), nil, corev1.PodRunning},
		{"OnFailure: succeeded after a failure", pod("OnFailure", "a"), rt(notReady, exited("a", 1, 0, "Completed"), exited("a", 0, 1, "Error")), nil, corev1.PodSucceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := Compute(Input{Pod: tc.pod, Runtime: tc.rt, Waiting: tc.w, Now: now})
			if st.Phase != tc.want {
				t.Errorf("phase = %s, want %s (statuses %+v)", st.Phase, tc.want, st.ContainerStatuses)
			}
		})
	}
}

func TestConditions(t *testing.T) {
	type c struct {
		status  corev1.ConditionStatus
		reason  string
		message string
	}
	T := c{status: corev1.ConditionTrue}
	tests := []struct {
		name string
		pod  *corev1.Pod
		rt   *podruntime.Pod
		w    map[string]podruntime.Waiting
		want map[corev1.PodConditionType]c
	}{
		{"pending, no sandbox", pod("Always", "a"), nil, nil, map[corev1.PodConditionType]c{
			corev1.PodReadyToStartContainers: {status: corev1.ConditionFalse},
			corev1.PodInitialized:            T,
			corev1.ContainersReady:           {corev1.ConditionFalse, "ContainersNotReady", "containers with unready status: [a]"},
			corev1.PodReady:                  {corev1.ConditionFalse, "ContainersNotReady", "containers with unready status: [a]"},
			corev1.PodScheduled:              T,
		}},
		{"running", pod("Always", "a", "b"), rt(ready, running("a", 0), running("b", 0)), nil, map[corev1.PodConditionType]c{
			corev1.PodReadyToStartContainers: T,
			corev1.PodInitialized:            T,
			corev1.ContainersReady:           T,
			corev1.PodReady:                  T,
			corev1.PodScheduled:              T,
		}},
		{"one container in back-off", pod("Always", "a", "b", "c"), rt(ready, running("a", 0), exited("b", 2, 1, "Error")),
			wait("b", "CrashLoopBackOff", "back-off"), map[corev1.PodConditionType]c{
				corev1.PodReadyToStartContainers: T,
				corev1.ContainersReady:           {corev1.ConditionFalse, "ContainersNotReady", "containers with unready status: [b c]"},
				corev1.PodReady:                  {corev1.ConditionFalse, "ContainersNotReady", "containers with unready status: [b c]"},
			}},
		{"sandbox died", pod("Always", "a"), rt(notReady, running("a", 0)), nil, map[corev1.PodConditionType]c{
			corev1.PodReadyToStartContainers: {status: corev1.ConditionFalse},
		}},
		{"succeeded", pod("Never", "a"), rt(notReady, exited("a", 0, 0, "Completed")), nil, map[corev1.PodConditionType]c{
			corev1.PodReadyToStartContainers: {status: corev1.ConditionFalse},
			corev1.PodInitialized:            {corev1.ConditionTrue, "PodCompleted", ""},
			corev1.ContainersReady:           {corev1.ConditionFalse, "PodCompleted", ""},
			corev1.PodReady:                  {corev1.ConditionFalse, "PodCompleted", ""},
			corev1.PodScheduled:              T,
		}},
		{"failed", pod("Never", "a"), rt(notReady, exited("a", 0, 2, "Error")), nil, map[corev1.PodConditionType]c{
			corev1.PodInitialized:  T,
			corev1.ContainersReady: {corev1.ConditionFalse, "PodFailed", ""},
			corev1.PodReady:        {corev1.ConditionFalse, "PodFailed", ""},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := Compute(Input{Pod: tc.pod, Runtime: tc.rt, Waiting: tc.w, Now: now})
			if len(st.Conditions) != 5 {
				t.Errorf("%d conditions, want 5: %+v", len(st.Conditions), st.Conditions)
			}
			seen := map[corev1.PodConditionType]bool{}
			for _, got := range st.Conditions {
				if seen[got.Type] {
					t.Errorf("condition %s twice", got.Type)
				}
				seen[got.Type] = true
				if got.LastTransitionTime.IsZero() {
					t.Errorf("condition %s has no lastTransitionTime", got.Type)
				}
			}
			for typ, want := range tc.want {
				got := cond(st, typ)
				if got == nil {
					t.Errorf("no %s condition", typ)
					continue
				}
				if got.Status != want.status || got.Reason != want.reason || got.Message != want.message {
					t.Errorf("%s = {%s %q %q}, want {%s %q %q}", typ, got.Status, got.Reason, got.Message, want.status, want.reason, want.message)
				}
			}
		})
	}
}

func TestConditionTransitionTimes(t *testing.T) {
	p := pod("Always", "a")
	first := Compute(Input{Pod: p, Runtime: rt(ready, created("a", 0)), Now: t0.Add(1500 * time.Millisecond)})
	if got := cond(first, corev1.PodReady).LastTransitionTime.Time; !got.Equal(t0.Add(time.Second)) {
		t.Errorf("first Ready transition = %v, want now truncated to the second (%v)", got, t0.Add(time.Second))
	}
	// Ready flips: a new transition time; Scheduled keeps its own.
	second := Compute(Input{Pod: p, Runtime: rt(ready, running("a", 0)), Now: t0.Add(time.Minute), Previous: &first})
	if got := cond(second, corev1.PodReady).LastTransitionTime.Time; !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("Ready transition after it turned True = %v, want %v", got, t0.Add(time.Minute))
	}
	if got := cond(second, corev1.PodScheduled).LastTransitionTime.Time; !got.Equal(t0.Add(time.Second)) {
		t.Errorf("PodScheduled transition = %v, want it kept at %v", got, t0.Add(time.Second))
	}
	// Nothing changes: every time is kept.
	third := Compute(Input{Pod: p, Runtime: rt(ready, running("a", 0)), Now: t0.Add(time.Hour), Previous: &second})
	for _, c := range third.Conditions {
		if prev := cond(second, c.Type); !c.LastTransitionTime.Equal(&prev.LastTransitionTime) {
			t.Errorf("%s transition moved from %v to %v with no change", c.Type, prev.LastTransitionTime, c.LastTransitionTime)
		}
	}
}

func TestContainerStatuses(t *testing.T) {
	boolp := func(b bool) *bool { return &b }
	term := func(c podruntime.Container, reason string) *corev1.ContainerStateTerminated {
		return &corev1.ContainerStateTerminated{ExitCode: c.ExitCode, Reason: reason, Message: c.Message,
			StartedAt: metav1.NewTime(c.StartedAt), FinishedAt: metav1.NewTime(c.FinishedAt), ContainerID: "containerd://" + c.ID}
	}
	oom := exited("a", 3, 137, "OOMKilled")
	oom.Message = "memory limit"
	withMsg := exited("a", 0, 1, "Error")
	withMsg.Message = "panic: boom"
	tests := []struct {
		name string
		rt   *podruntime.Pod
		w    map[string]podruntime.Waiting
		want corev1.ContainerStatus
	}{
		{"not created yet", nil, nil, corev1.ContainerStatus{
			State:   corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
			Started: boolp(false),
		}},
		{"pull failing", rt(ready), wait("a", "ErrImagePull", "failed to pull image"), corev1.ContainerStatus{
			State:   corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "failed to pull image"}},
			Started: boolp(false),
		}},
		{"created, not started", rt(ready, created("a", 0)), nil, corev1.ContainerStatus{
			State:       corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
			Started:     boolp(false),
			ContainerID: "containerd://a-id0", ImageID: "sha256:aref",
		}},
		{"running", rt(ready, running("a", 0)), nil, corev1.ContainerStatus{
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(running("a", 0).StartedAt)}},
			Ready:       true,
			Started:     boolp(true),
			ContainerID: "containerd://a-id0", ImageID: "sha256:aref",
		}},
		{"running after restarts keeps the last exit", rt(ready, running("a", 2), exited("a", 1, 1, "Error"), exited("a", 0, 1, "Error")), nil, corev1.ContainerStatus{
			State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(running("a", 2).StartedAt)}},
			LastTerminationState: corev1.ContainerState{Terminated: term(exited("a", 1, 1, ""), "Error")},
			Ready:                true,
			Started:              boolp(true),
			RestartCount:         2,
			ContainerID:          "containerd://a-id2", ImageID: "sha256:aref",
		}},
		{"crash loop: waiting, the exit as last state", rt(ready, exited("a", 2, 1, "Error"), exited("a", 1, 1, "Error")),
			wait("a", "CrashLoopBackOff", "back-off 20s restarting failed container"), corev1.ContainerStatus{
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 20s restarting failed container"}},
				LastTerminationState: corev1.ContainerState{Terminated: term(exited("a", 2, 1, ""), "Error")},
				Started:              boolp(false),
				RestartCount:         2,
				ContainerID:          "containerd://a-id2", ImageID: "sha256:aref",
			}},
		{"terminated 0 without a runtime reason: Completed", rt(notReady, exited("a", 0, 0, "")), nil, corev1.ContainerStatus{
			State:       corev1.ContainerState{Terminated: term(exited("a", 0, 0, ""), "Completed")},
			Started:     boolp(false),
			ContainerID: "containerd://a-id0", ImageID: "sha256:aref",
		}},
		{"terminated 1 with reason Unknown: Error, message kept", rt(notReady, func() podruntime.Container { c := withMsg; c.Reason = "Unknown"; return c }()), nil, corev1.ContainerStatus{
			State:       corev1.ContainerState{Terminated: term(withMsg, "Error")},
			Started:     boolp(false),
			ContainerID: "containerd://a-id0", ImageID: "sha256:aref",
		}},
		{"OOMKilled passes through", rt(notReady, oom, exited("a", 2, 1, "Error")), nil, corev1.ContainerStatus{
			State:                corev1.ContainerState{Terminated: term(oom, "OOMKilled")},
			LastTerminationState: corev1.ContainerState{Terminated: term(exited("a", 2, 1, ""), "Error")},
			Started:              boolp(false),
			RestartCount:         3,
			ContainerID:          "containerd://a-id3", ImageID: "sha256:aref",
		}},
		{"running in a dead sandbox: not running for the pod", rt([]podruntime.Sandbox{sandbox("sb2", true, "10.88.0.6"), sandbox("sb1", false, "")}, running("a", 0)), nil, corev1.ContainerStatus{
			State:       corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
			Started:     boolp(false),
			ContainerID: "containerd://a-id0", ImageID: "sha256:aref",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := pod("Always", "a")
			st := Compute(Input{Pod: p, Runtime: tc.rt, Waiting: tc.w, Now: now})
			if len(st.ContainerStatuses) != 1 {
				t.Fatalf("%d container statuses, want 1", len(st.ContainerStatuses))
			}
			want := tc.want
			want.Name, want.Image = "a", "registry.example/a:v1"
			got := st.ContainerStatuses[0]
			if !equalStatus(got, want) {
				t.Errorf("container status\n got %s\nwant %s", dump(got), dump(want))
			}
		})
	}
}

func TestContainerStatusDetails(t *testing.T) {
	p := pod("Always", "b", "a")
	c := running("a", 0)
	c.Image = "registry.example/a:v1.1" // what the runtime says it runs, by name
	st := Compute(Input{Pod: p, Runtime: rt(ready, c), Now: now, RuntimeName: "cri-o"})
	if len(st.ContainerStatuses) != 2 || st.ContainerStatuses[0].Name != "b" || st.ContainerStatuses[1].Name != "a" {
		t.Fatalf("statuses must follow spec order: %s", dump(st.ContainerStatuses))
	}
	a := st.ContainerStatuses[1]
	if a.ContainerID != "cri-o://a-id0" {
		t.Errorf("containerID = %q, want the runtime name as prefix", a.ContainerID)
	}
	if a.Image != "registry.example/a:v1.1" {
		t.Errorf("image = %q, want the runtime's image name when it is not an ID", a.Image)
	}
	if st.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("qosClass = %q", st.QOSClass)
	}
}

func TestIPsAndStartTime(t *testing.T) {
	start := t0.Add(1700 * time.Millisecond)
	tests := []struct {
		name         string
		pod          *corev1.Pod
		rt           *podruntime.Pod
		hostIP       string
		podIP        string
		noStart      bool
		wantNoHostIP bool
	}{
		{name: "pod network: the sandbox IP", pod: pod("Always", "a"), rt: rt(ready, running("a", 0)), hostIP: "192.168.1.10", podIP: "10.88.0.5"},
		{name: "newest sandbox wins", pod: pod("Always", "a"), rt: rt([]podruntime.Sandbox{sandbox("sb2", true, "10.88.0.9"), sandbox("sb1", false, "10.88.0.5")}), hostIP: "192.168.1.10", podIP: "10.88.0.9"},
		{name: "no sandbox yet: no pod IP", pod: pod("Always", "a"), hostIP: "192.168.1.10"},
		{name: "host network: the host IP", pod: hostNet(pod("Always", "a")), rt: rt([]podruntime.Sandbox{sandbox("sb1", true, "")}, running("a", 0)), hostIP: "192.168.1.10", podIP: "192.168.1.10"},
		{name: "host network before its sandbox: the host IP", pod: hostNet(pod("Always", "a")), hostIP: "192.168.1.10", podIP: "192.168.1.10"},
		{name: "no host IP known", pod: pod("Always", "a"), rt: rt(ready), podIP: "10.88.0.5", wantNoHostIP: true},
		{name: "no start time", pod: pod("Always", "a"), hostIP: "192.168.1.10", noStart: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Pod: tc.pod, Runtime: tc.rt, HostIP: tc.hostIP, StartTime: start, Now: now}
			if tc.noStart {
				in.StartTime = time.Time{}
			}
			st := Compute(in)
			if st.PodIP != tc.podIP {
				t.Errorf("podIP = %q, want %q", st.PodIP, tc.podIP)
			}
			if tc.podIP == "" && len(st.PodIPs) != 0 || tc.podIP != "" && (len(st.PodIPs) != 1 || st.PodIPs[0].IP != tc.podIP) {
				t.Errorf("podIPs = %v, want [%s]", st.PodIPs, tc.podIP)
			}
			if tc.wantNoHostIP {
				if st.HostIP != "" || len(st.HostIPs) != 0 {
					t.Errorf("hostIP = %q, hostIPs = %v, want none", st.HostIP, st.HostIPs)
				}
			} else if st.HostIP != tc.hostIP || len(st.HostIPs) != 1 || st.HostIPs[0].IP != tc.hostIP {
				t.Errorf("hostIP = %q, hostIPs = %v, want %s", st.HostIP, st.HostIPs, tc.hostIP)
			}
			switch {
			case tc.noStart && st.StartTime != nil:
				t.Errorf("startTime = %v, want none", st.StartTime)
			case !tc.noStart && (st.StartTime == nil || !st.StartTime.Time.Equal(t0.Add(time.Second))):
				t.Errorf("startTime = %v, want %v (truncated to the second)", st.StartTime, t0.Add(time.Second))
			}
		})
	}
}

func equalStatus(a, b corev1.ContainerStatus) bool { return equality.Semantic.DeepEqual(a, b) }

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
