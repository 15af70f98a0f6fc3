package volumes

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// mountTmpfs mounts a tmpfs of size (0: the kernel's default) and mode on
// dir, unless one is there already.
func mountTmpfs(dir string, size int64, mode os.FileMode) error {
	if mounted, err := isMountPoint(dir); err != nil || mounted {
		return err
	}
	opts := fmt.Sprintf("mode=%#o", mode.Perm())
	if size > 0 {
		opts += ",size=" + strconv.FormatInt(size, 10)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mounting a tmpfs (memory) on %s: %w", dir, err)
	}
	return nil
}

func isMountPoint(dir string) (bool, error) {
	var st, pst syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return false, err
	}
	if err := syscall.Stat(filepath.Dir(dir), &pst); err != nil {
		return false, err
	}
	return st.Dev != pst.Dev, nil
}

// RemovePodDir removes a pod's directory, after unmounting what Ballast
// mounted under it (tmpfs of medium: Memory emptyDirs): removing first would
// empty the tmpfs and leave it mounted. When something cannot be unmounted,
// the directory is kept and the error says why.
func RemovePodDir(podDir string) error {
	if err := unmountUnder(podDir); err != nil {
		return fmt.Errorf("keeping %s: cannot unmount the pod's volumes: %w", podDir, err)
	}
	return os.RemoveAll(podDir)
}

func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	points, err := mountPointsUnder(f, dir)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading /proc/self/mountinfo: %w", err)
	}
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// mountPointsUnder lists the mount points at or under dir in a mountinfo
// table, the deepest first (the order to unmount them).
func mountPointsUnder(mountinfo io.Reader, dir string) ([]string, error) {
	var points []string
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.SliceStable(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	return points, sc.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
