package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/bootstrap"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/node"
)

func newJoinCmd() *cobra.Command {
	var nf nodeFlags
	var api nodeAPIFlags
	var token, caHash string
	cmd := &cobra.Command{
		Use:   "join https://HOST:PORT --token T --ca-cert-hash sha256:H",
		Short: "Join this node to a cluster (`ballast init` printed the command), then run the node agent",
		Long: `Join this node to the cluster whose API server is at https://HOST:PORT, as kubeadm join does:
fetch the server's CA and refuse it unless its hash is --ca-cert-hash; only then, over TLS that
trusts that CA alone, exchange the bootstrap token (` + "`ballast server token create --join`" + `) and a
certificate request for this node's own client certificate (its key never leaves the node); write
<data-dir>/node.kubeconfig (0600) and <data-dir>/node-ca.crt; then run the node agent, which
registers the Node and its mirror pods.

Running it again on a node that joined keeps its credentials (the token may have expired by then);
a node that joined another cluster is refused. ` + "`ballast node`" + ` with the same --data-dir (the
ballast-node service, say) reconnects with these credentials.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log := newLogger(nf.logLevel)
			cfg, err := nf.nodeConfig(cmd, log, node.APIConfig{})
			if err != nil {
				return err
			}
			server, err := bootstrap.ParseServerURL(args[0])
			if err != nil {
				return err
			}
			pin, err := auth.ParseCAHash(caHash)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			keep, err := bootstrap.Joined(cfg.DataDir, server, pin, cfg.NodeName, time.Now())
			if err != nil {
				return err
			}
			if keep {
				fmt.Fprintf(out, "node %s already joined %s: keeping its credentials (%s)\n", cfg.NodeName, server, bootstrap.KubeconfigPath(cfg.DataDir))
			} else {
				creds, err := bootstrap.Join(cmd.Context(), bootstrap.JoinOptions{Server: server, Token: token, CAHash: pin, NodeName: cfg.NodeName})
				if err != nil {
					return err
				}
				if err := creds.Write(cfg.DataDir); err != nil {
					return err
				}
				fmt.Fprintf(out, "joined %s as node %s (credentials: %s)\n", server, cfg.NodeName, bootstrap.KubeconfigPath(cfg.DataDir))
			}
			cfg.API, err = api.apiConfig(cfg.DataDir, log)
			if err != nil {
				return err
			}
			return node.Run(cmd.Context(), cfg, func(n *node.Node) {
				fmt.Fprintf(out, "ready: node agent of %s running (Ctrl-C stops the agent only)\n", n.Name)
			})
		},
	}
	nf.register(cmd)
	api.registerServing(cmd)
	cmd.Flags().StringVar(&token, "token", "", "bootstrap token, from `ballast init` or `ballast server token create --join`")
	cmd.Flags().StringVar(&caHash, "ca-cert-hash", "", "sha256:<hex> of the server CA's public key, from the same place: the CA is refused unless it matches")
	config.Exclude(cmd.Flags(), "token", "ca-cert-hash")
	return cmd
}
