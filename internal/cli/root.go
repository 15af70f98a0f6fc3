// Package cli owns Ballast's command line: the cobra commands, their flags and
// how they wire the internal packages together. It holds no logic of its own.
package cli

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/config"
)

// NewRoot returns the `ballast` command with its subcommands.
func NewRoot() *cobra.Command { return newRoot(config.DefaultPath) }

// newRoot reads defaultConfig when it exists and --config-file is not given.
func newRoot(defaultConfig string) *cobra.Command {
	root := &cobra.Command{
		Use:           "ballast",
		Short:         "Ballast runs Kubernetes static pods, with or without a control plane",
		SilenceUsage:  true,
		SilenceErrors: true,
		// The generated reference (docs/cli) must not change with the date.
		DisableAutoGenTag: true,
	}
	root.PersistentFlags().String("config-file", "", "YAML file of settings, keyed by flag name (default "+config.DefaultPath+" when it exists; \"\" reads none); flags given here win over it")
	config.Exclude(root.PersistentFlags(), "config-file")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return applyConfigFile(root, cmd, defaultConfig)
	}
	root.AddCommand(newNodeCmd(), newServerCmd(), newUpCmd(), newInitCmd(), newJoinCmd(), newPodsCmd(), newGetCmd(), newLogsCmd(), newEventsCmd(),
		newExecCmd(), newPortForwardCmd(), newTopCmd(), newVersionCmd(), newEtcdCmd())
	return root
}

// Version and Commit are set at build time with -ldflags
// "-X github.com/ballast-dev/ballast/internal/cli.Version=... -X ...Commit=...".
// Without them, the module version and the VCS revision Go recorded are used.
var (
	Version = "dev"
	Commit  = ""
)

// buildVersion is the version and commit this binary was built from.
func buildVersion() (version, commit string) {
	version, commit = Version, Commit
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version, commit
	}
	if version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version // go install github.com/ballast-dev/ballast/cmd/ballast@vX
	}
	if commit == "" {
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if commit != "" && modified {
			commit += "-dirty"
		}
	}
	return version, commit
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Ballast's version and the commit it was built from",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v, c := buildVersion()
			if c == "" {
				c = "unknown (built without -ldflags or VCS information)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ballast %s\ncommit: %s\ngo: %s %s/%s\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
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
