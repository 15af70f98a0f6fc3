package cli

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ballast-dev/ballast/internal/bootstrap"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/containerd"
	"github.com/ballast-dev/ballast/internal/node"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/registryauth"
)

// nodeFlags are `ballast node`'s flags (`ballast up` has them too).
type nodeFlags struct {
	manifestDir   string
	nodeName      string
	endpoint      string
	dataDir       string
	podInfraImage string
	imagesDir     string
	config        string
	nodeIP        string
	bridgeName    string
	podCIDR       string
	logLevel      string
	backoff       podplan.Backoff
	logMaxSize    int64
	logMaxFiles   int
	logCheck      time.Duration
	imageCreds    string
	pullTimeout   time.Duration
	secretData    bool
	api           nodeAPIFlags
}

// nodeAPIFlags connect `ballast node` to an API server and serve the
// kubelet's HTTPS API (only on `ballast node`: `ballast up` wires its own).
type nodeAPIFlags struct {
	kubeconfig   string
	server       string
	token        string
	caFile       string
	port         int
	address      string
	clientCAFile string
	tlsCert      string
	tlsKey       string
}

func (f *nodeAPIFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the API server to register with (the node keeps running its pods without it; default: the credentials `ballast join` or `ballast init` left in <data-dir>/node.kubeconfig, if any)")
	fs.StringVar(&f.server, "server", "", "URL of the API server (with --token and --certificate-authority, instead of --kubeconfig)")
	fs.StringVar(&f.token, "token", "", "bearer token for --server (from: ballast server token create --node NAME)")
	fs.StringVar(&f.caFile, "certificate-authority", "", "CA certificate of --server")
	config.Exclude(fs, "token") // a secret: the configuration file is world-readable
	f.registerServing(cmd)
}

// registerServing registers the kubelet HTTPS API's flags (`ballast init`
// and `ballast join` have these, and connect to their API server themselves).
func (f *nodeAPIFlags) registerServing(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.IntVar(&f.port, "port", 10250, "port of the kubelet HTTPS API (/healthz, /pods, /containerLogs), served when an API server or --client-ca-file is configured; 0 disables it")
	fs.StringVar(&f.address, "address", "0.0.0.0", "IP address the kubelet HTTPS API listens on")
	fs.StringVar(&f.clientCAFile, "client-ca-file", "", "CA certificates whose client certificates may use the kubelet HTTPS API (for example the API server's CA)")
	fs.StringVar(&f.tlsCert, "tls-cert-file", "", "serving certificate of the kubelet HTTPS API (default: a self-signed one in <data-dir>/kubelet-pki)")
	fs.StringVar(&f.tlsKey, "tls-private-key-file", "", "private key of --tls-cert-file")
}

func (f *nodeFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.manifestDir, "pod-manifest-path", "/etc/kubernetes/manifests", "directory of static pod manifests (.yaml, .yml, .json)")
	fs.StringVar(&f.nodeName, "node-name", "", "this node's name, the suffix of every pod name (default: the host name, lowercased; --hostname-override, the kubelet's name for it, is an alias)")
	fs.SetNormalizeFunc(hostnameOverride)
	fs.StringVar(&f.endpoint, "container-runtime-endpoint", "", "CRI endpoint (unix:///path); empty: Ballast starts and supervises its own containerd")
	fs.StringVar(&f.dataDir, "data-dir", "/var/lib/ballast", "where Ballast keeps its state, logs and socket")
	fs.StringVar(&f.podInfraImage, "pod-infra-image", containerd.DefaultSandboxImage, "the sandbox (pause) image of the managed containerd")
	fs.StringVar(&f.imagesDir, "images-dir", "", "directory of OCI or docker-archive tarballs imported into the runtime (default <data-dir>/images)")
	fs.StringVar(&f.config, "config", "", "a KubeletConfiguration file (staticPodPath, containerRuntimeEndpoint are read)")
	fs.StringVar(&f.nodeIP, "node-ip", "", "the node's IP reported as hostIP (default: the address of the default route's interface)")
	fs.StringVar(&f.bridgeName, "cni-bridge", containerd.DefaultBridgeName, "bridge of the managed containerd's pod network")
	fs.StringVar(&f.podCIDR, "pod-cidr", containerd.DefaultSubnet, "subnet of the managed containerd's pod network")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	d := podplan.DefaultBackoff()
	fs.DurationVar(&f.backoff.BackoffInitial, "crash-backoff-initial", d.BackoffInitial, "first CrashLoopBackOff delay")
	fs.DurationVar(&f.backoff.BackoffMax, "crash-backoff-max", d.BackoffMax, "longest CrashLoopBackOff delay")
	fs.DurationVar(&f.backoff.PullBackoffInitial, "image-pull-backoff-initial", d.PullBackoffInitial, "first ImagePullBackOff delay")
	fs.DurationVar(&f.backoff.PullBackoffMax, "image-pull-backoff-max", d.PullBackoffMax, "longest ImagePullBackOff delay")
	fs.Int64Var(&f.logMaxSize, "container-log-max-size", 10<<20, "rotate a container log file when it grows past this many bytes")
	fs.IntVar(&f.logMaxFiles, "container-log-max-files", 5, "log files kept per container, the current one included")
	fs.StringVar(&f.imageCreds, "image-credential-file", "", "docker config.json with registry credentials for image pulls (default: the first of <data-dir>/config.json, /var/lib/kubelet/config.json, ~/.docker/config.json that exists)")
	fs.DurationVar(&f.pullTimeout, "image-pull-timeout", registryauth.DefaultTimeout, "give up an image pull after this long (ErrImagePull, then back-off)")
	fs.DurationVar(&f.logCheck, "container-log-check-interval", 10*time.Second, "how often container log sizes are checked for rotation")
	fs.BoolVar(&f.secretData, "publish-secret-data", false, "publish the values of the manifest directory's Secrets in their mirror Secrets in the API (default: keys only, with empty values; the values stay on the node)")
	for _, n := range []string{"container-log-check-interval", "crash-backoff-initial", "crash-backoff-max", "image-pull-backoff-initial", "image-pull-backoff-max"} {
		_ = fs.MarkHidden(n)
	}
	f.backoff.ErrImagePullShown = d.ErrImagePullShown
}

