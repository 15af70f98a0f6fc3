// Package storagetest is the test suite every storage.Store implementation
// runs: it checks each method and each error the interface promises.
//
//	func TestStore(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { return openMyStore(t) })
//	}
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/storage"
)

// Compactor is implemented by stores whose history can be compacted on
// demand; the compaction tests are skipped for the others.
type Compactor interface {
	Compact(ctx context.Context, revision int64) error
}

// Run runs the suite. newStore is called once per subtest and must return
// a new, empty store closed when t ends (subtests run in parallel, and some
// compact their store's history). The progress test needs a store that
// sends Progress events at least every 5 seconds.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"CreateGet", testCreateGet},
		{"List", testList},
		{"ListCompacted", testListCompacted},
		{"Update", testUpdate},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"Delete", testDelete},
		{"Watch", testWatch},
		{"WatchFromNow", testWatchFromNow},
		{"WatchCompacted", testWatchCompacted},
		{"WatchCancel", testWatchCancel},
		{"TTL", testTTL},
		{"Progress", testProgress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustCreate(t *testing.T, s storage.Store, key, value string) int64 {
	t.Helper()
	rev, err := s.Create(ctxFor(t), key, []byte(value), 0)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	return rev
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func setValue(v string) storage.UpdateFunc {
	return func(storage.Object) ([]byte, error) { return []byte(v), nil }
}

func testCreateGet(t *testing.T, s storage.Store) {
	ctx := ctxFor(t)
	rev := mustCreate(t, s, "/things/a", "one")
	if rev <= 0 {
		t.Fatalf("Create returned revision %d", rev)
	}
	got, err := s.Get(ctx, "/things/a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != "/things/a" || string(got.Value) != "one" || got.Revision != rev {
		t.Fatalf("Get = %+v, want key /things/a value one revision %d", got, rev)
	}
	_, err = s.Create(ctx, "/things/a", []byte("two"), 0)
	wantErr(t, "Create existing", err, storage.ErrAlreadyExists)
	if got, _ := s.Get(ctx, "/things/a"); string(got.Value) != "one" {
		t.Fatalf("failed Create changed the value to %q", got.Value)
	}
	_, err = s.Get(ctx, "/things/missing")
	wantErr(t, "Get missing", err, storage.ErrNotFound)
	// A prefix of an existing key is not that key.
	_, err = s.Get(ctx, "/things/")
	wantErr(t, "Get prefix", err, storage.ErrNotFound)
	cur, err := s.Revision(ctx)
	if err != nil || cur < rev {
		t.Fatalf("Revision = %d, %v; want >= %d", cur, err, rev)
	}
}

func keys(objs []storage.Object) []string {
	var k []string
	for _, o := range objs {
		k = append(k, o.Key)
	}
	return k
}

func testList(t *testing.T, s storage.Store) {
	ctx := ctxFor(t)
	names := []string{"/list/e", "/list/a", "/list/c", "/list/d", "/list/b"}
	for _, k := range names {
		mustCreate(t, s, k, "v"+k)
	}
	mustCreate(t, s, "/listx", "outside")
	mustCreate(t, s, "/lis", "outside")
	want := []string{"/list/a", "/list/b", "/list/c", "/list/d", "/list/e"}

	all, err := s.List(ctx, "/list/", storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys(all.Objects)) != fmt.Sprint(want) || all.Continue != "" {
		t.Fatalf("List = %v (continue %q), want %v", keys(all.Objects), all.Continue, want)
	}
	for _, o := range all.Objects {
		if string(o.Value) != "v"+o.Key || o.Revision <= 0 {
			t.Fatalf("listed object %+v", o)
		}
	}
	cur, _ := s.Revision(ctx)
	if all.Revision != cur {
		t.Fatalf("List revision %d, store at %d", all.Revision, cur)
	}

	// Pages, with a write between them that the later pages must not show.
	var paged []storage.Object
	opts := storage.ListOptions{Limit: 2}
	for i := 0; ; i++ {
		page, err := s.List(ctx, "/list/", opts)
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		if len(page.Objects) > 2 {
			t.Fatalf("page %d has %d objects, limit 2", i, len(page.Objects))
		}
		if page.Revision != all.Revision {
			t.Fatalf("page %d at revision %d, first page at %d", i, page.Revision, all.Revision)
		}
		paged = append(paged, page.Objects...)
		if i == 0 {
			if page.Remaining != 3 {
				t.Fatalf("first page: remaining %d, want 3", page.Remaining)
			}
			mustCreate(t, s, "/list/bb", "late")
			if _, err := s.Delete(ctx, "/list/e", 0); err != nil {
				t.Fatal(err)
			}
		}
		if page.Continue == "" {
			break
		}
		if i > 5 {
			t.Fatal("list does not end")
		}
		opts.Continue = page.Continue
	}
	if fmt.Sprint(keys(paged)) != fmt.Sprint(want) {
		t.Fatalf("pages gave %v, want %v (the snapshot of the first page)", keys(paged), want)
	}

	// Reading at an older revision shows the older state.
	now, err := s.List(ctx, "/list/", storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(keys(now.Objects)); got != "[/list/a /list/b /list/bb /list/c /list/d]" {
		t.Fatalf("List now = %s", got)
	}
	old, err := s.List(ctx, "/list/", storage.ListOptions{Revision: all.Revision})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys(old.Objects)) != fmt.Sprint(want) || old.Revision != all.Revision {
		t.Fatalf("List at %d = %v at %d, want %v", all.Revision, keys(old.Objects), old.Revision, want)
	}

	empty, err := s.List(ctx, "/nothing/", storage.ListOptions{Limit: 10})
	if err != nil || len(empty.Objects) != 0 || empty.Continue != "" || empty.Revision <= 0 {
		t.Fatalf("empty List = %+v, %v", empty, err)
	}
	if _, err := s.List(ctx, "/list/", storage.ListOptions{Continue: "not a token"}); !errors.Is(err, storage.ErrInvalidContinue) {
		t.Fatalf("List with a malformed continue token: %v, want ErrInvalidContinue", err)
	}
}

func testListCompacted(t *testing.T, s storage.Store) {
	c, ok := s.(Compactor)
	if !ok {
		t.Skip("store cannot be compacted on demand")
	}
	ctx := ctxFor(t)
	for _, k := range []string{"/c/a", "/c/b", "/c/c"} {
		mustCreate(t, s, k, "v")
	}
	page, err := s.List(ctx, "/c/", storage.ListOptions{Limit: 1})
	if err != nil || page.Continue == "" {
		t.Fatalf("List = %+v, %v", page, err)
	}
	if _, err := s.Update(ctx, "/c/a", 0, setValue("w")); err != nil {
		t.Fatal(err)
	}
	cur, _ := s.Revision(ctx)
	if err := c.Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}
	_, err = s.List(ctx, "/c/", storage.ListOptions{Continue: page.Continue})
	wantErr(t, "List continue after compaction", err, storage.ErrCompacted)
	_, err = s.List(ctx, "/c/", storage.ListOptions{Revision: page.Revision})
	wantErr(t, "List at compacted revision", err, storage.ErrCompacted)
	if _, err := s.List(ctx, "/c/", storage.ListOptions{Revision: cur}); err != nil {
		t.Fatalf("List at the compaction revision itself: %v", err)
	}
}

func testUpdate(t *testing.T, s storage.Store) {
	ctx := ctxFor(t)
	rev := mustCreate(t, s, "/u/a", "1")
	obj, err := s.Update(ctx, "/u/a", rev, func(cur storage.Object) ([]byte, error) {
		if string(cur.Value) != "1" || cur.Revision != rev || cur.Key != "/u/a" {
			return nil, fmt.Errorf("update got current %+v", cur)
		}
		return []byte("2"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Key != "/u/a" || string(obj.Value) != "2" || obj.Revision <= rev {
		t.Fatalf("Update = %+v", obj)
	}
	if got, _ := s.Get(ctx, "/u/a"); got.Revision != obj.Revision || string(got.Value) != "2" {
		t.Fatalf("Get after Update = %+v, Update returned %+v", got, obj)
	}
	_, err = s.Update(ctx, "/u/a", rev, setValue("3"))
	wantErr(t, "Update at a stale revision", err, storage.ErrConflict)
	_, err = s.Update(ctx, "/u/missing", 0, setValue("3"))
	wantErr(t, "Update missing", err, storage.ErrNotFound)
	boom := errors.New("boom")
	_, err = s.Update(ctx, "/u/a", 0, func(storage.Object) ([]byte, error) { return nil, boom })
	wantErr(t, "Update whose func fails", err, boom)
	if got, _ := s.Get(ctx, "/u/a"); got.Revision != obj.Revision {
		t.Fatalf("a failed update wrote: %+v", got)
	}
	// Writing the same value again is no change: the revision stays.
	same, err := s.Update(ctx, "/u/a", 0, setValue("2"))
	if err != nil || same.Revision != obj.Revision || string(same.Value) != "2" {
		t.Fatalf("no-op Update = %+v, %v; want revision %d", same, err, obj.Revision)
	}
}

func testUpdateConcurrent(t *testing.T, s storage.Store) {
	ctx := ctxFor(t)
	mustCreate(t, s, "/u/counter", "0")
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	var calls sync.Map
	for w := range writers {
		wg.Go(func() {
			for range each {
				_, err := s.Update(ctx, "/u/counter", 0, func(cur storage.Object) ([]byte, error) {
					n, err := strconv.Atoi(string(cur.Value))
					calls.Store(fmt.Sprint(w, cur.Revision), true)
					return []byte(strconv.Itoa(n + 1)), err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "/u/counter")
	if err != nil || string(got.Value) != strconv.Itoa(writers*each) {
		t.Fatalf("counter = %q, %v; want %d (an update was lost)", got.Value, err, writers*each)
	}

	// With a precondition there is no retry: exactly one of two writers wins.
	rev := got.Revision
	var conflicts, wins int
	var mu sync.Mutex
	var wg2 sync.WaitGroup
	for i := range 2 {
		wg2.Go(func() {
			_, err := s.Update(ctx, "/u/counter", rev, setValue("x"+strconv.Itoa(i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, storage.ErrConflict):
				conflicts++
			default:
				t.Error(err)
			}
		})
	}
	wg2.Wait()
	if wins != 1 || conflicts != 1 {
		t.Fatalf("two updates at one revision: %d won, %d conflicted; want 1 and 1", wins, conflicts)
	}
}

func testDelete(t *testing.T, s storage.Store) {
	ctx := ctxFor(t)
	rev := mustCreate(t, s, "/d/a", "last")
	_, err := s.Delete(ctx, "/d/a", rev+100)
	wantErr(t, "Delete at a wrong revision", err, storage.ErrConflict)
	if _, err := s.Get(ctx, "/d/a"); err != nil {
		t.Fatalf("failed Delete removed the object: %v", err)
	}
	obj, err := s.Delete(ctx, "/d/a", rev)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Key != "/d/a" || string(obj.Value) != "last" || obj.Revision != rev {
		t.Fatalf("Delete = %+v, want the last value at revision %d", obj, rev)
	}
	_, err = s.Get(ctx, "/d/a")
	wantErr(t, "Get deleted", err, storage.ErrNotFound)
	_, err = s.Delete(ctx, "/d/a", 0)
	wantErr(t, "Delete deleted", err, storage.ErrNotFound)
	_, err = s.Delete(ctx, "/d/a", rev)
	wantErr(t, "Delete deleted with precondition", err, storage.ErrNotFound)

	mustCreate(t, s, "/d/b", "b")
	if obj, err := s.Delete(ctx, "/d/b", 0); err != nil || string(obj.Value) != "b" {
		t.Fatalf("Delete without precondition = %+v, %v", obj, err)
	}
	// Recreating after a delete works.
	mustCreate(t, s, "/d/b", "again")
}

// next returns the watch's next event, failing the test after timeout.
func next(t *testing.T, w storage.Watch, timeout time.Duration) storage.Event {
	t.Helper()
	select {
	case e, ok := <-w.Events():
		if !ok {
			t.Fatalf("watch ended: %v", w.Err())
		}
		return e
	case <-time.After(timeout):
		t.Fatalf("no watch event within %v", timeout)
	}
	panic("unreachable")
}

// nextChange is next, skipping Progress events.
func nextChange(t *testing.T, w storage.Watch, timeout time.Duration) storage.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		e := next(t, w, time.Until(deadline))
		if e.Type != storage.Progress {
			return e
		}
	}
}

func expectEvent(t *testing.T, e storage.Event, typ storage.EventType, key, value string, rev int64) {
	t.Helper()
	if e.Type != typ || e.Object.Key != key || string(e.Object.Value) != value || e.Revision != rev || e.Object.Revision != rev {
		t.Fatalf("event %s %s %q rev %d (object rev %d), want %s %s %q rev %d",
			e.Type, e.Object.Key, e.Object.Value, e.Revision, e.Object.Revision, typ, key, value, rev)
	}
}

func testWatch(t *testing.T, s storage.Store) {
	ctx := ctxFor(t)
	mustCreate(t, s, "/w/before", "x")
	from, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r1 := mustCreate(t, s, "/w/a", "1")
	mustCreate(t, s, "/other/a", "not watched")
	o2, err := s.Update(ctx, "/w/a", 0, setValue("2"))
	if err != nil {
		t.Fatal(err)
	}
	r3 := mustCreate(t, s, "/w/b", "b")
	del, err := s.Delete(ctx, "/w/a", 0)
	if err != nil {
		t.Fatal(err)
	}
	r4, _ := s.Revision(ctx)

	w, err := s.Watch(ctx, "/w/", from, false)
	if err != nil {
		t.Fatal(err)
	}
	expectEvent(t, next(t, w, 10*time.Second), storage.Added, "/w/a", "1", r1)
	expectEvent(t, next(t, w, 10*time.Second), storage.Modified, "/w/a", "2", o2.Revision)
	expectEvent(t, next(t, w, 10*time.Second), storage.Added, "/w/b", "b", r3)
	// A deleted object comes with its last value.
	expectEvent(t, next(t, w, 10*time.Second), storage.Deleted, "/w/a", "2", r4)
	if del.Revision != o2.Revision {
		t.Fatalf("Delete returned revision %d, want the last write's %d", del.Revision, o2.Revision)
	}
	// Later writes arrive on the same watch, in order.
	var revs []int64
	for i := range 5 {
		revs = append(revs, mustCreate(t, s, fmt.Sprintf("/w/later%d", i), strconv.Itoa(i)))
	}
	for i := range 5 {
		expectEvent(t, next(t, w, 10*time.Second), storage.Added, fmt.Sprintf("/w/later%d", i), strconv.Itoa(i), revs[i])
	}
	select {
	case e := <-w.Events():
		t.Fatalf("unexpected event %+v (a watch without progress must not get Progress events)", e)
	case <-time.After(200 * time.Millisecond):
	}
}

func testWatchFromNow(t *testing.T, s storage.Store) {
	ctx := ctxFor(t)
	mustCreate(t, s, "/n/old", "old")
	w, err := s.Watch(ctx, "/n/", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	rev := mustCreate(t, s, "/n/new", "new")
	expectEvent(t, next(t, w, 10*time.Second), storage.Added, "/n/new", "new", rev)
}

func testWatchCompacted(t *testing.T, s storage.Store) {
	c, ok := s.(Compactor)
	if !ok {
		t.Skip("store cannot be compacted on demand")
	}
	ctx := ctxFor(t)
	old := mustCreate(t, s, "/wc/a", "1")
	if _, err := s.Update(ctx, "/wc/a", 0, setValue("2")); err != nil {
		t.Fatal(err)
	}
	rb := mustCreate(t, s, "/wc/b", "b")
	if err := c.Compact(ctx, rb); err != nil {
		t.Fatal(err)
	}
	// Events after old start at a revision before rb: gone.
	_, err := s.Watch(ctx, "/wc/", old, false)
	wantErr(t, "Watch from a compacted revision", err, storage.ErrCompacted)
	// The change at the compaction revision itself is kept.
	w, err := s.Watch(ctx, "/wc/", rb-1, false)
	if err != nil {
		t.Fatalf("Watch from just before the compaction revision: %v", err)
	}
	expectEvent(t, next(t, w, 10*time.Second), storage.Added, "/wc/b", "b", rb)
}

func testWatchCancel(t *testing.T, s storage.Store) {
	ctx, cancel := context.WithCancel(ctxFor(t))
	w, err := s.Watch(ctx, "/wx/", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-w.Events():
			if !ok {
				if err := w.Err(); err != nil {
					t.Fatalf("Err after the context ended = %v, want nil", err)
				}
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed after its context ended")
		}
	}
}

func testTTL(t *testing.T, s storage.Store) {
	ctx := ctxFor(t)
	from, _ := s.Revision(ctx)
	const ttl = 2 * time.Second
	start := time.Now()
	if _, err := s.Create(ctx, "/ttl/a", []byte("a"), ttl); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/ttl/b", []byte("b"), ttl); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "/ttl/keep", "keep")
	// An update keeps the object's expiry.
	if _, err := s.Update(ctx, "/ttl/b", 0, setValue("b2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "/ttl/a"); err != nil {
		t.Fatalf("object with a TTL gone at once: %v", err)
	}
	w, err := s.Watch(ctx, "/ttl/", from, false)
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[string]string{}
	for len(deleted) < 2 {
		e := nextChange(t, w, 20*time.Second)
		if e.Type == storage.Deleted {
			deleted[e.Object.Key] = string(e.Object.Value)
		}
	}
	if elapsed := time.Since(start); elapsed < ttl-100*time.Millisecond {
		t.Fatalf("objects expired after %v, TTL %v", elapsed, ttl)
	}
	if deleted["/ttl/a"] != "a" || deleted["/ttl/b"] != "b2" {
		t.Fatalf("expiry deletes = %v", deleted)
	}
	for _, k := range []string{"/ttl/a", "/ttl/b"} {
		_, err := s.Get(ctx, k)
		wantErr(t, "Get expired "+k, err, storage.ErrNotFound)
	}
	if _, err := s.Get(ctx, "/ttl/keep"); err != nil {
		t.Fatalf("object without TTL expired: %v", err)
	}
}

func testProgress(t *testing.T, s storage.Store) {
	ctx := ctxFor(t)
	rev := mustCreate(t, s, "/p/a", "a")
	w, err := s.Watch(ctx, "/p/", rev, true)
	if err != nil {
		t.Fatal(err)
	}
	e := next(t, w, 15*time.Second)
	if e.Type != storage.Progress || e.Revision < rev || e.Object.Key != "" || !bytes.Equal(e.Object.Value, nil) {
		t.Fatalf("first event on an idle watch %+v, want Progress at >= %d", e, rev)
	}
	// After a change, progress reaches at least that change.
	r2 := mustCreate(t, s, "/p/b", "b")
	expectEvent(t, nextChange(t, w, 10*time.Second), storage.Added, "/p/b", "b", r2)
	if e := next(t, w, 15*time.Second); e.Type != storage.Progress || e.Revision < r2 {
		t.Fatalf("event after the change %+v, want Progress at >= %d", e, r2)
	}
	// Changes elsewhere move progress past them, with no event here.
	r3 := mustCreate(t, s, "/elsewhere/c", "c")
	deadline := time.Now().Add(15 * time.Second)
	for {
		e := next(t, w, time.Until(deadline))
		if e.Type != storage.Progress {
			t.Fatalf("unexpected event %+v for a change outside the watched prefix", e)
		}
		if e.Revision >= r3 {
			break
		}
	}
}
