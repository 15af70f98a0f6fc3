package logs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

const (
	// DefaultMaxSize is the size at which a container log is rotated (10Mi,
	// as the kubelet's containerLogMaxSize).
	DefaultMaxSize = 10 << 20
	// DefaultMaxFiles is how many files a container's log may use, the
	// current one included (as the kubelet's containerLogMaxFiles).
	DefaultMaxFiles = 5
)

// Container is one running container whose log the Rotator watches.
type Container struct {
	ID   string // the runtime's container ID, passed to reopen
	Path string // absolute path of its current log file
}

// Rotator rotates container logs by size, as the kubelet's container log
// manager does. Its zero value uses the defaults. Call Check periodically.
type Rotator struct {
	MaxSize  int64 // rotate a file when it reaches this size (0: DefaultMaxSize)
	MaxFiles int   // keep at most this many files per log, current one included (0: DefaultMaxFiles; minimum 2)

	// Now returns the current time (nil: time.Now); for tests.
	Now func() time.Time
}

func (r *Rotator) limits() (int64, int) {
	size, files := r.MaxSize, r.MaxFiles
	if size <= 0 {
		size = DefaultMaxSize
	}
	if files <= 0 {
		files = DefaultMaxFiles
	}
	if files < 2 {
		files = 2
	}
	return size, files
}

// Check rotates each container's log that reached MaxSize: the file is renamed
// to <path>.<UTC timestamp>, and reopen (the CRI ReopenContainerLog) makes the
// runtime open a new file at path. When reopen fails the rename is undone.
// Rotated files beyond MaxFiles-1 are removed, oldest first. Errors of
// separate containers are joined; one container's error does not stop the rest.
func (r *Rotator) Check(ctx context.Context, containers []Container, reopen func(ctx context.Context, containerID string) error) error {
	maxSize, maxFiles := r.limits()
	var errs []error
	for _, c := range containers {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := r.rotate(ctx, c, maxSize, reopen); err != nil {
			errs = append(errs, fmt.Errorf("rotating log of container %s: %w", c.ID, err))
		}
		if err := removeOld(c.Path, maxFiles-1); err != nil {
			errs = append(errs, fmt.Errorf("removing old logs of container %s: %w", c.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Rotator) rotate(ctx context.Context, c Container, maxSize int64, reopen func(context.Context, string) error) error {
	st, err := os.Stat(c.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // not created yet, or gone with its container
		}
		return err
	}
	if st.Size() < maxSize {
		return nil
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	t := now()
	target := rotatedName(c.Path, t)
	// Two rotations within a second: take the next free second so names
	// stay unique and in order.
	for i := 0; i < 60; i++ {
		if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			break
		}
		t = t.Add(time.Second)
		target = rotatedName(c.Path, t)
	}
	if err := os.Rename(c.Path, target); err != nil {
		return err
	}
	if err := reopen(ctx, c.ID); err != nil {
		// The runtime still writes to the renamed file: put it back.
		if rerr := os.Rename(target, c.Path); rerr != nil {
			return errors.Join(err, rerr)
		}
		return fmt.Errorf("reopening: %w", err)
	}
	return nil
}

// removeOld keeps the newest keep rotated files of path.
func removeOld(path string, keep int) error {
	rotated, err := RotatedFiles(path)
	if err != nil {
		return err
	}
	var errs []error
	for i := 0; i < len(rotated)-keep; i++ {
		if err := os.Remove(rotated[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
