// Package apiserver assembles `ballast server`'s Kubernetes-compatible API
// (namespaces, nodes, pods, ConfigMaps, Secrets, events, leases, reviews...)
// on a storage.Store, which real kubectl and client-go use unchanged. It
// owns Config, authentication of every request, routing (which part serves
// a path, which verbs a subresource takes), the non-resource paths
// (discovery, health, OpenAPI, /metrics) and delegated resources
// (metrics.k8s.io). The parts it routes to are sub-packages: request (paths,
// bodies, answers, Status errors), kinds (how each resource is stored), rest
// (the verbs, watch caches), admission (who may write what), connect
// (pods/log, exec, attach, portforward, proxy), review (access, rules, token
// and self reviews), lifecycle (nodes that stop renewing their Lease);
// discovery, openapi, tables, resource, watchcache, apimetrics and
// metricsapi as before.
package apiserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ballast-dev/ballast/internal/apiserver/admission"
	"github.com/ballast-dev/ballast/internal/apiserver/apimetrics"
	"github.com/ballast-dev/ballast/internal/apiserver/connect"
	"github.com/ballast-dev/ballast/internal/apiserver/discovery"
	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/lifecycle"
	"github.com/ballast-dev/ballast/internal/apiserver/openapi"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/apiserver/resource"
	"github.com/ballast-dev/ballast/internal/apiserver/rest"
	"github.com/ballast-dev/ballast/internal/apiserver/review"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/storage"
)

// Config is what the API server needs from its caller.
type Config struct {
	Store storage.Store
	// Authenticate finds the caller: (user, true, nil) when authenticated,
	// (_, false, nil) for an anonymous request, an error for credentials
	// that do not verify (answered 401).
	Authenticate func(*http.Request) (auth.User, bool, error)
	// Authorize decides every request.
	Authorize func(auth.Attributes) auth.Decision
	// NodeLogs tells how to reach a node's kubelet API for pods/log and the
	// streams (pods/exec, attach, portforward); nil answers them with 503.
	NodeLogs func(ctx context.Context, nodeName string) (*http.Client, *url.URL, error)
	Log      *slog.Logger
	// Now is the clock; nil for time.Now.
	Now func() time.Time
	// Delegates serve resources the REST core does not store (metrics.k8s.io).
	Delegates []Delegate
	// Metrics, if set, observes every request and is served on /metrics
	// (internal/apiserver/apimetrics).
	Metrics Metrics
	// WatchCache tunes the watch caches that serve watches and lists.
	WatchCache rest.WatchCacheConfig
}

// Metrics observe the API server's requests and serve them.
type Metrics interface {
	ObserveRequest(r apimetrics.Request, code int, d time.Duration)
	WatchStarted(r apimetrics.Request) (done func())
	Handler() http.Handler
}

// Server is the API server: it routes each request to the part that
// serves it.
type Server struct {
	cfg       Config
	store     storage.Store
	log       *slog.Logger
	delegates map[schema.GroupVersionResource]*Delegate
	// served resolves resource paths: kinds and delegates.
	served    request.Served
	discovery http.Handler
	discPaths map[string]bool
	extra     []route // other non-resource handlers (OpenAPI)
	// rest serves the verbs on the stored kinds.
	rest *rest.Server
	// connect serves pods/log, exec, attach, portforward and proxy.
	connect   *connect.Server
	lifecycle *lifecycle.Lifecycle
}

// route is a non-resource path prefix served by another handler.
type route struct {
	prefix string
	h      http.Handler
}

