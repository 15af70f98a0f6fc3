// Package podruntime holds the node's vocabulary for what a container runtime
// reports of a pod (its sandboxes and container instances) and the few facts
// the node adds to it (probe results, why a container waits). It is a leaf:
// plain data and small helpers, no I/O and no gRPC, so the planner, the status
// computation and the runtime client can all share it.
package podruntime

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Sandbox is what the runtime reports of one pod sandbox.
type Sandbox struct {
	ID        string
	Attempt   uint32
	Ready     bool
	CreatedAt time.Time
	IP        string
	// Pod is the desired pod this sandbox was created for, as recorded on it.
	Pod *corev1.Pod
}

// ContainerState is the runtime state of one container.
type ContainerState int

const (
	StateUnknown ContainerState = iota
	StateCreated
	StateRunning
	StateExited
)

func (s ContainerState) String() string {
	return [...]string{"unknown", "created", "running", "exited"}[s]
}

// Container is what the runtime reports of one container instance.
type Container struct {
	ID           string
	SandboxID    string
	Name         string
	State        ContainerState
	CreatedAt    time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	ExitCode     int32
	Reason       string
	Message      string
	Image        string
	ImageRef     string
	LogPath      string
	RestartCount int
	// Backoff and BackoffSince are the crash back-off entry in force when this
	// instance was created: the next restart waits Backoff after it exits.
	Backoff      time.Duration
	BackoffSince time.Time
}

// Pod is everything the runtime holds for one pod UID.
type Pod struct {
	UID        string
	Name       string
	Namespace  string
	Sandboxes  []Sandbox   // newest first
	Containers []Container // newest first
}

// LatestSandbox returns the newest sandbox, or nil.
func (p *Pod) LatestSandbox() *Sandbox {
	if p == nil || len(p.Sandboxes) == 0 {
		return nil
	}
	return &p.Sandboxes[0]
}

// ContainersNamed returns the instances of one container, newest first.
func (p *Pod) ContainersNamed(name string) []Container {
	if p == nil {
		return nil
	}
	var out []Container
	for _, c := range p.Containers {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// Latest returns the newest instance of a container, or nil.
func (p *Pod) Latest(name string) *Container {
	if p == nil {
		return nil
	}
	for i := range p.Containers {
		if p.Containers[i].Name == name {
			return &p.Containers[i]
		}
	}
	return nil
}

// Empty reports whether the runtime holds nothing for the pod.
func (p *Pod) Empty() bool {
	return p == nil || (len(p.Sandboxes) == 0 && len(p.Containers) == 0)
}

// AnyRunning reports whether a container of the pod runs.
func (p *Pod) AnyRunning() bool {
	if p == nil {
		return false
	}
	for _, c := range p.Containers {
		if c.State == StateRunning {
			return true
		}
	}
	return false
}

// Recorded returns the desired pod recorded on the newest sandbox that has one.
func (p *Pod) Recorded() *corev1.Pod {
	if p == nil {
		return nil
	}
	for _, s := range p.Sandboxes {
		if s.Pod != nil {
			return s.Pod
		}
	}
	return nil
}

// SameState reports whether two reads of a pod show the same sandboxes and
// containers in the same states (what a decision depends on).
func SameState(a, b *Pod) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Sandboxes) != len(b.Sandboxes) || len(a.Containers) != len(b.Containers) {
		return false
	}
	for i := range a.Sandboxes {
		x, y := a.Sandboxes[i], b.Sandboxes[i]
		if x.ID != y.ID || x.Ready != y.Ready || x.IP != y.IP {
			return false
		}
	}
	for i := range a.Containers {
		x, y := a.Containers[i], b.Containers[i]
		if x.ID != y.ID || x.State != y.State {
			return false
		}
	}
	return true
}

// Waiting is why a container is not running now: a reason as kubectl shows it
// (CrashLoopBackOff, ImagePullBackOff, CreateContainerConfigError, ...) and a
// message.
type Waiting struct {
	Reason  string
	Message string
}

// ProbeState is what the probes say of one container instance.
type ProbeState struct {
	ContainerID string
	// Started: the startup probe succeeded (or there is none and it runs).
	Started bool
	// Ready: the readiness probe succeeds (or there is none and it runs).
	Ready bool
	// LivenessFailed and StartupFailed: the probe failed failureThreshold
	// times; the container must be killed.
	LivenessFailed, StartupFailed bool
	Message                       string
	// GraceSeconds is the kill's grace period (the probe's own, or the pod's).
	GraceSeconds int64
}

// ProbeKind is the kind of a probe.
type ProbeKind int

const (
	Liveness ProbeKind = iota
	Readiness
	Startup
)

func (k ProbeKind) String() string { return [...]string{"Liveness", "Readiness", "Startup"}[k] }
