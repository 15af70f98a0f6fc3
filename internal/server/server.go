// Package server owns assembling `ballast server`: the etcd storage (embedded
// or external), the PKI and tokens, the API handler with authentication and
// authorization, `ballast join`'s endpoints beside it, the TLS listener, and
// the admin kubeconfig.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ballast-dev/ballast/internal/apiserver"
	"github.com/ballast-dev/ballast/internal/apiserver/apimetrics"
	"github.com/ballast-dev/ballast/internal/apiserver/metricsapi"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/bootstrap"
	"github.com/ballast-dev/ballast/internal/memtrim"
	"github.com/ballast-dev/ballast/internal/storage/etcd"
)

// Options configure a server.
type Options struct {
	DataDir string
	// Listen is the host:port to serve HTTPS on (default 127.0.0.1:6443).
	Listen string
	// EtcdServers are an external etcd cluster's client URLs; empty runs
	// an embedded etcd under DataDir.
	EtcdServers                           []string
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// Hosts are extra names and IPs for the serving certificate.
	Hosts []string
	// LocalNodes reach the nodes that run in this process by name (`ballast
	// up`: its own node's unix socket). Every other node is reached at its
	// kubelet HTTPS API, as its Node says (see NodeDialer).
	LocalNodes map[string]NodeDialer
	Log        *slog.Logger
}

// Server is a running API server.
type Server struct {
	// URL is the server's https URL; Kubeconfig the admin kubeconfig's path.
	URL        string
	Kubeconfig string
	PKI        *auth.PKI
	Tokens     *auth.TokenStore
	API        *apiserver.Server
	// DialNode reaches a node's kubelet API (logs, proxy, metrics, streaming).
	DialNode NodeDialer

	store *etcd.Store
	http  *http.Server
	done  chan error
}

// TokensPath is where the node join tokens are kept.
func TokensPath(dataDir string) string { return filepath.Join(dataDir, "pki", auth.TokenFile) }

// Start opens the storage, prepares the PKI and starts serving. It returns
// once the server accepts connections; Wait returns when it stops.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:6443"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want host:port (e.g. 127.0.0.1:6443): %w", o.Listen, err)
	}
	hosts := append([]string{}, o.Hosts...)
	if host != "" && host != "0.0.0.0" && host != "::" {
		hosts = append(hosts, host)
	}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	pki, err := auth.LoadOrCreatePKI(filepath.Join(o.DataDir, "pki"), hosts)
	if err != nil {
		return nil, err
	}
	tokens, err := auth.OpenTokens(TokensPath(o.DataDir))
	if err != nil {
		return nil, err
	}
	store, err := etcd.Open(ctx, etcd.Config{
		DataDir:   filepath.Join(o.DataDir, "etcd"),
		Endpoints: o.EtcdServers, CAFile: o.EtcdCAFile, CertFile: o.EtcdCertFile, KeyFile: o.EtcdKeyFile,
		Log: o.Log.With("component", "etcd"),
	})
	if err != nil {
		return nil, err
	}
	authn := auth.NewAuthenticator(pki, tokens)
	nodes := &nodeDialer{pki: pki, local: o.LocalNodes}
	metrics := apimetrics.New()
	metricsAPI := &metricsapi.API{Dial: nodes.dial, Cluster: nodes, Log: o.Log.With("component", "metrics-api")}
	api, err := apiserver.New(apiserver.Config{
		Store:        metrics.Store(store),
		Metrics:      metrics,
		Delegates:    metricsAPI.Delegates(),
		Authenticate: authn.Authenticate,
		Authorize:    auth.Authorize,
		NodeLogs:     nodes.dial,
		Log:          o.Log.With("component", "apiserver"),
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("listening on %s: %w (is another server running? choose another --listen)", o.Listen, err)
	}
	s := &Server{PKI: pki, Tokens: tokens, API: api, DialNode: nodes.dial, store: store, done: make(chan error, 2)}
	addr := ln.Addr().(*net.TCPAddr)
	urlHost := host
	if urlHost == "" || urlHost == "0.0.0.0" || urlHost == "::" {
		urlHost = "127.0.0.1"
	}
	s.URL = "https://" + net.JoinHostPort(urlHost, fmt.Sprint(addr.Port))
	nodes.listening(s.URL)
	s.Kubeconfig = filepath.Join(o.DataDir, "kubeconfig")
	if _, err := auth.EnsureAdminKubeconfig(s.Kubeconfig, s.URL, pki); err != nil {
		ln.Close()
		store.Close()
		return nil, err
	}
	join := &bootstrap.Handler{PKI: pki, Tokens: tokens, Log: o.Log.With("component", "join"),
		NodeReady: func(ctx context.Context, name string) (bool, error) { return nodeReady(ctx, store, name) }}
	s.http = &http.Server{
		Handler:           withJoin(api.Handler(), join),
		TLSConfig:         pki.ServerTLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
	go func() {
		err := s.http.ServeTLS(ln, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	go func() {
		if err := api.Run(ctx); err != nil && ctx.Err() == nil {
			s.done <- fmt.Errorf("api server background work: %w", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.http.Shutdown(sctx)
	}()
	// The executable's pages only initialization touched are most of an
	// idle server's memory: give them back once start-up is done.
	memtrim.AfterStartup(ctx, 10*time.Second, o.Log)
	o.Log.Info("API server listening", "url", s.URL, "kubeconfig", s.Kubeconfig, "etcd", etcdDesc(o))
	return s, nil
}

func etcdDesc(o Options) string {
	if len(o.EtcdServers) > 0 {
		return fmt.Sprint(o.EtcdServers)
	}
	return "embedded in " + filepath.Join(o.DataDir, "etcd")
}

// Wait returns when the server stops, with why.
func (s *Server) Wait() error {
	err := <-s.done
	s.store.Close()
	return err
}
