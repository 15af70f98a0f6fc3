// Package watchcache owns the API server's watch cache: for one resource
// (one storage prefix) it keeps every object in memory, fed by one storage
// watch that every API watch shares, and a bounded window of recent events,
// as kube-apiserver's cacher does (smaller).
//
//   - Each change is decoded once (Config.Transform gives its served JSON,
//     labels and fields) when it arrives, whatever the number of watchers.
//   - Watchers with the same filter form one group; a filter is evaluated
//     once per event per group, and only groups whose filter names the
//     event's Config.IndexField value (spec.nodeName for pods) or no value
//     at all are looked at.
//   - A watch from a resourceVersion still in the window is served from
//     memory; an older one gets ErrTooOld (410 Gone). Lists at any state not
//     older than a revision are served from memory (List, WaitFresh).
//   - A watcher that falls Config.Buffer events behind is dropped with
//     ErrTooSlow; nobody waits for it and its backlog stays bounded.
//   - Bookmarks: every Config.BookmarkInterval, and just before a watch's
//     deadline, to watchers that want them.
//
// The cache decides nothing about encodings: an Event memoizes what its
// readers build from it (Frame), so each encoding is made once per event.
package watchcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ballast-dev/ballast/internal/storage"
)

// Errors a Watch or List returns, or a Watcher ends with.
var (
	// ErrTooOld: the resourceVersion is older than the window (410 Gone).
	ErrTooOld = errors.New("too old resource version")
	// ErrTooSlow: the watcher did not read its events fast enough.
	ErrTooSlow = errors.New("watcher too slow")
	// ErrReset: the cache lost its storage watch and started again; its
	// watchers must list again.
	ErrReset = errors.New("watch cache reset")
	// ErrNotReady: the cache has not loaded its objects (yet).
	ErrNotReady = errors.New("watch cache not ready")
	// ErrNotFresh: the cache did not reach the revision asked for in time.
	ErrNotFresh = errors.New("watch cache not fresh")
)

// Defaults for Config fields left zero.
const (
	DefaultWindow           = 10000
	DefaultBuffer           = 1000
	DefaultBookmarkInterval = time.Minute
	// bookmarkBeforeDeadline: a watch gets a bookmark this long before its
	// deadline, so the client restarts from a recent revision.
	bookmarkBeforeDeadline = 2 * time.Second
	listPageSize           = 5000
)

// Item is an object as the cache keeps it.
type Item struct {
	// Raw is the object as served in JSON, resourceVersion included.
	Raw    []byte
	Labels labels.Set
	Fields fields.Set
	// other holds the item's other encodings (Encoding), shared by the
	// copies of the item; nil for items the cache did not make.
	other *encodings
}

// encodings memoizes encodings of one thing (an item, an event) by key.
type encodings struct {
	mu     sync.Mutex
	frames []frame
}

func (e *encodings) get(key string, build func() ([]byte, error)) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range e.frames {
		if f.key == key {
			return f.b, f.err
		}
	}
	b, err := build()
	e.frames = append(e.frames, frame{key: key, b: b, err: err})
	return b, err
}

// Encoding returns what build makes of the item for key (another encoding
// of it, protobuf): made once per item, kept as long as the item is, so a
// list of every object in an encoding other than JSON does not decode each
// object again on every request.
func (it Item) Encoding(key string, build func() ([]byte, error)) ([]byte, error) {
	if it.other == nil {
		return build()
	}
	return it.other.get(key, build)
}

