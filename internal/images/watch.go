package images

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ballast-dev/ballast/internal/dirwatch"
)

// Watcher imports every image tarball in Dir at start and whenever one is
// added (IN_CLOSE_WRITE: written in place and closed; IN_MOVED_TO: renamed
// in, the atomic way) or replaced. It remembers what it imported (path,
// size, mtime, inode) so unchanged files are not imported again. A failed
// import is logged (file and error) and retried when the file changes
// again, or after RetryInterval. Removing a tarball does not remove its
// image from containerd.
type Watcher struct {
	Dir string
	// Import imports one file (e.g. Importer.Import). Required.
	Import func(ctx context.Context, path string) error
	// OnImported, if set, is called after each successful import.
	OnImported func(path string)
	Log        *slog.Logger
	// Settle is how long to wait after the last event before importing
	// (default 100 ms), so a burst of files is handled together.
	Settle time.Duration
	// RetryInterval retries failed imports of unchanged files (default 1
	// minute; negative disables).
	RetryInterval time.Duration
}

// Watch runs a Watcher on dir until ctx ends (then it returns nil) or the
// directory cannot be watched any more (an error).
func Watch(ctx context.Context, dir string, importFn func(ctx context.Context, path string) error, onImported func(path string), log *slog.Logger) error {
	w := &Watcher{Dir: dir, Import: importFn, OnImported: onImported, Log: log}
	return w.Run(ctx)
}

type fileKey struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func statKey(path string) (fileKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileKey{}, err
	}
	if !st.Mode().IsRegular() {
		return fileKey{}, fmt.Errorf("not a regular file")
	}
	k := fileKey{size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*unix.Stat_t); ok {
		k.ino = sys.Ino
	}
	return k, nil
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "images", "dir", w.Dir)
	settle := w.Settle
	if settle <= 0 {
		settle = 100 * time.Millisecond
	}
	retry := w.RetryInterval
	if retry == 0 {
		retry = time.Minute
	}
	if w.Import == nil {
		return errors.New("images: Watcher.Import is nil")
	}
	if err := os.MkdirAll(w.Dir, 0o755); err != nil {
		return fmt.Errorf("images dir: %w", err)
	}

	in, err := dirwatch.New()
	if err != nil {
		return fmt.Errorf("images dir %s: %w", w.Dir, err)
	}
	defer in.Close()
	wd, err := in.Add(w.Dir, dirwatch.CloseWrite|dirwatch.MovedIn|dirwatch.MovedOut|dirwatch.Delete|dirwatch.DeleteSelf|dirwatch.MoveSelf)
	if err != nil {
		return fmt.Errorf("watching %s: %w", w.Dir, err)
	}

	imported := map[string]fileKey{}
	failed := map[string]fileKey{}
	failedAt := map[string]time.Time{}
	pending := map[string]bool{}

	scanAll := func() {
		ents, err := os.ReadDir(w.Dir)
		if err != nil {
			log.Error("reading images dir", "err", err)
			return
		}
		for _, e := range ents {
			if IsTarball(e.Name()) {
				pending[e.Name()] = true
			}
		}
	}
	process := func(force bool) {
		names := make([]string, 0, len(pending))
		for n := range pending {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			delete(pending, n)
			path := filepath.Join(w.Dir, n)
			key, err := statKey(path)
			if err != nil {
				if !os.IsNotExist(err) {
					log.Error("image tarball unusable", "file", path, "err", err)
				}
				delete(imported, path)
				delete(failed, path)
				delete(failedAt, path)
				continue
			}
			if k, ok := imported[path]; ok && k == key {
				continue
			}
			if k, ok := failed[path]; ok && k == key && !force {
				continue
			}
			start := time.Now()
			if err := w.Import(ctx, path); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Error("importing image tarball failed; will retry when the file changes", "file", path, "err", err)
				failed[path], failedAt[path] = key, time.Now()
				delete(imported, path)
				continue
			}
			delete(failed, path)
			delete(failedAt, path)
			imported[path] = key
			log.Info("imported image tarball", "file", path, "size", key.size, "took", time.Since(start).Round(time.Millisecond))
			if w.OnImported != nil {
				w.OnImported(path)
			}
		}
	}

	scanAll()
	process(false)

	var settleC <-chan time.Time
	var retryC <-chan time.Time
	armRetry := func() {
		retryC = nil
		if retry > 0 && len(failed) > 0 {
			retryC = time.After(retry)
		}
	}
	armRetry()
	for {
		select {
		case <-ctx.Done():
			return nil
		case evs, ok := <-in.Events():
			if !ok {
				return fmt.Errorf("images dir %s: %w", w.Dir, in.Err())
			}
			changed := false
			for _, e := range evs {
				switch {
				case e.Op.Has(dirwatch.Overflow):
					scanAll()
					changed = true
				case e.Watch == wd && e.Op.Has(dirwatch.DeleteSelf|dirwatch.MoveSelf|dirwatch.Ignored):
					return fmt.Errorf("images dir %s was removed or moved; no longer watching it", w.Dir)
				case IsTarball(e.Name):
					pending[e.Name] = true
					changed = true
				}
			}
			if changed {
				settleC = time.After(settle)
			}
		case <-settleC:
			settleC = nil
			process(false)
			armRetry()
		case <-retryC:
			for p := range failed {
				pending[filepath.Base(p)] = true
			}
			process(true)
			armRetry()
		}
	}
}
