package validation

import (
	"fmt"
	"maps"
	"net"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

// Validation of the pod-spec fields that shape the sandbox and containers
// (resources, security contexts, volumes, env from the downward API, host
// namespaces, DNS, host ports), as Kubernetes validates them.

// System priority classes, as Kubernetes defines them.
const (
	SystemNodeCritical    = "system-node-critical"
	SystemClusterCritical = "system-cluster-critical"
)

// SystemPriorities are the priorities of Kubernetes' built-in priority classes.
var SystemPriorities = map[string]int32{
	SystemNodeCritical:    2000001000,
	SystemClusterCritical: 2000000000,
}

// EnvFieldPaths are the fieldRef paths an env var may use (besides
// metadata.labels['k'] and metadata.annotations['k']).
var EnvFieldPaths = []string{"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
	"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"}

// VolumeFieldPaths are the fieldRef paths a downwardAPI volume file may use.
var VolumeFieldPaths = []string{"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations"}

// ResourceFieldRefs are the resources a resourceFieldRef may name.
var ResourceFieldRefs = []string{"limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage"}

func quoteList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	sort.Strings(q)
	return strings.Join(q, ", ")
}

func volumeTypes(v *corev1.Volume) int {
	return howMany(v.HostPath != nil, v.EmptyDir != nil, v.DownwardAPI != nil, v.ConfigMap != nil, v.Secret != nil, v.Projected != nil)
}

// SubscriptKey splits metadata.labels['k'] into ("metadata.labels", "k", true).
func SubscriptKey(fieldPath string) (base, key string, ok bool) {
	i := strings.Index(fieldPath, "['")
	if i < 0 || !strings.HasSuffix(fieldPath, "']") {
		return fieldPath, "", false
	}
	return fieldPath[:i], fieldPath[i+2 : len(fieldPath)-2], true
}

const maxID = 2147483647

