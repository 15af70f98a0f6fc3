// Package node owns assembling `ballast node` (and the node half of `ballast
// up`): the container runtime (a managed containerd, or an endpoint), the
// agent, the manifest source, the images directory, the root-only local API
// socket, and, with an API server, the mirror sync and the kubelet HTTPS
// API; plus container log rotation. One errgroup owns every goroutine, and
// Run returns only once all of them have stopped. Pods keep running.
package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"

	"github.com/ballast-dev/ballast/internal/agent"
	"github.com/ballast-dev/ballast/internal/cgroups"
	"github.com/ballast-dev/ballast/internal/containerd"
	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/diskspace"
	"github.com/ballast-dev/ballast/internal/hostinfo"
	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/kubeletapi"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/logs"
	"github.com/ballast-dev/ballast/internal/memtrim"
	"github.com/ballast-dev/ballast/internal/mirror"
	"github.com/ballast-dev/ballast/internal/nodemetrics"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/registryauth"
	"github.com/ballast-dev/ballast/internal/source"
	"github.com/ballast-dev/ballast/internal/streaming"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// The agent is found by type assertion by the parts it feeds: say here, at
// compile time, that it is each of them.
var (
	_ localapi.Provider        = (*agent.Agent)(nil)
	_ localapi.EventProvider   = (*agent.Agent)(nil)
	_ localapi.ProblemProvider = (*agent.Agent)(nil)
	_ localapi.ConfigProvider  = (*agent.Agent)(nil)
	_ mirror.Source            = (*agent.Agent)(nil)
	_ mirror.ProblemSource     = (*agent.Agent)(nil)
	_ mirror.RuntimeReporter   = (*agent.Agent)(nil)
	_ mirror.ConfigSource      = (*agent.Agent)(nil)
)

// Config is everything `ballast node` is told.
type Config struct {
	ManifestDir string
	// NodeName is the suffix of every pod name (default: the host name, lowercased).
	NodeName string
	// Endpoint is the CRI endpoint; empty starts and supervises a containerd
	// under DataDir, with PodInfraImage, BridgeName and PodCIDR.
	Endpoint                           string
	DataDir                            string
	PodInfraImage, BridgeName, PodCIDR string
	ImagesDir                          string // default DataDir/images
	NodeIP                             string // default: the default route's interface's address
	Backoff                            podplan.Backoff
	LogMaxSize                         int64
	LogMaxFiles                        int
	LogCheck                           time.Duration
	ImageCredentials                   string
	PullTimeout                        time.Duration
	API                                APIConfig
	Log                                *slog.Logger
	// Version is reported as the node's kubelet version and user agent.
	Version string
}

// APIConfig connects the node to an API server and serves the kubelet's
// HTTPS API. The API is never on the path of a pod: failures are logged,
// pods run on.
type APIConfig struct {
	// Client returns a client acting as the node, once the node's name is
	// known; nil runs the node with no API server.
	Client func(nodeName string) (kubernetes.Interface, error)
	// Port of the kubelet HTTPS API (0: not served); it is served when there
	// is an API server or ClientCAFile is set.
	Port         int
	Address      string
	ClientCAFile string
	// TLSCertFile and TLSKeyFile are the serving certificate (default: a
	// self-signed one under DataDir/kubelet-pki).
	TLSCertFile, TLSKeyFile string
	// PublishSecretData puts the values of the node's Secrets in their
	// mirror Secrets (default: keys only).
	PublishSecretData bool
}

// Node is a running node agent, for whoever started it.
type Node struct {
	Agent          *agent.Agent
	Name, HostIP   string
	RuntimeVersion string
	// Metrics are the node's metrics (its observers: ObservePodStart).
	Metrics *nodemetrics.Metrics
}

// metricsMount serves the node's metrics paths on its local socket and
// kubelet API.
func metricsMount(h http.Handler) localapi.Mount {
	m := localapi.Mount{Handler: h}
	for _, p := range nodemetrics.Paths {
		m.Patterns = append(m.Patterns, "GET "+p)
	}
	return m
}