// Config configures a Cache.
type Config struct {
	// Resource names the resource in messages ("pods").
	Resource string
	// Prefix is the storage prefix cached ("/pods/").
	Prefix string
	Store  storage.Store
	// Transform turns a stored value at revision rev into an Item.
	Transform func(value []byte, rev int64) (Item, error)
	// IndexField is a field whose exact-match selectors are indexed
	// ("spec.nodeName"); empty for none.
	IndexField string
	// Window is how many recent events are kept (DefaultWindow).
	Window int
	// Buffer is how many events a watcher may fall behind (DefaultBuffer).
	Buffer int
	// BookmarkInterval is how often watchers that want bookmarks get one.
	BookmarkInterval time.Duration
	Log              *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Cache is the watch cache of one resource. Run fills and feeds it.
type Cache struct {
	cfg Config

	mu sync.RWMutex
	// Everything below is guarded by mu.
	ready    bool
	readyCh  chan struct{} // closed when ready
	lastErr  error         // why the cache is not ready
	rev      int64         // every change up to rev is applied
	changed  chan struct{} // closed (and replaced) when rev advances
	objects  map[string]*entry
	byIndex  map[string]map[string]*entry // IndexField value -> key -> entry
	window   ring
	oldest   int64 // a watch from a revision >= oldest is served
	groups   map[string]*group
	indexed  map[string]map[*group]struct{}
	anyValue map[*group]struct{}
	watchers map[*Watcher]struct{}
}

type entry struct {
	key  string
	rev  int64
	item Item
}

// New returns a Cache; Run must run for it to serve.
func New(cfg Config) *Cache {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.BookmarkInterval <= 0 {
		cfg.BookmarkInterval = DefaultBookmarkInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Resource == "" {
		cfg.Resource = strings.Trim(cfg.Prefix, "/")
	}
	transform := cfg.Transform
	cfg.Transform = func(value []byte, rev int64) (Item, error) {
		it, err := transform(value, rev)
		it.other = &encodings{}
		return it, err
	}
	return &Cache{cfg: cfg, readyCh: make(chan struct{}), changed: make(chan struct{}),
		groups: map[string]*group{}, indexed: map[string]map[*group]struct{}{}, anyValue: map[*group]struct{}{},
		watchers: map[*Watcher]struct{}{}, window: ring{buf: make([]*Event, cfg.Window)}}
}

// Run loads the objects, then applies the storage watch's events until ctx
// ends. When the watch fails it watches again from its revision, keeping
// its watchers (resume); when that fails too it drops every watcher
// (ErrReset) and loads again, backing off while storage fails.
func (c *Cache) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		started := c.cfg.Now()
		err := c.runOnce(ctx)
		if ctx.Err() != nil {
			c.reset(fmt.Errorf("%w: the server is stopping", ErrReset))
			return nil
		}
		c.reset(fmt.Errorf("%w: %v", ErrReset, err))
		if c.cfg.Now().Sub(started) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		c.cfg.Log.Warn("watch cache: storage watch ended; loading again", "resource", c.cfg.Resource, "err", err, "retryIn", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// runOnce loads the objects as they were a window of revisions ago (so
// that watches resuming from then, a server restart ago, are served) or,
// when storage no longer has that revision, as they are now; replays the
// changes since through the storage watch, and becomes ready once it has
// caught up with the revision storage had when it started. It applies the
// watch's events until the watch fails.
func (c *Cache) runOnce(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	target, err := c.cfg.Store.Revision(wctx)
	if err != nil {
		return fmt.Errorf("reading the storage revision: %w", err)
	}
	from := target - int64(c.cfg.Window)
	if from < 1 {
		from = 1
	}
	objects, rev, err := c.load(wctx, from)
	if errors.Is(err, storage.ErrCompacted) {
		objects, rev, err = c.load(wctx, 0)
	}
	if err != nil {
		return err
	}
	w, err := c.cfg.Store.Watch(wctx, c.cfg.Prefix, rev, true)
	if err != nil {
		return fmt.Errorf("watching %s from revision %d: %w", c.cfg.Prefix, rev, err)
	}
	c.mu.Lock()
	c.objects = objects
	c.byIndex = map[string]map[string]*entry{}
	for _, e := range objects {
		c.indexLocked(e, true)
	}
	c.rev, c.oldest = rev, rev
	c.window.clear()
	c.mu.Unlock()
	c.cfg.Log.Debug("watch cache loading", "resource", c.cfg.Resource, "objects", len(objects), "revision", rev, "catchingUpTo", target)

	pr, _ := c.cfg.Store.(storage.ProgressRequester)
	catchUp := time.NewTicker(100 * time.Millisecond) // asks for progress until caught up
	defer catchUp.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	ready := false
	var resumeSince time.Time // when the storage watch first failed, while resuming
	for {
		if !ready && c.markReady(target) {
			ready = true
			catchUp.Stop()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-catchUp.C:
			if pr != nil {
				_ = pr.RequestProgress(wctx)
			}
		case <-tick.C:
			c.sendBookmarks()
		case ev, ok := <-w.Events():
			if !ok {
				err := w.Err()
				if err == nil {
					err = errors.New("the storage watch ended")
				}
				if !ready || errors.Is(err, storage.ErrCompacted) {
					return err
				}
				if resumeSince.IsZero() {
					resumeSince = c.cfg.Now()
				}
				if w, err = c.resume(wctx, err, resumeSince); err != nil {
					return err
				}
				continue
			}
			resumeSince = time.Time{}
			c.apply(ev)
		}
	}
}

// resumeFor is how long the cache keeps its watchers while it tries to
// watch storage again after its watch ended (an etcd member lost, a leader
// election), before it drops them (ErrReset) and loads again.
const resumeFor = 15 * time.Second

// resume watches storage again from the cache's revision, after a pause
// that grows with the time since the watch first failed (since), so that
// a storage watch cut for a moment does not cost every client a 410 and a
// relist: its watchers see the changes late instead. It fails when storage
// no longer has that revision, or after resumeFor.
func (c *Cache) resume(ctx context.Context, cause error, since time.Time) (storage.Watch, error) {
	for {
		waited := c.cfg.Now().Sub(since)
		if waited >= resumeFor {
			return nil, fmt.Errorf("%w (not resumed in %s)", cause, resumeFor)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(100*time.Millisecond+waited/4, 2*time.Second)):
		}
		c.mu.RLock()
		from := c.rev
		c.mu.RUnlock()
		w, err := c.cfg.Store.Watch(ctx, c.cfg.Prefix, from, true)
		if err == nil {
			c.cfg.Log.Info("watch cache: storage watch resumed", "resource", c.cfg.Resource, "fromRevision", from, "after", cause)
			return w, nil
		}
		if errors.Is(err, storage.ErrCompacted) {
			return nil, fmt.Errorf("%w; watching again from revision %d: %w", cause, from, err)
		}
		cause = err
	}
}

// load lists every object at rev (0: the latest) and returns them with
// the revision read at.
func (c *Cache) load(ctx context.Context, rev int64) (map[string]*entry, int64, error) {
	objects := map[string]*entry{}
	cont := ""
	for {
		res, err := c.cfg.Store.List(ctx, c.cfg.Prefix, storage.ListOptions{Limit: listPageSize, Continue: cont, Revision: rev})
		if err != nil {
			return nil, 0, fmt.Errorf("listing %s at revision %d: %w", c.cfg.Prefix, rev, err)
		}
		rev = res.Revision
		for _, o := range res.Objects {
			it, err := c.cfg.Transform(o.Value, o.Revision)
			if err != nil {
				c.cfg.Log.Error("watch cache: skipping an object that does not decode", "key", o.Key, "err", err)
				continue
			}
			objects[o.Key] = &entry{key: o.Key, rev: o.Revision, item: it}
		}
		if res.Continue == "" {
			return objects, rev, nil
		}
		cont = res.Continue
	}
}

// markReady makes the cache ready once it has reached target, and reports
// whether it is.
func (c *Cache) markReady(target int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready {
		return true
	}
	if c.rev < target {
		return false
	}
	c.ready, c.lastErr = true, nil
	close(c.readyCh)
	c.advanceLocked()
	c.cfg.Log.Debug("watch cache ready", "resource", c.cfg.Resource, "objects", len(c.objects), "revision", c.rev, "window", c.window.n)
	return true
}

// reset drops every watcher with err and marks the cache not ready.
func (c *Cache) reset(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready {
		c.readyCh = make(chan struct{})
	}
	c.ready, c.lastErr = false, err
	for w := range c.watchers {
		c.dropLocked(w, err)
	}
	c.objects, c.byIndex = nil, nil
	c.window.clear()
	c.advanceLocked()
}

func (c *Cache) advanceLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Cache) indexLocked(e *entry, add bool) {
	if c.cfg.IndexField == "" {
		return
	}
	v := e.item.Fields[c.cfg.IndexField]
	m := c.byIndex[v]
	if add {
		if m == nil {
			m = map[string]*entry{}
			c.byIndex[v] = m
		}
		m[e.key] = e
		return
	}
	if m[e.key] == e {
		delete(m, e.key)
		if len(m) == 0 {
			delete(c.byIndex, v)
		}
	}
}

// apply applies one storage event and hands it to the watchers.
func (c *Cache) apply(se storage.Event) {
	if se.Type == storage.Progress {
		c.mu.Lock()
		if se.Revision > c.rev {
			c.rev = se.Revision
			c.advanceLocked()
		}
		c.mu.Unlock()
		return
	}
	key := se.Object.Key
	it, err := c.cfg.Transform(se.Object.Value, se.Revision)
	c.mu.Lock()
	defer c.mu.Unlock()
	if se.Revision > c.rev {
		c.rev = se.Revision
	}
	defer c.advanceLocked()
	if err != nil {
		c.cfg.Log.Error("watch cache: skipping a change that does not decode", "key", key, "revision", se.Revision, "err", err)
		return
	}
	cur := &entry{key: key, rev: se.Revision, item: it}
	prev := c.objects[key]
	ev := &Event{Type: se.Type, Key: key, Rev: se.Revision, cur: cur, prev: prev, cache: c}
	if prev != nil {
		c.indexLocked(prev, false)
	}
	switch se.Type {
	case storage.Deleted:
		delete(c.objects, key)
		if prev == nil {
			ev.prev = cur
		}
	default:
		c.objects[key] = cur
		c.indexLocked(cur, true)
	}
	if evicted := c.window.push(ev); evicted != nil {
		c.oldest = evicted.Rev
	}
	c.dispatchLocked(ev)
}

// dispatchLocked hands ev to the groups it may concern.
func (c *Cache) dispatchLocked(ev *Event) {
	visit := func(g *group) {
		typ := g.filter.eventType(ev)
		if typ == "" {
			return
		}
		for w := range g.watchers {
			if ev.Rev <= w.minRev {
				continue
			}
			c.sendLocked(w, Delivery{Type: typ, Rev: ev.Rev, ev: ev})
		}
	}
	for g := range c.anyValue {
		visit(g)
	}
	if c.cfg.IndexField != "" {
		cv := ev.cur.item.Fields[c.cfg.IndexField]
		for g := range c.indexed[cv] {
			visit(g)
		}
		if ev.prev != nil {
			if pv := ev.prev.item.Fields[c.cfg.IndexField]; pv != cv {
				for g := range c.indexed[pv] {
					visit(g)
				}
			}
		}
	}
}

func (c *Cache) sendLocked(w *Watcher, d Delivery) bool {
	select {
	case w.ch <- d:
		return true
	default:
		c.dropLocked(w, fmt.Errorf("%w: it fell %d events behind", ErrTooSlow, cap(w.ch)))
		return false
	}
}

// dropLocked ends w with err.
func (c *Cache) dropLocked(w *Watcher, err error) {
	if _, ok := c.watchers[w]; !ok {
		return
	}
	delete(c.watchers, w)
	g := w.group
	delete(g.watchers, w)
	if len(g.watchers) == 0 {
		delete(c.groups, g.id)
		if g.index == nil {
			delete(c.anyValue, g)
		} else {
			delete(c.indexed[*g.index], g)
			if len(c.indexed[*g.index]) == 0 {
				delete(c.indexed, *g.index)
			}
		}
	}
	w.err = err
	close(w.ch)
}

// sendBookmarks sends a bookmark to each watcher that wants one now.
func (c *Cache) sendBookmarks() {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := range c.watchers {
		if !w.bookmarks || now.Before(w.nextBookmark) || c.rev < w.minRev {
			continue
		}
		if c.sendLocked(w, Delivery{Type: Bookmark, Rev: c.rev}) {
			w.nextBookmark = c.nextBookmark(now, w.deadline)
		}
	}
}

func (c *Cache) nextBookmark(now, deadline time.Time) time.Time {
	next := now.Add(c.cfg.BookmarkInterval)
	if !deadline.IsZero() {
		if d := deadline.Add(-bookmarkBeforeDeadline); d.After(now) && d.Before(next) {
			next = d
		}
	}
	return next
}

// Revision is the revision the cache has reached (0 when not ready).
func (c *Cache) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready {
		return 0
	}
	return c.rev
}

