package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/server"
)

func newTokenCmd() *cobra.Command {
	var dataDir string
	token := &cobra.Command{
		Use:   "token",
		Short: "Manage the server's tokens: API tokens for nodes, and join tokens for `ballast join`",
	}
	token.PersistentFlags().StringVar(&dataDir, "data-dir", "/var/lib/ballast", "the server's data directory (tokens are in <data-dir>/pki/tokens.json)")
	token.AddCommand(newTokenCreateCmd(&dataDir), newTokenListCmd(&dataDir), newTokenDeleteCmd(&dataDir))
	return token
}

// openTokens opens the token file of the server's data dir.
func openTokens(dataDir string) (*auth.TokenStore, error) {
	path := server.TokensPath(dataDir)
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("no server data in %s (%v): run `ballast server` or `ballast init` with --data-dir %s once first, or pass the right --data-dir", dataDir, err, dataDir)
	}
	return auth.OpenTokens(path)
}

func newTokenCreateCmd(dataDir *string) *cobra.Command {
	var node string
	var join bool
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create (--node NAME | --join)",
		Short: "Create a token: an API token a node agent uses (--node), or a join token for `ballast join` (--join)",
		Long: `Create a token and print it (only now: the server keeps only its hash).

With --node NAME: an API token for user system:node:NAME, for ` + "`ballast node --server URL --token T`" + `.
With --join: a bootstrap token for ` + "`ballast join`" + `, good for nothing but exchanging it for a
node's own certificate, until it expires (--ttl, default 24h). The join command is printed to
standard error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (node == "") == !join {
				return fmt.Errorf("give --node NAME (an API token for that node) or --join (a bootstrap token for `ballast join`)")
			}
			ts, err := openTokens(*dataDir)
			if err != nil {
				return err
			}
			if join {
				if !cmd.Flags().Changed("ttl") {
					ttl = 24 * time.Hour
				}
				t, info, err := ts.CreateJoinToken(ttl)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), t)
				hash, url := joinTarget(*dataDir)
				fmt.Fprintf(cmd.ErrOrStderr(), "join token %s, valid until %s; shown only now. On the joining node (with the address it reaches the server at):\n  ballast join %s --token %s --ca-cert-hash %s\n",
					info.ID, info.Expires.Local().Format(time.RFC3339), url, t, hash)
				return nil
			}
			u, err := auth.NodeUser(node)
			if err != nil {
				return err
			}
			t, info, err := ts.CreateWithTTL(u, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), t)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s for node %q (user %s), %s; it is shown only now. CA: %s\n",
				info.ID, node, u.Name, expiry(info, time.Now()), filepath.Join(*dataDir, "pki", auth.CACertFile))
			return nil
		},
	}
	create.Flags().StringVar(&node, "node", "", "the node's name, for an API token")
	create.Flags().BoolVar(&join, "join", false, "a join token for `ballast join`")
	create.Flags().DurationVar(&ttl, "ttl", 0, "the token's lifetime (join tokens: default 24h, never 0; API tokens: default 0, no expiry)")
	return create
}

// joinTarget is the CA's pin and the server's URL, as the admin kubeconfig
// names it (another node may need another address of the same server).
func joinTarget(dataDir string) (hash, url string) {
	hash, url = "<sha256:hash of the CA>", "https://HOST:PORT"
	if ca, err := auth.ReadCertificate(filepath.Join(dataDir, "pki", auth.CACertFile)); err == nil {
		hash = auth.CAHash(ca)
	}
	if kc, err := clientcmd.LoadFromFile(filepath.Join(dataDir, "kubeconfig")); err == nil {
		for _, c := range kc.Clusters {
			url = c.Server
		}
	}
	return hash, url
}

func expiry(i auth.TokenInfo, now time.Time) string {
	switch {
	case i.Expires.IsZero():
		return "never expires"
	case i.Expired(now):
		return "expired " + i.Expires.Local().Format(time.RFC3339)
	default:
		return "expires " + i.Expires.Local().Format(time.RFC3339)
	}
}

func newTokenListCmd(dataDir *string) *cobra.Command {
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the server's tokens (never their secrets): ID, kind, user, created, expiry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := openTokens(*dataDir)
			if err != nil {
				return err
			}
			infos, err := ts.List()
			if err != nil {
				return err
			}
			now := time.Now()
			switch output {
			case "json":
				type item struct {
					ID      string     `json:"id"`
					Kind    string     `json:"kind"`
					User    string     `json:"user"`
					Groups  []string   `json:"groups,omitempty"`
					Created time.Time  `json:"created"`
					Expires *time.Time `json:"expires,omitempty"`
					Expired bool       `json:"expired"`
				}
				items := []item{}
				for _, i := range infos {
					it := item{ID: i.ID, Kind: tokenKind(i), User: i.User.Name, Groups: i.User.Groups, Created: i.Created, Expired: i.Expired(now)}
					if !i.Expires.IsZero() {
						it.Expires = &i.Expires
					}
					items = append(items, it)
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(items)
			case "":
			default:
				return fmt.Errorf("unknown output format %q: use json, or nothing for a table", output)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(w, "ID\tKIND\tUSER\tCREATED\tEXPIRES")
			for _, i := range infos {
				exp := "never"
				if !i.Expires.IsZero() {
					exp = i.Expires.Local().Format(time.RFC3339)
					if i.Expired(now) {
						exp += " (expired)"
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", i.ID, tokenKind(i), i.User.Name, i.Created.Local().Format(time.RFC3339), exp)
			}
			return w.Flush()
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "", "output format: json, or a table")
	return list
}

func tokenKind(i auth.TokenInfo) string {
	if i.Purpose == auth.PurposeJoin {
		return "join"
	}
	return "api"
}

func newTokenDeleteCmd(dataDir *string) *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID|USER...",
		Aliases: []string{"revoke"},
		Short:   "Revoke tokens, by ID (from `token list`) or by user (every token of system:node:NAME, say)",
		Long: `Revoke tokens, by ID (from ` + "`ballast server token list`" + `) or by user. A running server refuses a
revoked API token within a second, and a revoked join token at once. Certificates a join already
issued stay valid: to cut a joined node off, remove its Node and reissue the cluster's CA.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := openTokens(*dataDir)
			if err != nil {
				return err
			}
			var missing []string
			for _, id := range args {
				n, err := ts.Revoke(id)
				if err != nil {
					return err
				}
				if n == 0 {
					missing = append(missing, id)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked %d token(s) matching %s\n", n, id)
			}
			if len(missing) > 0 {
				return fmt.Errorf("no token with ID or user %s: see `ballast server token list --data-dir %s`", strings.Join(missing, ", "), *dataDir)
			}
			return nil
		},
	}
}
