package cri

import (
	"context"
	"fmt"
	"net/url"
	"sort"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

// The CRI streaming calls, as the kubelet makes them: the runtime answers
// each with a one-time URL on its own streaming server (containerd's is on
// 127.0.0.1), where the caller proxies the client's upgrade request
// (SPDY or WebSocket, remotecommand and portforward protocols).

// Exec asks the runtime for a URL that runs cmd in a running container.
func (r *Runtime) Exec(ctx context.Context, containerID string, cmd []string, tty, stdin, stdout, stderr bool) (*url.URL, error) {
	resp, err := r.RS.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: containerID, Cmd: cmd, Tty: tty, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return nil, err
	}
	return streamURL(resp.Url)
}

// Attach asks the runtime for a URL that attaches to a running container's
// main process.
func (r *Runtime) Attach(ctx context.Context, containerID string, tty, stdin, stdout, stderr bool) (*url.URL, error) {
	resp, err := r.RS.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: containerID, Tty: tty, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return nil, err
	}
	return streamURL(resp.Url)
}

// PortForward asks the runtime for a URL that forwards connections to ports
// in a pod sandbox's network namespace (ports may be empty: the client
// names them on each stream, as SPDY port forwarding does).
func (r *Runtime) PortForward(ctx context.Context, sandboxID string, ports []int32) (*url.URL, error) {
	resp, err := r.RS.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sandboxID, Port: ports})
	if err != nil {
		return nil, err
	}
	return streamURL(resp.Url)
}

// ReadySandbox returns the ID of the newest ready sandbox of the pod with
// uid, as the kubelet picks it for port forwarding, or "" if it has none.
func (r *Runtime) ReadySandbox(ctx context.Context, uid string) (string, error) {
	resp, err := r.RS.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{wellknown.LabelPodUID: uid},
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	}})
	if err != nil {
		return "", fmt.Errorf("listing the sandboxes of pod %s: %w", uid, err)
	}
	items := resp.Items
	if len(items) == 0 {
		return "", nil
	}
	sort.Slice(items, func(i, j int) bool { return items[i].CreatedAt > items[j].CreatedAt })
	return items[0].Id, nil
}

func streamURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the runtime's streaming URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("the runtime's streaming URL %q is not http(s)", raw)
	}
	return u, nil
}
