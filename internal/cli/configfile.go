package cli

import (
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ballast-dev/ballast/internal/config"
)

// fileCommands are the commands whose flags are the configuration file's
// keys: the ones that run Ballast. Every other command that has a flag of
// the same name (data-dir, say) takes it from the file too.
var fileCommands = []string{"node", "server", "up", "init", "join"}

// configKeys lists the configuration file's keys, each with the commands
// that have it.
func configKeys(root *cobra.Command) []config.Key {
	var keys []config.Key
	index := map[string]int{}
	for _, c := range root.Commands() {
		if !slices.Contains(fileCommands, c.Name()) {
			continue
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if config.Excluded(f) || f.Name == "help" {
				return
			}
			i, ok := index[f.Name]
			if !ok {
				i = len(keys)
				index[f.Name] = i
				keys = append(keys, config.Key{Flag: f})
			}
			keys[i].Commands = append(keys[i].Commands, c.Name())
		})
	}
	return keys
}

// applyConfigFile reads the configuration file (--config-file, or
// defaultPath when it exists) into cmd's flags that the command line left
// unset.
func applyConfigFile(root, cmd *cobra.Command, defaultPath string) error {
	path, explicit := defaultPath, false
	if f := cmd.Flags().Lookup("config-file"); f != nil && f.Changed {
		path, explicit = f.Value.String(), true
	}
	if path == "" {
		return nil
	}
	file, err := config.Read(path, !explicit)
	if err != nil {
		return err
	}
	var names []string
	for _, k := range configKeys(root) {
		names = append(names, k.Flag.Name)
	}
	return file.Apply(cmd.Flags(), names)
}
