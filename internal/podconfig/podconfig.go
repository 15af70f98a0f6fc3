// Package podconfig owns translating a pod into what the container runtime
// is given, as the kubelet does: the CRI PodSandboxConfig and
// ContainerConfig (labels and annotations, DNS, port mappings, security
// contexts, resources, environment with the downward API, mounts), and the
// plan of the pod's volumes (what the host must provide, which files go in
// downwardAPI volumes). Everything it needs from the world (node facts, the
// pod's IPs, the image's user, where volumes are on the host) comes in
// explicitly, so it does no I/O: no file system, network, clock or runtime.
// internal/volumes prepares the host side; the agent's executor gathers the
// facts and calls both.
package podconfig

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/logs"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// Node is what the translation knows of the node.
type Node struct {
	Name string
	// DataDir is the agent's data directory: pod log directories are under
	// it (logs.PodLogDir), Localhost seccomp profiles under SeccompRoot.
	DataDir string
	// HostIP is the node's IP: status.hostIP, and the pod IP of host-network pods.
	HostIP string
	// ResolvConf is the node's resolver configuration (ParseResolvConf of
	// its resolv.conf), nil when it cannot be read.
	ResolvConf *runtimeapi.DNSConfig
	// Capacity is the node's cpu, memory and ephemeral-storage: the limits
	// the downward API shows for a container without one, the share of memory
	// that sets a Burstable container's oom_score_adj, the size of memory
	// emptyDirs. Ballast reserves nothing, so it is also what is allocatable.
	Capacity corev1.ResourceList
}

func (n Node) memory() int64 { return n.Capacity.Memory().Value() }

// Sandbox builds the CRI sandbox config of a pod, as the kubelet would.
// attempt counts the pod's sandboxes before this one. Admission
// (podstatus.Admit) is not checked here: the caller decides whether the pod
// may run at all.
func Sandbox(pod *corev1.Pod, node Node, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, fmt.Errorf("recording pod %s/%s on its sandbox: %w", pod.Namespace, pod.Name, err)
	}
	labels := map[string]string{}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[wellknown.LabelPodName] = pod.Name
	labels[wellknown.LabelPodNamespace] = pod.Namespace
	labels[wellknown.LabelPodUID] = string(pod.UID)
	labels[wellknown.LabelNode] = node.Name
	annotations := map[string]string{}
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	annotations[wellknown.AnnotationPod] = string(raw)

	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		Hostname:     Hostname(pod),
		LogDirectory: logs.PodLogDir(node.DataDir, pod.Namespace, pod.Name, string(pod.UID)),
		Labels:       labels,
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: sandboxSecurityContext(pod),
			Sysctls:         sysctls(pod),
		},
		DnsConfig:    DNS(pod, node.ResolvConf),
		PortMappings: PortMappings(pod),
	}
	if pod.Spec.HostNetwork {
		cfg.Hostname = ""
	}
	return cfg, nil
}

// ImageUser is the user an image runs as (its config's User), as the
// runtime reports it: a numeric UID, or a name.
type ImageUser struct {
	UID      *int64
	Username string
}

// HostVolume is a volume of the pod as prepared on the host.
type HostVolume struct {
	Path     string
	ReadOnly bool // every mount of it is read-only (files Ballast writes: downwardAPI, configMap, secret, projected)
}

// ContainerInput is what one container's config needs beyond the pod.
type ContainerInput struct {
	Node Node
	// ImageRef is the image to run, as the pull or the runtime resolved it.
	ImageRef string
	// ImageUser is the image's user, asked of the runtime only when
	// NeedsImageUser; nil then means the runtime does not know the image.
	ImageUser *ImageUser
	// PodIPs are the pod's IPs (the sandbox's, or the node's for a
	// host-network pod), for the downward API; empty when not known.
	PodIPs []string
	// Volumes are the pod's volumes on the host, by name (volumes.Prepare).
	Volumes map[string]HostVolume
	// Configs are the node-local ConfigMaps and Secrets the pod references
	// (those the node has), for env and envFrom.
	Configs Configs
	// HostsFile is the pod's managed /etc/hosts on the host, mounted unless
	// the container mounts its own (MountsEtcHosts).
	HostsFile string
	// TerminationMessageFile is the host file mounted at the container's
	// terminationMessagePath, when it has one.
	TerminationMessageFile string
	// RestartCount is the container's restart count: the attempt and log file.
	RestartCount int
	// Backoff and BackoffSince record the crash back-off entry on the
	// container, so it survives an agent restart (zero Backoff: none).
	Backoff      time.Duration
	BackoffSince time.Time
}

