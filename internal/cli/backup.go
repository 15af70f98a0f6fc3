package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/storage/etcd"
)

func newBackupCmd() *cobra.Command {
	var f serverFlags
	var out string
	cmd := &cobra.Command{
		Use:   "backup -o FILE",
		Short: "Write a snapshot of the server's etcd (every object) to a file, through etcd's snapshot API",
		Long: `Write a snapshot of the server's etcd to FILE (mode 0600), through etcd's snapshot API: a
consistent copy of every object, with its checksum. The server may be running (its embedded etcd is
reached on <data-dir>/etcd/etcd.sock) or not (the data is opened for the copy); with --etcd-servers,
the first member of the external cluster is asked. The PKI (<data-dir>/pki: the CA, its key and the
tokens) is not in the snapshot: copy it too. ` + "`ballast server restore`" + ` reads the file back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("-o FILE is required: where to write the snapshot")
			}
			o := f.options(f.dataDir)
			version, err := etcd.Backup(cmd.Context(), etcd.Config{
				DataDir: filepath.Join(f.dataDir, "etcd"), Endpoints: o.EtcdServers,
				CAFile: o.EtcdCAFile, CertFile: o.EtcdCertFile, KeyFile: o.EtcdKeyFile, Log: newLogger(f.logLevel),
			}, out)
			if err != nil {
				return err
			}
			fi, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d bytes, etcd %s)\n", out, fi.Size(), version)
			return nil
		},
	}
	f.registerData(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", "", "the snapshot file to write")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

func newRestoreCmd() *cobra.Command {
	var dataDir, logLevel string
	cmd := &cobra.Command{
		Use:   "restore FILE --data-dir NEW",
		Short: "Make a new data dir's etcd from a snapshot of `ballast server backup`",
		Long: `Make <data-dir>/etcd from a snapshot written by ` + "`ballast server backup`" + `, checked against its
checksum. The data dir's etcd must not exist yet: restore into a new data dir (copy the old
<data-dir>/pki into it to keep the CA, so that every kubeconfig and node credential keeps working),
then start ` + "`ballast server`" + ` (or ` + "`ballast init`" + `) on it. Revisions are moved forward, so clients that
watched the old server list again rather than miss changes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := filepath.Join(dataDir, "etcd")
			if err := etcd.Restore(args[0], dir, newLogger(logLevel)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s into %s\n", args[0], dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/ballast", "the data dir to restore into (its etcd must not exist yet)")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}

// newEtcdCmd runs the etcd member of `ballast init --etcd=pod`'s etcd pod.
func newEtcdCmd() *cobra.Command {
	var dataDir, logLevel string
	cmd := &cobra.Command{
		Use:    "etcd --data-dir DIR",
		Short:  "Run an etcd member alone, serving clients on DIR/etcd.sock (the etcd static pod of `ballast init --etcd=pod`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return etcd.Serve(cmd.Context(), dataDir, newLogger(logLevel), nil)
		},
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "", "etcd's data directory")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	_ = cmd.MarkPersistentFlagRequired("data-dir")
	health := &cobra.Command{
		Use:   "health --data-dir DIR",
		Short: "Exit 0 when the etcd member of DIR answers on its socket (the etcd pod's readiness probe)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
			defer cancel()
			return etcd.Health(ctx, dataDir)
		},
	}
	cmd.AddCommand(health)
	return cmd
}
