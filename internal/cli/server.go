package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/node"
	"github.com/ballast-dev/ballast/internal/server"
)

type serverFlags struct {
	dataDir     string
	listen      string
	etcdServers string
	etcdCA      string
	etcdCert    string
	etcdKey     string
	hosts       string
	logLevel    string
}

func (f *serverFlags) register(cmd *cobra.Command, dataDirDefault bool) {
	fs := cmd.Flags()
	if dataDirDefault {
		f.registerDataDir(cmd)
	}
	fs.StringVar(&f.listen, "listen", "127.0.0.1:6443", "host:port to serve the Kubernetes API on (HTTPS)")
	f.registerEtcd(cmd)
	fs.StringVar(&f.hosts, "tls-san", "", "comma-separated extra host names and IPs for the serving certificate")
}

// registerData registers the flags that say where the server's data is.
func (f *serverFlags) registerData(cmd *cobra.Command) {
	f.registerDataDir(cmd)
	f.registerEtcd(cmd)
}

func (f *serverFlags) registerDataDir(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "/var/lib/ballast", "where the server keeps etcd's data, its PKI, tokens and the admin kubeconfig")
}

func (f *serverFlags) registerEtcd(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.etcdServers, "etcd-servers", "", "comma-separated client URLs of an external etcd cluster (default: an embedded etcd in the data dir)")
	fs.StringVar(&f.etcdCA, "etcd-cafile", "", "CA of the external etcd cluster's certificates")
	fs.StringVar(&f.etcdCert, "etcd-certfile", "", "client certificate for the external etcd cluster")
	fs.StringVar(&f.etcdKey, "etcd-keyfile", "", "client key for the external etcd cluster")
}

func (f *serverFlags) options(dataDir string) server.Options {
	o := server.Options{DataDir: dataDir, Listen: f.listen, EtcdCAFile: f.etcdCA, EtcdCertFile: f.etcdCert, EtcdKeyFile: f.etcdKey}
	if f.etcdServers != "" {
		o.EtcdServers = strings.Split(f.etcdServers, ",")
	}
	if f.hosts != "" {
		o.Hosts = strings.Split(f.hosts, ",")
	}
	return o
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a Kubernetes-compatible API server on etcd, where static pods appear as mirror pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(f.logLevel)
			o := f.options(f.dataDir)
			o.Log = log
			s, err := server.Start(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Printf("ballast server ready at %s\nadmin kubeconfig: %s\n  export KUBECONFIG=%s\n", s.URL, s.Kubeconfig, s.Kubeconfig)
			return s.Wait()
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.AddCommand(newTokenCmd(), newBackupCmd(), newRestoreCmd())
	return cmd
}

func newUpCmd() *cobra.Command {
	var nf nodeFlags
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the API server and the node agent in one process, for one machine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(nf.logLevel)
			cfg, err := nf.nodeConfig(cmd, log, node.APIConfig{})
			if err != nil {
				return err
			}
			g, ctx := errgroup.WithContext(cmd.Context())
			o := sf.options(nf.dataDir)
			o.Log = log
			// In one process the API reaches the local agent's socket.
			sock := socketPath(nf.dataDir)
			o.LocalNodes = map[string]server.NodeDialer{cfg.NodeName: func(context.Context, string) (*http.Client, *url.URL, error) {
				return localapi.HTTPClient(sock), &url.URL{Scheme: "http", Host: "ballast"}, nil
			}}
			s, err := server.Start(ctx, o)
			if err != nil {
				return err
			}
			// The node acts as system:node:NAME with a client certificate
			// from the server's CA: in one process, no token needed.
			cfg.API.Client = func(name string) (kubernetes.Interface, error) { return nodeClient(s, name) }
			g.Go(s.Wait)
			g.Go(func() error {
				return node.Run(ctx, cfg, func(*node.Node) {
					fmt.Printf("ready: API at %s\n  export KUBECONFIG=%s\n", s.URL, s.Kubeconfig)
				})
			})
			return g.Wait()
		},
	}
	nf.register(cmd)
	sf.register(cmd, false)
	return cmd
}

// nodeClient is a client acting as the node (system:node:NAME), with a
// client certificate from the server's CA: in one process, no token needed.
func nodeClient(s *server.Server, name string) (kubernetes.Interface, error) {
	u, err := auth.NodeUser(name)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := s.PKI.IssueClientCert(u)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(node.ClientConfig(&rest.Config{
		Host:            s.URL,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.PKI.CAPEM(), CertData: certPEM, KeyData: keyPEM},
	}, Version))
}
