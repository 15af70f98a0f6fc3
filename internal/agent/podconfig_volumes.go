package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Volumes as the kubelet sets them up: hostPath (with its type check),
// emptyDir (on disk, or a tmpfs for medium: Memory), downwardAPI (files
// written atomically, with the kubelet's ..data symlink). A pod's own
// directories live under <data-dir>/volumes/<uid>.

type volDir struct {
	path     string
	readOnly bool
}

// setUpVolumes makes every volume of the pod ready, and returns each
// volume's directory on the host, by name. An error says which volume failed
// and why, as the kubelet's "MountVolume.SetUp failed" does.
func (a *Agent) setUpVolumes(pod *corev1.Pod) (map[string]volDir, error) {
	out := map[string]volDir{}
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	dir := a.podDir(string(pod.UID))
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		fail := func(err error) error {
			return fmt.Errorf("MountVolume.SetUp failed for volume %q : %w", v.Name, err)
		}
		switch {
		case v.HostPath != nil:
			t := corev1.HostPathUnset
			if v.HostPath.Type != nil {
				t = *v.HostPath.Type
			}
			if err := checkHostPath(v.HostPath.Path, t); err != nil {
				return nil, fail(err)
			}
			out[v.Name] = volDir{path: v.HostPath.Path}
		case v.EmptyDir != nil:
			p := filepath.Join(dir, "empty-dir", v.Name)
			if err := os.MkdirAll(p, 0o755); err != nil {
				return nil, fail(err)
			}
			if v.EmptyDir.Medium == corev1.StorageMediumMemory {
				if err := mountTmpfs(p, a.emptyDirMemorySize(pod, v.EmptyDir)); err != nil {
					return nil, fail(err)
				}
			}
			// emptyDir is world-writable, as the kubelet makes it.
			if err := setVolumeOwnership(p, 0o777, fsGroup); err != nil {
				return nil, fail(err)
			}
			out[v.Name] = volDir{path: p}
		case v.DownwardAPI != nil:
			p := filepath.Join(dir, "downward-api", v.Name)
			files, err := a.downwardAPIFiles(pod, v.DownwardAPI)
			if err != nil {
				return nil, fail(err)
			}
			if err := writeAtomic(p, files, fsGroup); err != nil {
				return nil, fail(err)
			}
			out[v.Name] = volDir{path: p, readOnly: true}
		default:
			return nil, fail(errors.New("volume type not supported"))
		}
	}
	return out, nil
}

// checkHostPath applies a hostPath volume's type check, as the kubelet.
func checkHostPath(p string, t corev1.HostPathType) error {
	fi, err := os.Stat(p)
	exists := err == nil
	failed := func(what string) error {
		return fmt.Errorf("hostPath type check failed: %s is not %s (hostPath type %s)", p, what, t)
	}
	switch t {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		if !exists {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("hostPath type %s: creating %s: %w", t, p, err)
			}
			return nil
		}
		fallthrough
	case corev1.HostPathDirectory:
		if !exists || !fi.IsDir() {
			return failed("a directory")
		}
	case corev1.HostPathFileOrCreate:
		if !exists {
			f, err := os.OpenFile(p, os.O_CREATE, 0o644)
			if err != nil {
				return fmt.Errorf("hostPath type %s: creating %s: %w", t, p, err)
			}
			return f.Close()
		}
		fallthrough
	case corev1.HostPathFile:
		if !exists || !fi.Mode().IsRegular() {
			return failed("a file")
		}
	case corev1.HostPathSocket:
		if !exists || fi.Mode()&os.ModeSocket == 0 {
			return failed("a socket file")
		}
	case corev1.HostPathCharDev:
		if !exists || fi.Mode()&os.ModeCharDevice == 0 {
			return failed("a character device")
		}
	case corev1.HostPathBlockDev:
		if !exists || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			return failed("a block device")
		}
	default:
		return fmt.Errorf("hostPath type %q is not supported", t)
	}
	return nil
}

// setVolumeOwnership gives a volume directory its mode and, with an fsGroup,
// the group with setgid, as the kubelet's SetVolumeOwnership (only when the
// root does not have it yet, as OnRootMismatch).
func setVolumeOwnership(dir string, mode os.FileMode, fsGroup *int64) error {
	if fsGroup == nil {
		return os.Chmod(dir, mode)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int64(st.Gid) == *fsGroup && fi.Mode()&os.ModeSetgid != 0 {
		return nil
	}
	gid := int(*fsGroup)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, -1, gid); err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			return nil
		}
		m := info.Mode() | 0o060
		if info.IsDir() {
			m |= os.ModeSetgid | 0o010
		}
		return os.Chmod(p, m)
	})
	if err != nil {
		return err
	}
	return os.Chmod(dir, mode|os.ModeSetgid)
}

