// Package etcd implements storage.Store on etcd v3 through its Go client:
// either an etcd embedded in the process (go.etcd.io/etcd/server/v3/embed),
// kept in a data directory and reached on a loopback port that the kernel
// picks and on a root-only socket in the data directory, or an external
// cluster reached over TLS. It also runs that member alone (Serve, for an
// etcd static pod) and backs a store up and restores it (Backup, Restore:
// etcd's snapshot API).
//
// Objects live under a key prefix ("/registry" by default). Objects with a
// TTL are attached to etcd leases shared by all objects created in the same
// time window with the same TTL, as kube-apiserver does. One goroutine per
// Store compacts old revisions; one more asks etcd for watch progress; each
// watch has one goroutine. Nothing runs per object.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/ballast-dev/ballast/internal/storage"
)

// Defaults for Config fields left zero.
const (
	DefaultPrefix           = "/registry"
	DefaultCompactInterval  = 5 * time.Minute
	DefaultProgressInterval = 5 * time.Second
)

// Config says which etcd to use and how.
type Config struct {
	// DataDir holds the embedded etcd's data (created with mode 0700).
	// Used only when Endpoints is empty.
	DataDir string
	// Endpoints of an external etcd cluster ("https://10.0.0.1:2379");
	// empty runs an embedded etcd in DataDir.
	Endpoints []string
	// CertFile, KeyFile: client certificate for the external cluster.
	// CAFile: the CA that signed the cluster's serving certificates.
	CertFile, KeyFile, CAFile string
	// Prefix is put before every key; default "/registry".
	Prefix string
	// CompactInterval is how often old revisions are compacted: each time,
	// to the revision seen one interval earlier. Default 5m; negative
	// turns compaction off.
	CompactInterval time.Duration
	// ProgressInterval is how often watches that asked for progress get a
	// Progress event while idle. Default 5s.
	ProgressInterval time.Duration
	// Log receives etcd's warnings and errors; nil discards them.
	Log *slog.Logger
}

// Store is a storage.Store on etcd.
type Store struct {
	client *clientv3.Client
	embed  *embed.Etcd // nil for an external cluster
	prefix string
	log    *slog.Logger
	leases *leaseManager

	progressInterval time.Duration
	progressWatches  progressCounter
	// guess is an update's first read of its object: a serializable read
	// when nil (tests give a stale one).
	guess func(ctx context.Context, key string) (storage.Object, error)

	cancel    context.CancelFunc // stops the background goroutines
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ storage.Store = (*Store)(nil)

// Open connects to the etcd cfg names, starting the embedded one first when
// cfg.Endpoints is empty, and starts the compactor. Close releases it all.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	cfg.Prefix = "/" + strings.Trim(cfg.Prefix, "/")
	if cfg.Prefix == "/" {
		cfg.Prefix = ""
	}
	if cfg.CompactInterval == 0 {
		cfg.CompactInterval = DefaultCompactInterval
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	zl := newZapLogger(log)

	s := &Store{
		prefix:           cfg.Prefix,
		log:              log,
		progressInterval: cfg.ProgressInterval,
	}
	endpoints := cfg.Endpoints
	var tlsConfig *tls.Config
	if len(endpoints) == 0 {
		e, err := startEmbedded(ctx, cfg.DataDir, zl, false)
		if err != nil {
			return nil, err
		}
		s.embed = e
		endpoints = []string{clientURL(e)}
	} else if cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != "" {
		info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
		var err error
		if tlsConfig, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd TLS files (cert %q, key %q, CA %q): %w", cfg.CertFile, cfg.KeyFile, cfg.CAFile, err)
		}
	}

	client, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsConfig,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		Logger:               zl.Logger,
	})
	if err != nil {
		s.closeEmbedded()
		return nil, fmt.Errorf("etcd client for %s: %w: %w", strings.Join(endpoints, ","), storage.ErrUnavailable, err)
	}
	s.client = client
	s.leases = newLeaseManager(client, time.Now)

	// Fail now, with a clear message, when the cluster cannot be reached.
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, err = s.Revision(pingCtx)
	cancel()
	if err != nil {
		s.client.Close()
		s.closeEmbedded()
		return nil, fmt.Errorf("etcd at %s: %w (check --etcd-servers and the TLS files)", strings.Join(endpoints, ","), err)
	}

	bgCtx, bgCancel := context.WithCancel(context.Background())
	s.cancel = bgCancel
	if cfg.CompactInterval > 0 {
		s.bg.Go(func() { s.compactLoop(bgCtx, cfg.CompactInterval) })
	}
	s.bg.Go(func() { s.progressLoop(bgCtx) })
	return s, nil
}

