// Package rest serves the verbs on the stored kinds, as kube-apiserver does:
// get, list, watch, create, update, patch (JSON, merge and strategic merge),
// delete and deletecollection, with resourceVersion semantics, dryRun,
// server-owned fields, graceful deletion of pods bound to a node, and the
// watch caches that serve watches and most lists. It reads and answers
// requests through internal/apiserver/request and has writes admitted by
// internal/apiserver/admission.
package rest

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ballast-dev/ballast/internal/apiserver/admission"
	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/apiserver/watchcache"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/storage"
)

// Config is what the REST verbs need.
type Config struct {
	Store storage.Store
	// Kinds are the stored kinds served, by group, version and resource.
	Kinds map[schema.GroupVersionResource]*kinds.Kind
	// Authorize decides creates, once the object's name is known.
	Authorize func(auth.Attributes) auth.Decision
	Admission *admission.Admission
	// Review answers a created review kind (kinds.Kind.CreateOnly).
	Review func(w http.ResponseWriter, r *http.Request, rq *request.Request, o kinds.Object) error
	Log    *slog.Logger
	Now    func() time.Time
	// WatchCache tunes the watch caches that serve watches and lists.
	WatchCache WatchCacheConfig
}

// Server serves the REST verbs.
type Server struct {
	cfg   Config
	store storage.Store
	log   *slog.Logger
	now   func() time.Time
	kinds map[schema.GroupVersionResource]*kinds.Kind
	// caches are the watch caches, by storage prefix; Run runs them.
	caches map[string]*watchcache.Cache
}

// New returns the REST verbs over cfg.Store, with their watch caches.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Log, now: cfg.Now, kinds: cfg.Kinds}
	s.newCaches(cfg.WatchCache)
	return s
}

// Run runs the watch caches until ctx ends: watches and most lists wait
// for them.
func (s *Server) Run(ctx context.Context) error { return s.runWatchCaches(ctx) }

// Cache returns the watch cache of the kinds stored under prefix ("pods").
func (s *Server) Cache(prefix string) *watchcache.Cache { return s.caches[prefix] }

// Serve serves rq, a request on a stored kind whose verb is checked and,
// but for a create, authorized.
func (s *Server) Serve(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	switch {
	case rq.Subresource == "ephemeralcontainers":
		return s.serveEphemeralContainers(w, r, rq)
	case rq.Verb == "get":
		return s.serveGet(w, r, rq)
	case rq.Verb == "list":
		return s.serveList(w, r, rq)
	case rq.Verb == "watch":
		return s.serveWatch(w, r, rq)
	case rq.Verb == "create":
		return s.serveCreate(w, r, rq)
	case rq.Verb == "update":
		return s.serveUpdate(w, r, rq)
	case rq.Verb == "patch":
		return s.servePatch(w, r, rq)
	case rq.Verb == "delete":
		return s.serveDelete(w, r, rq)
	case rq.Verb == "deletecollection":
		return s.serveDeleteCollection(w, r, rq)
	}
	return nil
}
