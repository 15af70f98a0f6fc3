package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/apiserver/watchcache"
)

// WatchCacheConfig tunes the watch caches; zero fields take the defaults
// of internal/apiserver/watchcache.
type WatchCacheConfig struct {
	// Window is how many recent events each resource keeps for watches
	// that resume from a resourceVersion.
	Window int
	// Buffer is how many events a watcher may fall behind before it is
	// dropped.
	Buffer int
	// BookmarkInterval is how often watchers that allow bookmarks get one
	// (default 10 s).
	BookmarkInterval time.Duration
}

// FreshWait bounds how long a request waits for a watch cache to reach
// the revision it needs (kube-apiserver waits 3 s too).
const FreshWait = 3 * time.Second

// newCaches makes one watch cache per storage prefix: the kinds stored
// under it share it (core and events.k8s.io events).
func (s *Server) newCaches(cfg WatchCacheConfig) {
	if cfg.BookmarkInterval == 0 {
		cfg.BookmarkInterval = 10 * time.Second
	}
	s.caches = map[string]*watchcache.Cache{}
	byPrefix := map[string][]*kinds.Kind{}
	var order []string
	for _, k := range s.kinds {
		if k.CreateOnly {
			continue
		}
		if byPrefix[k.Prefix] == nil {
			order = append(order, k.Prefix)
		}
		byPrefix[k.Prefix] = append(byPrefix[k.Prefix], k)
	}
	for _, prefix := range order {
		ks := byPrefix[prefix]
		stored := ks[0]
		for _, k := range ks {
			if k.ToServed == nil {
				stored = k
			}
		}
		index := ""
		switch prefix {
		case "pods":
			index = "spec.nodeName"
		case "nodes":
			index = "metadata.name"
		}
		s.caches[prefix] = watchcache.New(watchcache.Config{
			Resource: prefix, Prefix: "/" + prefix + "/", Store: s.store, IndexField: index,
			Transform: func(value []byte, rev int64) (watchcache.Item, error) { return transformStored(stored, ks, value, rev) },
			Window:    cfg.Window, Buffer: cfg.Buffer, BookmarkInterval: cfg.BookmarkInterval,
			Log: s.log.With("component", "watchcache"),
		})
	}
}

// transformStored decodes a stored value once for the cache: its JSON as
// the stored kind serves it, its labels, and the fields every kind stored
// under the prefix selects on.
func transformStored(stored *kinds.Kind, all []*kinds.Kind, value []byte, rev int64) (watchcache.Item, error) {
	o, err := stored.DecodeStored(value, rev)
	if err != nil {
		return watchcache.Item{}, err
	}
	raw, err := json.Marshal(o)
	if err != nil {
		return watchcache.Item{}, fmt.Errorf("encoding %s: %w", stored.Info.Resource, err)
	}
	fs := fields.Set{}
	for _, k := range all {
		served := o
		if k != stored && k.ToServed != nil {
			served = k.ToServed(o.DeepCopyObject().(kinds.Object))
		}
		for f, v := range k.Fields(served) {
			fs[f] = v
		}
	}
	return watchcache.Item{Raw: raw, Labels: o.GetLabels(), Fields: fs}, nil
}

// runWatchCaches runs every watch cache until ctx ends.
func (s *Server) runWatchCaches(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, c := range s.caches {
		g.Go(func() error { return c.Run(ctx) })
	}
	return g.Wait()
}

// cacheFor returns the watch cache of k.
func (s *Server) cacheFor(k *kinds.Kind) *watchcache.Cache { return s.caches[k.Prefix] }

// cacheError turns a watch cache's refusal into kube-apiserver's answer.
func cacheError(k *kinds.Kind, err error) *request.Error {
	switch {
	case errors.Is(err, watchcache.ErrNotReady):
		st := request.NewStatus(http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests,
			fmt.Sprintf("the server is loading its cache of %s (%v); retry shortly", k.Info.Resource, err))
		st.Status.Details = &metav1.StatusDetails{RetryAfterSeconds: 1}
		return st
	case errors.Is(err, watchcache.ErrNotFresh):
		st := request.NewStatus(http.StatusGatewayTimeout, metav1.StatusReasonTimeout, fmt.Sprintf("Too large resource version: %v", err))
		st.Status.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}, RetryAfterSeconds: 1}
		return st
	}
	return request.InternalError(err)
}