// emptyDirMemorySize is the size of a medium: Memory emptyDir, as the
// kubelet computes it: the node's memory, or the pod's memory limit when all
// its containers have one, or the sizeLimit when smaller.
func (a *Agent) emptyDirMemorySize(pod *corev1.Pod, ed *corev1.EmptyDirVolumeSource) int64 {
	size := nodeMemory()
	var podLimit int64
	for _, c := range pod.Spec.Containers {
		q, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			podLimit = 0
			break
		}
		podLimit += q.Value()
	}
	if podLimit > 0 && (size == 0 || podLimit <= size) {
		size = podLimit
	}
	if ed.SizeLimit != nil && ed.SizeLimit.Sign() > 0 && (size == 0 || ed.SizeLimit.Value() <= size) {
		size = ed.SizeLimit.Value()
	}
	return size
}

// mountTmpfs mounts a tmpfs on dir unless one is there already.
func mountTmpfs(dir string, size int64) error {
	if mounted, err := isMountPoint(dir); err != nil || mounted {
		return err
	}
	opts := "mode=0777"
	if size > 0 {
		opts += ",size=" + strconv.FormatInt(size, 10)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mounting a tmpfs (medium: Memory) on %s: %w", dir, err)
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

// removePodDir removes a pod's volume directory, after unmounting what
// Ballast mounted under it (tmpfs of medium: Memory emptyDirs): removing
// first would empty the tmpfs and leave it mounted.
func (a *Agent) removePodDir(uid string) error {
	dir := a.podDir(uid)
	if err := unmountUnder(dir); err != nil {
		a.log.Warn("cannot unmount the pod's volumes; keeping its directory", "dir", dir, "err", err)
		return err
	}
	return os.RemoveAll(dir)
}

func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
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
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
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

// subPath returns the host path of a volume mount's subPath, created (with
// the volume directory's mode) when missing, as the kubelet does. It must
// stay inside the volume once symlinks are resolved.
func subPath(volume, sub string) (string, error) {
	p := filepath.Join(volume, sub)
	if _, err := os.Lstat(p); os.IsNotExist(err) {
		perm := os.FileMode(0o755)
		if fi, err := os.Stat(volume); err == nil {
			perm = fi.Mode().Perm()
		}
		if err := os.MkdirAll(p, perm); err != nil {
			return "", err
		}
	}
	root, err := filepath.EvalSymlinks(volume)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	if real != root && !strings.HasPrefix(real, root+"/") {
		return "", fmt.Errorf("subpath %q resolves to %s, outside the volume", sub, real)
	}
	return real, nil
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// ---- downwardAPI ----

type volFile struct {
	data []byte
	mode os.FileMode
}

func (a *Agent) downwardAPIFiles(pod *corev1.Pod, da *corev1.DownwardAPIVolumeSource) (map[string]volFile, error) {
	mode := os.FileMode(0o644)
	if da.DefaultMode != nil {
		mode = os.FileMode(*da.DefaultMode)
	}
	files := map[string]volFile{}
	for _, it := range da.Items {
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode)
		}
		var v string
		switch {
		case it.FieldRef != nil:
			var err error
			if v, err = fieldValue(pod, it.FieldRef.FieldPath, nil, ""); err != nil {
				return nil, fmt.Errorf("item %s: %w", it.Path, err)
			}
		case it.ResourceFieldRef != nil:
			c := podContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("item %s: no container %q in the pod", it.Path, it.ResourceFieldRef.ContainerName)
			}
			var err error
			if v, err = resourceValue(c, it.ResourceFieldRef); err != nil {
				return nil, fmt.Errorf("item %s: %w", it.Path, err)
			}
		}
		files[filepath.Clean(it.Path)] = volFile{data: []byte(v), mode: m}
	}
	return files, nil
}

// formatMap writes labels or annotations as the kubelet's downward API:
// key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// writeAtomic writes files into dir as the kubelet's atomic writer: into a
// new timestamped directory, then the ..data symlink is switched to it, and
// each top-level name is a symlink through ..data. Readers never see a mix.
func writeAtomic(dir string, files map[string]volFile, fsGroup *int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	for name, f := range files {
		p := filepath.Join(ts, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		mode := f.mode
		if fsGroup != nil {
			if err := os.Chown(p, -1, int(*fsGroup)); err != nil {
				return err
			}
			mode |= 0o040
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
	data := filepath.Join(dir, "..data")
	old, _ := os.Readlink(data)
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, data); err != nil {
		return err
	}
	top := map[string]bool{}
	for name := range files {
		top[strings.SplitN(name, "/", 2)[0]] = true
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	if old != "" && old != filepath.Base(ts) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	if fsGroup != nil {
		_ = os.Lchown(dir, -1, int(*fsGroup))
		_ = os.Chmod(dir, 0o755|os.ModeSetgid)
	}
	return nil
}

func podContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
