// Package atomicfile owns writing files so that a reader, or a crash, sees
// either the old content or the new, never a part or a mix: one file through
// a synced temporary file renamed over it (WriteFile, WriteWith), and a set of
// files as one directory update through the kubelet's "..data" symlink swap
// (WriteDir), which also updates a directory that containers already mount.
// Every atomic write in Ballast goes through here.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// WriteFile writes data to path through a temporary file in the same
// directory, with mode perm from its creation, synced and renamed over path;
// the directory is synced after. A reader (or a crash) sees the old or the new
// content, never a part of it.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteWith(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteWith is WriteFile for content produced by write (a tarball, a stream):
// path is replaced only if write returns nil.
func WriteWith(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable. Best effort: the rename is done.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