func validatePodSpec(pod *corev1.Pod, f func(string) string, el *ErrorList) {
	spec := &pod.Spec
	idRange := func(p string, v *int64) {
		if v != nil && (*v < 0 || *v > maxID) {
			el.Addf(f(p), "Invalid value: %d: must be between 0 and %d, inclusive", *v, maxID)
		}
	}
	containers := map[string]*corev1.Container{}
	for i := range spec.Containers {
		containers[spec.Containers[i].Name] = &spec.Containers[i]
	}

	// Host namespaces, hostname.
	if spec.HostPID && spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace {
		el.Add(f("spec.shareProcessNamespace"), "Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled")
	}
	if spec.Hostname != "" {
		for _, m := range utilvalidation.IsDNS1123Label(spec.Hostname) {
			el.Addf(f("spec.hostname"), "Invalid value: %q: %s", spec.Hostname, m)
		}
	}
	if spec.Subdomain != "" {
		for _, m := range utilvalidation.IsDNS1123Label(spec.Subdomain) {
			el.Addf(f("spec.subdomain"), "Invalid value: %q: %s", spec.Subdomain, m)
		}
	}
	for i, ha := range spec.HostAliases {
		p := fmt.Sprintf("spec.hostAliases[%d]", i)
		if net.ParseIP(ha.IP) == nil {
			el.Addf(f(p+".ip"), "Invalid value: %q: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)", ha.IP)
		}
		for j, h := range ha.Hostnames {
			for _, m := range utilvalidation.IsDNS1123Subdomain(h) {
				el.Addf(f(fmt.Sprintf("%s.hostnames[%d]", p, j)), "Invalid value: %q: %s", h, m)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec.NodeSelector)) {
		p := "spec.nodeSelector[" + k + "]"
		for _, m := range content.IsLabelKey(k) {
			el.Addf(f(p), "Invalid value: %q: %s (label name)", k, m)
		}
		for _, m := range content.IsLabelValue(spec.NodeSelector[k]) {
			el.Addf(f(p), "Invalid value: %q: %s", spec.NodeSelector[k], m)
		}
	}
	if want, ok := SystemPriorities[spec.PriorityClassName]; ok && spec.Priority != nil && *spec.Priority != want {
		el.Addf(f("spec.priority"), "Invalid value: %d: the priority of class %s is %d; set it to %d or leave spec.priority out",
			*spec.Priority, spec.PriorityClassName, want, want)
	}

	// Pod security context.
	if sc := spec.SecurityContext; sc != nil {
		idRange("spec.securityContext.runAsUser", sc.RunAsUser)
		idRange("spec.securityContext.runAsGroup", sc.RunAsGroup)
		idRange("spec.securityContext.fsGroup", sc.FSGroup)
		for i := range sc.SupplementalGroups {
			idRange(fmt.Sprintf("spec.securityContext.supplementalGroups[%d]", i), &sc.SupplementalGroups[i])
		}
		if p := sc.FSGroupChangePolicy; p != nil && *p != corev1.FSGroupChangeAlways && *p != corev1.FSGroupChangeOnRootMismatch {
			el.Addf(f("spec.securityContext.fsGroupChangePolicy"), `Unsupported value: %q: supported values: "Always", "OnRootMismatch"`, *p)
		}
		validateSeccomp(sc.SeccompProfile, f("spec.securityContext.seccompProfile"), el)
		validateSysctls(spec, f("spec.securityContext.sysctls"), el)
	}

	// Volumes.
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		p := fmt.Sprintf("spec.volumes[%d]", i)
		if hp := v.HostPath; hp != nil && hp.Type != nil {
			switch *hp.Type {
			case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
				corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev:
			default:
				el.Addf(f(p+".hostPath.type"), `Unsupported value: %q: supported values: "", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"`, *hp.Type)
			}
		}
		if ed := v.EmptyDir; ed != nil {
			switch ed.Medium {
			case corev1.StorageMediumDefault, corev1.StorageMediumMemory:
			default:
				el.Addf(f(p+".emptyDir.medium"), `Unsupported value: %q: supported values: "", "Memory"`, ed.Medium)
			}
			if ed.SizeLimit != nil {
				switch {
				case ed.SizeLimit.Sign() <= 0:
					el.Addf(f(p+".emptyDir.sizeLimit"), "Invalid value: %q: must be greater than 0", ed.SizeLimit.String())
				case ed.Medium != corev1.StorageMediumMemory:
					el.Add(f(p+".emptyDir.sizeLimit"), "Forbidden: Ballast enforces sizeLimit only with medium: Memory (a tmpfs of that size); on disk the kubelet enforces it by evicting the pod, which Ballast does not do; remove it, or set medium: Memory")
				}
			}
		}
		if da := v.DownwardAPI; da != nil {
			validateMode(da.DefaultMode, f(p+".downwardAPI.defaultMode"), el)
			paths := map[string]bool{}
			for j := range da.Items {
				validateDownwardAPIFile(&da.Items[j], fmt.Sprintf("%s.downwardAPI.items[%d]", p, j), paths, containers, f, el)
			}
		}
		if cm := v.ConfigMap; cm != nil {
			validateConfigName(cm.Name, f(p+".configMap.name"), el)
			validateMode(cm.DefaultMode, f(p+".configMap.defaultMode"), el)
			validateKeyToPaths(cm.Items, p+".configMap", map[string]bool{}, f, el)
		}
		if sv := v.Secret; sv != nil {
			validateConfigName(sv.SecretName, f(p+".secret.secretName"), el)
			validateMode(sv.DefaultMode, f(p+".secret.defaultMode"), el)
			validateKeyToPaths(sv.Items, p+".secret", map[string]bool{}, f, el)
		}
		if pv := v.Projected; pv != nil {
			validateMode(pv.DefaultMode, f(p+".projected.defaultMode"), el)
			paths := map[string]bool{}
			for j, src := range pv.Sources {
				sp := fmt.Sprintf("%s.projected.sources[%d]", p, j)
				n := 0
				if src.ConfigMap != nil {
					n++
					validateConfigName(src.ConfigMap.Name, f(sp+".configMap.name"), el)
					validateKeyToPaths(src.ConfigMap.Items, sp+".configMap", paths, f, el)
				}
				if src.Secret != nil {
					n++
					validateConfigName(src.Secret.Name, f(sp+".secret.name"), el)
					validateKeyToPaths(src.Secret.Items, sp+".secret", paths, f, el)
				}
				if src.DownwardAPI != nil {
					n++
					for k := range src.DownwardAPI.Items {
						validateDownwardAPIFile(&src.DownwardAPI.Items[k], fmt.Sprintf("%s.downwardAPI.items[%d]", sp, k), paths, containers, f, el)
					}
				}
				switch {
				case n == 0:
					el.Add(f(sp), "Required value: must specify one of: `configMap`, `secret` or `downwardAPI`")
				case n > 1:
					el.Add(f(sp), "Forbidden: may not specify more than 1 source type in one item of sources; make one item per source")
				}
			}
		}
	}

	// Containers.
	hostPorts := map[string]string{}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		p := fmt.Sprintf("spec.containers[%d]", i)
		validateContainerSpec(pod, c, p, f, containers, hostPorts, el)
	}
}

