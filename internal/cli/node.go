package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/agent"
	"github.com/ballast-dev/ballast/internal/containerd"
	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/engine"
	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/kubeletapi"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/logs"
	"github.com/ballast-dev/ballast/internal/memtrim"
	"github.com/ballast-dev/ballast/internal/mirror"
	"github.com/ballast-dev/ballast/internal/source"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// nodeFlags are `ballast node`'s flags (also used by `ballast up` later).
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
	backoff       engine.Config
	logMaxSize    int64
	logMaxFiles   int
	logCheck      time.Duration
	imageCreds    string
	pullTimeout   time.Duration
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
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the API server to register with (the node keeps running its pods without it)")
	fs.StringVar(&f.server, "server", "", "URL of the API server (with --token and --certificate-authority, instead of --kubeconfig)")
	fs.StringVar(&f.token, "token", "", "bearer token for --server (from: ballast server token create --node NAME)")
	fs.StringVar(&f.caFile, "certificate-authority", "", "CA certificate of --server")
	fs.IntVar(&f.port, "port", 10250, "port of the kubelet HTTPS API (/healthz, /pods, /containerLogs), served when an API server or --client-ca-file is configured; 0 disables it")
	fs.StringVar(&f.address, "address", "0.0.0.0", "IP address the kubelet HTTPS API listens on")
	fs.StringVar(&f.clientCAFile, "client-ca-file", "", "CA certificates whose client certificates may use the kubelet HTTPS API (for example the API server's CA)")
	fs.StringVar(&f.tlsCert, "tls-cert-file", "", "serving certificate of the kubelet HTTPS API (default: a self-signed one in <data-dir>/kubelet-pki)")
	fs.StringVar(&f.tlsKey, "tls-private-key-file", "", "private key of --tls-cert-file")
}

func (f *nodeAPIFlags) configured() bool { return f.kubeconfig != "" || f.server != "" }

// restConfig is the client configuration of the API server.
func (f *nodeAPIFlags) restConfig() (*rest.Config, error) {
	var cfg *rest.Config
	switch {
	case f.kubeconfig != "" && f.server == "":
		c, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", f.kubeconfig, err)
		}
		cfg = c
	case f.kubeconfig != "":
		return nil, errors.New("give either --kubeconfig or --server (with --token and --certificate-authority), not both")
	default:
		if f.token == "" {
			return nil, errors.New("--server needs --token (from `ballast server token create --node NAME`)")
		}
		cfg = &rest.Config{Host: f.server, BearerToken: f.token, TLSClientConfig: rest.TLSClientConfig{CAFile: f.caFile}}
	}
	cfg.ContentConfig = rest.ContentConfig{ContentType: "application/json"}
	cfg.UserAgent = "ballast-node/" + Version
	cfg.QPS, cfg.Burst = 50, 100
	cfg.Timeout = 0
	return cfg, nil
}

