package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ballast-dev/ballast/internal/storage"
	"github.com/ballast-dev/ballast/internal/storage/storagetest"
	"github.com/ballast-dev/ballast/internal/testutil"
)

// The shared suite finds compaction by a type assertion: without this, a
// Store that lost its Compact method would silently skip those tests.
var _ storagetest.Compactor = (*Store)(nil)

func testLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// open opens a Store for the test with short intervals and closes it when
// the test ends.
func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.CompactInterval == 0 {
		cfg.CompactInterval = -1
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = 200 * time.Millisecond
	}
	cfg.Log = testLog()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func openEmbedded(t *testing.T) *Store {
	return open(t, Config{DataDir: filepath.Join(t.TempDir(), "etcd")})
}

func TestStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return openEmbedded(t) })
}

func TestEmbeddedDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	s := open(t, Config{DataDir: dir, Prefix: "/custom/"})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
	if _, err := s.Create(t.Context(), "/pods/a", []byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	// The prefix is in etcd's key, not in the Store's.
	resp, err := s.Client().Get(t.Context(), "/custom/pods/a")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("etcd key /custom/pods/a: %v, %v", resp, err)
	}
	if s.ClientURL() == "" {
		t.Fatal("no client URL for the embedded etcd")
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	ctx := t.Context()
	s, err := Open(ctx, Config{DataDir: dir, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := s.Create(ctx, "/a", []byte("kept"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{DataDir: dir})
	obj, err := s.Get(ctx, "/a")
	if err != nil || string(obj.Value) != "kept" || obj.Revision != rev {
		t.Fatalf("after reopening: %+v, %v; want kept at %d", obj, err, rev)
	}
}

// Two Stores on one etcd see each other's writes, through watches too.
func TestTwoStoresShareData(t *testing.T) {
	ctx := t.Context()
	first := openEmbedded(t)
	second := open(t, Config{Endpoints: []string{first.ClientURL()}})

	w1, err := first.Watch(ctx, "/pods/", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := second.Watch(ctx, "/pods/", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := first.Create(ctx, "/pods/from-first", []byte("1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := second.Create(ctx, "/pods/from-second", []byte("2"), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []storage.Watch{w1, w2} {
		for _, want := range []struct {
			key string
			rev int64
		}{{"/pods/from-first", r1}, {"/pods/from-second", r2}} {
			select {
			case e := <-w.Events():
				if e.Type != storage.Added || e.Object.Key != want.key || e.Revision != want.rev {
					t.Fatalf("event %+v, want ADDED %s at %d", e, want.key, want.rev)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no event for %s: %v", want.key, w.Err())
			}
		}
	}
	if obj, err := first.Get(ctx, "/pods/from-second"); err != nil || string(obj.Value) != "2" {
		t.Fatalf("first.Get = %+v, %v", obj, err)
	}
}

// The compactor compacts to the revision seen one interval earlier.
func TestCompactLoop(t *testing.T) {
	ctx := t.Context()
	s := open(t, Config{DataDir: filepath.Join(t.TempDir(), "etcd"), CompactInterval: 300 * time.Millisecond})
	rev, err := s.Create(ctx, "/a", []byte("1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "/a", 0, func(storage.Object) ([]byte, error) { return []byte("2"), nil }); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		_, err := s.List(ctx, "/", storage.ListOptions{Revision: rev})
		if errors.Is(err, storage.ErrCompacted) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("revision %d is not compacted", rev)
	})
	// The latest data is untouched.
	if obj, err := s.Get(ctx, "/a"); err != nil || string(obj.Value) != "2" {
		t.Fatalf("Get after compaction = %+v, %v", obj, err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.Context(), Config{}); err == nil {
		t.Fatal("Open with neither data dir nor endpoints succeeded")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{Endpoints: []string{"http://127.0.0.1:1"}})
	if !errors.Is(err, storage.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open of an unreachable etcd: %v, want ErrUnavailable", err)
	}
	_, err = Open(t.Context(), Config{Endpoints: []string{"https://127.0.0.1:1"}, CAFile: "/nonexistent/ca.crt"})
	if err == nil {
		t.Fatal("Open with a missing CA file succeeded")
	}
}

type fakeGranter struct {
	grants []int64
}

func (f *fakeGranter) Grant(_ context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	f.grants = append(f.grants, ttl)
	return &clientv3.LeaseGrantResponse{ID: clientv3.LeaseID(len(f.grants)), TTL: ttl}, nil
}

func TestLeaseReuse(t *testing.T) {
	now := time.Unix(1000, 0)
	g := &fakeGranter{}
	m := newLeaseManager(g, func() time.Time { return now })
	lease := func(ttl time.Duration) clientv3.LeaseID {
		id, err := m.lease(context.Background(), ttl)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	hour := lease(time.Hour)
	if len(g.grants) != 1 || g.grants[0] != 3600+60 {
		t.Fatalf("grants %v, want one of 3660 s", g.grants)
	}
	now = now.Add(59 * time.Second)
	if id := lease(time.Hour); id != hour {
		t.Fatalf("an event 59 s later got a new lease %d", id)
	}
	if id := lease(2 * time.Second); id == hour {
		t.Fatal("a different TTL shared a lease")
	}
	if g.grants[1] != 3 {
		t.Fatalf("2 s TTL granted %d s, want 3 (2 plus a 1 s window)", g.grants[1])
	}
	now = now.Add(2 * time.Second)
	if id := lease(time.Hour); id == hour {
		t.Fatal("a lease was reused past its window: objects would live longer than TTL plus a minute")
	}
	if id := lease(1500 * time.Millisecond); id == 0 || g.grants[len(g.grants)-1] != 3 {
		t.Fatalf("1.5 s TTL granted %d s, want 2 rounded up plus 1", g.grants[len(g.grants)-1])
	}
	if len(m.leases) != 2 { // the expired 2 s entry was dropped
		t.Fatalf("%d leases kept, want 2", len(m.leases))
	}
}

// A lease revoked behind the Store's back is not handed out again.
func TestRevokedLease(t *testing.T) {
	ctx := t.Context()
	s := openEmbedded(t)
	if _, err := s.Create(ctx, "/events/a", []byte("a"), time.Hour); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Get(ctx, "/registry/events/a")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("object with a TTL has no lease: %v, %v", resp, err)
	}
	if _, err := s.Client().Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/events/b", []byte("b"), time.Hour); err != nil {
		t.Fatalf("Create after the shared lease was revoked: %v", err)
	}
}

// TestUpdateFromStaleGuess: an update starts from a serializable read,
// which a member behind the others may answer with an older value. Only
// its write is conditioned on it: what it would decide from that value
// alone (a conflict, not found, an error of update's, nothing to write)
// is read again first, so a stale guess never changes the outcome.
func TestUpdateFromStaleGuess(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		// guess is what the first read gives: the older value, or nothing.
		guess string
		// expectCurrent: the update names the current revision.
		expectCurrent bool
		// update computes the new value from the current one ("" errs).
		update func(cur string) string
		want   string
	}{
		{name: "a change of the older value is made to the current one", guess: "v1",
			update: func(cur string) string { return cur + "+x" }, want: "v2+x"},
		{name: "the older value again is written, not taken for no change", guess: "v1",
			update: func(string) string { return "v1" }, want: "v1"},
		{name: "the current revision expected is no conflict", guess: "v1", expectCurrent: true,
			update: func(cur string) string { return cur + "+x" }, want: "v2+x"},
		{name: "not found in the guess, found when read again", guess: "",
			update: func(cur string) string { return cur + "+x" }, want: "v2+x"},
		{name: "refused from the older value, done from the current one", guess: "v1",
			update: func(cur string) string {
				if cur == "v1" {
					return ""
				}
				return cur + "+x"
			}, want: "v2+x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openEmbedded(t)
			rev1, err := s.Create(ctx, "/k", []byte("v1"), 0)
			if err != nil {
				t.Fatal(err)
			}
			old := storage.Object{Key: "/k", Value: []byte("v1"), Revision: rev1}
			cur, err := s.Update(ctx, "/k", 0, func(storage.Object) ([]byte, error) { return []byte("v2"), nil })
			if err != nil {
				t.Fatal(err)
			}
			s.guess = func(context.Context, string) (storage.Object, error) {
				if tc.guess == "" {
					return storage.Object{}, fmt.Errorf("get %q: %w", "/k", storage.ErrNotFound)
				}
				return old, nil
			}
			expect := int64(0)
			if tc.expectCurrent {
				expect = cur.Revision
			}
			got, err := s.Update(ctx, "/k", expect, func(o storage.Object) ([]byte, error) {
				v := tc.update(string(o.Value))
				if v == "" {
					return nil, errors.New("refused")
				}
				return []byte(v), nil
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			stored, err := s.Get(ctx, "/k")
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Value) != tc.want || string(stored.Value) != tc.want || got.Revision != stored.Revision || got.Revision <= cur.Revision {
				t.Errorf("returned %q at %d, stored %q at %d (was at %d), want %q written", got.Value, got.Revision, stored.Value, stored.Revision, cur.Revision, tc.want)
			}
		})
	}
	// A real conflict and a real absence stay what they are.
	s := openEmbedded(t)
	rev1, err := s.Create(ctx, "/k", []byte("v1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "/k", 0, func(storage.Object) ([]byte, error) { return []byte("v2"), nil }); err != nil {
		t.Fatal(err)
	}
	s.guess = func(_ context.Context, key string) (storage.Object, error) {
		if key != "/k" {
			return storage.Object{}, fmt.Errorf("get %q: %w", key, storage.ErrNotFound)
		}
		return storage.Object{Key: "/k", Value: []byte("v1"), Revision: rev1}, nil
	}
	same := func(o storage.Object) ([]byte, error) { return o.Value, nil }
	if _, err := s.Update(ctx, "/k", rev1, same); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("update at the older revision: %v, want a conflict", err)
	}
	if _, err := s.Update(ctx, "/gone", 0, same); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("update of nothing: %v, want not found", err)
	}
}