// WaitFresh waits until the cache is ready and has reached rev, asking the
// store for progress while it waits; ErrNotReady or ErrNotFresh when ctx
// ends first.
func (c *Cache) WaitFresh(ctx context.Context, rev int64) error {
	pr, _ := c.cfg.Store.(storage.ProgressRequester)
	var asked time.Time
	for {
		c.mu.RLock()
		ready, cur, changed, readyCh, lastErr := c.ready, c.rev, c.changed, c.readyCh, c.lastErr
		c.mu.RUnlock()
		if ready && cur >= rev {
			return nil
		}
		wait := changed
		if !ready {
			wait = readyCh
		} else if pr != nil && time.Since(asked) >= 100*time.Millisecond {
			asked = time.Now()
			if err := pr.RequestProgress(ctx); err != nil {
				c.cfg.Log.Debug("watch cache: progress request failed", "resource", c.cfg.Resource, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			if !ready {
				if lastErr != nil {
					return fmt.Errorf("%w: the %s cache is loading (%v)", ErrNotReady, c.cfg.Resource, lastErr)
				}
				return fmt.Errorf("%w: the %s cache is loading", ErrNotReady, c.cfg.Resource)
			}
			return fmt.Errorf("%w: the %s cache is at revision %d, not yet at %d", ErrNotFresh, c.cfg.Resource, cur, rev)
		case <-wait:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// List returns the objects that match f, in key order, and the revision
// they are at. The cache must be ready (see WaitFresh).
func (c *Cache) List(f *Filter) ([]Item, int64, error) {
	c.mu.RLock()
	if !c.ready {
		err := c.lastErr
		c.mu.RUnlock()
		return nil, 0, fmt.Errorf("%w (%v)", ErrNotReady, err)
	}
	rev := c.rev
	cands := c.candidatesLocked(f)
	c.mu.RUnlock()
	out := make([]*entry, 0, len(cands))
	for _, e := range cands {
		if f.matches(e) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	items := make([]Item, len(out))
	for i, e := range out {
		items[i] = e.item
	}
	return items, rev, nil
}

// candidatesLocked returns the entries f may match: those of its index
// value when it has one, else all.
func (c *Cache) candidatesLocked(f *Filter) []*entry {
	var src map[string]*entry
	if v, ok := f.indexValue(c.cfg.IndexField); ok {
		src = c.byIndex[v]
	} else {
		src = c.objects
	}
	out := make([]*entry, 0, len(src))
	for _, e := range src {
		out = append(out, e)
	}
	return out
}

// WatchOptions say where a watch starts and what it wants.
type WatchOptions struct {
	Filter *Filter
	// Initial: start with an ADDED event for every matching object (at a
	// revision not older than From), then the changes after it. Otherwise
	// the watch sends the changes after From (0: after the cache's
	// current revision).
	Initial bool
	// InitialEnd: after the initial events, a bookmark that says so
	// (sendInitialEvents).
	InitialEnd bool
	From       int64
	Bookmarks  bool
	// Deadline is when the watch will be ended by its caller (a bookmark
	// is sent just before); zero for none.
	Deadline time.Time
}

// Watch starts a watcher. It waits for the cache to be ready and, for an
// initial list, to reach opts.From, as long as ctx allows; ErrTooOld when
// opts.From is older than the window.
func (c *Cache) Watch(ctx context.Context, opts WatchOptions) (*Watcher, error) {
	if opts.Initial {
		if err := c.WaitFresh(ctx, opts.From); err != nil {
			return nil, err
		}
	} else if err := c.WaitFresh(ctx, 0); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return nil, fmt.Errorf("%w (%v)", ErrNotReady, c.lastErr)
	}
	w := &Watcher{cache: c, ch: make(chan Delivery, c.cfg.Buffer), bookmarks: opts.Bookmarks,
		deadline: opts.Deadline, filter: opts.Filter}
	w.nextBookmark = c.nextBookmark(c.cfg.Now(), opts.Deadline)
	switch {
	case opts.Initial:
		w.initial = c.candidatesLocked(opts.Filter)
		w.initialEnd = opts.InitialEnd
		w.minRev = c.rev
	case opts.From == 0:
		w.minRev = c.rev
	case opts.From < c.oldest:
		return nil, fmt.Errorf("%w: %d (the oldest this server can watch from is %d)", ErrTooOld, opts.From, c.oldest)
	case opts.From >= c.rev:
		w.minRev = opts.From // nothing to replay; a future revision waits
	default:
		w.replay = c.window.since(opts.From)
		w.minRev = c.rev
	}
	w.startRev = w.minRev
	id := opts.Filter.id()
	g := c.groups[id]
	if g == nil {
		g = &group{id: id, filter: opts.Filter, watchers: map[*Watcher]struct{}{}}
		if v, ok := opts.Filter.indexValue(c.cfg.IndexField); ok {
			g.index = &v
			if c.indexed[v] == nil {
				c.indexed[v] = map[*group]struct{}{}
			}
			c.indexed[v][g] = struct{}{}
		} else {
			c.anyValue[g] = struct{}{}
		}
		c.groups[id] = g
	}
	g.watchers[w] = struct{}{}
	w.group = g
	c.watchers[w] = struct{}{}
	return w, nil
}

// Stats are counts for metrics and tests.
type Stats struct {
	Objects, Watchers, Groups, Window int
	Revision, Oldest                  int64
}

// Stats returns the cache's counts.
func (c *Cache) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return Stats{Objects: len(c.objects), Watchers: len(c.watchers), Groups: len(c.groups),
		Window: c.window.n, Revision: c.rev, Oldest: c.oldest}
}

// ring is the window of recent events.
type ring struct {
	buf   []*Event
	start int // index of the oldest
	n     int
}

func (r *ring) clear() {
	clear(r.buf)
	r.start, r.n = 0, 0
}

// push appends ev and returns the event it evicted, if any.
func (r *ring) push(ev *Event) *Event {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = ev
		r.n++
		return nil
	}
	old := r.buf[r.start]
	r.buf[r.start] = ev
	r.start = (r.start + 1) % len(r.buf)
	return old
}

func (r *ring) at(i int) *Event { return r.buf[(r.start+i)%len(r.buf)] }

// since returns the events after rev, oldest first.
func (r *ring) since(rev int64) []*Event {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).Rev > rev })
	out := make([]*Event, 0, r.n-i)
	for ; i < r.n; i++ {
		out = append(out, r.at(i))
	}
	return out
}
