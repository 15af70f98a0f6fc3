package watchcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ballast-dev/ballast/internal/storage"
)

// thing is the test objects' stored form.
type thing struct {
	Name   string            `json:"name"`
	Node   string            `json:"node,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	RV     string            `json:"rv,omitempty"`
}

func value(name, node string, lbls map[string]string) string {
	b, _ := json.Marshal(thing{Name: name, Node: node, Labels: lbls})
	return string(b)
}

type env struct {
	t          *testing.T
	store      *memStore
	cache      *Cache
	transforms atomic.Int64
	cancel     context.CancelFunc
	done       chan struct{}
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, store: newMemStore(), done: make(chan struct{})}
	cfg := Config{Resource: "things", Prefix: "/things/", Store: e.store, IndexField: "spec.nodeName",
		Transform: func(v []byte, rev int64) (Item, error) {
			e.transforms.Add(1)
			var th thing
			if err := json.Unmarshal(v, &th); err != nil {
				return Item{}, err
			}
			th.RV = strconv.FormatInt(rev, 10)
			raw, _ := json.Marshal(th)
			return Item{Raw: raw, Labels: th.Labels, Fields: fields.Set{"metadata.name": th.Name, "spec.nodeName": th.Node}}, nil
		}}
	if mod != nil {
		mod(&cfg)
	}
	e.cache = New(cfg)
	return e
}

// start runs the cache until the test ends.
func (e *env) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		defer close(e.done)
		_ = e.cache.Run(ctx)
	}()
	e.t.Cleanup(func() {
		cancel()
		<-e.done
	})
	e.waitFresh(0)
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) waitFresh(rev int64) {
	e.t.Helper()
	if err := e.cache.WaitFresh(e.ctx(), rev); err != nil {
		e.t.Fatalf("WaitFresh(%d): %v", rev, err)
	}
}

func (e *env) watch(opts WatchOptions) *Watcher {
	e.t.Helper()
	if opts.Filter == nil {
		opts.Filter = &Filter{Prefix: "/things/"}
	}
	w, err := e.cache.Watch(e.ctx(), opts)
	if err != nil {
		e.t.Fatalf("Watch(%+v): %v", opts, err)
	}
	e.t.Cleanup(w.Stop)
	return w
}

// got is one delivery as the tests compare it.
type got struct {
	Type, Name string
	Rev        int64
}

func (g got) String() string { return fmt.Sprintf("%s %s@%d", g.Type, g.Name, g.Rev) }

func describe(t *testing.T, d Delivery) got {
	t.Helper()
	if d.Type == Bookmark {
		name := ""
		if d.InitialEnd {
			name = "initial-end"
		}
		return got{Type: Bookmark, Name: name, Rev: d.Rev}
	}
	it, err := d.Item()
	if err != nil {
		t.Fatal(err)
	}
	var th thing
	if err := json.Unmarshal(it.Raw, &th); err != nil {
		t.Fatalf("delivered %q: %v", it.Raw, err)
	}
	if th.RV != strconv.FormatInt(d.Rev, 10) {
		t.Errorf("%s %s: object at resourceVersion %s, delivery at %d", d.Type, th.Name, th.RV, d.Rev)
	}
	return got{Type: d.Type, Name: th.Name, Rev: d.Rev}
}

// next returns the watcher's next live delivery, skipping bookmarks unless asked.
func next(t *testing.T, w *Watcher, bookmarks bool) got {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case d, ok := <-w.Events():
			if !ok {
				t.Fatalf("watcher ended: %v", w.Err())
			}
			if d.Type == Bookmark && !bookmarks {
				continue
			}
			return describe(t, d)
		case <-timeout:
			t.Fatal("no delivery within 10s")
		}
	}
}

func backlog(t *testing.T, w *Watcher) []got {
	var out []got
	for d := range w.Backlog() {
		out = append(out, describe(t, d))
	}
	return out
}

func wantGot(t *testing.T, what string, have, want []got) {
	t.Helper()
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Fatalf("%s:\n have %v\n want %v", what, have, want)
	}
}

func TestResourceVersionSemantics(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Window = 4 })
	r1 := e.store.put("/things/a", value("a", "", nil))
	r2 := e.store.put("/things/b", value("b", "", nil))
	e.start()

	// Initial (resourceVersion=0, or NotOlderThan): every object, then the changes after.
	w := e.watch(WatchOptions{Initial: true, InitialEnd: true, From: r2})
	wantGot(t, "initial events", backlog(t, w), []got{{Added, "a", r1}, {Added, "b", r2}, {Bookmark, "initial-end", r2}})

	r3 := e.store.put("/things/a", value("a", "n1", nil))
	if g := next(t, w, false); g != (got{Modified, "a", r3}) {
		t.Fatalf("after the initial events: %v", g)
	}
	e.waitFresh(r3)

	// From an exact revision in the window: the events after it, from memory.
	calls := e.store.watchCalls
	w2 := e.watch(WatchOptions{From: r2})
	wantGot(t, "replay from r2", backlog(t, w2), []got{{Modified, "a", r3}})
	if e.store.watchCalls != calls {
		t.Fatalf("a client watch opened a storage watch (%d -> %d)", calls, e.store.watchCalls)
	}

	// From 0 (now): nothing old.
	w3 := e.watch(WatchOptions{})
	if b := backlog(t, w3); len(b) != 0 {
		t.Fatalf("watch from now has a backlog: %v", b)
	}
	r4 := e.store.put("/things/c", value("c", "", nil))
	if err := func() error { _, err := e.store.Delete(e.ctx(), "/things/b", 0); return err }(); err != nil {
		t.Fatal(err)
	}
	r5 := r4 + 1
	wantGot(t, "watch from now", []got{next(t, w3, false), next(t, w3, false)}, []got{{Added, "c", r4}, {Deleted, "b", r5}})

	// NotOlderThan a revision the cache has not seen: it asks storage for progress.
	r6 := e.store.bump()
	e.waitFresh(r6)
	items, rev, err := e.cache.List(&Filter{Prefix: "/things/"})
	if err != nil || rev < r6 || len(items) != 2 {
		t.Fatalf("List after NotOlderThan %d: %d items at %d, %v", r6, len(items), rev, err)
	}
	// A future revision nobody writes: not fresh.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.cache.WaitFresh(ctx, r6+100); !errors.Is(err, ErrNotFresh) {
		t.Fatalf("WaitFresh(future) = %v, want ErrNotFresh", err)
	}

	// Too old: the window keeps 4 events; r1's successors are gone.
	for i := 0; i < 4; i++ {
		e.store.put("/things/d", value("d", "", map[string]string{"i": strconv.Itoa(i)}))
	}
	last := e.store.put("/things/d", value("d", "", nil))
	e.waitFresh(last)
	if _, err := e.cache.Watch(e.ctx(), WatchOptions{Filter: &Filter{Prefix: "/things/"}, From: r3}); !errors.Is(err, ErrTooOld) {
		t.Fatalf("Watch from %d with a window of 4: %v, want ErrTooOld", r3, err)
	}
	// Watch from a future revision: events up to it are skipped.
	wf := e.watch(WatchOptions{From: last + 1})
	e.store.put("/things/e", value("e", "", nil)) // last+1: skipped
	r := e.store.put("/things/f", value("f", "", nil))
	if g := next(t, wf, false); g != (got{Added, "f", r}) {
		t.Fatalf("watch from a future revision: %v", g)
	}
}

func TestBookmarks(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BookmarkInterval = time.Hour })
	e.store.put("/things/a", value("a", "", nil))
	e.start()
	// Periodic: none within the hour; one just before the deadline.
	w := e.watch(WatchOptions{Bookmarks: true, Deadline: time.Now().Add(2500 * time.Millisecond)})
	r := e.store.put("/things/b", value("b", "", nil))
	if g := next(t, w, false); g != (got{Added, "b", r}) {
		t.Fatalf("first event: %v", g)
	}
	if g := next(t, w, true); g != (got{Bookmark, "", r}) {
		t.Fatalf("bookmark before the deadline: %v, want one at %d", g, r)
	}
	// A watcher that did not ask gets none.
	e2 := newEnv(t, func(c *Config) { c.BookmarkInterval = time.Millisecond })
	e2.start()
	quiet := e2.watch(WatchOptions{})
	loud := e2.watch(WatchOptions{Bookmarks: true})
	r2 := e2.store.bump()
	e2.waitFresh(r2) // asks for progress: the cache reaches r2 with no change of its own
	for {
		g := next(t, loud, true)
		if g.Type != Bookmark {
			t.Fatalf("periodic bookmarks: got %v", g)
		}
		if g.Rev == r2 {
			break
		}
	}
	r3 := e2.store.put("/things/x", value("x", "", nil))
	if g := next(t, quiet, true); g != (got{Added, "x", r3}) {
		t.Fatalf("watcher without bookmarks got %v first", g)
	}
}

// countingSelector counts how often it is evaluated.
type countingSelector struct {
	labels.Selector
	n *atomic.Int64
}

func (s countingSelector) Matches(l labels.Labels) bool {
	s.n.Add(1)
	return s.Selector.Matches(l)
}

func TestSelectors(t *testing.T) {
	e := newEnv(t, nil)
	e.start()
	var evals atomic.Int64
	sel := countingSelector{Selector: labels.SelectorFromSet(labels.Set{"app": "web"}), n: &evals}
	var ws []*Watcher
	for i := 0; i < 10; i++ {
		ws = append(ws, e.watch(WatchOptions{Filter: &Filter{Prefix: "/things/", Label: sel}}))
	}
	onNode := e.watch(WatchOptions{Filter: &Filter{Prefix: "/things/", Field: fields.OneTermEqualSelector("spec.nodeName", "n1")}})
	if s := e.cache.Stats(); s.Groups != 2 || s.Watchers != 11 {
		t.Fatalf("10 watchers with one selector and one with another: %+v, want 2 groups", s)
	}
	base := e.transforms.Load()
	r1 := e.store.put("/things/a", value("a", "n1", map[string]string{"app": "web"}))
	r2 := e.store.put("/things/a", value("a", "n2", map[string]string{"app": "db"}))
	r3 := e.store.put("/things/b", value("b", "n1", map[string]string{"app": "db"}))
	r4 := e.store.put("/things/a", value("a", "n2", map[string]string{"app": "web"}))
	for i, w := range ws {
		wantGot(t, fmt.Sprintf("label watcher %d", i), []got{next(t, w, false), next(t, w, false), next(t, w, false)},
			[]got{{Added, "a", r1}, {Deleted, "a", r2}, {Added, "a", r4}})
	}
	wantGot(t, "spec.nodeName=n1 watcher", []got{next(t, onNode, false), next(t, onNode, false), next(t, onNode, false)},
		[]got{{Added, "a", r1}, {Deleted, "a", r2}, {Added, "b", r3}})
	if n := e.transforms.Load() - base; n != 4+1 {
		// One per change, plus re-encoding a's previous state once for the
		// DELETED that ten watchers and the node watcher got at r2.
		t.Fatalf("%d transforms for 4 changes and 11 watchers, want 5", n)
	}
	// Each change is matched once against the group's selector (its
	// new state, and its previous one when there is one): 1+2+1+2.
	if n := evals.Load(); n != 6 {
		t.Fatalf("the label selector of 10 watchers was evaluated %d times for 4 changes, want 6", n)
	}
	// Lists use the same filters, and the index.
	items, _, err := e.cache.List(&Filter{Prefix: "/things/", Field: fields.OneTermEqualSelector("spec.nodeName", "n1")})
	if err != nil || len(items) != 1 || !json.Valid(items[0].Raw) {
		t.Fatalf("List spec.nodeName=n1: %d items, %v", len(items), err)
	}
}

func TestSlowWatcherDropped(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Buffer = 5 })
	e.start()
	slow := e.watch(WatchOptions{})
	fast := e.watch(WatchOptions{})
	var want, have []got
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("o%d", i)
		want = append(want, got{Added, name, e.store.put("/things/"+name, value(name, "", nil))})
		have = append(have, next(t, fast, false))
	}
	wantGot(t, "the reading watcher", have, want)
	n := 0
	for range slow.Events() {
		n++
	}
	if !errors.Is(slow.Err(), ErrTooSlow) || n != 5 {
		t.Fatalf("the slow watcher got %d events and ended with %v; want its 5 buffered and ErrTooSlow", n, slow.Err())
	}
	if s := e.cache.Stats(); s.Watchers != 1 {
		t.Fatalf("after dropping the slow watcher: %+v", s)
	}
}

func TestCompaction(t *testing.T) {
	e := newEnv(t, nil)
	r1 := e.store.put("/things/a", value("a", "", nil))
	e.start()
	r2 := e.store.put("/things/a", value("a", "n1", nil))
	r3 := e.store.put("/things/b", value("b", "", nil))
	e.waitFresh(r3)
	// Storage compacted past r1: the window still serves a watch from r1.
	e.store.compact(r3)
	w := e.watch(WatchOptions{From: r1})
	wantGot(t, "watch from a compacted revision still in the window", backlog(t, w), []got{{Modified, "a", r2}, {Added, "b", r3}})

	// The storage watch itself fails as compacted (the cache fell behind):
	// every watcher ends with ErrReset, and the cache loads again.
	e.store.failWatches(fmt.Errorf("etcd watch: %w", storage.ErrCompacted))
	for range w.Events() {
	}
	if !errors.Is(w.Err(), ErrReset) {
		t.Fatalf("watcher after the cache's storage watch failed: %v, want ErrReset", w.Err())
	}
	r4 := e.store.put("/things/c", value("c", "", nil))
	e.waitFresh(r4)
	items, rev, err := e.cache.List(&Filter{Prefix: "/things/"})
	if err != nil || rev < r4 || len(items) != 3 {
		t.Fatalf("after reloading: %d items at %d, %v", len(items), rev, err)
	}
	if _, err := e.cache.Watch(e.ctx(), WatchOptions{Filter: &Filter{Prefix: "/things/"}, From: r2}); !errors.Is(err, ErrTooOld) {
		t.Fatalf("watch from before the reload: %v, want ErrTooOld", err)
	}
}

// TestStorageWatchResumes: when the cache's storage watch ends for a
// moment (etcd lost a member, or had no leader), the cache watches storage
// again from its revision and its watchers go on, seeing what changed in
// between, rather than ending with ErrReset (a 410 and a relist for every
// client).
func TestStorageWatchResumes(t *testing.T) {
	e := newEnv(t, nil)
	r1 := e.store.put("/things/a", value("a", "", nil))
	e.start()
	e.waitFresh(r1)
	w := e.watch(WatchOptions{From: r1})
	e.store.failWatches(fmt.Errorf("etcd watch: %w: etcdserver: no leader", storage.ErrUnavailable))
	r2 := e.store.put("/things/b", value("b", "", nil))
	if g := next(t, w, false); g != (got{Added, "b", r2}) {
		t.Fatalf("after the storage watch resumed: %v, want ADDED b@%d", g, r2)
	}
	r3 := e.store.put("/things/a", value("a", "n1", nil))
	if g := next(t, w, false); g != (got{Modified, "a", r3}) {
		t.Fatalf("then: %v, want MODIFIED a@%d", g, r3)
	}
}

// TestResumeAcrossRestart: a cache that starts (a server restarted) loads
// the objects as they were a window ago and replays the changes since, so
// a watch resuming from before its start is served, not sent to relist.
func TestResumeAcrossRestart(t *testing.T) {
	e := newEnv(t, nil)
	r1 := e.store.put("/things/a", value("a", "", nil))
	r2 := e.store.put("/things/a", value("a", "n1", nil))
	r3 := e.store.put("/things/b", value("b", "", nil))
	e.start()
	w := e.watch(WatchOptions{From: r1})
	wantGot(t, "resumed from before the cache started", backlog(t, w), []got{{Modified, "a", r2}, {Added, "b", r3}})
	items, rev, err := e.cache.List(&Filter{Prefix: "/things/"})
	if err != nil || rev != r3 || len(items) != 2 {
		t.Fatalf("the cache is ready at %d with %d objects (%v), want the latest state at %d", rev, len(items), err, r3)
	}
}
