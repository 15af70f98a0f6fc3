// Package podstatus owns computing a pod's v1.PodStatus from what the runtime
// reports, the way the kubelet computes it: phase, conditions, container
// statuses with state, last state and restart counts, pod and host IPs.
package podstatus

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/podruntime"
)

// Input is what a pod's status is computed from.
type Input struct {
	Pod     *corev1.Pod
	Runtime *podruntime.Pod
	// Waiting says why containers that are not running wait (from the engine's
	// plan, or from a failed runtime call).
	Waiting   map[string]podruntime.Waiting
	HostIP    string
	StartTime time.Time
	// Now is used for conditions' transition times when nothing better is known.
	Now time.Time
	// Previous is the status last computed, for transition times.
	Previous *corev1.PodStatus
	// Probes are the probe results of the containers' current instances.
	Probes map[string]podruntime.ProbeState
	// DeadlineExceeded: activeDeadlineSeconds passed and the pod was killed.
	DeadlineExceeded bool
	// RuntimeName prefixes container IDs ("containerd").
	RuntimeName string
}

// Compute returns the pod's status.
func Compute(in Input) corev1.PodStatus {
	pod, rt := in.Pod, in.Runtime
	st := corev1.PodStatus{QOSClass: QOSClass(pod)}
	if !in.StartTime.IsZero() {
		t := metav1.NewTime(in.StartTime.Truncate(time.Second))
		st.StartTime = &t
	}
	if in.HostIP != "" {
		st.HostIP = in.HostIP
		st.HostIPs = []corev1.HostIP{{IP: in.HostIP}}
	}
	sb := rt.LatestSandbox()
	if pod.Spec.HostNetwork {
		st.PodIP = in.HostIP
	} else if sb != nil {
		st.PodIP = sb.IP
	}
	if st.PodIP != "" {
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	prefix := in.RuntimeName
	if prefix == "" {
		prefix = "containerd"
	}
	allReady := true
	for _, ctr := range pod.Spec.Containers {
		cs := containerStatus(ctr, rt, sb, in.Waiting[ctr.Name], prefix)
		applyProbes(&cs, ctr, in.Probes[ctr.Name])
		if !cs.Ready {
			allReady = false
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	initialized, initFailed := true, false
	var pendingInit []string
	for _, ctr := range pod.Spec.InitContainers {
		cs := containerStatus(ctr, rt, sb, in.Waiting[ctr.Name], prefix)
		sidecar := ctr.RestartPolicy != nil && *ctr.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if sidecar {
			applyProbes(&cs, ctr, in.Probes[ctr.Name])
			if !cs.Ready {
				allReady = false
			}
			if cs.Started == nil || !*cs.Started {
				initialized = false
				pendingInit = append(pendingInit, ctr.Name)
			}
		} else {
			// An init container is never "ready" while it runs; it is when it succeeded.
			done := cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
			cs.Ready = done
			if !done {
				initialized = false
				pendingInit = append(pendingInit, ctr.Name)
				if t := cs.State.Terminated; t != nil && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
					initFailed = true
				}
			}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	st.Phase = phase(pod, st.ContainerStatuses)
	if reason, msg := Admit(pod); reason != "" {
		// Rejected by admission: never started, failed for good.
		st.Phase, st.Reason, st.Message = corev1.PodFailed, reason, msg
	}
	switch {
	case in.DeadlineExceeded:
		st.Phase, st.Reason, st.Message = corev1.PodFailed, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
	case initFailed:
		st.Phase = corev1.PodFailed
	case !initialized && st.Phase != corev1.PodFailed:
		st.Phase = corev1.PodPending
	}
	if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed || !initialized {
		allReady = false
	}
	sandboxReady := sb != nil && sb.Ready
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason}
		if ok {
			c.Status, c.Reason = corev1.ConditionTrue, ""
		}
		c.LastTransitionTime = transition(in.Previous, t, c.Status, in.Now)
		return c
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, sandboxReady, ""),
		cond(corev1.PodInitialized, initialized, "ContainersNotInitialized"),
		cond(corev1.ContainersReady, allReady, notReadyReason(st.Phase)),
		cond(corev1.PodReady, allReady, notReadyReason(st.Phase)),
		cond(corev1.PodScheduled, true, ""),
	}
	if st.Phase == corev1.PodSucceeded && initialized {
		// The kubelet marks a pod that has completed as initialized for that reason.
		st.Conditions[1].Reason = "PodCompleted"
	}
	if !initialized {
		st.Conditions[1].Message = "containers with incomplete status: [" + strings.Join(pendingInit, " ") + "]"
	}
	if !allReady {
		var names []string
		for _, cs := range st.ContainerStatuses {
			if !cs.Ready {
				names = append(names, cs.Name)
			}
		}
		if st.Phase != corev1.PodSucceeded && st.Phase != corev1.PodFailed && len(names) > 0 {
			msg := "containers with unready status: [" + strings.Join(names, " ") + "]"
			st.Conditions[2].Message = msg
			st.Conditions[3].Message = msg
		}
	}
	return st
}

func notReadyReason(p corev1.PodPhase) string {
	switch p {
	case corev1.PodSucceeded:
		return "PodCompleted"
	case corev1.PodFailed:
		return "PodFailed"
	}
	return "ContainersNotReady"
}

func transition(prev *corev1.PodStatus, t corev1.PodConditionType, s corev1.ConditionStatus, now time.Time) metav1.Time {
	if prev != nil {
		for _, c := range prev.Conditions {
			if c.Type == t && c.Status == s {
				return c.LastTransitionTime
			}
		}
	}
	return metav1.NewTime(now.Truncate(time.Second))
}

func containerStatus(ctr corev1.Container, rt *podruntime.Pod, sb *podruntime.Sandbox, w podruntime.Waiting, prefix string) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: ctr.Name, Image: ctr.Image}
	f := false
	cs.Started = &f
	insts := rt.ContainersNamed(ctr.Name)
	if len(insts) == 0 {
		reason := w.Reason
		if reason == "" {
			reason = "ContainerCreating"
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: w.Message}
		return cs
	}
	latest := insts[0]
	cs.RestartCount = int32(latest.RestartCount)
	cs.ContainerID = prefix + "://" + latest.ID
	cs.ImageID = latest.ImageRef
	if latest.Image != "" && !strings.HasPrefix(latest.Image, "sha256:") {
		cs.Image = latest.Image
	}
	if len(insts) > 1 && insts[1].State == podruntime.StateExited {
		cs.LastTerminationState.Terminated = terminated(insts[1], prefix)
	}
	switch {
	case latest.State == podruntime.StateRunning && sb != nil && latest.SandboxID == sb.ID:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(latest.StartedAt)}
		t := true
		cs.Started = &t
		cs.Ready = true
	case latest.State == podruntime.StateExited && w.Reason != "":
		// Exited and waiting to start again (back-off): the kubelet shows the
		// wait, with the exit as the last state.
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
		cs.LastTerminationState.Terminated = terminated(latest, prefix)
	case latest.State == podruntime.StateExited:
		cs.State.Terminated = terminated(latest, prefix)
	default:
		reason := w.Reason
		if reason == "" {
			reason = "ContainerCreating"
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: w.Message}
	}
	return cs
}

