package watchcache

import (
	"iter"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ballast-dev/ballast/internal/storage"
)

// Delivery types, as watch events name them.
const (
	Added    = "ADDED"
	Modified = "MODIFIED"
	Deleted  = "DELETED"
	Bookmark = "BOOKMARK"
)

// Filter selects objects: by key prefix (a namespace), labels and fields.
type Filter struct {
	// Prefix is the storage key prefix ("/pods/ns1/"); the cache's own for all.
	Prefix string
	Label  labels.Selector
	Field  fields.Selector
}

func (f *Filter) id() string {
	return f.Prefix + "\x00" + f.labels().String() + "\x00" + f.fields().String()
}

func (f *Filter) labels() labels.Selector {
	if f.Label == nil {
		return labels.Everything()
	}
	return f.Label
}

func (f *Filter) fields() fields.Selector {
	if f.Field == nil {
		return fields.Everything()
	}
	return f.Field
}

// indexValue is the value f requires of field, if it requires one.
func (f *Filter) indexValue(field string) (string, bool) {
	if field == "" || f.Field == nil {
		return "", false
	}
	return f.Field.RequiresExactMatch(field)
}

func (f *Filter) matches(e *entry) bool {
	if !strings.HasPrefix(e.key, f.Prefix) {
		return false
	}
	if f.Label != nil && !f.Label.Empty() && !f.Label.Matches(e.item.Labels) {
		return false
	}
	if f.Field != nil && !f.Field.Empty() && !f.Field.Matches(e.item.Fields) {
		return false
	}
	return true
}

// eventType is what ev is to a watcher with filter f: ADDED when the object
// starts to match, MODIFIED while it matches, DELETED when it stops
// matching or is deleted, "" when it concerns f not at all.
func (f *Filter) eventType(ev *Event) string {
	cur := ev.Type != storage.Deleted && f.matches(ev.cur)
	prev := ev.prev != nil && f.matches(ev.prev)
	switch {
	case cur && prev:
		return Modified
	case cur:
		return Added
	case prev:
		return Deleted
	}
	return ""
}

// group is the watchers with one filter.
type group struct {
	id       string
	filter   *Filter
	index    *string // the IndexField value the filter requires, if any
	watchers map[*Watcher]struct{}
}

// Event is one change, shared by every watcher it is delivered to.
type Event struct {
	Type storage.EventType
	Key  string
	Rev  int64
	// cur is the new object (for a delete, the last one at the delete's
	// revision); prev the one before, nil when it was created.
	cur, prev *entry
	cache     *Cache

	mu sync.Mutex
	// Guarded by mu.
	restamped *Item // prev at Rev, for watchers it stops matching

	frames encodings
}

type frame struct {
	key string
	b   []byte
	err error
}

// Frame returns what build makes of the event for key (an encoding and an
// event type), building it once for all watchers.
func (e *Event) Frame(key string, build func() ([]byte, error)) ([]byte, error) {
	return e.frames.get(key, build)
}

// Delivery is what a watcher receives: an event seen through its filter,
// an initial object, or a bookmark.
type Delivery struct {
	// Type is ADDED, MODIFIED, DELETED or BOOKMARK.
	Type string
	// Rev is the event's revision (a bookmark's).
	Rev int64
	// InitialEnd marks the bookmark after the initial events.
	InitialEnd bool
	ev         *Event
	item       *Item // an initial object
}

// Event is the shared event delivered, nil for initial objects and bookmarks.
func (d Delivery) Event() *Event { return d.ev }

// Item returns the object delivered (for DELETED, the last state at the
// delete's revision); an error only when the previous state of an object
// that stopped matching cannot be re-encoded.
func (d Delivery) Item() (Item, error) {
	switch {
	case d.item != nil:
		return *d.item, nil
	case d.ev == nil:
		return Item{}, nil
	case d.Type != Deleted || d.ev.Type == storage.Deleted:
		return d.ev.cur.item, nil
	}
	e := d.ev
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.restamped == nil {
		it, err := e.cache.cfg.Transform(e.prev.item.Raw, e.Rev)
		if err != nil {
			return Item{}, err
		}
		e.restamped = &it
	}
	return *e.restamped, nil
}

// Watcher is one watch served from the cache.
type Watcher struct {
	cache     *Cache
	group     *group
	filter    *Filter
	ch        chan Delivery
	bookmarks bool
	deadline  time.Time
	// initial and replay are what comes before the live events: the
	// objects of an initial list (not yet filtered), or the window's
	// events after the start.
	initial    []*entry
	initialEnd bool
	replay     []*Event
	startRev   int64

	// Guarded by cache.mu.
	minRev       int64 // events up to minRev are not sent
	nextBookmark time.Time
	err          error
}

// Backlog yields what the watcher must send before its live events, one
// at a time (an initial list is not copied): ADDED for each initial object
// that matches, in key order, then the initial-events-end bookmark when asked; or the
// window's events after its start. It is used once.
func (w *Watcher) Backlog() iter.Seq[Delivery] {
	initial, replay := w.initial, w.replay
	w.initial, w.replay = nil, nil
	return func(yield func(Delivery) bool) {
		sort.Slice(initial, func(i, j int) bool { return initial[i].key < initial[j].key })
		for _, e := range initial {
			if w.filter.matches(e) && !yield(Delivery{Type: Added, Rev: e.rev, item: &e.item}) {
				return
			}
		}
		if w.initialEnd && !yield(Delivery{Type: Bookmark, Rev: w.startRev, InitialEnd: true}) {
			return
		}
		for _, ev := range replay {
			if typ := w.filter.eventType(ev); typ != "" && !yield(Delivery{Type: typ, Rev: ev.Rev, ev: ev}) {
				return
			}
		}
	}
}

// StartRevision is the revision the watcher's live events start after.
func (w *Watcher) StartRevision() int64 { return w.startRev }

// Events are the live deliveries; the channel is closed when the watcher
// ends (Err tells why).
func (w *Watcher) Events() <-chan Delivery { return w.ch }

// Err is why the watcher ended: ErrTooSlow, ErrReset, or nil after Stop.
func (w *Watcher) Err() error {
	w.cache.mu.RLock()
	defer w.cache.mu.RUnlock()
	return w.err
}

// Stop ends the watcher.
func (w *Watcher) Stop() {
	w.cache.mu.Lock()
	defer w.cache.mu.Unlock()
	w.cache.dropLocked(w, nil)
}
