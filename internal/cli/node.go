package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/agent"
	"github.com/ballast-dev/ballast/internal/containerd"
	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/engine"
	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/logs"
	"github.com/ballast-dev/ballast/internal/memtrim"
	"github.com/ballast-dev/ballast/internal/source"
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
	go func() {
		errc <- localapi.Serve(ctx, sock, localapi.Handler(a, log.With("component", "localapi")))
	}()
	go func() {
		// Start-up is done by then: give back the pages of the executable
		// that only initialization touched (see internal/memtrim).
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			n, err := memtrim.Executable()
			log.Debug("trimmed start-up pages", "advisedBytes", n, "err", err)
		}
	}()
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