func terminated(c podruntime.Container, prefix string) *corev1.ContainerStateTerminated {
	reason := c.Reason
	if reason == "" || reason == "Unknown" {
		reason = "Completed"
		if c.ExitCode != 0 {
			reason = "Error"
		}
	}
	return &corev1.ContainerStateTerminated{
		ExitCode:    c.ExitCode,
		Reason:      reason,
		Message:     c.Message,
		StartedAt:   metav1.NewTime(c.StartedAt),
		FinishedAt:  metav1.NewTime(c.FinishedAt),
		ContainerID: prefix + "://" + c.ID,
	}
}

// phase follows the kubelet: waiting containers keep a pod Pending, running
// ones make it Running, and exited ones decide by the restart policy.
func phase(pod *corev1.Pod, statuses []corev1.ContainerStatus) corev1.PodPhase {
	var running, waiting, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0:
		switch pod.Spec.RestartPolicy {
		case corev1.RestartPolicyNever:
			if stopped == succeeded {
				return corev1.PodSucceeded
			}
			return corev1.PodFailed
		case corev1.RestartPolicyOnFailure:
			if stopped == succeeded {
				return corev1.PodSucceeded
			}
			return corev1.PodRunning
		default:
			return corev1.PodRunning
		}
	}
	return corev1.PodPending
}

// applyProbes sets a running container's started and ready flags from its
// probes: with a startup probe it has started once that succeeded; with a
// readiness probe it is ready while that succeeds (and only after start).
func applyProbes(cs *corev1.ContainerStatus, ctr corev1.Container, ps podruntime.ProbeState) {
	if cs.State.Running == nil {
		return
	}
	started := ctr.StartupProbe == nil || ps.Started
	cs.Started = &started
	cs.Ready = started && (ctr.ReadinessProbe == nil || ps.Ready)
}