// validateMode checks a volume file mode (0 to 0777).
func validateMode(m *int32, p string, el *ErrorList) {
	if m != nil && (*m < 0 || *m > 0o777) {
		el.Addf(p, "Invalid value: %d: must be a number between 0 and 0777 (octal), both inclusive", *m)
	}
}

// validateVolumeFilePath checks the path of a file in a volume (relative,
// no "..", unique among paths).
func validateVolumeFilePath(fp, p string, paths map[string]bool, el *ErrorList) {
	switch {
	case fp == "":
		el.Add(p, "Required value: name the file")
	case path.IsAbs(fp):
		el.Addf(p, "Invalid value: %q: must be a relative path", fp)
	case hasDotDot(fp):
		el.Addf(p, "Invalid value: %q: must not contain '..'", fp)
	case strings.HasPrefix(fp, ".."):
		el.Addf(p, "Invalid value: %q: must not start with '..'", fp)
	case paths[path.Clean(fp)]:
		el.Addf(p, "Duplicate value: %q: another item writes this file (conflicting duplicate paths)", fp)
	}
	paths[path.Clean(fp)] = true
}

func validateDownwardAPIFile(it *corev1.DownwardAPIVolumeFile, ip string, paths map[string]bool, containers map[string]*corev1.Container, f func(string) string, el *ErrorList) {
	validateVolumeFilePath(it.Path, f(ip+".path"), paths, el)
	validateMode(it.Mode, f(ip+".mode"), el)
	switch {
	case it.FieldRef != nil && it.ResourceFieldRef != nil:
		el.Add(f(ip), "Invalid value: fieldRef and resourceFieldRef can not be specified simultaneously")
	case it.FieldRef != nil:
		validateFieldRef(it.FieldRef, VolumeFieldPaths, true, f(ip+".fieldRef"), el)
	case it.ResourceFieldRef != nil:
		validateResourceFieldRef(it.ResourceFieldRef, containers, true, f(ip+".resourceFieldRef"), el)
	default:
		el.Add(f(ip), "Required value: must specify one of: `fieldRef` or `resourceFieldRef`")
	}
}

// validateKeyToPaths checks the items of a configMap or secret volume (or
// projection) under p.
func validateKeyToPaths(items []corev1.KeyToPath, p string, paths map[string]bool, f func(string) string, el *ErrorList) {
	for i, it := range items {
		ip := fmt.Sprintf("%s.items[%d]", p, i)
		if it.Key == "" {
			el.Add(f(ip+".key"), "Required value: name the key whose value the file holds")
		} else {
			invalidKey(el, f(ip+".key"), it.Key)
		}
		validateVolumeFilePath(it.Path, f(ip+".path"), paths, el)
		validateMode(it.Mode, f(ip+".mode"), el)
	}
}

// validateConfigName checks the name of a referenced ConfigMap or Secret.
func validateConfigName(name, p string, el *ErrorList) {
	if name == "" {
		el.Add(p, "Required value: name the ConfigMap or Secret (of the manifest directory, in the pod's namespace)")
		return
	}
	for _, m := range utilvalidation.IsDNS1123Subdomain(name) {
		el.Addf(p, "Invalid value: %q: %s", name, m)
	}
}

