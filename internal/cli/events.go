package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/printers"
)

func newEventsCmd() *cobra.Command {
	var dataDir, output string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List what happened to the node agent's pods (pulls, starts, kills, back-offs, failed probes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := localapi.NewClient(socketPath(dataDir)).Events(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" || output == "yaml" {
				return printers.PrintAny(os.Stdout, list, output)
			}
			if output != "" {
				return fmt.Errorf("unknown output format %q: use json or yaml", output)
			}
			if len(list.Items) == 0 {
				fmt.Println("No events found.")
				return nil
			}
			now := time.Now()
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "LAST SEEN\tTYPE\tREASON\tOBJECT\tMESSAGE")
			for _, e := range list.Items {
				obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
				seen := printers.Age(e.LastTimestamp.Time, now)
				if e.Count > 1 {
					seen += fmt.Sprintf(" (x%d)", e.Count)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", seen, e.Type, e.Reason, obj, e.Message)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/ballast", "the node agent's data directory")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml")
	return cmd
}
