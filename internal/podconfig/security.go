package podconfig

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/podstatus"
	"github.com/ballast-dev/ballast/internal/validation"
)

// Resources, security contexts, namespaces and sysctls, as the kubelet turns
// them into CRI.

const (
	minShares     = 2
	quotaPeriod   = 100000
	minQuota      = 1000
	guaranteedOOM = -997
	bestEffortOOM = 1000
)

func milliCPUToShares(milli int64) int64 {
	if milli == 0 {
		return minShares
	}
	s := milli * 1024 / 1000
	if s < minShares {
		return minShares
	}
	return s
}

func milliCPUToQuota(milli, period int64) int64 {
	if milli == 0 {
		return 0
	}
	q := milli * period / 1000
	if q < minQuota {
		return minQuota
	}
	return q
}

// Resources is the container's CRI resources: CPU shares from the
// request (or the limit when only that is set), CFS quota from the limit,
// the memory limit, and the OOM score adjustment of its QoS class.
// nodeMemory is the node's memory in bytes (0: unknown).
func Resources(pod *corev1.Pod, ctr *corev1.Container, nodeMemory int64) *runtimeapi.LinuxContainerResources {
	req, lim := ctr.Resources.Requests, ctr.Resources.Limits
	cpuReq, cpuLim := req.Cpu().MilliValue(), lim.Cpu().MilliValue()
	r := &runtimeapi.LinuxContainerResources{}
	if cpuReq == 0 && cpuLim != 0 {
		r.CpuShares = milliCPUToShares(cpuLim)
	} else {
		r.CpuShares = milliCPUToShares(cpuReq)
	}
	if m := lim.Memory().Value(); m != 0 {
		r.MemoryLimitInBytes = m
	}
	r.CpuPeriod = quotaPeriod
	r.CpuQuota = milliCPUToQuota(cpuLim, quotaPeriod)
	r.OomScoreAdj = oomScoreAdj(pod, ctr, nodeMemory)
	return r
}

// oomScoreAdj follows the kubelet: node-critical static pods and Guaranteed
// pods -997, BestEffort 1000, Burstable by the share of the node's memory
// the container requests.
func oomScoreAdj(pod *corev1.Pod, ctr *corev1.Container, capacity int64) int64 {
	if pod.Spec.PriorityClassName == validation.SystemNodeCritical {
		return guaranteedOOM // a static pod is critical; node-critical ones are kept
	}
	switch podstatus.QOSClass(pod) {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOM
	case corev1.PodQOSBestEffort:
		return bestEffortOOM
	}
	if capacity <= 0 {
		return bestEffortOOM - 1
	}
	adj := 1000 - (1000*ctr.Resources.Requests.Memory().Value())/capacity
	if adj < 1000+guaranteedOOM {
		return 1000 + guaranteedOOM
	}
	if adj == bestEffortOOM {
		return adj - 1
	}
	return adj
}

func namespaceOptions(pod *corev1.Pod) *runtimeapi.NamespaceOption {
	o := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	if pod.Spec.HostNetwork {
		o.Network = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		o.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		o.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostIPC {
		o.Ipc = runtimeapi.NamespaceMode_NODE
	}
	return o
}

func hasPrivileged(pod *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
				return true
			}
		}
	}
	return false
}

// supplementalGroups: the fsGroup, then the pod's supplementalGroups.
func supplementalGroups(pod *corev1.Pod) []int64 {
	sc := pod.Spec.SecurityContext
	if sc == nil {
		return nil
	}
	var g []int64
	if sc.FSGroup != nil {
		g = append(g, *sc.FSGroup)
	}
	return append(g, sc.SupplementalGroups...)
}

func sandboxSecurityContext(pod *corev1.Pod) *runtimeapi.LinuxSandboxSecurityContext {
	sc := &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: namespaceOptions(pod),
		Privileged:       hasPrivileged(pod),
		// As the kubelet: the sandbox runs with the runtime's default profile.
		Seccomp:            &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		SupplementalGroups: supplementalGroups(pod),
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
	}
	return sc
}