// SubPath is a mount of part of a volume: the host must have Path inside
// the volume directory Volume before the container is created
// (volumes.ResolveSubPaths), and Mounts[Mount].HostPath becomes the real
// path found. Container sets that HostPath to Volume/Path meanwhile.
type SubPath struct {
	Mount      int    `json:"mount"`
	VolumeName string `json:"volumeName"`
	Volume     string `json:"volume"`
	Path       string `json:"path"`
	// MustExist: the volume holds files Ballast writes (read-only in
	// containers), so a missing path is an error rather than a directory
	// to create. Such a mount shows the file as it was when the container
	// was created: it is not updated in place, as in Kubernetes.
	MustExist bool `json:"mustExist,omitempty"`
}

// Container builds the CRI config of one container of a pod, and lists the
// subPath mounts the host must resolve before the container is created.
// Errors are the container's CreateContainerConfigError.
func Container(pod *corev1.Pod, ctr *corev1.Container, in ContainerInput) (*runtimeapi.ContainerConfig, []SubPath, error) {
	if err := verifyRunAsNonRoot(pod, ctr, in.ImageUser); err != nil {
		return nil, nil, err
	}
	env := map[string]string{}
	var envs []*runtimeapi.KeyValue
	index := map[string]int{}
	set := func(name, v string) {
		env[name] = v
		if i, ok := index[name]; ok {
			envs[i].Value = []byte(v) // env overrides envFrom, as the kubelet's
			return
		}
		index[name] = len(envs)
		envs = append(envs, &runtimeapi.KeyValue{Key: name, Value: []byte(v)})
	}
	// As the kubelet: envFrom first, then env (which may refer to them).
	if _, err := envFrom(pod, ctr, in.Configs, set); err != nil {
		return nil, nil, err
	}
	for _, e := range ctr.Env {
		v := Expand(e.Value, env)
		if vf := e.ValueFrom; vf != nil && (vf.ConfigMapKeyRef != nil || vf.SecretKeyRef != nil) {
			val, ok, err := keyRefValue(pod, vf, in.Configs)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				continue
			}
			v = val
		} else if vf != nil {
			var err error
			if v, err = envValueFrom(pod, ctr, vf, in); err != nil {
				return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		}
		set(e.Name, v)
	}
	var command, args []string
	for _, c := range ctr.Command {
		command = append(command, Expand(c, env))
	}
	for _, c := range ctr.Args {
		args = append(args, Expand(c, env))
	}
	mounts, subPaths, err := containerMounts(ctr, env, in)
	if err != nil {
		return nil, nil, err
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: ctr.Name, Attempt: uint32(in.RestartCount)},
		Image:      &runtimeapi.ImageSpec{Image: in.ImageRef, UserSpecifiedImage: ctr.Image},
		Command:    command,
		Args:       args,
		WorkingDir: ctr.WorkingDir,
		Envs:       envs,
		Mounts:     mounts,
		LogPath:    logs.ContainerLogPath(ctr.Name, in.RestartCount),
		Stdin:      ctr.Stdin,
		StdinOnce:  ctr.StdinOnce,
		Tty:        ctr.TTY,
		Labels: map[string]string{
			wellknown.LabelPodName:       pod.Name,
			wellknown.LabelPodNamespace:  pod.Namespace,
			wellknown.LabelPodUID:        string(pod.UID),
			wellknown.LabelContainerName: ctr.Name,
			wellknown.LabelNode:          in.Node.Name,
		},
		Annotations: map[string]string{
			wellknown.AnnotationRestartCount:  strconv.Itoa(in.RestartCount),
			wellknown.AnnotationTermMsgPath:   ctr.TerminationMessagePath,
			wellknown.AnnotationTermMsgPolicy: string(ctr.TerminationMessagePolicy),
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       Resources(pod, ctr, in.Node.memory()),
			SecurityContext: containerSecurityContext(pod, ctr, in.Node.DataDir),
		},
	}
	if in.Backoff > 0 {
		cfg.Annotations[wellknown.AnnotationBackoff] = in.Backoff.String()
		cfg.Annotations[wellknown.AnnotationBackoffSince] = in.BackoffSince.UTC().Format(time.RFC3339Nano)
	}
	return cfg, subPaths, nil
}

// MountsEtcHosts says whether the container mounts its own /etc/hosts (then
// it gets no managed one).
func MountsEtcHosts(ctr *corev1.Container) bool {
	for _, vm := range ctr.VolumeMounts {
		if path.Clean(vm.MountPath) == "/etc/hosts" {
			return true
		}
	}
	return false
}

// FindContainer finds a container (init or app) of a pod by name; nil if
// there is none (or no pod).
func FindContainer(pod *corev1.Pod, name string) *corev1.Container {
	if pod == nil {
		return nil
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// Host is where the node connects to reach a pod (hooks, probes): the
// sandbox's IP, or the node's for a host-network pod or an unknown IP.
func Host(pod *corev1.Pod, sandboxIP, hostIP string) string {
	if pod.Spec.HostNetwork || sandboxIP == "" {
		return hostIP
	}
	return sandboxIP
}
