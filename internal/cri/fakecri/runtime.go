package fakecri

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtimeService serves CRI's RuntimeService. What a node agent does not use
// answers codes.Unimplemented.
type runtimeService struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	r *Runtime
}

func (s *runtimeService) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "fakecri", RuntimeVersion: "v0.0.0-fake", RuntimeApiVersion: "v1"}, nil
}

func (s *runtimeService) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}}, nil
}

func (s *runtimeService) RunPodSandbox(_ context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return nil, status.Error(codes.InvalidArgument, "sandbox config must include metadata with name, namespace and uid")
	}
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	id := newID()
	key := strings.Join([]string{md.Name, md.Namespace, md.Uid, fmt.Sprint(md.Attempt)}, "_")
	if other, ok := r.names[key]; ok {
		return nil, status.Errorf(codes.Unknown, "failed to reserve sandbox name %q: name %q is reserved for %q", key, key, other)
	}
	r.names[key] = id
	sb := &sandbox{key: key, pid: r.pidLocked(), Sandbox: Sandbox{
		ID: id, Name: md.Name, Namespace: md.Namespace, UID: md.Uid, Attempt: md.Attempt,
		Labels: cloneMap(cfg.Labels), Annotations: cloneMap(cfg.Annotations),
		State:        runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt:    r.nowLocked(),
		HostNetwork:  cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE,
		LogDirectory: cfg.LogDirectory,
	}}
	if !sb.HostNetwork {
		sb.IP = fmt.Sprintf("10.99.%d.%d", r.nextIP>>8&255, r.nextIP&255)
		r.nextIP++
	}
	r.sandboxes[id] = sb
	r.emitStartLocked(id, sb.pid)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func (s *runtimeService) StopPodSandbox(_ context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, err := resolve(r.sandboxes, req.PodSandboxId, "sandbox")
	if err != nil {
		return nil, err
	}
	r.stopSandboxLocked(sb, ExitSIGKILL)
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (s *runtimeService) RemovePodSandbox(_ context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, err := resolve(r.sandboxes, req.PodSandboxId, "sandbox")
	if status.Code(err) == codes.NotFound {
		return &runtimeapi.RemovePodSandboxResponse{}, nil // already removed
	}
	if err != nil {
		return nil, err
	}
	r.stopSandboxLocked(sb, ExitSIGKILL)
	for id, c := range r.containers {
		if c.SandboxID == sb.ID {
			delete(r.names, c.key)
			delete(r.containers, id)
		}
	}
	delete(r.names, sb.key)
	delete(r.sandboxes, sb.ID)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (s *runtimeService) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, err := resolve(r.sandboxes, req.PodSandboxId, "sandbox")
	if err != nil {
		return nil, err
	}
	netMode := runtimeapi.NamespaceMode_POD
	if sb.HostNetwork {
		netMode = runtimeapi.NamespaceMode_NODE
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id:        sb.ID,
		Metadata:  sb.metadata(),
		State:     sb.State,
		CreatedAt: sb.CreatedAt.UnixNano(),
		Network:   &runtimeapi.PodSandboxNetworkStatus{Ip: sb.IP},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: netMode, Pid: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD,
		}}},
		Labels:      cloneMap(sb.Labels),
		Annotations: cloneMap(sb.Annotations),
	}}, nil
}

func (s *runtimeService) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	f := req.GetFilter()
	id := f.GetId()
	if id != "" {
		if sb, err := resolve(r.sandboxes, id, "sandbox"); err == nil {
			id = sb.ID
		}
	}
	out := &runtimeapi.ListPodSandboxResponse{}
	for _, sb := range r.sandboxes {
		if id != "" && sb.ID != id ||
			f.GetState() != nil && f.GetState().State != sb.State ||
			!matchLabels(sb.Labels, f.GetLabelSelector()) {
			continue
		}
		out.Items = append(out.Items, &runtimeapi.PodSandbox{
			Id: sb.ID, Metadata: sb.metadata(), State: sb.State, CreatedAt: sb.CreatedAt.UnixNano(),
			Labels: cloneMap(sb.Labels), Annotations: cloneMap(sb.Annotations),
		})
	}
	return out, nil
}

func (s *runtimeService) CreateContainer(_ context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "container config must include metadata with a name")
	}
	if cfg.GetImage().GetImage() == "" {
		return nil, status.Error(codes.InvalidArgument, "container config must include an image")
	}
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, err := resolve(r.sandboxes, req.PodSandboxId, "sandbox")
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "failed to find sandbox id %q: %v", req.PodSandboxId, status.Convert(err).Message())
	}
	if !sb.Ready() {
		return nil, status.Errorf(codes.NotFound, "failed to get sandbox container task: sandbox %q is not ready: not found", sb.ID)
	}
	imgRef, ok := r.lookupImageLocked(cfg.Image.Image)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "failed to resolve image %q: not found", cfg.Image.Image)
	}
	id := newID()
	key := strings.Join([]string{md.Name, sb.Name, sb.Namespace, sb.UID, fmt.Sprint(md.Attempt)}, "_")
	if other, ok := r.names[key]; ok {
		return nil, status.Errorf(codes.Unknown, "failed to reserve container name %q: name %q is reserved for %q", key, key, other)
	}
	r.names[key] = id
	var logPath string
	if sb.LogDirectory != "" && cfg.LogPath != "" {
		logPath = filepath.Join(sb.LogDirectory, cfg.LogPath)
	}
	r.containers[id] = &container{key: key, exited: make(chan struct{}), Container: Container{
		ID: id, SandboxID: sb.ID, PodName: sb.Name, Name: md.Name, Attempt: md.Attempt,
		Image: cfg.Image.Image, ImageRef: imgRef,
		Labels: cloneMap(cfg.Labels), Annotations: cloneMap(cfg.Annotations),
		State:     runtimeapi.ContainerState_CONTAINER_CREATED,
		CreatedAt: r.nowLocked(),
		LogPath:   logPath,
	}}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