// Run runs the node until ctx ends or a part of it fails for good; ready, if
// set, is called once it runs.
func Run(ctx context.Context, cfg Config, ready func(*Node)) error {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if cfg.NodeName == "" {
		name, err := HostNodeName()
		if err != nil {
			return err
		}
		cfg.NodeName = name
	}
	if cfg.ImagesDir == "" {
		cfg.ImagesDir = filepath.Join(cfg.DataDir, "images")
	}
	for _, d := range []string{cfg.DataDir, cfg.ImagesDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	if cfg.NodeIP == "" {
		cfg.NodeIP = hostinfo.DefaultIPv4()
	}
	log = log.With("node", cfg.NodeName)
	log.Info("starting ballast node", "version", cfg.Version, "manifests", cfg.ManifestDir, "dataDir", cfg.DataDir)

	g, ctx := errgroup.WithContext(ctx)
	err := start(ctx, g, cfg, log, ready)
	if err != nil {
		// Stop what was started before the failure.
		g.Go(func() error { return err })
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) || err == nil {
		log.Info("node agent stopped; pods keep running")
		return nil
	}
	return err
}

// start starts every part on g. A part whose failure leaves the node
// useless returns its error (ending the others); the others log and go on.
func start(ctx context.Context, g *errgroup.Group, cfg Config, log *slog.Logger, ready func(*Node)) error {
	endpoint, snapshotter := cfg.Endpoint, ""
	if endpoint == "" {
		p, err := containerd.Start(ctx, containerd.Config{
			Dir:          filepath.Join(cfg.DataDir, "containerd"),
			SandboxImage: cfg.PodInfraImage,
			BridgeName:   cfg.BridgeName,
			Subnet:       cfg.PodCIDR,
		}, log)
		if err != nil {
			return err
		}
		endpoint, snapshotter = p.Endpoint(), p.Snapshotter()
		log.Info("containerd ready", "pid", p.Pid(), "adopted", p.Adopted(), "endpoint", endpoint, "log", p.LogPath())
		g.Go(func() error {
			if err := p.Supervise(ctx); err != nil && ctx.Err() == nil {
				log.Error("containerd supervision ended", "err", err)
			}
			return nil
		})
	}
	metrics := nodemetrics.New(nodemetrics.Options{NodeName: cfg.NodeName, Log: log.With("component", "metrics")})
	host, err := nodemetrics.NewProcHost()
	if err != nil {
		return fmt.Errorf("reading /proc for node metrics: %w", err)
	}
	var cg nodemetrics.Cgroups
	if fs, err := cgroups.Open(); err != nil {
		log.Warn("cannot read containers' cgroups; their CPU and memory figures come from the runtime's (slower) CRI stats", "err", err)
	} else {
		cg = fs
	}
	rt, err := cri.Dial(endpoint, grpc.WithChainUnaryInterceptor(metrics.RuntimeInterceptor()))
	if err != nil {
		return err
	}
	g.Go(func() error {
		<-ctx.Done()
		return rt.Close()
	})
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
		NodeName: cfg.NodeName, DataDir: cfg.DataDir, HostIP: cfg.NodeIP, Runtime: rt,
		RuntimeName: "containerd", Backoff: cfg.Backoff, Log: log,
		Pulls:      registryauth.Config{CredentialFile: cfg.ImageCredentials, Timeout: cfg.PullTimeout},
		PodStarted: metrics.ObservePodStart,
	})
	g.Go(func() error {
		return source.Run(ctx, source.Options{Dir: cfg.ManifestDir, NodeName: cfg.NodeName, Log: log.With("component", "manifests")}, a.Snapshots())
	})
	im := images.Importer{Socket: rt.Endpoint, Snapshotter: snapshotter}
	g.Go(func() error {
		w := &images.Watcher{Dir: cfg.ImagesDir, Import: im.Import, OnImported: func(string) { a.ImagesArrived() }, Log: log.With("component", "images")}
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("images directory watch ended; tarballs added now will not be imported", "dir", cfg.ImagesDir, "err", err)
		}
		return nil
	})
	disk := &diskspace.Monitor{Dir: cfg.DataDir, NodeName: cfg.NodeName, Log: log.With("component", "disk"), Recorder: a.Recorder()}
	sock := localapi.SocketPath(cfg.DataDir)
	handler := streaming.Handler(localapi.Handler(a, log.With("component", "localapi"), metricsMount(metrics.Handler(a, rt, host, cg)), disk.Mount()),
		streaming.Options{Pods: a, Runtime: rt, Log: log.With("component", "streaming")})
	g.Go(func() error { return localapi.Serve(ctx, sock, handler) })
	if err := connectAPI(ctx, g, cfg, a, disk, handler, runtimeVersion, metrics, log); err != nil {
		return err
	}
	// An always-on agent with little garbage: a tighter heap goal costs
	// nothing measurable and keeps its memory small; and the executable's
	// pages only initialization touched go back once start-up is done.
	debug.SetGCPercent(50)
	memtrim.AfterStartup(ctx, 10*time.Second, log)
	g.Go(func() error {
		rotateLogs(ctx, a, rt, &logs.Rotator{MaxSize: cfg.LogMaxSize, MaxFiles: cfg.LogMaxFiles}, disk, cfg.LogCheck, log)
		return nil
	})
	log.Info("node agent running", "socket", sock)
	if ready != nil {
		ready(&Node{Agent: a, Name: cfg.NodeName, HostIP: cfg.NodeIP, RuntimeVersion: runtimeVersion, Metrics: metrics})
	}
	g.Go(func() error { return a.Run(ctx) })
	return nil
}

