package cri

import (
	"context"
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
