package podconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The volumes of a pod, as plans for the host (internal/volumes carries them
// out), and the mounts of a container.

// Volume is what the host must provide for one volume of a pod: exactly one
// of HostPath, EmptyDir and Files is set.
type Volume struct {
	Name     string
	HostPath *HostPathVolume
	EmptyDir *EmptyDirVolume
	// Files are written as one atomic directory (downwardAPI, configMap,
	// secret and projected volumes), read-only in containers, by path
	// relative to the volume; an empty volume (an optional object missing)
	// has an empty, non-nil map.
	Files map[string]File
	// FilesKind names the kind of a Files volume (FilesDownwardAPI,
	// FilesConfigMap, FilesSecret, FilesProjected).
	FilesKind string
	// Memory: the files live on a tmpfs, never on disk (secret and
	// projected volumes, as the kubelet's).
	Memory bool
	// FSGroup, when set, owns the volume's directory and files (setgid).
	FSGroup *int64
}

// HostPathVolume is a directory or file of the node, checked by type.
type HostPathVolume struct {
	Path string              `json:"path"`
	Type corev1.HostPathType `json:"type"`
}

// EmptyDirVolume is a fresh directory of the pod; Memory ones are a tmpfs of
// SizeBytes (0: the tmpfs default).
type EmptyDirVolume struct {
	Memory    bool  `json:"memory,omitempty"`
	SizeBytes int64 `json:"sizeBytes,omitempty"`
}

// File is one file of a Files volume.
type File struct {
	Data []byte
	Mode fs.FileMode
}

// VolumeError is a volume that cannot be set up, in the kubelet's words: the
// container waits with CreateContainerConfigError saying so.
type VolumeError struct {
	Volume string
	Err    error
}

func (e *VolumeError) Error() string {
	return fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", e.Volume, e.Err)
}

func (e *VolumeError) Unwrap() error { return e.Err }

// Volumes plans every volume of the pod: the files of its downwardAPI
// volumes (with node's capacity as the default limits), of its configMap,
// secret and projected volumes (from configs, the objects the node has),
// and the size of its memory emptyDirs. A volume that cannot be made (a
// missing object or key that is not optional) is a *VolumeError.
func Volumes(pod *corev1.Pod, node Node, configs Configs) ([]Volume, error) {
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	out := make([]Volume, 0, len(pod.Spec.Volumes))
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		vol := Volume{Name: v.Name, FSGroup: fsGroup}
		if cv, ok, err := configVolume(pod, v, node, configs); ok {
			if err != nil {
				return nil, &VolumeError{Volume: v.Name, Err: err}
			}
			cv.Name, cv.FSGroup = v.Name, fsGroup
			out = append(out, cv)
			continue
		}
		switch {
		case v.HostPath != nil:
			t := corev1.HostPathUnset
			if v.HostPath.Type != nil {
				t = *v.HostPath.Type
			}
			vol.HostPath = &HostPathVolume{Path: v.HostPath.Path, Type: t}
			vol.FSGroup = nil // the kubelet leaves the node's files alone
		case v.EmptyDir != nil:
			vol.EmptyDir = &EmptyDirVolume{}
			if v.EmptyDir.Medium == corev1.StorageMediumMemory {
				vol.EmptyDir.Memory = true
				vol.EmptyDir.SizeBytes = emptyDirMemorySize(pod, v.EmptyDir, node.memory())
			}
		case v.DownwardAPI != nil:
			files, err := downwardAPIFiles(pod, v.DownwardAPI, node.Capacity)
			if err != nil {
				return nil, &VolumeError{Volume: v.Name, Err: err}
			}
			vol.Files, vol.FilesKind = files, FilesDownwardAPI
		default:
			return nil, &VolumeError{Volume: v.Name, Err: errors.New("volume type not supported")}
		}
		out = append(out, vol)
	}
	return out, nil
}

// emptyDirMemorySize is the size of a medium: Memory emptyDir, as the
// kubelet computes it: the node's memory, or the pod's memory limit when all
// its containers have one, or the sizeLimit when smaller.
func emptyDirMemorySize(pod *corev1.Pod, ed *corev1.EmptyDirVolumeSource, nodeMemory int64) int64 {
	size := nodeMemory
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

func downwardAPIFiles(pod *corev1.Pod, da *corev1.DownwardAPIVolumeSource, capacity corev1.ResourceList) (map[string]File, error) {
	mode := fs.FileMode(0o644)
	if da.DefaultMode != nil {
		mode = fs.FileMode(*da.DefaultMode)
	}
	files := map[string]File{}
	for _, it := range da.Items {
		m := mode
		if it.Mode != nil {
			m = fs.FileMode(*it.Mode)
		}
		var v string
		switch {
		case it.FieldRef != nil:
			var err error
			if v, err = FieldValue(pod, it.FieldRef.FieldPath, nil, ""); err != nil {
				return nil, fmt.Errorf("item %s: %w", it.Path, err)
			}
		case it.ResourceFieldRef != nil:
			c := FindContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("item %s: no container %q in the pod", it.Path, it.ResourceFieldRef.ContainerName)
			}
			var err error
			if v, err = ResourceValue(c, it.ResourceFieldRef, capacity); err != nil {
				return nil, fmt.Errorf("item %s: %w", it.Path, err)
			}
		}
		files[path.Clean(it.Path)] = File{Data: []byte(v), Mode: m}
	}
	return files, nil
}

// containerMounts are the container's mounts: its volume mounts (subPaths
// listed for the host to resolve), the pod's hosts file and its termination
// message file.
func containerMounts(ctr *corev1.Container, env map[string]string, in ContainerInput) ([]*runtimeapi.Mount, []SubPath, error) {
	privileged := ctr.SecurityContext != nil && ctr.SecurityContext.Privileged != nil && *ctr.SecurityContext.Privileged
	var out []*runtimeapi.Mount
	var subPaths []SubPath
	for _, vm := range ctr.VolumeMounts {
		vd, ok := in.Volumes[vm.Name]
		if !ok {
			return nil, nil, fmt.Errorf("container %q mounts volume %q, which the pod does not define", ctr.Name, vm.Name)
		}
		host := vd.Path
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = Expand(vm.SubPathExpr, env)
			if path.IsAbs(sub) || slices.Contains(strings.Split(sub, "/"), "..") {
				return nil, nil, fmt.Errorf("volume mount %s: subPathExpr %q expands to %q, which must be a relative path without '..'", vm.MountPath, vm.SubPathExpr, sub)
			}
		}
		if sub != "" {
			subPaths = append(subPaths, SubPath{Mount: len(out), VolumeName: vm.Name, Volume: vd.Path, Path: sub, MustExist: vd.ReadOnly})
			host = path.Join(vd.Path, sub)
		}
		m := &runtimeapi.Mount{ContainerPath: vm.MountPath, HostPath: host, Readonly: vm.ReadOnly || vd.ReadOnly}
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case corev1.MountPropagationHostToContainer:
				m.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case corev1.MountPropagationBidirectional:
				if !privileged {
					return nil, nil, fmt.Errorf("volume mount %s: Bidirectional mount propagation is available only to privileged containers", vm.MountPath)
				}
				m.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		out = append(out, m)
	}
	if in.HostsFile != "" && !MountsEtcHosts(ctr) {
		out = append(out, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: in.HostsFile})
	}
	if p := ctr.TerminationMessagePath; p != "" && in.TerminationMessageFile != "" {
		out = append(out, &runtimeapi.Mount{ContainerPath: p, HostPath: in.TerminationMessageFile})
	}
	return out, subPaths, nil
}
