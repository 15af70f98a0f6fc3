package cli

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"runtime"

	"github.com/spf13/cobra"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/ballast-dev/ballast/internal/hostinfo"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/nodemetrics"
	"github.com/ballast-dev/ballast/internal/printers"
)

func newTopCmd() *cobra.Command {
	var dataDir string
	top := &cobra.Command{
		Use:   "top",
		Short: "Show the CPU and memory the node and its pods use, as kubectl top does, with no API server",
	}
	top.PersistentFlags().StringVar(&dataDir, "data-dir", "/var/lib/ballast", "the node agent's data directory (its socket is <data-dir>/ballast.sock)")
	node := &cobra.Command{
		Use:   "node",
		Short: "Show the node's CPU and memory use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := localSummary(cmd.Context(), dataDir)
			if err != nil {
				return err
			}
			u, ok := printers.NodeUsage(s)
			if !ok {
				return fmt.Errorf("the node agent reports no CPU or memory figures for node %s", s.Node.NodeName)
			}
			return printers.PrintTopNodes(os.Stdout, []printers.Usage{u}, int64(runtime.NumCPU()), hostinfo.MemoryBytes())
		},
	}
	var namespace string
	var containers bool
	pod := &cobra.Command{
		Use:   "pod",
		Short: "Show the CPU and memory use of the node's pods (of every namespace unless -n is given)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := localSummary(cmd.Context(), dataDir)
			if err != nil {
				return err
			}
			rows := printers.PodUsage(s, namespace, containers)
			if len(rows) == 0 {
				fmt.Fprintln(os.Stderr, "No resources found: no running pod reports metrics yet")
				return nil
			}
			return printers.PrintTopPods(os.Stdout, rows, containers, namespace == "")
		},
	}
	pod.Flags().StringVarP(&namespace, "namespace", "n", "", "only the pods of this namespace")
	pod.Flags().BoolVar(&containers, "containers", false, "show each container's use")
	top.AddCommand(node, pod)
	return top
}

// localSummary reads the running agent's /stats/summary over its socket.
func localSummary(ctx context.Context, dataDir string) (*statsapi.Summary, error) {
	sock := socketPath(dataDir)
	s, err := nodemetrics.GetSummary(ctx, localapi.HTTPClient(sock), &url.URL{Scheme: "http", Host: "ballast"})
	if err != nil {
		return nil, fmt.Errorf("reading the node's stats from %s (is `ballast node` running with --data-dir %s? the socket is root-only): %w", sock, dataDir, err)
	}
	return s, nil
}
