package source

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// We use inotify directly rather than fsnotify: fsnotify does not report
// IN_CLOSE_WRITE (the moment a writer is done, which lets us read a file at
// once without waiting for it to settle) and reports IN_CREATE and
// IN_MOVED_TO alike (a file renamed into place is complete; a created one
// may still be being written).

const watchMask = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CREATE |
	unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

type event struct {
	wd   int
	mask uint32
	name string
}

type inotify struct {
	fd   int
	file *os.File // the fd, through Go's poller: a blocked Read ends on Close
}

func newInotify() (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	return &inotify{fd: fd, file: os.NewFile(uintptr(fd), "inotify")}, nil
}

func (in *inotify) add(path string) (int, error) {
	wd, err := unix.InotifyAddWatch(in.fd, path, watchMask)
	if err != nil {
		return -1, &os.PathError{Op: "inotify_add_watch", Path: path, Err: err}
	}
	return wd, nil
}

func (in *inotify) remove(wd int) {
	_, _ = unix.InotifyRmWatch(in.fd, uint32(wd))
}

func (in *inotify) close() error { return in.file.Close() }

// read blocks until events arrive (or the inotify is closed) and returns them.
func (in *inotify) read(buf []byte) ([]event, error) {
	n, err := in.file.Read(buf)
	if err != nil {
		return nil, err
	}
	var evs []event
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		nameLen := int(raw.Len)
		end := off + unix.SizeofInotifyEvent + nameLen
		if end > n {
			return evs, errors.New("inotify: short event")
		}
		name := buf[off+unix.SizeofInotifyEvent : end]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		evs = append(evs, event{wd: int(raw.Wd), mask: raw.Mask, name: string(name)})
		off = end
	}
	return evs, nil
}
