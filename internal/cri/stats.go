package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

// ContainerStats returns the resource usage (CPU, memory) the runtime reports
// for the containers of node (those carrying wellknown.LabelNode=node).
func (r *Runtime) ContainerStats(ctx context.Context, node string) ([]*runtimeapi.ContainerStats, error) {
	resp, err := r.RS.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{
		Filter: &runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{wellknown.LabelNode: node}},
	})
	if err != nil {
		return nil, fmt.Errorf("listing container stats: %w", err)
	}
	return resp.GetStats(), nil
}

// PodSandboxStats returns the resource usage the runtime reports for the
// sandboxes of node, as whole pods. ok is false when the runtime does not
// implement ListPodSandboxStats (containerd before 1.7 answers
// Unimplemented): callers then sum the containers' figures.
func (r *Runtime) PodSandboxStats(ctx context.Context, node string) (stats []*runtimeapi.PodSandboxStats, ok bool, err error) {
	resp, err := r.RS.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{
		Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{wellknown.LabelNode: node}},
	})
	if status.Code(err) == codes.Unimplemented {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("listing pod sandbox stats: %w", err)
	}
	return resp.GetStats(), true, nil
}

// ContainerPID returns the host PID of a running container's first process,
// from the runtime's verbose status (containerd and CRI-O both report it as
// "pid" in the JSON under info["info"]). The metrics read the container's
// cgroup through it.
func (r *Runtime) ContainerPID(ctx context.Context, id string) (int, error) {
	resp, err := r.RS.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return 0, fmt.Errorf("container %s status: %w", short(id), err)
	}
	return pidOf(resp.GetInfo())
}

// pidOf reads the "pid" of a verbose container status's info.
func pidOf(info map[string]string) (int, error) {
	raw, ok := info["info"]
	if !ok {
		return 0, errors.New("the runtime's verbose container status has no info")
	}
	var v struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return 0, fmt.Errorf("the runtime's verbose container status: %w", err)
	}
	if v.Pid <= 0 {
		return 0, errors.New("the runtime's verbose container status gives no pid (is the container running?)")
	}
	return v.Pid, nil
}