func validateContainerSpec(pod *corev1.Pod, c *corev1.Container, p string, f func(string) string, containers map[string]*corev1.Container, hostPorts map[string]string, el *ErrorList) {
	spec := &pod.Spec
	switch c.TerminationMessagePolicy {
	case "", corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError:
	default:
		el.Addf(f(p+".terminationMessagePolicy"), `Unsupported value: %q: supported values: "File", "FallbackToLogsOnError"`, c.TerminationMessagePolicy)
	}

	// Resources.
	for _, kind := range []struct {
		name string
		rl   corev1.ResourceList
	}{{"limits", c.Resources.Limits}, {"requests", c.Resources.Requests}} {
		for _, name := range sortedResourceNames(kind.rl) {
			rp := f(fmt.Sprintf("%s.resources.%s[%s]", p, kind.name, name))
			q := kind.rl[name]
			switch name {
			case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
			default:
				el.Addf(rp, `Unsupported value: %q: Ballast runs the resources "cpu", "memory" and "ephemeral-storage"; remove it`, name)
				continue
			}
			if q.Sign() < 0 {
				el.Addf(rp, "Invalid value: %q: must be greater than or equal to 0", q.String())
			}
			if name == corev1.ResourceEphemeralStorage && kind.name == "limits" {
				el.Add(rp, "Forbidden: the kubelet enforces an ephemeral-storage limit by evicting the pod, which Ballast does not do; remove it (requests are accepted)")
			}
		}
	}
	for _, name := range sortedResourceNames(c.Resources.Requests) {
		req := c.Resources.Requests[name]
		if lim, ok := c.Resources.Limits[name]; ok && req.Cmp(lim) > 0 {
			el.Addf(f(fmt.Sprintf("%s.resources.requests[%s]", p, name)), "Invalid value: %q: must be less than or equal to %s limit of %s", req.String(), name, lim.String())
		}
	}

	// Security context.
	privileged := false
	if sc := c.SecurityContext; sc != nil {
		for _, id := range []struct {
			n string
			v *int64
		}{{"runAsUser", sc.RunAsUser}, {"runAsGroup", sc.RunAsGroup}} {
			if id.v != nil && (*id.v < 0 || *id.v > maxID) {
				el.Addf(f(p+".securityContext."+id.n), "Invalid value: %d: must be between 0 and %d, inclusive", *id.v, maxID)
			}
		}
		privileged = sc.Privileged != nil && *sc.Privileged
		if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
			if privileged {
				el.Add(f(p+".securityContext"), "Invalid value: cannot set `allowPrivilegeEscalation` to false and `privileged` to true")
			}
			if sc.Capabilities != nil {
				for _, cp := range sc.Capabilities.Add {
					if strings.TrimPrefix(string(cp), "CAP_") == "SYS_ADMIN" {
						el.Add(f(p+".securityContext"), "Invalid value: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN")
					}
				}
			}
		}
		if pm := sc.ProcMount; pm != nil {
			switch *pm {
			case corev1.DefaultProcMount:
			case corev1.UnmaskedProcMount:
				el.Add(f(p+".securityContext.procMount"), "Forbidden: `hostUsers` must be false to use `Unmasked`, and Ballast does not run user namespaces (hostUsers) yet; remove it or set Default")
			default:
				el.Addf(f(p+".securityContext.procMount"), `Unsupported value: %q: supported values: "Default", "Unmasked"`, *pm)
			}
		}
		validateSeccomp(sc.SeccompProfile, f(p+".securityContext.seccompProfile"), el)
	}

	// Ports.
	for i, port := range c.Ports {
		pp := fmt.Sprintf("%s.ports[%d]", p, i)
		if port.HostPort != 0 {
			for _, m := range utilvalidation.IsValidPortNum(int(port.HostPort)) {
				el.Addf(f(pp+".hostPort"), "Invalid value: %d: %s", port.HostPort, m)
			}
			if spec.HostNetwork && port.HostPort != port.ContainerPort {
				el.Addf(f(pp+".hostPort"), "Invalid value: %d: must match `containerPort` when `hostNetwork` is true", port.HostPort)
			}
			proto := port.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			key := fmt.Sprintf("%s/%s/%d", port.HostIP, proto, port.HostPort)
			if prev, dup := hostPorts[key]; dup {
				el.Addf(f(pp+".hostPort"), "Duplicate value: \"%d/%s\": %s already uses this host port", port.HostPort, proto, prev)
			}
			hostPorts[key] = f(pp)
		}
		if port.HostIP != "" && net.ParseIP(port.HostIP) == nil {
			el.Addf(f(pp+".hostIP"), "Invalid value: %q: must be a valid IP address", port.HostIP)
		}
	}

	validateEnv(c, p, f, containers, el)

	// Volume mounts.
	for i, m := range c.VolumeMounts {
		mp := fmt.Sprintf("%s.volumeMounts[%d]", p, i)
		if m.SubPath != "" && m.SubPathExpr != "" {
			el.Add(f(mp+".subPathExpr"), "Invalid value: subPathExpr and subPath are mutually exclusive")
		}
		for _, sp := range []struct{ n, v string }{{"subPath", m.SubPath}, {"subPathExpr", m.SubPathExpr}} {
			switch {
			case sp.v == "":
			case path.IsAbs(sp.v):
				el.Addf(f(mp+"."+sp.n), "Invalid value: %q: must be a relative path", sp.v)
			case hasDotDot(sp.v):
				el.Addf(f(mp+"."+sp.n), "Invalid value: %q: must not contain '..'", sp.v)
			}
		}
		if mprop := m.MountPropagation; mprop != nil {
			switch *mprop {
			case corev1.MountPropagationNone, corev1.MountPropagationHostToContainer:
			case corev1.MountPropagationBidirectional:
				if !privileged {
					el.Add(f(mp+".mountPropagation"), "Forbidden: Bidirectional mount propagation is available only to privileged containers")
				}
			default:
				el.Addf(f(mp+".mountPropagation"), `Unsupported value: %q: supported values: "Bidirectional", "HostToContainer", "None"`, *mprop)
			}
		}
	}
}

