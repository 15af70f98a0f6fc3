package cri

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The calls below are what Ballast asks of a runtime, one method per CRI call
// with only the arguments Ballast uses. Errors wrap the runtime's gRPC status
// (status.Code, IsNotFound and IsUnavailable see through the wrapping) and
// say which call on which object failed.

// RunPodSandbox creates and starts a pod sandbox and returns its ID.
func (r *Runtime) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := r.RS.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return "", fmt.Errorf("creating the pod sandbox: %w", err)
	}
	return resp.PodSandboxId, nil
}

// StopPodSandbox stops a sandbox's processes and releases its network.
func (r *Runtime) StopPodSandbox(ctx context.Context, id string) error {
	if _, err := r.RS.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("stopping sandbox %s: %w", short(id), err)
	}
	return nil
}

// RemovePodSandbox removes a sandbox and its containers.
func (r *Runtime) RemovePodSandbox(ctx context.Context, id string) error {
	if _, err := r.RS.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("removing sandbox %s: %w", short(id), err)
	}
	return nil
}

// PodSandboxStatus returns a sandbox's status.
func (r *Runtime) PodSandboxStatus(ctx context.Context, id string) (*runtimeapi.PodSandboxStatus, error) {
	resp, err := r.RS.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return nil, fmt.Errorf("sandbox %s status: %w", short(id), err)
	}
	return resp.Status, nil
}

// CreateContainer creates a container in a sandbox and returns its ID.
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig, sandbox *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := r.RS.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sandbox})
	if err != nil {
		return "", fmt.Errorf("creating container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	return resp.ContainerId, nil
}

// StartContainer starts a created container.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	if _, err := r.RS.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		return fmt.Errorf("starting container %s: %w", short(id), err)
	}
	return nil
}

// StopContainer stops a container: SIGTERM, then SIGKILL after timeout seconds.
func (r *Runtime) StopContainer(ctx context.Context, id string, timeout int64) error {
	if _, err := r.RS.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: timeout}); err != nil {
		return fmt.Errorf("stopping container %s: %w", short(id), err)
	}
	return nil
}

// RemoveContainer removes a container that is not running.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	if _, err := r.RS.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		return fmt.Errorf("removing container %s: %w", short(id), err)
	}
	return nil
}

// ContainerStatus returns a container's status.
func (r *Runtime) ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	resp, err := r.RS.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, fmt.Errorf("container %s status: %w", short(id), err)
	}
	return resp.Status, nil
}

// ListPodSandboxes lists the sandboxes whose labels match.
func (r *Runtime) ListPodSandboxes(ctx context.Context, labels map[string]string) ([]*runtimeapi.PodSandbox, error) {
	resp, err := r.RS.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: labels}})
	if err != nil {
		return nil, fmt.Errorf("listing pod sandboxes: %w", err)
	}
	return resp.Items, nil
}

// ListContainers lists the containers whose labels match.
func (r *Runtime) ListContainers(ctx context.Context, labels map[string]string) ([]*runtimeapi.Container, error) {
	resp, err := r.RS.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: labels}})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	return resp.Containers, nil
}

// ExecResult is what a command run in a container gave.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int32
}

// execGrace is how long an ExecSync call may take beyond the command's own
// timeout: setting up the exec (and a loaded host) must not count against it.
const execGrace = 30 * time.Second

// ExecSync runs a command in a container and waits for it. The command gets
// timeout (whole seconds, at least one) as the runtime's timeout; the call
// itself may take up to execGrace longer, as the kubelet allows.
func (r *Runtime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (ExecResult, error) {
	secs := int64(max(timeout/time.Second, 1))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+execGrace)
	defer cancel()
	resp, err := r.RS.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: secs})
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec %q in container %s: %w", cmd, short(id), err)
	}
	return ExecResult{Stdout: resp.Stdout, Stderr: resp.Stderr, ExitCode: resp.ExitCode}, nil
}

// ImageStatus returns the image a reference names, or nil when the runtime
// does not have it.
func (r *Runtime) ImageStatus(ctx context.Context, image string) (*runtimeapi.Image, error) {
	resp, err := r.IS.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		return nil, fmt.Errorf("image %q status: %w", image, err)
	}
	return resp.Image, nil
}

// PullImage pulls an image and returns its reference (the image ID).
func (r *Runtime) PullImage(ctx context.Context, image string, auth *runtimeapi.AuthConfig, sandbox *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := r.IS.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}, Auth: auth, SandboxConfig: sandbox})
	if err != nil {
		return "", fmt.Errorf("pulling image %q: %w", image, err)
	}
	return resp.ImageRef, nil
}

// Version asks the runtime its name and version.
func (r *Runtime) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	return r.RS.Version(ctx, &runtimeapi.VersionRequest{})
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
