// Package connect serves the subresources that connect a client through the
// API server to a node or a pod, as kube-apiserver's connecters do:
// pods/log, pods/exec, pods/attach and pods/portforward to the pod's node's
// kubelet API (streams translated by internal/streaming), nodes/proxy to a
// node's kubelet API, and pods/proxy to the pod's IP. It reads the pod or
// node from storage; reaching a node is the caller's (Config.Node).
package connect

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/storage"
)

// Config is what the connecting subresources need.
type Config struct {
	Store storage.Store
	// Authorize decides the streams, which are authorized as create.
	Authorize func(auth.Attributes) auth.Decision
	// Node tells how to reach a node's kubelet API; nil answers with 503.
	Node func(ctx context.Context, nodeName string) (*http.Client, *url.URL, error)
	Log  *slog.Logger
}

// Server serves the connecting subresources.
type Server struct {
	cfg Config
	log *slog.Logger
	// podTransport reaches pods' IPs for pods/proxy.
	podTransport http.RoundTripper
}

// New returns the server of the connecting subresources.
func New(cfg Config) *Server {
	return &Server{cfg: cfg, log: cfg.Log, podTransport: newPodTransport()}
}
