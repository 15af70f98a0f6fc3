package cri

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/podruntime"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// The runtime's state of a pod, in the node's vocabulary (internal/podruntime).
type (
	Sandbox        = podruntime.Sandbox
	Container      = podruntime.Container
	ContainerState = podruntime.ContainerState
	PodRuntime     = podruntime.Pod
)

const (
	StateUnknown = podruntime.StateUnknown
	StateCreated = podruntime.StateCreated
	StateRunning = podruntime.StateRunning
	StateExited  = podruntime.StateExited
)

// Observer reads the runtime's state of the pods of one node. It caches the
// status of every container by ID and state, and every ready sandbox's IPs,
// so a relist is two list calls plus one status call per container that is
// new or changed state: idle, it asks nothing else. Safe for concurrent use.
type Observer struct {
	rt   *Runtime
	node string

	mu sync.Mutex
	// containers caches container statuses by ID; valid while the state
	// ListContainers reports is the cached one.
	containers map[string]Container
	// ips caches ready sandboxes' IPs by ID, the primary first (a sandbox's
	// IPs never change).
	ips map[string][]string
	// pods caches the pod recorded on each sandbox, by sandbox ID (it never
	// changes either), so a relist decodes nothing it decoded before.
	pods map[string]*corev1.Pod
}

func (o *Observer) sandboxPod(id, raw string) *corev1.Pod {
	if raw == "" {
		return nil
	}
	o.mu.Lock()
	p, ok := o.pods[id]
	o.mu.Unlock()
	if ok {
		return p
	}
	var pod corev1.Pod
	if json.Unmarshal([]byte(raw), &pod) != nil {
		return nil
	}
	o.mu.Lock()
	o.pods[id] = &pod
	o.mu.Unlock()
	return &pod
}

// NewObserver returns an observer of node's pods on rt.
func NewObserver(rt *Runtime, node string) *Observer {
	return &Observer{rt: rt, node: node, containers: map[string]Container{}, ips: map[string][]string{}, pods: map[string]*corev1.Pod{}}
}

func listState(s runtimeapi.ContainerState) ContainerState {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return StateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return StateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return StateExited
	}
	return StateUnknown
}

func (o *Observer) cached(id string, state ContainerState) (Container, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.containers[id]
	return c, ok && c.State == state
}

// SandboxIPs returns a ready sandbox's IPs, the primary first (none on the
// node's network), asking the runtime once per sandbox: its IPs never
// change, so the executor's question when it starts a container and every
// later List share one PodSandboxStatus call.
func (o *Observer) SandboxIPs(ctx context.Context, id string) ([]string, error) {
	o.mu.Lock()
	ips, ok := o.ips[id]
	o.mu.Unlock()
	if ok {
		return ips, nil
	}
	st, err := o.rt.PodSandboxStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	if n := st.GetNetwork(); n != nil {
		if n.Ip != "" {
			ips = append(ips, n.Ip)
		}
		for _, ip := range n.AdditionalIps {
			if ip.GetIp() != "" {
				ips = append(ips, ip.Ip)
			}
		}
	}
	if st.State == runtimeapi.PodSandboxState_SANDBOX_READY {
		o.mu.Lock()
		o.ips[id] = ips
		o.mu.Unlock()
	}
	return ips, nil
}