// validateEnv checks a container's env valueFrom and envFrom.
func validateEnv(c *corev1.Container, p string, f func(string) string, containers map[string]*corev1.Container, el *ErrorList) {
	for i, e := range c.Env {
		ep := fmt.Sprintf("%s.env[%d].valueFrom", p, i)
		vf := e.ValueFrom
		if vf == nil {
			continue
		}
		if e.Value != "" {
			el.Add(f(ep), "Invalid value: \"\": may not be specified when `value` is not empty")
		}
		n := 0
		if vf.FieldRef != nil {
			n++
			validateFieldRef(vf.FieldRef, EnvFieldPaths, false, f(ep+".fieldRef"), el)
		}
		if vf.ResourceFieldRef != nil {
			n++
			validateResourceFieldRef(vf.ResourceFieldRef, containers, false, f(ep+".resourceFieldRef"), el)
		}
		if r := vf.ConfigMapKeyRef; r != nil {
			n++
			validateConfigName(r.Name, f(ep+".configMapKeyRef.name"), el)
			validateRefKey(r.Key, f(ep+".configMapKeyRef.key"), el)
		}
		if r := vf.SecretKeyRef; r != nil {
			n++
			validateConfigName(r.Name, f(ep+".secretKeyRef.name"), el)
			validateRefKey(r.Key, f(ep+".secretKeyRef.key"), el)
		}
		switch {
		case n == 0:
			el.Add(f(ep), "Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`")
		case n > 1:
			el.Add(f(ep), "Invalid value: \"\": may not have more than one field specified at a time")
		}
	}
	for i, ef := range c.EnvFrom {
		ep := fmt.Sprintf("%s.envFrom[%d]", p, i)
		n := 0
		if ef.ConfigMapRef != nil {
			n++
			validateConfigName(ef.ConfigMapRef.Name, f(ep+".configMapRef.name"), el)
		}
		if ef.SecretRef != nil {
			n++
			validateConfigName(ef.SecretRef.Name, f(ep+".secretRef.name"), el)
		}
		switch {
		case n == 0:
			el.Add(f(ep), "Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`")
		case n > 1:
			el.Add(f(ep), "Invalid value: \"\": may not have more than one field specified at a time")
		}
		if ef.Prefix != "" {
			for _, m := range utilvalidation.IsEnvVarName(ef.Prefix) {
				el.Addf(f(ep+".prefix"), "Invalid value: %q: %s", ef.Prefix, m)
			}
		}
	}

}

func validateRefKey(key, p string, el *ErrorList) {
	if key == "" {
		el.Add(p, "Required value: name the key")
		return
	}
	invalidKey(el, p, key)
}