// hostnameOverride makes --hostname-override (the kubelet's flag) the same
// flag as --node-name, so the configuration file and the command line cannot
// set the name twice.
func hostnameOverride(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if name == "hostname-override" {
		return "node-name"
	}
	return pflag.NormalizedName(name)
}

// applyConfig reads --config; flags given on the command line win over it.
func (f *nodeFlags) applyConfig(cmd *cobra.Command, log *slog.Logger) error {
	if f.config == "" {
		return nil
	}
	kc, err := node.ReadKubeletConfig(f.config)
	if err != nil {
		return err
	}
	if kc.StaticPodPath != "" && !cmd.Flags().Changed("pod-manifest-path") {
		f.manifestDir = kc.StaticPodPath
	}
	if kc.ContainerRuntimeEndpoint != "" && !cmd.Flags().Changed("container-runtime-endpoint") {
		f.endpoint = kc.ContainerRuntimeEndpoint
	}
	if kc.ContainerLogMaxFiles > 0 && !cmd.Flags().Changed("container-log-max-files") {
		f.logMaxFiles = kc.ContainerLogMaxFiles
	}
	log.Info("read kubelet configuration", "file", f.config, "staticPodPath", f.manifestDir, "containerRuntimeEndpoint", f.endpoint)
	return nil
}

func newNodeCmd() *cobra.Command { return nodeCmd(&nodeFlags{}) }

func nodeCmd(f *nodeFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run the node agent: keep the static pods of a manifest directory running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(f.logLevel)
			api, err := f.api.apiConfig(f.dataDir, log)
			if err != nil {
				return err
			}
			cfg, err := f.nodeConfig(cmd, log, api)
			if err != nil {
				return err
			}
			return node.Run(cmd.Context(), cfg, nil)
		},
	}
	f.register(cmd)
	f.api.register(cmd)
	return cmd
}

// nodeConfig is the node's configuration from the flags (and --config), with
// api as its API server connection.
func (f *nodeFlags) nodeConfig(cmd *cobra.Command, log *slog.Logger, api node.APIConfig) (node.Config, error) {
	if err := f.applyConfig(cmd, log); err != nil {
		return node.Config{}, err
	}
	if f.nodeName == "" {
		name, err := node.HostNodeName()
		if err != nil {
			return node.Config{}, err
		}
		f.nodeName = name
	}
	api.PublishSecretData = f.secretData
	return node.Config{
		ManifestDir: f.manifestDir, NodeName: f.nodeName, Endpoint: f.endpoint, DataDir: f.dataDir,
		PodInfraImage: f.podInfraImage, BridgeName: f.bridgeName, PodCIDR: f.podCIDR, ImagesDir: f.imagesDir,
		NodeIP: f.nodeIP, Backoff: f.backoff, LogMaxSize: f.logMaxSize, LogMaxFiles: f.logMaxFiles, LogCheck: f.logCheck,
		ImageCredentials: f.imageCreds, PullTimeout: f.pullTimeout, API: api, Log: log, Version: Version,
	}, nil
}

// apiConfig is `ballast node`'s API server connection and kubelet HTTPS API.
// Given no API server, a node that `ballast join` or `ballast init` gave
// credentials (in dataDir) uses them, and trusts its cluster's CA for the
// kubelet API's clients unless told otherwise.
func (f *nodeAPIFlags) apiConfig(dataDir string, log *slog.Logger) (node.APIConfig, error) {
	kubeconfig, clientCA := f.kubeconfig, f.clientCAFile
	if kubeconfig == "" && f.server == "" {
		if c, err := bootstrap.Existing(dataDir); err != nil {
			return node.APIConfig{}, fmt.Errorf("this node's credentials: %w (remove the file and join again)", err)
		} else if c != nil {
			kubeconfig = bootstrap.KubeconfigPath(dataDir)
			if clientCA == "" {
				clientCA = bootstrap.CAPath(dataDir)
			}
			log.Info("connecting to the cluster this node joined", "server", c.Server, "kubeconfig", kubeconfig)
		}
	}
	client, err := node.APIServer{Kubeconfig: kubeconfig, Server: f.server, Token: f.token, CAFile: f.caFile, Version: Version}.Client()
	if err != nil {
		return node.APIConfig{}, err
	}
	return node.APIConfig{Client: client, Port: f.port, Address: f.address, ClientCAFile: clientCA, TLSCertFile: f.tlsCert, TLSKeyFile: f.tlsKey}, nil
}