// List returns every pod of the node, by UID. With uid set, only that pod.
func (o *Observer) List(ctx context.Context, uid string) (map[string]*PodRuntime, error) {
	sel := map[string]string{wellknown.LabelNode: o.node}
	if uid != "" {
		sel[wellknown.LabelPodUID] = uid
	}
	sbs, err := o.rt.ListPodSandboxes(ctx, sel)
	if err != nil {
		return nil, err
	}
	cs, err := o.rt.ListContainers(ctx, sel)
	if err != nil {
		return nil, err
	}
	pods := map[string]*PodRuntime{}
	get := func(uid, name, ns string) *PodRuntime {
		p := pods[uid]
		if p == nil {
			p = &PodRuntime{UID: uid, Name: name, Namespace: ns}
			pods[uid] = p
		}
		return p
	}
	for _, s := range sbs {
		md := s.GetMetadata()
		p := get(md.GetUid(), md.GetName(), md.GetNamespace())
		sb := Sandbox{ID: s.Id, Attempt: md.GetAttempt(), Ready: s.State == runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: time.Unix(0, s.CreatedAt)}
		sb.Pod = o.sandboxPod(s.Id, s.Annotations[wellknown.AnnotationPod])
		// A sandbox on the node's network has no IP of its own (its pod's is
		// the node's), so there is nothing to ask.
		if sb.Ready && (sb.Pod == nil || !sb.Pod.Spec.HostNetwork) {
			if ips, err := o.SandboxIPs(ctx, s.Id); err == nil && len(ips) > 0 {
				sb.IP = ips[0]
			}
		}
		p.Sandboxes = append(p.Sandboxes, sb)
	}
	seen := map[string]bool{}
	for _, c := range cs {
		seen[c.Id] = true
		uid := c.Labels[wellknown.LabelPodUID]
		p := get(uid, c.Labels[wellknown.LabelPodName], c.Labels[wellknown.LabelPodNamespace])
		if cached, ok := o.cached(c.Id, listState(c.State)); ok {
			p.Containers = append(p.Containers, cached)
			continue
		}
		ctr, err := o.status(ctx, c.Id)
		if err != nil {
			if IsNotFound(err) {
				continue // removed between list and status
			}
			return nil, err
		}
		ctr.SandboxID = c.PodSandboxId
		o.mu.Lock()
		o.containers[c.Id] = ctr
		o.mu.Unlock()
		p.Containers = append(p.Containers, ctr)
	}
	if uid == "" {
		sbSeen := map[string]bool{}
		sbAny := map[string]bool{}
		for _, s := range sbs {
			sbAny[s.Id] = true
			if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
				sbSeen[s.Id] = true
			}
		}
		o.mu.Lock()
		for id := range o.containers {
			if !seen[id] {
				delete(o.containers, id)
			}
		}
		for id := range o.ips {
			if !sbSeen[id] {
				delete(o.ips, id)
			}
		}
		for id := range o.pods {
			if !sbAny[id] {
				delete(o.pods, id)
			}
		}
		o.mu.Unlock()
	}
	for _, p := range pods {
		sort.Slice(p.Sandboxes, func(i, j int) bool { return p.Sandboxes[i].CreatedAt.After(p.Sandboxes[j].CreatedAt) })
		sort.Slice(p.Containers, func(i, j int) bool {
			a, b := p.Containers[i], p.Containers[j]
			if a.RestartCount != b.RestartCount {
				return a.RestartCount > b.RestartCount
			}
			return a.CreatedAt.After(b.CreatedAt)
		})
	}
	return pods, nil
}

// Forget drops the cached status of a removed container.
func (o *Observer) Forget(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.containers, id)
}

func (o *Observer) status(ctx context.Context, id string) (Container, error) {
	s, err := o.rt.ContainerStatus(ctx, id)
	if err != nil {
		return Container{}, err
	}
	c := Container{
		ID:         s.Id,
		Name:       s.GetMetadata().GetName(),
		CreatedAt:  unixNano(s.CreatedAt),
		StartedAt:  unixNano(s.StartedAt),
		FinishedAt: unixNano(s.FinishedAt),
		ExitCode:   s.ExitCode,
		Reason:     s.Reason,
		Message:    s.Message,
		Image:      s.GetImage().GetImage(),
		ImageRef:   s.ImageRef,
		LogPath:    s.LogPath,
	}
	switch s.State {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		c.State = StateCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		c.State = StateRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		c.State = StateExited
	}
	if c.State == StateExited {
		if tm := terminationMessage(s); tm != "" {
			if c.Message != "" {
				c.Message += ": "
			}
			c.Message += tm
		}
	}
	c.RestartCount, _ = strconv.Atoi(s.Annotations[wellknown.AnnotationRestartCount])
	if d, err := time.ParseDuration(s.Annotations[wellknown.AnnotationBackoff]); err == nil {
		c.Backoff = d
	}
	if t, err := time.Parse(time.RFC3339Nano, s.Annotations[wellknown.AnnotationBackoffSince]); err == nil {
		c.BackoffSince = t
	}
	return c, nil
}

func unixNano(n int64) time.Time {
	if n <= 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