// connectAPI runs the mirror sync against the configured API server and
// serves the kubelet HTTPS API. Neither is ever on the path of a pod:
// failures are logged, the agent runs on.
func connectAPI(ctx context.Context, f *nodeFlags, a *agent.Agent, handler http.Handler, runtimeVersion string, log *slog.Logger) error {
	var client kubernetes.Interface
	if f.api.configured() {
		cfg, err := f.api.restConfig()
		if err != nil {
			return err
		}
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("API client: %w", err)
		}
		client = c
	}
	annotations := map[string]string{}
	port := 0
	if f.api.port > 0 && (client != nil || f.api.clientCAFile != "") {
		var pool *x509.CertPool
		if f.api.clientCAFile != "" {
			pem, err := os.ReadFile(f.api.clientCAFile)
			if err != nil {
				return fmt.Errorf("--client-ca-file: %w", err)
			}
			pool = x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--client-ca-file %s: no PEM certificate in it", f.api.clientCAFile)
			}
		}
		cert, err := kubeletapi.LoadOrCreateServingCert(f.api.tlsCert, f.api.tlsKey, filepath.Join(f.dataDir, "kubelet-pki"), f.nodeName, []string{f.nodeIP, "127.0.0.1"})
		if err != nil {
			return err
		}
		annotations[wellknown.AnnotationServingCertSHA256] = kubeletapi.CertSHA256(cert.Certificate[0])
		addr := net.JoinHostPort(f.api.address, fmt.Sprint(f.api.port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Error("cannot serve the kubelet HTTPS API; pods are not affected, but the API server cannot reach this node for logs", "addr", addr, "err", err)
		} else {
			port = f.api.port
			log.Info("kubelet HTTPS API listening", "addr", ln.Addr().String(), "clientCA", f.api.clientCAFile, "tokenReview", client != nil)
			go func() {
				err := kubeletapi.Serve(ctx, ln, kubeletapi.Options{Handler: handler, ClientCAs: pool, Client: client, NodeName: f.nodeName, Cert: cert, Log: log.With("component", "kubeletapi")})
				if err != nil {
					log.Error("kubelet HTTPS API stopped", "err", err)
				}
			}()
		}
	}
	if client != nil {
		go func() {
			_ = mirror.Run(ctx, mirror.Options{
				Client: client, NodeName: f.nodeName, HostIP: f.nodeIP, RuntimeVersion: runtimeVersion,
				Source: a, Recorder: a.Recorder(), Log: log.With("component", "mirror"),
				KubeletPort: int32(port), NodeAnnotations: annotations,
			})
		}()
	}
	return nil
}

func (f *nodeFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.manifestDir, "pod-manifest-path", "/etc/kubernetes/manifests", "directory of static pod manifests (.yaml, .yml, .json)")
	fs.StringVar(&f.nodeName, "node-name", "", "this node's name, the suffix of every pod name (default: the host name, lowercased)")
	fs.StringVar(&f.nodeName, "hostname-override", "", "alias of --node-name, as the kubelet's flag")
	fs.StringVar(&f.endpoint, "container-runtime-endpoint", "", "CRI endpoint (unix:///path); empty: Ballast starts and supervises its own containerd")
	fs.StringVar(&f.dataDir, "data-dir", "/var/lib/ballast", "where Ballast keeps its state, logs and socket")
	fs.StringVar(&f.podInfraImage, "pod-infra-image", containerd.DefaultSandboxImage, "the sandbox (pause) image of the managed containerd")
	fs.StringVar(&f.imagesDir, "images-dir", "", "directory of OCI or docker-archive tarballs imported into the runtime (default <data-dir>/images)")
	fs.StringVar(&f.config, "config", "", "a KubeletConfiguration file (staticPodPath, containerRuntimeEndpoint are read)")
	fs.StringVar(&f.nodeIP, "node-ip", "", "the node's IP reported as hostIP (default: the address of the default route's interface)")
	fs.StringVar(&f.bridgeName, "cni-bridge", containerd.DefaultBridgeName, "bridge of the managed containerd's pod network")
	fs.StringVar(&f.podCIDR, "pod-cidr", containerd.DefaultSubnet, "subnet of the managed containerd's pod network")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	d := engine.Defaults()
	fs.DurationVar(&f.backoff.BackoffInitial, "crash-backoff-initial", d.BackoffInitial, "first CrashLoopBackOff delay")
	fs.DurationVar(&f.backoff.BackoffMax, "crash-backoff-max", d.BackoffMax, "longest CrashLoopBackOff delay")
	fs.DurationVar(&f.backoff.PullBackoffInitial, "image-pull-backoff-initial", d.PullBackoffInitial, "first ImagePullBackOff delay")
	fs.DurationVar(&f.backoff.PullBackoffMax, "image-pull-backoff-max", d.PullBackoffMax, "longest ImagePullBackOff delay")
	fs.Int64Var(&f.logMaxSize, "container-log-max-size", 10<<20, "rotate a container log file when it grows past this many bytes")
	fs.IntVar(&f.logMaxFiles, "container-log-max-files", 5, "log files kept per container, the current one included")
	fs.StringVar(&f.imageCreds, "image-credential-file", "", "docker config.json with registry credentials for image pulls (default: the first of <data-dir>/config.json, /var/lib/kubelet/config.json, ~/.docker/config.json that exists)")
	fs.DurationVar(&f.pullTimeout, "image-pull-timeout", agent.DefaultPullTimeout, "give up an image pull after this long (ErrImagePull, then back-off)")
	fs.DurationVar(&f.logCheck, "container-log-check-interval", 10*time.Second, "how often container log sizes are checked for rotation")
	for _, n := range []string{"container-log-check-interval", "crash-backoff-initial", "crash-backoff-max", "image-pull-backoff-initial", "image-pull-backoff-max"} {
		_ = fs.MarkHidden(n)
	}
	f.backoff.ErrImagePullShown = d.ErrImagePullShown
}

