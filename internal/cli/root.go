// Package cli owns Ballast's command line: the cobra commands, their flags and
// how they wire the internal packages together. It holds no logic of its own.
package cli

import (
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// NewRoot returns the `ballast` command with its subcommands.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "ballast",
		Short:         "Ballast runs Kubernetes static pods, with or without a control plane",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newNodeCmd(), newServerCmd(), newUpCmd(), newPodsCmd(), newLogsCmd(), newEventsCmd(),
		newExecCmd(), newPortForwardCmd(), newTopCmd(), newVersionCmd())
	return root
}

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...".
var Version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Ballast's version",
		Run: func(cmd *cobra.Command, _ []string) {
			cmd.Println("ballast", Version)
		},
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	routeKlog(log)
	return log
}