// memberName names the embedded etcd's one member.
const memberName = "ballast"

// startEmbedded starts an etcd member in dir, listening for clients and
// peers on 127.0.0.1 ports the kernel picks, and for clients on the root-only
// socket SocketPath(dir) too (needSocket: it is an error when the path is too
// long for a socket; otherwise the socket is left out), and waits until it
// serves.
func startEmbedded(ctx context.Context, dir string, zl *zapLogger, needSocket bool) (*embed.Etcd, error) {
	if dir == "" {
		return nil, errors.New("embedded etcd: no data directory given (set DataDir, or Endpoints for an external cluster)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd data directory: %w", err)
	}
	// Port 0 everywhere: the kernel picks free ports, so several servers
	// and tests can run at once. The peer URL only names this one member,
	// and must stay the same across restarts, so it keeps port 0 too.
	local := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	ecfg := embed.NewConfig()
	ecfg.Name = memberName
	ecfg.Dir = dir
	ecfg.ListenClientUrls = []url.URL{local}
	if sock := SocketPath(dir); len(sock) < maxSocketPath {
		ecfg.ListenClientUrls = append(ecfg.ListenClientUrls, url.URL{Scheme: "unix", Path: sock})
	} else if needSocket {
		return nil, fmt.Errorf("embedded etcd: the socket path %s is longer than a unix socket allows (%d bytes): use a shorter data directory", sock, maxSocketPath-1)
	}
	ecfg.AdvertiseClientUrls = []url.URL{local}
	ecfg.ListenPeerUrls = []url.URL{local}
	ecfg.AdvertisePeerUrls = []url.URL{local}
	ecfg.InitialCluster = ecfg.Name + "=" + local.String()
	ecfg.ClusterState = embed.ClusterStateFlagNew
	ecfg.Logger = "zap"
	ecfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl.Logger)
	ecfg.Metrics = "basic"
	ecfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration

	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", dir, err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", dir, ctx.Err())
	case <-timer.C:
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready within a minute (is another process using this data directory?)", dir)
	}
}

// clientURL is the embedded etcd's loopback TCP client URL.
func clientURL(e *embed.Etcd) string {
	for _, l := range e.Clients {
		if l.Addr().Network() == "tcp" {
			return "http://" + l.Addr().String()
		}
	}
	return "http://" + e.Clients[0].Addr().String()
}

// ClientURL is the URL clients reach the embedded etcd at ("" for an
// external cluster). Another Store may use it in Config.Endpoints.
func (s *Store) ClientURL() string {
	if s.embed == nil {
		return ""
	}
	return clientURL(s.embed)
}

// Client is the etcd client the Store uses (for health checks).
func (s *Store) Client() *clientv3.Client { return s.client }

// Close stops the background goroutines, the client and the embedded etcd.
// Watches end with their channels closed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.bg.Wait()
		s.closeErr = s.client.Close()
		if errors.Is(s.closeErr, context.Canceled) {
			s.closeErr = nil
		}
		s.closeEmbedded()
	})
	return s.closeErr
}

func (s *Store) closeEmbedded() {
	if s.embed != nil {
		s.embed.Close()
	}
}