// kubeletConfig is the part of a KubeletConfiguration Ballast reads.
type kubeletConfig struct {
	APIVersion               string `json:"apiVersion"`
	Kind                     string `json:"kind"`
	StaticPodPath            string `json:"staticPodPath"`
	ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint"`
	ContainerLogMaxSize      string `json:"containerLogMaxSize"`
	ContainerLogMaxFiles     int    `json:"containerLogMaxFiles"`
}

// applyConfig reads --config; flags given on the command line win over it.
func (f *nodeFlags) applyConfig(cmd *cobra.Command, log *slog.Logger) error {
	if f.config == "" {
		return nil
	}
	data, err := os.ReadFile(f.config)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var kc kubeletConfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return fmt.Errorf("--config %s: %w", f.config, err)
	}
	if kc.Kind != "KubeletConfiguration" {
		return fmt.Errorf("--config %s: kind is %q, want KubeletConfiguration (apiVersion kubelet.config.k8s.io/v1beta1)", f.config, kc.Kind)
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
			return runNode(cmd.Context(), cmd, f, nil)
		},
	}
	f.register(cmd)
	f.api.register(cmd)
	return cmd
}

// defaultNodeName is the host name, lowercased, as the kubelet's.
func defaultNodeName() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("cannot read the host name (%v): set --node-name", err)
	}
	return strings.ToLower(strings.TrimSpace(h)), nil
}

// runningNode is what a running node agent tells whoever started it.
type runningNode struct {
	Agent          *agent.Agent
	Name, HostIP   string
	RuntimeVersion string
}

