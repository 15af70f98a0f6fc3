package dirwatch

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ballast-dev/ballast/internal/testutil"
)

const all = Create | Modify | CloseWrite | MovedIn | MovedOut | Delete | Attrib | DeleteSelf | MoveSelf

func newWatcher(t *testing.T) *Watcher {
	t.Helper()
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// expect reads events until it has seen each of want ("name op", in
// order, other events in between allowed) and returns everything read.
func expect(t *testing.T, w *Watcher, want ...string) []string {
	t.Helper()
	var got []string
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case evs, ok := <-w.Events():
			if !ok {
				t.Fatalf("events closed (err %v); got %q, still want %q", w.Err(), got, want)
			}
			for _, e := range evs {
				for _, op := range opNames {
					if !e.Op.Has(op.op) {
						continue
					}
					s := fmt.Sprintf("%d %s %s", e.Watch, e.Name, op.name)
					got = append(got, s)
					if len(want) > 0 && s == want[0] {
						want = want[1:]
					}
				}
			}
		case <-deadline:
			t.Fatalf("got %q, still want %q", got, want)
		}
	}
	return got
}

func TestFileLifecycle(t *testing.T) {
	dir := t.TempDir()
	w := newWatcher(t)
	wd, err := w.Add(dir, all)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(name, op string) string { return fmt.Sprintf("%d %s %s", wd, name, op) }

	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, w, ev("a.yaml", "Create"), ev("a.yaml", "Modify"), ev("a.yaml", "CloseWrite"))

	tmp := filepath.Join(t.TempDir(), "b.tar")
	os.WriteFile(tmp, []byte("y"), 0o644)
	if err := os.Rename(tmp, filepath.Join(dir, "b.tar")); err != nil {
		t.Fatal(err)
	}
	expect(t, w, ev("b.tar", "MovedIn"))

	if err := os.Chmod(filepath.Join(dir, "b.tar"), 0o600); err != nil {
		t.Fatal(err)
	}
	expect(t, w, ev("b.tar", "Attrib"))

	if err := os.Rename(filepath.Join(dir, "b.tar"), filepath.Join(t.TempDir(), "b.tar")); err != nil {
		t.Fatal(err)
	}
	expect(t, w, ev("b.tar", "MovedOut"))

	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	expect(t, w, ev("a.yaml", "Delete"))
}

// Only the ops asked for are reported: a write in place that is closed
// shows as CloseWrite alone when that is all the caller wants.
func TestOnlyAskedOps(t *testing.T) {
	dir := t.TempDir()
	w := newWatcher(t)
	wd, err := w.Add(dir, CloseWrite|Delete)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644)
	os.Remove(filepath.Join(dir, "a"))
	got := expect(t, w, fmt.Sprintf("%d a CloseWrite", wd), fmt.Sprintf("%d a Delete", wd))
	if len(got) != 2 {
		t.Errorf("events %q, want the close and the delete only", got)
	}
}

func TestTwoDirectories(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	w := newWatcher(t)
	wd1, err := w.Add(d1, all)
	if err != nil {
		t.Fatal(err)
	}
	wd2, err := w.Add(d2, all)
	if err != nil {
		t.Fatal(err)
	}
	if wd1 == wd2 {
		t.Fatalf("both watches are %d", wd1)
	}
	if again, err := w.Add(d1, all); err != nil || again != wd1 {
		t.Errorf("adding %s again: %d, %v; want %d", d1, again, err, wd1)
	}
	os.WriteFile(filepath.Join(d2, "x"), nil, 0o644)
	os.WriteFile(filepath.Join(d1, "y"), nil, 0o644)
	expect(t, w, fmt.Sprintf("%d x CloseWrite", wd2), fmt.Sprintf("%d y CloseWrite", wd1))
}

func TestDirectoryRemovedAndWatchRemoved(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "d")
	other := t.TempDir()
	os.Mkdir(dir, 0o755)
	w := newWatcher(t)
	wd, err := w.Add(dir, all)
	if err != nil {
		t.Fatal(err)
	}
	owd, err := w.Add(other, all)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	expect(t, w, fmt.Sprintf("%d  DeleteSelf", wd), fmt.Sprintf("%d  Ignored", wd))
	w.Remove(owd)
	expect(t, w, fmt.Sprintf("%d  Ignored", owd))
}

func TestAddErrors(t *testing.T) {
	w := newWatcher(t)
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := w.Add(missing, all); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Add of a missing directory: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := w.Add(file, all); err == nil {
		t.Error("Add of a file succeeded; only directories are watched")
	}
}

// Close ends Events with no error, also while the reader waits for the
// caller to take a batch.
func TestCloseWhileUnread(t *testing.T) {
	dir := t.TempDir()
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add(dir, all); err != nil {
		t.Fatal(err)
	}
	// Fill the channel (nothing reads it); the next batch blocks the reader.
	n := 0
	testutil.Eventually(t, 10*time.Second, func() error {
		n++
		os.WriteFile(filepath.Join(dir, fmt.Sprint(n)), nil, 0o644)
		if len(w.events) < cap(w.events) {
			return fmt.Errorf("%d of %d batches queued", len(w.events), cap(w.events))
		}
		return nil
	})
	os.WriteFile(filepath.Join(dir, "last"), nil, 0o644)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for range w.Events() {
	}
	if err := w.Err(); err != nil {
		t.Errorf("Err after Close = %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpString(t *testing.T) {
	if s := (Create | CloseWrite).String(); s != "Create|CloseWrite" {
		t.Errorf("String = %q", s)
	}
	if s := Op(unix.IN_ISDIR | unix.IN_CREATE).String(); s != "Create|0x40000000" {
		t.Errorf("String = %q", s)
	}
}

// event encodes one struct inotify_event with its name padded to padTo.
func event(wd int32, mask uint32, name string, padTo int) []byte {
	b := make([]byte, unix.SizeofInotifyEvent)
	binary.NativeEndian.PutUint32(b[0:], uint32(wd))
	binary.NativeEndian.PutUint32(b[4:], mask)
	nb := make([]byte, padTo)
	copy(nb, name)
	binary.NativeEndian.PutUint32(b[12:], uint32(len(nb)))
	return append(b, nb...)
}

func TestParse(t *testing.T) {
	buf := append(event(1, unix.IN_CLOSE_WRITE, "web.yaml", 16), event(-1, unix.IN_Q_OVERFLOW, "", 0)...)
	buf = append(buf, event(2, unix.IN_IGNORED, "", 0)...)
	evs, err := parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{{1, CloseWrite, "web.yaml"}, {-1, Overflow, ""}, {2, Ignored, ""}}
	if fmt.Sprint(evs) != fmt.Sprint(want) {
		t.Errorf("parse = %v, want %v", evs, want)
	}
	for _, short := range [][]byte{buf[:5], buf[:unix.SizeofInotifyEvent+3]} {
		if _, err := parse(short); err == nil {
			t.Errorf("parse of %d bytes cut short succeeded", len(short))
		}
	}
}
