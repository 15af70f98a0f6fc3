package watchcache

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/storage"
)

// memStore is a storage.Store in memory with a history, for the cache's
// tests: revisions, watches from a revision, compaction, progress on
// request, and watches that can be made to fail.
type memStore struct {
	mu        sync.Mutex
	rev       int64
	compacted int64
	objects   map[string]storage.Object
	history   []storage.Event
	watches   map[*memWatch]struct{}
	// watchCalls counts Watch calls.
	watchCalls int
}

var (
	_ storage.Store             = (*memStore)(nil)
	_ storage.ProgressRequester = (*memStore)(nil)
)

func newMemStore() *memStore {
	return &memStore{objects: map[string]storage.Object{}, watches: map[*memWatch]struct{}{}}
}

type memWatch struct {
	prefix   string
	progress bool
	ch       chan storage.Event
	err      error
	done     chan struct{}
}

func (w *memWatch) Events() <-chan storage.Event { return w.ch }
func (w *memWatch) Err() error                   { return w.err }

func (s *memStore) record(e storage.Event) {
	s.history = append(s.history, e)
	for w := range s.watches {
		if strings.HasPrefix(e.Object.Key, w.prefix) {
			select {
			case w.ch <- e:
			case <-w.done:
			}
		}
	}
}

func (s *memStore) Create(_ context.Context, key string, value []byte, _ time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[key]; ok {
		return 0, storage.ErrAlreadyExists
	}
	s.rev++
	o := storage.Object{Key: key, Value: value, Revision: s.rev}
	s.objects[key] = o
	s.record(storage.Event{Type: storage.Added, Object: o, Revision: s.rev})
	return s.rev, nil
}

func (s *memStore) put(key, value string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	typ := storage.Modified
	if _, ok := s.objects[key]; !ok {
		typ = storage.Added
	}
	o := storage.Object{Key: key, Value: []byte(value), Revision: s.rev}
	s.objects[key] = o
	s.record(storage.Event{Type: typ, Object: o, Revision: s.rev})
	return s.rev
}

func (s *memStore) Get(_ context.Context, key string) (storage.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[key]
	if !ok {
		return storage.Object{}, storage.ErrNotFound
	}
	return o, nil
}

func (s *memStore) List(_ context.Context, prefix string, opts storage.ListOptions) (storage.ListResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if opts.Continue != "" {
		return storage.ListResult{}, fmt.Errorf("memStore lists whole")
	}
	res := storage.ListResult{Revision: s.rev}
	objects := s.objects
	if opts.Revision != 0 && opts.Revision < s.rev {
		if s.compacted > 0 { // the history is cut: no state to rebuild
			return storage.ListResult{}, storage.ErrCompacted
		}
		objects = map[string]storage.Object{}
		for _, e := range s.history {
			if e.Revision > opts.Revision {
				break
			}
			if e.Type == storage.Deleted {
				delete(objects, e.Object.Key)
			} else {
				objects[e.Object.Key] = e.Object
			}
		}
		res.Revision = opts.Revision
	}
	for k, o := range objects {
		if strings.HasPrefix(k, prefix) {
			res.Objects = append(res.Objects, o)
		}
	}
	sort.Slice(res.Objects, func(i, j int) bool { return res.Objects[i].Key < res.Objects[j].Key })
	return res, nil
}

func (s *memStore) Update(_ context.Context, key string, _ int64, update storage.UpdateFunc) (storage.Object, error) {
	s.mu.Lock()
	cur, ok := s.objects[key]
	s.mu.Unlock()
	if !ok {
		return storage.Object{}, storage.ErrNotFound
	}
	v, err := update(cur)
	if err != nil {
		return storage.Object{}, err
	}
	rev := s.put(key, string(v))
	return storage.Object{Key: key, Value: v, Revision: rev}, nil
}

func (s *memStore) Delete(_ context.Context, key string, _ int64) (storage.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[key]
	if !ok {
		return storage.Object{}, storage.ErrNotFound
	}
	delete(s.objects, key)
	s.rev++
	s.record(storage.Event{Type: storage.Deleted, Object: storage.Object{Key: key, Value: o.Value, Revision: s.rev}, Revision: s.rev})
	return o, nil
}

func (s *memStore) Watch(ctx context.Context, prefix string, from int64, progress bool) (storage.Watch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchCalls++
	if from < s.compacted {
		return nil, storage.ErrCompacted
	}
	w := &memWatch{prefix: prefix, progress: progress, ch: make(chan storage.Event, 100000), done: make(chan struct{})}
	for _, e := range s.history {
		if e.Revision > from && strings.HasPrefix(e.Object.Key, prefix) {
			w.ch <- e
		}
	}
	s.watches[w] = struct{}{}
	go func() {
		<-ctx.Done()
		s.end(w, nil)
	}()
	return w, nil
}

// end closes w with err.
func (s *memStore) end(w *memWatch, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.watches[w]; !ok {
		return
	}
	delete(s.watches, w)
	w.err = err
	close(w.done)
	close(w.ch)
}

// failWatches ends every watch with err.
func (s *memStore) failWatches(err error) {
	s.mu.Lock()
	ws := make([]*memWatch, 0, len(s.watches))
	for w := range s.watches {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		s.end(w, err)
	}
}

// compact drops the history up to rev.
func (s *memStore) compact(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compacted = rev
	var keep []storage.Event
	for _, e := range s.history {
		if e.Revision > rev {
			keep = append(keep, e)
		}
	}
	s.history = keep
}

// bump advances the revision with a write outside every watched prefix.
func (s *memStore) bump() int64 { return s.put("/elsewhere/x", "x") }

func (s *memStore) RequestProgress(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watches {
		if w.progress {
			select {
			case w.ch <- storage.Event{Type: storage.Progress, Revision: s.rev}:
			case <-w.done:
			}
		}
	}
	return nil
}

func (s *memStore) Revision(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev, nil
}

func (s *memStore) Close() error { return nil }
