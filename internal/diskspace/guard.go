package diskspace

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/storage"
)

// Guard wraps store, whose data is on the disk holding dir (embedded
// etcd's data directory). While that disk is under pressure
// (ServerThresholds), Create and Update fail with
// storage.ErrInsufficientStorage, saying why and what to do, except the
// nodes' heartbeats (Nodes, and Leases in kube-node-lease), so that nodes
// can go on reporting, DiskPressure included; Get, List, Watch and Delete
// go on. The disk is looked at no more than once a second.
func Guard(store storage.Store, dir string, log *slog.Logger) storage.Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &guard{Store: store, dir: dir, log: log, statfs: Statfs, now: time.Now}
}

type guard struct {
	storage.Store
	dir    string
	log    *slog.Logger
	statfs func(string) (Usage, error)
	now    func() time.Time

	mu       sync.Mutex
	checked  time.Time
	pressure bool
	usage    Usage
}

func (g *guard) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (int64, error) {
	if err := g.allow(key); err != nil {
		return 0, err
	}
	return g.Store.Create(ctx, key, value, ttl)
}

func (g *guard) Update(ctx context.Context, key string, expectRevision int64, update storage.UpdateFunc) (storage.Object, error) {
	if err := g.allow(key); err != nil {
		return storage.Object{}, err
	}
	return g.Store.Update(ctx, key, expectRevision, update)
}

// RequestProgress passes the request on: the API server's watch caches
// need it to serve a list at a revision another kind's write made.
func (g *guard) RequestProgress(ctx context.Context) error {
	return storage.RequestProgress(ctx, g.Store)
}

var _ storage.ProgressRequester = (*guard)(nil)

// heartbeat tells whether key is a node's heartbeat: its Node, its Lease.
func heartbeat(key string) bool {
	return strings.HasPrefix(key, "/nodes/") || strings.HasPrefix(key, "/leases/kube-node-lease/")
}

// allow refuses a write that adds data while the disk is under pressure.
func (g *guard) allow(key string) error {
	if heartbeat(key) {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := g.now(); now.Sub(g.checked) >= time.Second {
		g.checked = now
		u, err := g.statfs(g.dir)
		if err != nil {
			g.log.Warn("cannot read the disk usage of the storage's data directory", "dir", g.dir, "err", err)
		} else {
			was := g.pressure
			g.usage, g.pressure = u, ServerThresholds.Pressure(u, was)
			switch {
			case g.pressure && !was:
				g.log.Error("the storage's disk is nearly full: writes that add data are refused (507) until space is freed; reads, deletes and nodes' heartbeats go on",
					"dir", g.dir, "free", u.String())
			case was && !g.pressure:
				g.log.Info("the storage's disk has space again: writes are accepted", "dir", g.dir, "free", u.String())
			}
		}
	}
	if !g.pressure {
		return nil
	}
	return fmt.Errorf("%w: the disk holding the API server's storage (%s) is nearly full, %s: writes that add data are refused until %.0f%% is free (reads, deletes and nodes' heartbeats go on); free space on that disk",
		storage.ErrInsufficientStorage, g.dir, g.usage, ServerThresholds.Leave)
}