// runNode runs the node agent until ctx ends; ready, if set, is called once
// it runs.
func runNode(ctx context.Context, cmd *cobra.Command, f *nodeFlags, ready func(runningNode)) error {
	log := newLogger(f.logLevel)
	if err := f.applyConfig(cmd, log); err != nil {
		return err
	}
	if f.nodeName == "" {
		n, err := defaultNodeName()
		if err != nil {
			return err
		}
		f.nodeName = n
	}
	if f.imagesDir == "" {
		f.imagesDir = filepath.Join(f.dataDir, "images")
	}
	for _, d := range []string{f.dataDir, f.imagesDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	if f.nodeIP == "" {
		f.nodeIP = defaultHostIP()
	}
	log = log.With("node", f.nodeName)
	log.Info("starting ballast node", "version", Version, "manifests", f.manifestDir, "dataDir", f.dataDir)

	endpoint := f.endpoint
	snapshotter := ""
	if endpoint == "" {
		p, err := containerd.Start(ctx, containerd.Config{
			Dir:          filepath.Join(f.dataDir, "containerd"),
			SandboxImage: f.podInfraImage,
			BridgeName:   f.bridgeName,
			Subnet:       f.podCIDR,
		}, log)
		if err != nil {
			return err
		}
		endpoint = p.Endpoint()
		snapshotter = p.Snapshotter()
		log.Info("containerd ready", "pid", p.Pid(), "adopted", p.Adopted(), "endpoint", endpoint, "log", p.LogPath())
		go func() {
			if err := p.Supervise(ctx); err != nil && ctx.Err() == nil {
				log.Error("containerd supervision ended", "err", err)
			}
		}()
	}
	rt, err := cri.Dial(endpoint)
	if err != nil {
		return err
	}
	defer rt.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	runtimeVersion := ""
	if v, err := rt.WaitReady(wctx); err != nil {
		log.Warn("container runtime not answering yet; pods start once it does", "endpoint", endpoint, "err", err)
	} else {
		log.Info("container runtime", "name", v.RuntimeName, "version", v.RuntimeVersion, "cri", v.RuntimeApiVersion)
		runtimeVersion = v.RuntimeName + "://" + v.RuntimeVersion
	}
	cancel()

	a := agent.New(agent.Options{
		NodeName: f.nodeName, DataDir: f.dataDir, HostIP: f.nodeIP, Runtime: rt,
		RuntimeName: "containerd", Engine: f.backoff, Log: log,
	})
	a.SetImagePulls(agent.PullConfig{CredentialFile: f.imageCreds, Timeout: f.pullTimeout})

	errc := make(chan error, 4)
	go func() {
		errc <- source.Run(ctx, source.Options{Dir: f.manifestDir, NodeName: f.nodeName, Log: log.With("component", "manifests")}, a.Snapshots())
	}()
	im := images.Importer{Socket: rt.Endpoint, Snapshotter: snapshotter}
	go func() {
		w := &images.Watcher{Dir: f.imagesDir, Import: im.Import, OnImported: func(string) { a.ImagesArrived() }, Log: log.With("component", "images")}
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("images directory watch ended; tarballs added now will not be imported", "dir", f.imagesDir, "err", err)
		}
	}()
	sock := filepath.Join(f.dataDir, "ballast.sock")
	handler := localapi.Handler(a, log.With("component", "localapi"))
	go func() {
		errc <- localapi.Serve(ctx, sock, handler)
	}()
	if err := connectAPI(ctx, f, a, handler, runtimeVersion, log); err != nil {
		return err
	}
	// An always-on agent with little garbage: a tighter heap goal costs
	// nothing measurable and keeps its memory small; and the executable's
	// pages only initialization touched go back once start-up is done.
	debug.SetGCPercent(50)
	memtrim.AfterStartup(ctx, 10*time.Second, log)
	go rotateLogs(ctx, a, rt, &logs.Rotator{MaxSize: f.logMaxSize, MaxFiles: f.logMaxFiles}, f.logCheck, log)
	log.Info("node agent running", "socket", sock)
	if ready != nil {
		ready(runningNode{Agent: a, Name: f.nodeName, HostIP: f.nodeIP, RuntimeVersion: runtimeVersion})
	}

	go func() { errc <- a.Run(ctx) }()
	select {
	case <-ctx.Done():
		log.Info("stopping the node agent; pods keep running")
		return nil
	case err := <-errc:
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("a component of the node agent stopped")
		}
		return err
	}
}

// rotateLogs checks container log sizes every interval.
func rotateLogs(ctx context.Context, a *agent.Agent, rt *cri.Runtime, r *logs.Rotator, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var cs []logs.Container
		for _, ref := range a.View().Logs {
			if ref.Running && ref.Current != "" {
				cs = append(cs, logs.Container{ID: ref.CurrentID, Path: ref.Current})
			}
		}
		if err := r.Check(ctx, cs, rt.ReopenLog); err != nil {
			log.Warn("rotating container logs", "err", err)
		}
	}
}

// defaultHostIP is the first IPv4 address of the interface of the default route.
func defaultHostIP() string {
	data, err := os.ReadFile("/proc/net/route")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 2 && f[1] == "00000000" {
				if ifc, err := net.InterfaceByName(f[0]); err == nil {
					if ip := firstIPv4(ifc); ip != "" {
						return ip
					}
				}
			}
		}
	}
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback == 0 && ifc.Flags&net.FlagUp != 0 {
			if ip := firstIPv4(&ifc); ip != "" {
				return ip
			}
		}
	}
	return "127.0.0.1"
}

func firstIPv4(ifc *net.Interface) string {
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
