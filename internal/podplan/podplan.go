// Package podplan owns the decision for one pod: from its desired spec, what
// the runtime holds for it, its image pull failures, its probe results and
// the time, which runtime actions it needs next: restart policy, crash and
// image-pull back-off, init containers and sidecars, probe kills,
// activeDeadlineSeconds, and garbage collection of old instances. It is pure
// and table-tested; internal/planner calls it for every pod it decides.
package podplan

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/podruntime"
)

// Backoff holds the back-off parameters. The zero value is not useful: use DefaultBackoff.
type Backoff struct {
	// Crash back-off: Initial doubling up to Max; an entry older than 2*Max
	// (a container that ran that long) starts again from Initial, as the kubelet's.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// Image pull back-off, likewise.
	PullBackoffInitial time.Duration
	PullBackoffMax     time.Duration
	// ErrImagePullShown is how long a fresh pull failure shows as ErrImagePull
	// before the status turns to ImagePullBackOff (at most half the back-off).
	ErrImagePullShown time.Duration
}

// DefaultBackoff is the kubelet's.
func DefaultBackoff() Backoff {
	return Backoff{
		BackoffInitial:     10 * time.Second,
		BackoffMax:         5 * time.Minute,
		PullBackoffInitial: 10 * time.Second,
		PullBackoffMax:     5 * time.Minute,
		ErrImagePullShown:  2 * time.Second,
	}
}

// PullFailure is the last failed pull of an image and its back-off.
type PullFailure struct {
	Image   string
	Err     string
	At      time.Time
	Backoff time.Duration
	// Reason is ErrImagePull, ErrImageNeverPull or InvalidImageName.
	Reason string
}

// NextPullBackoff returns the back-off after another failed pull.
func (c Backoff) NextPullBackoff(prev *PullFailure) time.Duration {
	if prev == nil || prev.Backoff == 0 {
		return c.PullBackoffInitial
	}
	return min(prev.Backoff*2, c.PullBackoffMax)
}

// PodInput is everything the decision for one pod depends on.
type PodInput struct {
	// Desired is the pod its file defines; nil when the pod must go.
	Desired *corev1.Pod
	// Runtime is what the runtime holds for the pod's UID; nil for nothing.
	Runtime *podruntime.Pod
	// Pulls are the image pull failures still in force, by image.
	Pulls map[string]*PullFailure
	// Probes are the probe results of each container's current instance, by name.
	Probes map[string]podruntime.ProbeState
	// StartTime is when the pod first started on this node (for activeDeadlineSeconds).
	StartTime time.Time
	Now       time.Time
}

// KillContainer is one running container to stop.
type KillContainer struct {
	ID, Name        string
	Reason, Message string
	GraceSeconds    int64
}

// Start is one container to pull (as its policy says), create and start.
type Start struct {
	Name         string
	RestartCount int
	// The crash back-off entry to record on the new instance.
	Backoff      time.Duration
	BackoffSince time.Time
}

// Plan is what must happen to one pod now. The executor does it in this order:
// kill, remove, refresh volume files, create sandbox, start containers, then
// garbage collection.
type Plan struct {
	// KillPod stops every running container (with the pod's grace period) and the sandbox.
	KillPod bool
	// RemovePod removes the pod's sandboxes, containers and files: it is no longer desired.
	RemovePod bool
	// KillContainers stops single containers (a failed liveness or startup probe).
	KillContainers []KillContainer
	// DeadlineExceeded: activeDeadlineSeconds has passed; the pod is killed for good.
	DeadlineExceeded bool
	// CreateSandbox makes a new sandbox; every container then starts in it.
	CreateSandbox bool
	Start         []Start
	// StopSandbox stops a sandbox whose pod has finished for good (its phase is terminal).
	StopSandbox bool
	// RemoveContainers are exited instances no longer needed for status or logs.
	RemoveContainers []string
	// RemoveSandboxes are old sandboxes with nothing left worth keeping.
	RemoveSandboxes []string
	// Refresh are the pod's configMap, secret and projected volumes whose
	// files must be rewritten in place (atomically), for running containers
	// to see the objects' new data. Nothing restarts.
	Refresh []string
	// Waiting says why each container that is not running waits.
	Waiting map[string]podruntime.Waiting
	// WakeAt is when the pod must be decided again (a back-off ends); zero for never.
	WakeAt time.Time
}

