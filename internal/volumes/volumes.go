// Package volumes owns the host side of a pod's volumes, as the kubelet sets
// them up: hostPath type checks, emptyDir directories (a tmpfs for medium:
// Memory), the files of downwardAPI, configMap, secret and projected volumes
// written as one atomic directory and updated in place (secret and
// projected ones on a tmpfs: never on disk), ownership for fsGroup, subPath
// directories, the pod's managed /etc/hosts, the files
// containers write their termination message to, and removing all of it when
// the pod goes. A pod's own directories live under
// <data-dir>/volumes/<uid>. What to prepare comes from internal/podconfig
// (Volumes), and what this package returns feeds its ContainerInput.
package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/podconfig"
)

// PodDir is where the volumes of pod uid live, for an agent whose data
// directory is dataDir.
func PodDir(dataDir, uid string) string {
	return filepath.Join(dataDir, "volumes", uid)
}

// Prepare makes every planned volume of a pod ready on the host, under
// podDir, and returns each one's host path by name. It may be called again
// for the same pod (at every container start): what is there already is kept,
// downwardAPI files are updated in place when they changed. An error names
// the volume, as the kubelet's "MountVolume.SetUp failed" does.
func Prepare(podDir string, vols []podconfig.Volume) (map[string]podconfig.HostVolume, error) {
	out := make(map[string]podconfig.HostVolume, len(vols))
	for _, v := range vols {
		hv, err := prepare(podDir, v)
		if err != nil {
			return nil, &podconfig.VolumeError{Volume: v.Name, Err: err}
		}
		out[v.Name] = hv
	}
	return out, nil
}

func prepare(podDir string, v podconfig.Volume) (podconfig.HostVolume, error) {
	switch {
	case v.HostPath != nil:
		if err := checkHostPath(v.HostPath.Path, v.HostPath.Type); err != nil {
			return podconfig.HostVolume{}, err
		}
		return podconfig.HostVolume{Path: v.HostPath.Path}, nil
	case v.EmptyDir != nil:
		p := filepath.Join(podDir, "empty-dir", v.Name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return podconfig.HostVolume{}, err
		}
		if v.EmptyDir.Memory {
			if err := mountTmpfs(p, v.EmptyDir.SizeBytes, 0o777); err != nil {
				return podconfig.HostVolume{}, err
			}
		}
		// emptyDir is world-writable, as the kubelet makes it.
		if err := setVolumeOwnership(p, 0o777, v.FSGroup); err != nil {
			return podconfig.HostVolume{}, err
		}
		return podconfig.HostVolume{Path: p}, nil
	case v.Files != nil:
		kind := v.FilesKind
		if kind == "" {
			kind = podconfig.FilesDownwardAPI
		}
		p := filepath.Join(podDir, kind, v.Name)
		if v.Memory {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return podconfig.HostVolume{}, err
			}
			if err := mountTmpfs(p, 0, 0o755); err != nil {
				return podconfig.HostVolume{}, err
			}
		}
		files := make(map[string]atomicfile.File, len(v.Files))
		for name, f := range v.Files {
			files[name] = atomicfile.File{Data: f.Data, Mode: f.Mode}
		}
		if _, err := atomicfile.WriteDir(p, files, atomicfile.DirOptions{Group: v.FSGroup}); err != nil {
			return podconfig.HostVolume{}, err
		}
		return podconfig.HostVolume{Path: p, ReadOnly: true}, nil
	}
	return podconfig.HostVolume{}, errors.New("volume type not supported")
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

// ResolveSubPaths makes each subPath of a container's mounts exist inside its
// volume (created with the volume directory's mode when missing, as the
// kubelet does) and points its mount at the real path, which must stay inside
// the volume once symlinks are resolved.
func ResolveSubPaths(container string, mounts []*runtimeapi.Mount, subs []podconfig.SubPath) error {
	for _, s := range subs {
		if s.Mount < 0 || s.Mount >= len(mounts) {
			return fmt.Errorf("subPath %q of volume %q: no mount %d in container %q", s.Path, s.VolumeName, s.Mount, container)
		}
		if s.MustExist {
			if _, err := os.Lstat(filepath.Join(s.Volume, s.Path)); err != nil {
				return fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q: %q is not in the volume (no such key or item); fix the subPath or the volume's items", s.VolumeName, container, s.Path)
			}
		}
		real, err := subPath(s.Volume, s.Path)
		if err != nil {
			return fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q: %w", s.VolumeName, container, err)
		}
		mounts[s.Mount].HostPath = real
	}
	return nil
}

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

// NodeHostsFile is the node's hosts file, which host-network pods see.
const NodeHostsFile = "/etc/hosts"

// WriteHostsFile writes the pod's managed /etc/hosts under podDir
// (podconfig.HostsFile, with the node's for a host-network pod) and returns
// its path. It is rewritten in place, not replaced: running containers
// bind-mount this very inode, and must see the change.
func WriteHostsFile(podDir string, pod *corev1.Pod, podIPs []string) (string, error) {
	var node []byte
	if pod.Spec.HostNetwork {
		var err error
		if node, err = os.ReadFile(NodeHostsFile); err != nil && !os.IsNotExist(err) {
			return "", err
		}
	}
	content := podconfig.HostsFile(pod, podIPs, node)
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(podDir, "etc-hosts")
	if old, err := os.ReadFile(p); err == nil && string(old) == string(content) {
		return p, nil
	}
	if err := os.WriteFile(p, content, 0o644); err != nil {
		return "", err
	}
	return p, nil
}

// TerminationMessageFile creates the empty, world-writable file a container
// writes its termination message to, for its restart (each has its own),
// and returns its path.
func TerminationMessageFile(podDir, container string, restart int) (string, error) {
	dir := filepath.Join(podDir, "containers", container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f := filepath.Join(dir, strconv.Itoa(restart))
	if err := os.WriteFile(f, nil, 0o666); err != nil {
		return "", err
	}
	// Whatever the umask: the container may run as any user.
	if err := os.Chmod(f, 0o666); err != nil {
		return "", err
	}
	return f, nil
}
