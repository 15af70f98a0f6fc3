package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/controlplane"
	"github.com/ballast-dev/ballast/internal/hostinfo"
	"github.com/ballast-dev/ballast/internal/node"
)

func newInitCmd() *cobra.Command {
	var nf nodeFlags
	var sf serverFlags
	var api nodeAPIFlags
	var etcdMode string
	var tokenTTL time.Duration
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Make this node a control plane: the API server (and etcd) as static pods that the node agent runs",
		Long: `Make this node a control plane, as kubeadm init does, with Ballast's own API server as a
static pod: write the manifest of ballast-server (and, with --etcd=pod, of an etcd pod the server
waits for) into the manifest directory, with an image built from this binary and put into the
images directory (no registry needed); make the PKI and tokens under <data-dir>/pki, the admin
kubeconfig <data-dir>/kubeconfig and this node's credentials; then run the node agent, which starts
the server, registers its Node in it and shows ballast-server-<node> as a mirror pod in kube-system.

It prints the admin kubeconfig's path and the command that joins another node. Running it again
with the same flags changes nothing but the join token; it refuses a manifest directory or data dir
that belongs to another control plane. Stopping it stops the agent only: the control plane keeps
running, and ` + "`ballast node`" + ` with the same --data-dir and --pod-manifest-path (the ballast-node service,
say) runs the agent again with this node's credentials.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(nf.logLevel)
			cfg, err := nf.nodeConfig(cmd, log, node.APIConfig{})
			if err != nil {
				return err
			}
			if etcdMode != "embedded" && etcdMode != "pod" {
				return fmt.Errorf("--etcd %q: want embedded (in the server's pod) or pod (a static pod of its own)", etcdMode)
			}
			dataDir, err := filepath.Abs(cfg.DataDir)
			if err != nil {
				return err
			}
			cfg.DataDir = dataDir
			imagesDir := cfg.ImagesDir
			if imagesDir == "" {
				imagesDir = filepath.Join(dataDir, "images")
			}
			nodeIP := cfg.NodeIP
			if nodeIP == "" {
				nodeIP = hostinfo.DefaultIPv4()
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding the running binary, to build the control plane's image from: %w", err)
			}
			so := sf.options(dataDir)
			res, err := controlplane.Prepare(controlplane.Options{
				Config: controlplane.Config{
					DataDir: dataDir, Listen: so.Listen, Hosts: so.Hosts, EtcdPod: etcdMode == "pod",
					EtcdServers: so.EtcdServers, EtcdCAFile: so.EtcdCAFile, EtcdCertFile: so.EtcdCertFile, EtcdKeyFile: so.EtcdKeyFile,
					LogLevel: nf.logLevel,
				},
				ManifestDir: cfg.ManifestDir, ImagesDir: imagesDir, NodeName: cfg.NodeName, NodeIP: nodeIP,
				Executable: exe, JoinTTL: tokenTTL,
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "control plane of node %s: API server at %s, run as static pods from %v\n", cfg.NodeName, res.URL, res.Manifests)
			fmt.Fprintf(out, "admin kubeconfig: %s\n  export KUBECONFIG=%s\n", res.Kubeconfig, res.Kubeconfig)
			if res.JoinToken != "" {
				fmt.Fprintf(out, "to join another node (the token is valid until %s):\n  %s\n", res.JoinExpires.Local().Format(time.RFC3339), res.JoinCommand())
			}
			cfg.API, err = api.apiConfig(dataDir, log)
			if err != nil {
				return err
			}
			return node.Run(cmd.Context(), cfg, func(n *node.Node) {
				fmt.Fprintf(out, "ready: node agent running; it starts %s-%s in kube-system (Ctrl-C stops the agent only)\n", controlplane.ServerPod, n.Name)
			})
		},
	}
	nf.register(cmd)
	sf.register(cmd, false)
	api.registerServing(cmd)
	cmd.Flags().StringVar(&etcdMode, "etcd", "embedded", "where etcd runs: embedded (in the server's pod) or pod (a static pod of its own, which the server waits for); --etcd-servers uses an external cluster instead")
	cmd.Flags().DurationVar(&tokenTTL, "token-ttl", 24*time.Hour, "lifetime of the join token printed (0: create none)")
	config.Exclude(cmd.Flags(), "token-ttl")
	return cmd
}
