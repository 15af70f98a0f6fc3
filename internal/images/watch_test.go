package images

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil"
)

type recorder struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]bool
	done  chan string
}

func (r *recorder) importFn(ctx context.Context, path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, filepath.Base(path))
	if r.fail[filepath.Base(path)] {
		r.done <- "FAIL " + filepath.Base(path)
		return errors.New("bad tarball")
	}
	return nil
}

func (r *recorder) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c == name {
			n++
		}
	}
	return n
}

func (r *recorder) setFail(name string, v bool) {
	r.mu.Lock()
	r.fail[name] = v
	r.mu.Unlock()
}

func expect(t *testing.T, ch chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %q", want)
	}
}

// nothingSince returns a check that the watcher of dir did nothing since
// the last import expected on ch: it drops a marker tarball in and expects
// the marker's import next. Events are handled in order and each batch in
// name order ("zz-" last), so anything earlier changes caused would come
// first.
func nothingSince(t *testing.T, dir string, ch chan string) func() {
	n := 0
	return func() {
		t.Helper()
		n++
		marker := fmt.Sprintf("zz-marker-%d.tar", n)
		if err := os.WriteFile(filepath.Join(dir, marker), []byte("m"), 0o644); err != nil {
			t.Fatal(err)
		}
		expect(t, ch, marker)
	}
}

func TestWatchLogic(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.tar", "a")
	write("notes.txt", "x")
	r := &recorder{fail: map[string]bool{}, done: make(chan string, 20)}
	var logBuf syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Watch(ctx, dir, r.importFn, func(p string) { r.done <- filepath.Base(p) },
			slog.New(slog.NewTextHandler(&logBuf, nil)))
	}()
	expectNothing := nothingSince(t, dir, r.done)
	expect(t, r.done, "a.tar")
	expectNothing()

	// Written in place (IN_CLOSE_WRITE).
	write("b.tar.gz", "b")
	expect(t, r.done, "b.tar.gz")

	// Renamed in (IN_MOVED_TO); the temp name is ignored.
	write(".c.tgz.partial", "c")
	if err := os.Rename(filepath.Join(dir, ".c.tgz.partial"), filepath.Join(dir, "c.tgz")); err != nil {
		t.Fatal(err)
	}
	expect(t, r.done, "c.tgz")

	// Non-tarballs are ignored; an unchanged file is not imported again
	// (touching the directory triggers no import).
	write("other.json", "{}")
	expectNothing()

	// Replaced with new content: imported again.
	write("a.tar", "a2")
	expect(t, r.done, "a.tar")

	// A failing file is logged and not retried until it changes.
	r.setFail("bad.tar", true)
	write("bad.tar", "junk")
	expect(t, r.done, "FAIL bad.tar")
	expectNothing()
	if !strings.Contains(logBuf.String(), "bad.tar") || !strings.Contains(logBuf.String(), "bad tarball") {
		t.Errorf("failure not logged with file and error:\n%s", logBuf.String())
	}
	r.setFail("bad.tar", false)
	write("bad.tar", "fixed")
	expect(t, r.done, "bad.tar")

	// Removed and added back: imported again.
	os.Remove(filepath.Join(dir, "b.tar.gz"))
	expectNothing()
	write("b.tar.gz", "b")
	expect(t, r.done, "b.tar.gz")

	if n := r.count("c.tgz"); n != 1 {
		t.Errorf("c.tgz imported %d times", n)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestWatchRetryInterval(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.tar"), []byte("x"), 0o644)
	r := &recorder{fail: map[string]bool{"x.tar": true}, done: make(chan string, 20)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &Watcher{Dir: dir, Import: r.importFn, OnImported: func(p string) { r.done <- filepath.Base(p) }, RetryInterval: 300 * time.Millisecond}
	go w.Run(ctx)
	expect(t, r.done, "FAIL x.tar")
	r.setFail("x.tar", false)
	expect(t, r.done, "x.tar")
}

// A watched directory that goes away ends the watch with an error.
func TestWatchDirRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	r := &recorder{fail: map[string]bool{}, done: make(chan string, 20)}
	errc := make(chan error, 1)
	go func() {
		errc <- Watch(context.Background(), dir, r.importFn, func(p string) { r.done <- filepath.Base(p) }, nil)
	}()
	// Watch creates the directory; a file written in it after is imported
	// (found by the first scan or by the watch), so the watch is set then.
	testutil.Eventually(t, 10*time.Second, func() error { _, err := os.Stat(dir); return err })
	if err := os.WriteFile(filepath.Join(dir, "a.tar"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, r.done, "a.tar")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "was removed or moved") || !strings.Contains(err.Error(), dir) {
			t.Fatalf("Watch after its directory was removed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch goes on after its directory was removed")
	}
}

func TestIsTarball(t *testing.T) {
	for name, want := range map[string]bool{
		"a.tar": true, "a.tar.gz": true, "a.tgz": true, "a.tar.tmp": false,
		".a.tar": false, "a.zip": false, "a.tar.gz.part": false,
	} {
		if IsTarball(name) != want {
			t.Errorf("IsTarball(%q) = %v", name, !want)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