// Empty reports whether the plan asks for no runtime action.
func (p Plan) Empty() bool {
	return !p.KillPod && !p.RemovePod && !p.CreateSandbox && len(p.Start) == 0 && !p.StopSandbox && len(p.KillContainers) == 0 &&
		len(p.RemoveContainers) == 0 && len(p.RemoveSandboxes) == 0 && len(p.Refresh) == 0
}

func (p *Plan) wake(t time.Time) {
	if p.WakeAt.IsZero() || t.Before(p.WakeAt) {
		p.WakeAt = t
	}
}

func (p *Plan) wait(name, reason, msg string) {
	if p.Waiting == nil {
		p.Waiting = map[string]podruntime.Waiting{}
	}
	p.Waiting[name] = podruntime.Waiting{Reason: reason, Message: msg}
}

// Decide returns the plan for one pod.
func (c Backoff) Decide(in PodInput) Plan {
	var p Plan
	rt := in.Runtime
	if in.Desired == nil {
		if rt != nil && (len(rt.Sandboxes) > 0 || len(rt.Containers) > 0) {
			p.KillPod, p.RemovePod = true, true
		}
		return p
	}
	pod := in.Desired
	sb := rt.LatestSandbox()

	if d := pod.Spec.ActiveDeadlineSeconds; d != nil && !in.StartTime.IsZero() {
		deadline := in.StartTime.Add(time.Duration(*d) * time.Second)
		if !in.Now.Before(deadline) {
			// As the kubelet: the pod is killed for good and ends Failed.
			p.DeadlineExceeded = true
			p.KillPod = anyRunning(rt) || (sb != nil && sb.Ready)
			return p
		}
		p.wake(deadline)
	}

	if Finished(pod, rt) {
		if sb != nil && sb.Ready {
			p.StopSandbox = true
		}
		c.gc(&p, rt)
		return p
	}

	fresh := sb == nil || !sb.Ready
	if fresh && sb != nil && pod.Spec.RestartPolicy == corev1.RestartPolicyNever && len(rt.Containers) > 0 {
		// As the kubelet: a Never pod whose sandbox died is not run again;
		// what still runs is killed and the pod ends Failed (or Succeeded).
		p.KillPod = anyRunning(rt)
		return p
	}
	if fresh {
		if anyRunning(rt) || (sb != nil && sb.Ready) {
			p.KillPod = true
		}
		p.CreateSandbox = true
	}
	// current returns the newest instance of a container in the live sandbox.
	current := func(name string) *podruntime.Container {
		insts := rt.ContainersNamed(name)
		if fresh || len(insts) == 0 || insts[0].SandboxID != sb.ID {
			return nil
		}
		return &insts[0]
	}

	// Init containers run one at a time, in order; sidecars (restartPolicy
	// Always) keep running and the next one starts once they have started.
	initialized := true
	for _, ctr := range pod.Spec.InitContainers {
		cur := current(ctr.Name)
		if isSidecar(ctr) {
			if cur != nil && cur.State == podruntime.StateRunning {
				c.probeKill(&p, in, ctr.Name, cur)
				if in.Probes[ctr.Name].Started || ctr.StartupProbe == nil {
					continue
				}
				initialized = false
				break
			}
			c.startOrBackOff(&p, in, pod, ctr, corev1.RestartPolicyAlways)
			initialized = false
			break
		}
		if cur != nil && cur.State == podruntime.StateExited && cur.ExitCode == 0 {
			continue
		}
		initialized = false
		if cur != nil && cur.State == podruntime.StateRunning {
			c.probeKill(&p, in, ctr.Name, cur)
			break
		}
		policy := pod.Spec.RestartPolicy
		if policy == corev1.RestartPolicyAlways {
			policy = corev1.RestartPolicyOnFailure // a failed init container is retried; a succeeded one is done
		}
		c.startOrBackOff(&p, in, pod, ctr, policy)
		break
	}
	if !initialized {
		for _, ctr := range pod.Spec.Containers {
			p.wait(ctr.Name, "PodInitializing", "")
		}
		if !fresh {
			c.gc(&p, rt)
		}
		return p
	}

	for _, ctr := range pod.Spec.Containers {
		insts := rt.ContainersNamed(ctr.Name)
		if len(insts) > 0 && !fresh && insts[0].SandboxID == sb.ID && insts[0].State == podruntime.StateRunning {
			c.probeKill(&p, in, ctr.Name, &insts[0])
			continue
		}
		c.startOrBackOff(&p, in, pod, ctr, pod.Spec.RestartPolicy)
	}
	if !fresh {
		c.gc(&p, rt)
	}
	return p
}