// connectAPI starts the mirror sync against the API server and the kubelet
// HTTPS API, as configured.
func connectAPI(ctx context.Context, g *errgroup.Group, cfg Config, a *agent.Agent, disk *diskspace.Monitor, handler http.Handler, runtimeVersion string, metrics *nodemetrics.Metrics, log *slog.Logger) error {
	var client kubernetes.Interface
	if cfg.API.Client != nil {
		c, err := cfg.API.Client(cfg.NodeName)
		if err != nil {
			return err
		}
		client = c
	}
	annotations := map[string]string{}
	port := 0
	if cfg.API.Port > 0 && (client != nil || cfg.API.ClientCAFile != "") {
		var pool *x509.CertPool
		if cfg.API.ClientCAFile != "" {
			pem, err := os.ReadFile(cfg.API.ClientCAFile)
			if err != nil {
				return fmt.Errorf("--client-ca-file: %w", err)
			}
			pool = x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--client-ca-file %s: no PEM certificate in it", cfg.API.ClientCAFile)
			}
		}
		cert, err := kubeletapi.LoadOrCreateServingCert(cfg.API.TLSCertFile, cfg.API.TLSKeyFile, filepath.Join(cfg.DataDir, "kubelet-pki"), cfg.NodeName, []string{cfg.NodeIP, "127.0.0.1"})
		if err != nil {
			return err
		}
		annotations[wellknown.AnnotationServingCertSHA256] = kubeletapi.CertSHA256(cert.Certificate[0])
		addr := net.JoinHostPort(cfg.API.Address, fmt.Sprint(cfg.API.Port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Error("cannot serve the kubelet HTTPS API; pods are not affected, but the API server cannot reach this node for logs", "addr", addr, "err", err)
		} else {
			port = cfg.API.Port
			log.Info("kubelet HTTPS API listening", "addr", ln.Addr().String(), "clientCA", cfg.API.ClientCAFile, "tokenReview", client != nil)
			g.Go(func() error {
				serveKubeletAPI(ctx, ln, handler, pool, client, cfg.NodeName, cert, log)
				return nil
			})
		}
	}
	if client != nil {
		g.Go(func() error {
			err := mirror.Run(ctx, mirror.Options{
				Client: client, NodeName: cfg.NodeName, HostIP: cfg.NodeIP, RuntimeVersion: runtimeVersion,
				Source: a, Recorder: a.Recorder(), Log: log.With("component", "mirror"),
				KubeletPort: int32(port), NodeAnnotations: annotations, ObserveSyncLag: metrics.ObserveMirrorSyncLag,
				ManifestDir: absDir(cfg.ManifestDir), Disk: disk,
			})
			if err != nil && ctx.Err() == nil {
				log.Error("mirror pod sync stopped; pods keep running, the API server no longer sees them", "err", err)
			}
			return nil
		})
		g.Go(func() error {
			return mirror.RunConfigs(ctx, mirror.ConfigOptions{Client: client, NodeName: cfg.NodeName, Source: a,
				SecretData: cfg.API.PublishSecretData, Log: log.With("component", "mirror-configs")})
		})
	}
	return nil
}

func serveKubeletAPI(ctx context.Context, ln net.Listener, handler http.Handler, pool *x509.CertPool, client kubernetes.Interface, node string, cert tls.Certificate, log *slog.Logger) {
	err := kubeletapi.Serve(ctx, ln, kubeletapi.Options{Handler: handler, ClientCAs: pool, Client: client, NodeName: node, Cert: cert, Log: log.With("component", "kubeletapi")})
	if err != nil && ctx.Err() == nil {
		log.Error("kubelet HTTPS API stopped", "err", err)
	}
}

// absDir is dir made absolute, as the manifest source names it.
func absDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// rotateLogs checks the data directory's disk and container log sizes
// every interval (under disk pressure the monitor truncates logs first).
func rotateLogs(ctx context.Context, a *agent.Agent, rt *cri.Runtime, r *logs.Rotator, disk *diskspace.Monitor, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
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
		disk.Check(cs)
		if err := r.Check(ctx, cs, rt.ReopenLog); err != nil {
			log.Warn("rotating container logs", "err", err)
		}
	}
}
