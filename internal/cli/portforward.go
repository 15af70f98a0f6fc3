package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/streaming"
)

func newPortForwardCmd() *cobra.Command {
	var target podTarget
	var addresses []string
	cmd := &cobra.Command{
		Use:   "port-forward POD [LOCAL_PORT:]REMOTE_PORT...",
		Short: "Forward local ports to a pod of the running node agent (no API server needed)",
		Long: `Forward local ports to a pod, as kubectl port-forward does, through the node
agent's root-only socket: no API server is involved. Each port is
LOCAL:REMOTE, PORT (the same on both sides) or :REMOTE (a free local port);
REMOTE may be a container port's name. It runs until interrupted.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			quietKlog()
			ctx := cmd.Context()
			pod, err := target.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			if pod.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("unable to forward port because pod %s/%s is not running. Current status=%s", pod.Namespace, pod.Name, pod.Status.Phase)
			}
			ports, err := translatePorts(pod, args[1:])
			if err != nil {
				return err
			}
			c := streaming.NewSocketClient(socketPath(target.dataDir))
			err = c.ForwardPorts(ctx, pod.Namespace, pod.Name, addresses, ports, make(chan struct{}), os.Stdout, os.Stderr)
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("port-forward to pod %s/%s: %w", pod.Namespace, pod.Name, err)
			}
			return nil
		},
	}
	target.register(cmd)
	cmd.Flags().StringSliceVar(&addresses, "address", []string{"localhost"}, "addresses to listen on (comma-separated); localhost is 127.0.0.1 and ::1")
	return cmd
}

// translatePorts turns named remote ports into numbers from the pod's
// containers, as kubectl port-forward does.
func translatePorts(pod *corev1.Pod, ports []string) ([]string, error) {
	out := make([]string, 0, len(ports))
	for _, p := range ports {
		local, remote, hasLocal := strings.Cut(p, ":")
		if !hasLocal {
			remote = local
		}
		if _, err := strconv.ParseUint(remote, 10, 16); err == nil {
			out = append(out, p)
			continue
		}
		n, ok := namedPort(pod, remote)
		if !ok {
			return nil, fmt.Errorf("port %q: pod %s/%s has no container port named %q", p, pod.Namespace, pod.Name, remote)
		}
		if !hasLocal {
			local = strconv.Itoa(int(n))
		}
		out = append(out, fmt.Sprintf("%s:%d", local, n))
	}
	return out, nil
}

func namedPort(pod *corev1.Pod, name string) (int32, bool) {
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == name {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}
