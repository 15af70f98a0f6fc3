package atomicfile

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The names WriteDir keeps in a directory, as the kubelet's AtomicWriter.
const (
	dataLink    = "..data"     // symlink to the current version's directory
	dataLinkTmp = "..data_tmp" // the next ..data, renamed over it
	// versionLayout names a version's directory ("..2024_01_31_12_00_00.<random>").
	versionLayout = "..2006_01_02_15_04_05."
)

// File is one file of a directory written by WriteDir.
type File struct {
	Data []byte
	Mode os.FileMode // permission bits
}

// DirOptions adjust WriteDir.
type DirOptions struct {
	// Group, when set, owns every file (made group-readable too) and the
	// directory (setgid), as a pod's fsGroup.
	Group *int64
	// Now names a new version's directory (default time.Now).
	Now func() time.Time
}

// WriteDir makes dir show exactly files (by path relative to dir, "/"
// separated), all at once, as the kubelet's atomic writer does for
// downwardAPI, ConfigMap and Secret volumes: the files are written into a new
// version directory, the "..data" symlink is switched to it by a rename, and
// each top-level name in dir is a symlink through "..data". A reader that
// opens paths under dir sees the old set or the new one, never a mix, and a
// directory a container already mounts is updated in place: call WriteDir
// again with the new set. Names of the previous set that are gone are
// removed. The version just replaced is kept until the next write, so that
// a reader that resolved "..data" to it a moment before the switch can
// still open its files (the kubelet removes it at once, and such a reader
// gets "no such file"); older versions are removed. Nothing is written when dir
// already holds exactly files; changed says whether it did not.
//
// Only one WriteDir may run on a directory at a time.
func WriteDir(dir string, files map[string]File, opts DirOptions) (changed bool, err error) {
	for name := range files {
		if err := checkName(name); err != nil {
			return false, fmt.Errorf("writing %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	current, _ := os.Readlink(filepath.Join(dir, dataLink))
	var previous map[string]bool // top-level names of the current version
	if current != "" {
		same, err := holds(filepath.Join(dir, current), files, opts.Group)
		if err != nil {
			return false, err
		}
		if same {
			// Links may be missing after a crash between the swap and them.
			return false, linkTopNames(dir, files, nil)
		}
		previous = topNames(filepath.Join(dir, current))
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	version, err := os.MkdirTemp(dir, now().UTC().Format(versionLayout))
	if err != nil {
		return false, err
	}
	if err := writeVersion(version, files, opts.Group); err != nil {
		os.RemoveAll(version)
		return false, err
	}
	tmp := filepath.Join(dir, dataLinkTmp)
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		os.RemoveAll(version)
		return false, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		os.Remove(tmp)
		os.RemoveAll(version)
		return false, err
	}
	if err := linkTopNames(dir, files, previous); err != nil {
		return true, err
	}
	removeOldVersions(dir, filepath.Base(version), current)
	if g := opts.Group; g != nil {
		if err := os.Lchown(dir, -1, int(*g)); err != nil {
			return true, err
		}
		if err := os.Chmod(dir, 0o755|os.ModeSetgid); err != nil {
			return true, err
		}
	}
	return true, nil
}

// checkName refuses what would escape the directory or hide behind its own
// names: absolute paths, "..", names starting with "..".
func checkName(name string) error {
	switch {
	case name == "" || filepath.IsAbs(name):
		return fmt.Errorf("file name %q must be a relative path", name)
	case strings.HasPrefix(name, ".."):
		return fmt.Errorf("file name %q must not start with '..'", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." || part == "" || part == "." {
			return fmt.Errorf("file name %q must be a clean relative path without '..'", name)
		}
	}
	return nil
}

func fileMode(f File, group *int64) os.FileMode {
	m := f.Mode.Perm()
	if group != nil {
		m |= 0o040
	}
	return m
}

func writeVersion(version string, files map[string]File, group *int64) error {
	if err := os.Chmod(version, 0o755); err != nil {
		return err
	}
	for name, f := range files {
		p := filepath.Join(version, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, f.Mode.Perm()); err != nil {
			return err
		}
		if group != nil {
			if err := os.Chown(p, -1, int(*group)); err != nil {
				return err
			}
		}
		// Explicitly: the umask applied at creation.
		if err := os.Chmod(p, fileMode(f, group)); err != nil {
			return err
		}
	}
	return nil
}

// holds says whether the version directory has exactly files, with their
// modes (and group).
func holds(version string, files map[string]File, group *int64) (bool, error) {
	n := 0
	same := true
	err := filepath.WalkDir(version, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(version, p)
		f, ok := files[filepath.ToSlash(rel)]
		if !ok || !d.Type().IsRegular() {
			same = false
			return filepath.SkipAll
		}
		n++
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != fileMode(f, group) {
			same = false
			return filepath.SkipAll
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && group != nil && int64(st.Gid) != *group {
			same = false
			return filepath.SkipAll
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(data, f.Data) {
			same = false
			return filepath.SkipAll
		}
		return nil
	})
	if os.IsNotExist(err) {
		return false, nil // ..data points nowhere: write a new version
	}
	return same && err == nil && n == len(files), err
}

func topName(name string) string {
	top, _, _ := strings.Cut(name, "/")
	return top
}

func topNames(version string) map[string]bool {
	out := map[string]bool{}
	ents, _ := os.ReadDir(version)
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}

// linkTopNames makes each top-level name of files a symlink through ..data,
// and removes the links of previous names that are gone.
func linkTopNames(dir string, files map[string]File, previous map[string]bool) error {
	want := map[string]bool{}
	for name := range files {
		want[topName(name)] = true
	}
	for name := range want {
		link := filepath.Join(dir, name)
		target := filepath.Join(dataLink, name)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		if _, err := os.Lstat(link); err == nil {
			return fmt.Errorf("writing %s: %s exists and is not the link to %s", dir, link, target)
		}
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	for name := range previous {
		if want[name] {
			continue
		}
		link := filepath.Join(dir, name)
		if cur, err := os.Readlink(link); err == nil && cur == filepath.Join(dataLink, name) {
			if err := os.Remove(link); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeOldVersions removes every version directory but keep and previous
// (older ones, and any a crash left behind).
func removeOldVersions(dir, keep, previous string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if n == keep || n == previous || !e.IsDir() || len(n) < 3 || !strings.HasPrefix(n, "..") || n[2] < '0' || n[2] > '9' {
			continue
		}
		_ = os.RemoveAll(filepath.Join(dir, n))
	}
}