// New checks cfg, makes sure the system namespaces exist, and returns the server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("apiserver: Config.Store is required")
	}
	if cfg.Authenticate == nil || cfg.Authorize == nil {
		return nil, errors.New("apiserver: Config.Authenticate and Config.Authorize are required (use an allow-all pair explicitly in tests)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Log, discPaths: map[string]bool{},
		connect: connect.New(connect.Config{Store: cfg.Store, Authorize: cfg.Authorize, Node: cfg.NodeLogs, Log: cfg.Log})}
	served := resource.Served()
	stored := map[schema.GroupVersionResource]*kinds.Kind{}
	for _, k := range kinds.All() {
		info, ok := resource.Lookup(served, k.Info.Group, k.Info.Version, k.Info.Resource)
		if !ok {
			return nil, fmt.Errorf("apiserver: %s is implemented but not in resource.Served()", k.Info.GVR())
		}
		k.Info = info
		stored[info.GVR()] = k
	}
	s.delegates = map[schema.GroupVersionResource]*Delegate{}
	for i := range cfg.Delegates {
		d := &cfg.Delegates[i]
		if stored[d.Info.GVR()] != nil || d.Get == nil || d.List == nil {
			return nil, fmt.Errorf("apiserver: delegate %s is stored by the REST core or lacks Get or List", d.Info.GVR())
		}
		s.delegates[d.Info.GVR()] = d
		served = append(served, d.Info)
	}
	s.served = request.Served{Kinds: stored, Delegated: map[schema.GroupVersionResource]resource.Info{}}
	for gvr, d := range s.delegates {
		s.served.Delegated[gvr] = d.Info
	}
	for _, in := range served {
		if stored[in.GVR()] == nil && s.delegates[in.GVR()] == nil {
			return nil, fmt.Errorf("apiserver: resource.Served() lists %s, which the REST core does not implement", in.GVR())
		}
	}
	s.rest = rest.New(rest.Config{Store: cfg.Store, Kinds: stored, Authorize: cfg.Authorize,
		Admission: admission.New(cfg.Store, stored[schema.GroupVersionResource{Version: "v1", Resource: "pods"}]),
		Review:    review.New(cfg.Authenticate, cfg.Authorize).Serve,
		Log:       cfg.Log, Now: cfg.Now, WatchCache: cfg.WatchCache})
	s.lifecycle = lifecycle.New(lifecycle.Config{Store: cfg.Store, Pods: s.rest.Cache("pods"), Log: cfg.Log, Now: cfg.Now})
	s.discovery = discovery.Handler(served)
	for _, p := range discovery.Paths(served) {
		s.discPaths[p] = true
	}
	oa, err := openapi.Handler(served)
	if err != nil {
		return nil, fmt.Errorf("apiserver: generating OpenAPI: %w", err)
	}
	s.extra = []route{{prefix: "/openapi", h: oa}}
	if cfg.Metrics != nil {
		s.extra = append(s.extra, route{prefix: "/metrics", h: cfg.Metrics.Handler()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.rest.EnsureNamespaces(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler serves the whole API.
func (s *Server) Handler() http.Handler { return s }

// Run does the background work until ctx ends: the watch caches (watches
// and most lists wait for them) and node lifecycle.
func (s *Server) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.rest.Run(ctx) })
	g.Go(func() error { return s.lifecycle.Run(ctx) })
	return g.Wait()
}

// ServeHTTP authenticates, routes and authorizes one request, and counts it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := s.cfg.Metrics
	if m == nil {
		s.serve(w, r, nil)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	var info apimetrics.Request
	s.serve(sw, r, &info)
	code := sw.code
	if code == 0 {
		code = http.StatusOK
	}
	m.ObserveRequest(info, code, time.Since(start))
}

// serve serves one request and says what it was in info (if not nil).
func (s *Server) serve(w http.ResponseWriter, r *http.Request, info *apimetrics.Request) {
	user, ok, err := s.cfg.Authenticate(r)
	if err != nil {
		request.WriteStatus(w, request.NewStatus(http.StatusUnauthorized, metav1.StatusReasonUnauthorized,
			fmt.Sprintf("Unauthorized: %v; check the credentials in your kubeconfig", err)).Status)
		return
	}
	if !ok {
		user = auth.Anonymous
	}
	path := r.URL.Path
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	if rq, isResource := s.served.Parse(r, path); isResource {
		rq.User = user
		if info != nil {
			*info = apimetrics.Request{Verb: strings.ToUpper(rq.Verb), Group: rq.Group, Version: rq.Version,
				Resource: rq.Resource, Subresource: rq.Subresource, Namespace: rq.Namespace, Name: rq.Name}
			if rq.Kind == nil && !rq.Delegated { // not served: do not let paths make up label values
				*info = apimetrics.Request{Verb: strings.ToUpper(rq.Verb)}
			}
			if rq.Verb == "watch" && rq.Kind != nil {
				defer s.cfg.Metrics.WatchStarted(*info)()
			}
		}
		s.serveResource(w, r, rq)
		return
	}
	if info != nil {
		info.Verb = r.Method
	}
	// Non-resource paths.
	attrs := auth.Attributes{User: user, Verb: strings.ToLower(r.Method), Path: path}
	if d := s.cfg.Authorize(attrs); !d.Allowed {
		request.Deny(w, user, d, fmt.Sprintf("forbidden: %s", d.Reason))
		return
	}
	switch {
	case s.discPaths[path]:
		s.discovery.ServeHTTP(w, r)
		return
	case path == "/healthz" || path == "/livez" || path == "/readyz" ||
		strings.HasPrefix(path, "/healthz/") || strings.HasPrefix(path, "/livez/") || strings.HasPrefix(path, "/readyz/"):
		s.serveHealth(w, r, path)
		return
	}
	for _, rt := range s.extra {
		if path == rt.prefix || strings.HasPrefix(path, rt.prefix+"/") {
			rt.h.ServeHTTP(w, r)
			return
		}
	}
	request.WriteStatus(w, request.NewStatus(http.StatusNotFound, metav1.StatusReasonNotFound,
		fmt.Sprintf("the server could not find the requested resource (%s %s); `kubectl api-resources` lists what Ballast serves", r.Method, r.URL.Path)).Status)
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request, path string) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(path, "/livez") || strings.HasSuffix(path, "/ping") {
		_, _ = w.Write([]byte("ok"))
		return
	}
	if _, err := s.store.Revision(ctx); err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "[-]etcd failed: %v\nhealthz check failed\n", err)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

// statusWriter remembers the status code written; it passes Flush and
// Hijack through (watches, log follows, upgraded connections).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.code = http.StatusSwitchingProtocols
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
