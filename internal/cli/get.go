package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/printers"
)

func newGetCmd() *cobra.Command {
	var dataDir, output, namespace string
	cmd := &cobra.Command{
		Use:   "get configmaps|secrets",
		Short: "List the node's ConfigMaps or Secrets (from its manifest directory), their files and the pods that use them; never a secret value",
		Long: `List the ConfigMaps or Secrets the running node agent read from its manifest
directory: the file that defines each, its keys, and the pods that use it,
with objects the pods reference that no file defines. Secrets show their
keys, never their values (-o yaml shows every key with an empty value).`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"configmaps", "secrets"},
		RunE: func(cmd *cobra.Command, args []string) error {
			c := localapi.NewClient(socketPath(dataDir))
			switch args[0] {
			case "configmaps", "configmap", "cm":
				list, err := c.ConfigMaps(cmd.Context())
				if err != nil {
					return err
				}
				if output == "" {
					return printers.PrintConfigMaps(os.Stdout, list.Items, namespace)
				}
				out := list.DeepCopy()
				out.Items = nil
				for _, cm := range list.Items {
					if namespace == "" || cm.Namespace == namespace {
						out.Items = append(out.Items, cm)
					}
				}
				return printers.PrintAny(os.Stdout, out, output)
			case "secrets", "secret":
				list, err := c.Secrets(cmd.Context())
				if err != nil {
					return err
				}
				if output == "" {
					return printers.PrintSecrets(os.Stdout, list.Items, namespace)
				}
				out := &corev1.SecretList{TypeMeta: list.TypeMeta}
				for _, s := range list.Items {
					if namespace == "" || s.Namespace == namespace {
						out.Items = append(out.Items, s)
					}
				}
				return printers.PrintAny(os.Stdout, out, output)
			}
			return fmt.Errorf("unknown kind %q: ballast get lists configmaps (cm) or secrets", args[0])
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dataDir, "data-dir", "/var/lib/ballast", "the node agent's data directory")
	fs.StringVarP(&namespace, "namespace", "n", "", "only this namespace (default: all)")
	fs.StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a table)")
	return cmd
}