func (s *runtimeService) StartContainer(_ context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := resolve(r.containers, req.ContainerId, "container")
	if err != nil {
		return nil, err
	}
	if c.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		return nil, status.Errorf(codes.FailedPrecondition, "container %q is in %s state", c.ID, c.State)
	}
	if sb := r.sandboxes[c.SandboxID]; sb == nil || !sb.Ready() {
		return nil, status.Errorf(codes.FailedPrecondition, "sandbox container %q is not running", c.SandboxID)
	}
	c.State = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.StartedAt = r.nowLocked()
	c.pid = r.pidLocked()
	r.emitStartLocked(c.ID, c.pid)
	if ae, ok := r.autoExit[normalizeRef(c.Image)]; ok {
		r.afterLocked(ae.after, func() { r.exitLocked(c, ae.code) })
	} else if ae, ok := r.autoExit[c.ImageRef]; ok {
		r.afterLocked(ae.after, func() { r.exitLocked(c, ae.code) })
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer sends SIGTERM, which ends the process at once unless it
// ignores SIGTERM; then SIGKILL ends it when the grace period is over. The call
// returns when the process has ended.
func (s *runtimeService) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	r := s.r
	r.mu.Lock()
	c, err := resolve(r.containers, req.ContainerId, "container")
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		r.mu.Unlock()
		return &runtimeapi.StopContainerResponse{}, nil // nothing runs: done
	}
	if req.Timeout <= 0 {
		r.exitLocked(c, ExitSIGKILL)
		r.mu.Unlock()
		return &runtimeapi.StopContainerResponse{}, nil
	}
	if !r.ignoreTERM[c.Name] {
		r.exitLocked(c, ExitSIGTERM)
		r.mu.Unlock()
		return &runtimeapi.StopContainerResponse{}, nil
	}
	grace := time.Duration(req.Timeout) * r.second
	exited, stopped := c.exited, r.stopped
	r.mu.Unlock()

	tm := time.NewTimer(grace)
	defer tm.Stop()
	select {
	case <-exited: // it ended by itself during the grace period
		return &runtimeapi.StopContainerResponse{}, nil
	case <-tm.C:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-stopped:
		return nil, status.Error(codes.Unavailable, "fake runtime stopped")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exitLocked(c, ExitSIGKILL)
	return &runtimeapi.StopContainerResponse{}, nil
}

func (s *runtimeService) RemoveContainer(_ context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := resolve(r.containers, req.ContainerId, "container")
	if status.Code(err) == codes.NotFound {
		return &runtimeapi.RemoveContainerResponse{}, nil // already removed
	}
	if err != nil {
		return nil, err
	}
	if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, status.Errorf(codes.Unknown, "failed to set removing state for container %q: container is still running, to stop first", c.ID)
	}
	delete(r.names, c.key)
	delete(r.containers, c.ID)
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *runtimeService) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	f := req.GetFilter()
	id, sbID := f.GetId(), f.GetPodSandboxId()
	if id != "" {
		if c, err := resolve(r.containers, id, "container"); err == nil {
			id = c.ID
		}
	}
	if sbID != "" {
		if sb, err := resolve(r.sandboxes, sbID, "sandbox"); err == nil {
			sbID = sb.ID
		}
	}
	out := &runtimeapi.ListContainersResponse{}
	for _, c := range r.containers {
		if id != "" && c.ID != id ||
			sbID != "" && c.SandboxID != sbID ||
			f.GetState() != nil && f.GetState().State != c.State ||
			!matchLabels(c.Labels, f.GetLabelSelector()) {
			continue
		}
		out.Containers = append(out.Containers, &runtimeapi.Container{
			Id: c.ID, PodSandboxId: c.SandboxID, Metadata: c.metadata(),
			Image: &runtimeapi.ImageSpec{Image: c.Image}, ImageRef: c.ImageRef,
			State: c.State, CreatedAt: c.CreatedAt.UnixNano(),
			Labels: cloneMap(c.Labels), Annotations: cloneMap(c.Annotations),
		})
	}
	return out, nil
}

func (s *runtimeService) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := resolve(r.containers, req.ContainerId, "container")
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{
		Id: c.ID, Metadata: c.metadata(), State: c.State,
		CreatedAt: c.CreatedAt.UnixNano(), StartedAt: unixNano(c.StartedAt), FinishedAt: unixNano(c.FinishedAt),
		ExitCode: c.ExitCode, Reason: c.Reason, Message: c.Message,
		Image: &runtimeapi.ImageSpec{Image: c.Image}, ImageRef: c.ImageRef,
		Labels: cloneMap(c.Labels), Annotations: cloneMap(c.Annotations),
		LogPath: c.LogPath,
	}}, nil
}

func (s *runtimeService) ReopenContainerLog(_ context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := resolve(r.containers, req.ContainerId, "container")
	if err != nil {
		return nil, err
	}
	if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, status.Errorf(codes.FailedPrecondition, "container %q is not running", c.ID)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

func (sb *sandbox) metadata() *runtimeapi.PodSandboxMetadata {
	return &runtimeapi.PodSandboxMetadata{Name: sb.Name, Namespace: sb.Namespace, Uid: sb.UID, Attempt: sb.Attempt}
}

func (c *container) metadata() *runtimeapi.ContainerMetadata {
	return &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: c.Attempt}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