func sortedResourceNames(rl corev1.ResourceList) []corev1.ResourceName {
	var out []corev1.ResourceName
	for k := range rl {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func validateFieldRef(fr *corev1.ObjectFieldSelector, allowed []string, volume bool, p string, el *ErrorList) {
	if fr.APIVersion != "" && fr.APIVersion != "v1" {
		el.Addf(p+".apiVersion", `Unsupported value: %q: supported values: "v1"`, fr.APIVersion)
	}
	if fr.FieldPath == "" {
		el.Add(p+".fieldPath", "Required value: name the field, such as metadata.name")
		return
	}
	base, key, sub := SubscriptKey(fr.FieldPath)
	if sub && (base == "metadata.labels" || base == "metadata.annotations") {
		var msgs []string
		if base == "metadata.labels" {
			msgs = content.IsLabelKey(key)
		} else {
			msgs = content.IsLabelKey(strings.ToLower(key))
		}
		for _, m := range msgs {
			el.Addf(p+".fieldPath", "Invalid value: %q: invalid key %q: %s", fr.FieldPath, key, m)
		}
		return
	}
	for _, a := range allowed {
		if fr.FieldPath == a {
			return
		}
	}
	all := append([]string{"metadata.annotations['<KEY>']", "metadata.labels['<KEY>']"}, allowed...)
	el.Addf(p+".fieldPath", "Unsupported value: %q: supported values: %s", fr.FieldPath, quoteList(all))
	_ = volume
}

var divisorsCPU = []string{"1m", "1"}
var divisorsMem = []string{"1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"}

func validateResourceFieldRef(rf *corev1.ResourceFieldSelector, containers map[string]*corev1.Container, volume bool, p string, el *ErrorList) {
	switch {
	case rf.ContainerName == "" && volume:
		el.Add(p+".containerName", "Required value: name the container whose resources to expose")
	case rf.ContainerName != "" && containers[rf.ContainerName] == nil:
		el.Addf(p+".containerName", "Not found: %q: no container of the pod has this name", rf.ContainerName)
	}
	ok := false
	for _, r := range ResourceFieldRefs {
		if rf.Resource == r {
			ok = true
		}
	}
	if rf.Resource == "" {
		el.Add(p+".resource", "Required value: name the resource, such as limits.memory")
		return
	}
	if !ok {
		el.Addf(p+".resource", "Unsupported value: %q: supported values: %s", rf.Resource, quoteList(ResourceFieldRefs))
		return
	}
	if rf.Divisor.IsZero() {
		return
	}
	divs, what := divisorsMem, "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"
	res := strings.TrimPrefix(strings.TrimPrefix(rf.Resource, "limits."), "requests.")
	if res == "cpu" {
		divs, what = divisorsCPU, "1m and 1"
	}
	for _, d := range divs {
		if rf.Divisor.Cmp(resource.MustParse(d)) == 0 {
			return
		}
	}
	el.Addf(p+".divisor", "Invalid value: %q: only divisor's values %s are supported with the %s resource", rf.Divisor.String(), what, res)
}

func validateSeccomp(sp *corev1.SeccompProfile, p string, el *ErrorList) {
	if sp == nil {
		return
	}
	switch sp.Type {
	case corev1.SeccompProfileTypeLocalhost:
		switch {
		case sp.LocalhostProfile == nil || *sp.LocalhostProfile == "":
			el.Add(p+".localhostProfile", "Required value: must be set when seccomp type is Localhost (a file under <data-dir>/seccomp)")
		case path.IsAbs(*sp.LocalhostProfile):
			el.Addf(p+".localhostProfile", "Invalid value: %q: must be a relative path (under <data-dir>/seccomp)", *sp.LocalhostProfile)
		case hasDotDot(*sp.LocalhostProfile):
			el.Addf(p+".localhostProfile", "Invalid value: %q: must not contain '..'", *sp.LocalhostProfile)
		}
		return
	case corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeUnconfined:
	case "":
		el.Add(p+".type", `Required value: set "RuntimeDefault", "Unconfined" or "Localhost"`)
	default:
		el.Addf(p+".type", `Unsupported value: %q: supported values: "Localhost", "RuntimeDefault", "Unconfined"`, sp.Type)
	}
	if sp.LocalhostProfile != nil {
		el.Addf(p+".localhostProfile", "Invalid value: %q: can only be set when seccomp type is Localhost", *sp.LocalhostProfile)
	}
}

var sysctlRE = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$`)

// SysctlNamespace returns "ipc" or "net" for a namespaced sysctl, "" for one
// that would change the whole node.
func SysctlNamespace(name string) string {
	name = strings.ReplaceAll(name, "/", ".")
	switch {
	case strings.HasPrefix(name, "kernel.shm"), strings.HasPrefix(name, "kernel.msg"), name == "kernel.sem", strings.HasPrefix(name, "fs.mqueue."):
		return "ipc"
	case strings.HasPrefix(name, "net."):
		return "net"
	}
	return ""
}

func validateSysctls(spec *corev1.PodSpec, p string, el *ErrorList) {
	seen := map[string]bool{}
	for i, s := range spec.SecurityContext.Sysctls {
		sp := fmt.Sprintf("%s[%d].name", p, i)
		norm := strings.ReplaceAll(s.Name, "/", ".")
		switch {
		case s.Name == "":
			el.Add(sp, "Required value: name the sysctl")
			continue
		case len(s.Name) > 253 || !sysctlRE.MatchString(s.Name):
			el.Addf(sp, "Invalid value: %q: must have at most 253 characters and match regex %s", s.Name, sysctlRE.String())
			continue
		case seen[norm]:
			el.Addf(sp, "Duplicate value: %q", s.Name)
			continue
		}
		seen[norm] = true
		switch SysctlNamespace(s.Name) {
		case "":
			el.Addf(sp, "Forbidden: %q is not a namespaced sysctl: setting it for a pod would change the whole node; set it on the node (/etc/sysctl.d) instead", s.Name)
		case "net":
			if spec.HostNetwork {
				el.Addf(sp, "Forbidden: %q not allowed with host net enabled", s.Name)
			}
		case "ipc":
			if spec.HostIPC {
				el.Addf(sp, "Forbidden: %q not allowed with host ipc enabled", s.Name)
			}
		}
	}
}

// setPodSpecDefaults applies Kubernetes' defaults of the fields above.
func setPodSpecDefaults(pod *corev1.Pod) {
	s := &pod.Spec
	if s.Priority == nil {
		if p, ok := SystemPriorities[s.PriorityClassName]; ok {
			s.Priority = &p
		}
	}
	defaultMode := func(m **int32, def int32) {
		if *m == nil {
			*m = &def
		}
	}
	fieldRefVersions := func(items []corev1.DownwardAPIVolumeFile) {
		for j := range items {
			if fr := items[j].FieldRef; fr != nil && fr.APIVersion == "" {
				fr.APIVersion = "v1"
			}
		}
	}
	for i := range s.Volumes {
		v := &s.Volumes[i]
		if da := v.DownwardAPI; da != nil {
			defaultMode(&da.DefaultMode, corev1.DownwardAPIVolumeSourceDefaultMode)
			fieldRefVersions(da.Items)
		}
		if cm := v.ConfigMap; cm != nil {
			defaultMode(&cm.DefaultMode, corev1.ConfigMapVolumeSourceDefaultMode)
		}
		if sv := v.Secret; sv != nil {
			defaultMode(&sv.DefaultMode, corev1.SecretVolumeSourceDefaultMode)
		}
		if pv := v.Projected; pv != nil {
			defaultMode(&pv.DefaultMode, corev1.ProjectedVolumeSourceDefaultMode)
			for j := range pv.Sources {
				if da := pv.Sources[j].DownwardAPI; da != nil {
					fieldRefVersions(da.Items)
				}
			}
		}
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		// Requests default to limits.
		for name, q := range c.Resources.Limits {
			if _, ok := c.Resources.Requests[name]; !ok {
				if c.Resources.Requests == nil {
					c.Resources.Requests = corev1.ResourceList{}
				}
				c.Resources.Requests[name] = q.DeepCopy()
			}
		}
		for j := range c.Env {
			if vf := c.Env[j].ValueFrom; vf != nil && vf.FieldRef != nil && vf.FieldRef.APIVersion == "" {
				vf.FieldRef.APIVersion = "v1"
			}
		}
	}
}