// The kubelet's default masked and read-only paths (procMount: Default).
var (
	defaultMaskedPaths   = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// effective is a container's security context with the pod's as defaults.
type effective struct {
	runAsUser, runAsGroup *int64
	runAsNonRoot          *bool
	seccomp               *corev1.SeccompProfile
}

func effectiveSecurity(pod *corev1.Pod, ctr *corev1.Container) effective {
	var e effective
	if psc := pod.Spec.SecurityContext; psc != nil {
		e.runAsUser, e.runAsGroup, e.runAsNonRoot, e.seccomp = psc.RunAsUser, psc.RunAsGroup, psc.RunAsNonRoot, psc.SeccompProfile
	}
	if csc := ctr.SecurityContext; csc != nil {
		if csc.RunAsUser != nil {
			e.runAsUser = csc.RunAsUser
		}
		if csc.RunAsGroup != nil {
			e.runAsGroup = csc.RunAsGroup
		}
		if csc.RunAsNonRoot != nil {
			e.runAsNonRoot = csc.RunAsNonRoot
		}
		if csc.SeccompProfile != nil {
			e.seccomp = csc.SeccompProfile
		}
	}
	return e
}

func containerSecurityContext(pod *corev1.Pod, ctr *corev1.Container, dataDir string) *runtimeapi.LinuxContainerSecurityContext {
	e := effectiveSecurity(pod, ctr)
	sc := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions:   namespaceOptions(pod),
		SupplementalGroups: supplementalGroups(pod),
		Seccomp:            seccompProfile(e.seccomp, dataDir),
	}
	if e.runAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *e.runAsUser}
	}
	if e.runAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *e.runAsGroup}
	}
	csc := ctr.SecurityContext
	privileged := false
	if csc != nil {
		privileged = csc.Privileged != nil && *csc.Privileged
		sc.Privileged = privileged
		if c := csc.Capabilities; c != nil {
			sc.Capabilities = &runtimeapi.Capability{}
			for _, x := range c.Add {
				sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(x))
			}
			for _, x := range c.Drop {
				sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(x))
			}
		}
		sc.ReadonlyRootfs = csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem
		sc.NoNewPrivs = !privileged && csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation
	}
	if privileged {
		sc.MaskedPaths, sc.ReadonlyPaths = []string{}, []string{}
	} else {
		sc.MaskedPaths = append([]string(nil), defaultMaskedPaths...)
		sc.ReadonlyPaths = append([]string(nil), defaultReadonlyPaths...)
	}
	return sc
}

// seccompProfile is the CRI profile of a seccompProfile: Unconfined when
// unset (the kubelet's default), Localhost profiles under <data-dir>/seccomp.
func seccompProfile(sp *corev1.SeccompProfile, dataDir string) *runtimeapi.SecurityProfile {
	if sp == nil {
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	}
	switch sp.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case corev1.SeccompProfileTypeLocalhost:
		ref := ""
		if sp.LocalhostProfile != nil {
			ref = filepath.Join(SeccompRoot(dataDir), *sp.LocalhostProfile)
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: ref}
	}
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
}

// SeccompRoot is where Localhost seccomp profiles are read from, as the
// kubelet's <root-dir>/seccomp, for the agent whose data directory is dataDir.
func SeccompRoot(dataDir string) string { return filepath.Join(dataDir, "seccomp") }

func sysctls(pod *corev1.Pod) map[string]string {
	sc := pod.Spec.SecurityContext
	if sc == nil || len(sc.Sysctls) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, s := range sc.Sysctls {
		// The kubelet accepts "/" as separator too; the runtime wants dots.
		m[strings.ReplaceAll(s.Name, "/", ".")] = s.Value
	}
	return m
}

// PortMappings are the pod's host ports, for the CNI portmap plugin.
func PortMappings(pod *corev1.Pod) []*runtimeapi.PortMapping {
	if pod.Spec.HostNetwork {
		return nil
	}
	var out []*runtimeapi.PortMapping
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.HostPort == 0 {
					continue
				}
				proto := runtimeapi.Protocol_TCP
				switch p.Protocol {
				case corev1.ProtocolUDP:
					proto = runtimeapi.Protocol_UDP
				case corev1.ProtocolSCTP:
					proto = runtimeapi.Protocol_SCTP
				}
				out = append(out, &runtimeapi.PortMapping{Protocol: proto, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].HostPort < out[j].HostPort })
	return out
}

// NeedsImageUser says whether the container's runAsNonRoot can only be
// checked against its image's user (ContainerInput.ImageUser): it must not
// run as root and sets no runAsUser.
func NeedsImageUser(pod *corev1.Pod, ctr *corev1.Container) bool {
	e := effectiveSecurity(pod, ctr)
	return e.runAsNonRoot != nil && *e.runAsNonRoot && e.runAsUser == nil
}

// verifyRunAsNonRoot refuses to start a container that must not run as root
// when it would, as the kubelet: with runAsNonRoot and no runAsUser the
// image's user decides.
func verifyRunAsNonRoot(pod *corev1.Pod, ctr *corev1.Container, img *ImageUser) error {
	e := effectiveSecurity(pod, ctr)
	if e.runAsNonRoot == nil || !*e.runAsNonRoot {
		return nil
	}
	who := fmt.Sprintf("pod: %q, container: %s", pod.Name+"_"+pod.Namespace+"("+string(pod.UID)+")", ctr.Name)
	if e.runAsUser != nil {
		if *e.runAsUser == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (%s)", who)
		}
		return nil
	}
	switch {
	case img == nil:
		return fmt.Errorf("image %q not found to verify runAsNonRoot", ctr.Image)
	case img.UID != nil && *img.UID == 0, img.UID == nil && img.Username == "":
		return fmt.Errorf("container has runAsNonRoot and image will run as root (%s)", who)
	case img.UID == nil:
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (%s)", img.Username, who)
	}
	return nil
}