func isSidecar(ctr corev1.Container) bool {
	return ctr.RestartPolicy != nil && *ctr.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// probeKill kills a running container whose liveness or startup probe failed.
func (c Backoff) probeKill(p *Plan, in PodInput, name string, cur *podruntime.Container) {
	ps, ok := in.Probes[name]
	if !ok || ps.ContainerID != cur.ID || (!ps.LivenessFailed && !ps.StartupFailed) {
		return
	}
	p.KillContainers = append(p.KillContainers, KillContainer{ID: cur.ID, Name: name, Reason: "Unhealthy", Message: ps.Message, GraceSeconds: ps.GraceSeconds})
}

// startOrBackOff plans the start of a container that is not running, unless
// its restart policy says no or a back-off holds it.
func (c Backoff) startOrBackOff(p *Plan, in PodInput, pod *corev1.Pod, ctr corev1.Container, policy corev1.RestartPolicy) {
	insts := in.Runtime.ContainersNamed(ctr.Name)
	var latest *podruntime.Container
	if len(insts) > 0 {
		latest = &insts[0]
	}
	if latest != nil && interrupted(latest) {
		// Its start was cut short by the agent itself (killed mid-start):
		// it never ran, so it is replaced as it was, without counting a
		// restart or waiting out a back-off.
		p.RemoveContainers = append(p.RemoveContainers, latest.ID)
		p.Start = append(p.Start, Start{Name: ctr.Name, RestartCount: latest.RestartCount, Backoff: latest.Backoff, BackoffSince: latest.BackoffSince})
		return
	}
	fresh := p.CreateSandbox
	if latest != nil && latest.State == podruntime.StateRunning && fresh {
		// Runs in a dead sandbox: killed with the pod, then started again.
	} else if latest != nil && latest.State == podruntime.StateRunning {
		return // started, not yet seen exiting (a sidecar or init container in flight)
	} else if latest != nil && latest.State == podruntime.StateExited && !shouldRestart(policy, latest.ExitCode) {
		return
	}
	s := Start{Name: ctr.Name}
	if latest != nil {
		s.RestartCount = latest.RestartCount + 1
		finished := latest.FinishedAt
		if finished.IsZero() {
			finished = latest.CreatedAt
		}
		expired := latest.Backoff == 0 || finished.Sub(latest.BackoffSince) > 2*c.BackoffMax
		if latest.State == podruntime.StateExited && !expired && in.Now.Sub(finished) < latest.Backoff {
			p.wait(ctr.Name, "CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				latest.Backoff, ctr.Name, pod.Name, pod.Namespace, pod.UID))
			p.wake(finished.Add(latest.Backoff))
			return
		}
		if latest.State == podruntime.StateExited {
			if expired {
				s.Backoff = c.BackoffInitial
			} else {
				s.Backoff = min(latest.Backoff*2, c.BackoffMax)
			}
			s.BackoffSince = in.Now
		} else {
			s.Backoff, s.BackoffSince = latest.Backoff, latest.BackoffSince
		}
	}
	if f := in.Pulls[ctr.Image]; f != nil && in.Now.Before(f.At.Add(f.Backoff)) {
		reason := "ImagePullBackOff"
		msg := fmt.Sprintf("Back-off pulling image %q: %s", ctr.Image, f.Err)
		if f.Reason != "ErrImagePull" {
			reason, msg = f.Reason, f.Err
		} else if shown := min(c.ErrImagePullShown, f.Backoff/2); in.Now.Before(f.At.Add(shown)) {
			reason, msg = "ErrImagePull", f.Err
			p.wake(f.At.Add(shown))
		}
		p.wait(ctr.Name, reason, msg)
		p.wake(f.At.Add(f.Backoff))
		return
	}
	p.Start = append(p.Start, s)
}

// interrupted reports whether a container instance never ran because its
// start was interrupted: created and never started, or failed to start
// because the caller's context ended (the agent was killed while it waited
// for StartContainer). containerd says so as "context canceled", or, when
// the cancel came while it was starting the container's shim (a command it
// runs under the request's context, so killed with it), as "failed to start
// shim: ... signal: killed". A start the runtime refused for another reason
// (a missing executable, say) is a real failure and counts as one.
func interrupted(c *podruntime.Container) bool {
	if !c.StartedAt.IsZero() {
		return false
	}
	switch c.State {
	case podruntime.StateCreated:
		return true
	case podruntime.StateExited:
		if c.Reason != "StartError" {
			return false
		}
		return strings.Contains(c.Message, "context canceled") ||
			(strings.Contains(c.Message, "failed to start shim") && strings.Contains(c.Message, "signal: killed"))
	}
	return false
}

// shouldRestart applies the restart policy to an exited container.
func shouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

func anyRunning(rt *podruntime.Pod) bool {
	if rt == nil {
		return false
	}
	for _, c := range rt.Containers {
		if c.State == podruntime.StateRunning {
			return true
		}
	}
	return false
}

// Finished reports whether the pod has reached a terminal phase for good: with
// restartPolicy Never every container has run and exited; with OnFailure every
// container has exited 0. Pods with restartPolicy Always never finish.
func Finished(pod *corev1.Pod, rt *podruntime.Pod) bool {
	if pod.Spec.RestartPolicy == corev1.RestartPolicyAlways || pod.Spec.RestartPolicy == "" {
		return false
	}
	if pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
		for _, ctr := range pod.Spec.InitContainers {
			if insts := rt.ContainersNamed(ctr.Name); !isSidecar(ctr) && len(insts) > 0 && insts[0].State == podruntime.StateExited && insts[0].ExitCode != 0 {
				return true // a failed init container fails a Never pod
			}
		}
	}
	for _, ctr := range pod.Spec.Containers {
		insts := rt.ContainersNamed(ctr.Name)
		if len(insts) == 0 || insts[0].State != podruntime.StateExited {
			return false
		}
		if pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure && insts[0].ExitCode != 0 {
			return false
		}
	}
	return true
}

// gc keeps, per container name, the newest instance and the one before it
// (for lastState and `logs --previous`), and removes older exited ones, and
// sandboxes that are neither the newest nor hold a kept container.
func (c Backoff) gc(p *Plan, rt *podruntime.Pod) {
	if rt == nil {
		return
	}
	kept := map[string]int{}
	keepSandbox := map[string]bool{}
	if sb := rt.LatestSandbox(); sb != nil {
		keepSandbox[sb.ID] = true
	}
	for _, ctr := range rt.Containers {
		kept[ctr.Name]++
		if kept[ctr.Name] <= 2 || ctr.State != podruntime.StateExited {
			keepSandbox[ctr.SandboxID] = true
			continue
		}
		p.RemoveContainers = append(p.RemoveContainers, ctr.ID)
	}
	for _, sb := range rt.Sandboxes {
		if !keepSandbox[sb.ID] && !sb.Ready {
			p.RemoveSandboxes = append(p.RemoveSandboxes, sb.ID)
		}
	}
}
