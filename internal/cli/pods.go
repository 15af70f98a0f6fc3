package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/printers"
)

func socketPath(dataDir string) string { return filepath.Join(dataDir, "ballast.sock") }

func newPodsCmd() *cobra.Command {
	var dataDir, output string
	cmd := &cobra.Command{
		Use:   "pods",
		Short: "List the pods the running node agent runs, with their status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := localapi.NewClient(socketPath(dataDir))
			list, err := c.Pods(cmd.Context())
			if err != nil {
				return err
			}
			switch output {
			case "", "wide":
				if err := printers.PrintPods(os.Stdout, list.Items, output == "wide", time.Now(), nil); err != nil {
					return err
				}
				problems, err := c.ManifestProblems(cmd.Context())
				if err != nil {
					return err
				}
				lines, err := c.NodeProblems(cmd.Context())
				if err != nil {
					return err
				}
				for _, p := range problems {
					if len(p.Pods) == 0 {
						lines = append(lines, p.Error)
					}
				}
				return printers.PrintProblems(os.Stdout, lines)
			case "json", "yaml":
				return printers.PrintPodList(os.Stdout, list, output)
			default:
				return fmt.Errorf("unknown output format %q: use wide, json or yaml", output)
			}
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/ballast", "the node agent's data directory")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide, json or yaml")
	return cmd
}

func newLogsCmd() *cobra.Command {
	var dataDir, container, namespace string
	var opts localapi.LogOptions
	cmd := &cobra.Command{
		Use:   "logs POD",
		Short: "Print a container's logs, from the running node agent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := localapi.NewClient(socketPath(dataDir))
			list, err := c.Pods(cmd.Context())
			if err != nil {
				return err
			}
			pod, err := localapi.ResolvePod(list, args[0], namespace)
			if err != nil {
				return err
			}
			name, note, err := localapi.ResolveContainer(pod, container)
			if err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintln(os.Stderr, note)
			}
			return c.Logs(cmd.Context(), pod.Namespace, pod.Name, name, opts, os.Stdout)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dataDir, "data-dir", "/var/lib/ballast", "the node agent's data directory")
	fs.StringVarP(&container, "container", "c", "", "container name (needed when the pod has several)")
	fs.StringVarP(&namespace, "namespace", "n", "", "the pod's namespace (default: any, when the name is unique)")
	fs.BoolVarP(&opts.Follow, "follow", "f", false, "stream new lines")
	fs.Int64Var(&opts.TailLines, "tail", -1, "lines to show from the end (-1: all)")
	fs.BoolVar(&opts.Timestamps, "timestamps", false, "prefix each line with its time")
	fs.BoolVarP(&opts.Previous, "previous", "p", false, "the previous, terminated instance of the container")
	return cmd
}
