// Package dirwatch owns Ballast's one inotify reader: it watches
// directories and delivers what happens in them, in order and in batches,
// on a channel. It knows nothing of what the files mean: internal/source
// (manifests) and internal/images (image tarballs) decide that.
//
// It uses inotify directly rather than fsnotify: fsnotify does not report
// IN_CLOSE_WRITE (the moment a writer is done, which lets a file be read at
// once instead of after a pause) and reports IN_CREATE and IN_MOVED_TO
// alike (a file renamed into place is complete; a created one may still be
// being written).
package dirwatch

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Op is a set of things that happened, as inotify reports them.
type Op uint32

// What can be watched for (Add's ops), and what is reported.
const (
	Create     Op = unix.IN_CREATE      // an entry was created (a file may still be being written)
	Modify     Op = unix.IN_MODIFY      // a file was written to
	CloseWrite Op = unix.IN_CLOSE_WRITE // a file open for writing was closed: it is complete
	MovedIn    Op = unix.IN_MOVED_TO    // an entry was renamed into the directory (complete)
	MovedOut   Op = unix.IN_MOVED_FROM  // an entry was renamed out of the directory
	Delete     Op = unix.IN_DELETE      // an entry was removed
	Attrib     Op = unix.IN_ATTRIB      // an entry's metadata changed
	DeleteSelf Op = unix.IN_DELETE_SELF // the watched directory itself was removed
	MoveSelf   Op = unix.IN_MOVE_SELF   // the watched directory itself was moved

	// Always reported, never asked for:
	Ignored  Op = unix.IN_IGNORED    // the watch is gone (Remove, or its directory was removed)
	Overflow Op = unix.IN_Q_OVERFLOW // events were lost: the caller must rescan
)

var opNames = []struct {
	op   Op
	name string
}{
	{Create, "Create"}, {Modify, "Modify"}, {CloseWrite, "CloseWrite"}, {MovedIn, "MovedIn"},
	{MovedOut, "MovedOut"}, {Delete, "Delete"}, {Attrib, "Attrib"}, {DeleteSelf, "DeleteSelf"},
	{MoveSelf, "MoveSelf"}, {Ignored, "Ignored"}, {Overflow, "Overflow"},
}

// Has reports whether o holds any of ops.
func (o Op) Has(ops Op) bool { return o&ops != 0 }

// String names the ops in o, joined with "|".
func (o Op) String() string {
	var names []string
	for _, n := range opNames {
		if o&n.op != 0 {
			names = append(names, n.name)
			o &^= n.op
		}
	}
	if o != 0 {
		names = append(names, fmt.Sprintf("0x%x", uint32(o)))
	}
	return strings.Join(names, "|")
}

// Event is one thing that happened to an entry of a watched directory
// (Name set), or to the directory or the watch itself (Name empty).
type Event struct {
	Watch int // the watch descriptor Add returned; -1 for Overflow
	Op    Op
	Name  string // the entry's name in the directory
}

// Watcher is one inotify instance: directories added to it, and the
// goroutine that reads their events until Close.
type Watcher struct {
	fd     int
	file   *os.File // fd, through Go's poller: a blocked Read ends on Close
	events chan []Event
	done   chan struct{}
	wg     sync.WaitGroup
	close  sync.Once

	mu  sync.Mutex
	err error // why reading ended, if not Close
}

// New starts a Watcher with nothing watched yet.
func New() (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	w := &Watcher{fd: fd, file: os.NewFile(uintptr(fd), "inotify"), events: make(chan []Event, 16), done: make(chan struct{})}
	w.wg.Add(1)
	go w.read()
	return w, nil
}

// Add watches the directory dir for ops and returns its watch descriptor,
// which the events about it carry. Adding a directory already watched
// returns its descriptor and replaces its ops. dir must be a directory.
func (w *Watcher) Add(dir string, ops Op) (int, error) {
	wd, err := unix.InotifyAddWatch(w.fd, dir, uint32(ops)|unix.IN_ONLYDIR)
	if err != nil {
		return -1, &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	return wd, nil
}

// Remove stops watching wd; an Ignored event for it follows.
func (w *Watcher) Remove(wd int) {
	_, _ = unix.InotifyRmWatch(w.fd, uint32(wd))
}

// Events delivers events in batches, in the order they happened. It is
// closed after Close, or when reading fails (then Err says why).
func (w *Watcher) Events() <-chan []Event { return w.events }

// Err is why Events was closed: nil after Close, else the read error.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops watching everything and waits for the reader to end.
func (w *Watcher) Close() error {
	var err error
	w.close.Do(func() {
		close(w.done)
		err = w.file.Close()
		w.wg.Wait()
	})
	return err
}

func (w *Watcher) read() {
	defer w.wg.Done()
	defer close(w.events)
	buf := make([]byte, 64*1024)
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.mu.Lock()
				w.err = fmt.Errorf("reading inotify events: %w", err)
				w.mu.Unlock()
			}
			return
		}
		evs, err := parse(buf[:n])
		if len(evs) > 0 {
			select {
			case w.events <- evs:
			case <-w.done:
				return
			}
		}
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
	}
}

// parse decodes a buffer of inotify events (struct inotify_event, each
// followed by its name, NUL-padded).
func parse(buf []byte) ([]Event, error) {
	var evs []Event
	for off := 0; off < len(buf); {
		if off+unix.SizeofInotifyEvent > len(buf) {
			return evs, errors.New("inotify: short event")
		}
		raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		end := off + unix.SizeofInotifyEvent + int(raw.Len)
		if end > len(buf) {
			return evs, errors.New("inotify: short event")
		}
		name := buf[off+unix.SizeofInotifyEvent : end]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		evs = append(evs, Event{Watch: int(raw.Wd), Op: Op(raw.Mask), Name: string(name)})
		off = end
	}
	return evs, nil
}
