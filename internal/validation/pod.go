package validation

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

const totalAnnotationSizeLimit = 256 * 1024

// MaxContainersPerPod bounds a pod's containers and init containers
// together. A node starts and stops a pod's containers one job at a time:
// a pod of a thousand containers takes minutes either way and holds up the
// runtime for everyone else. Static pods are system components; a hundred is
// far beyond what one needs.
const MaxContainersPerPod = 100

// ValidatePod validates a pod as its node runs it, with the rules
// internal/manifest applies to a manifest's pod: its name is the full pod
// name ("<name>-<node>"), and it may be defaulted already. The API server
// validates mirror pods with it, so that a pod is accepted or refused
// alike from a file and through the API.
func ValidatePod(pod *corev1.Pod) ErrorList {
	var el ErrorList
	f := fieldsIn("")
	if pod.Name == "" {
		el.Add("metadata.name", "Required value: name the pod")
	} else {
		invalidFunc(f, &el)("metadata.name", pod.Name, utilvalidation.IsDNS1123Subdomain(pod.Name), "")
	}
	validatePodContent(pod, f, &el)
	return el
}

// ValidatePodContent validates everything in a pod but its name and its
// node, which a manifest file and a running pod give differently. path is
// the pod's field path in its document, put before every field's ("" for
// none).
func ValidatePodContent(pod *corev1.Pod, path string) ErrorList {
	var el ErrorList
	validatePodContent(pod, fieldsIn(path), &el)
	return el
}

// validateMetaMaps validates an object's labels and annotations.
func validateMetaMaps(labels, annotations map[string]string, f func(string) string, el *ErrorList) {
	invalid := invalidFunc(f, el)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		p := "metadata.labels[" + k + "]"
		invalid(p, k, content.IsLabelKey(k), " (label name)")
		invalid(p, labels[k], content.IsLabelValue(labels[k]), "")
	}
	size := 0
	for _, k := range slices.Sorted(maps.Keys(annotations)) {
		invalid("metadata.annotations["+k+"]", k, content.IsLabelKey(strings.ToLower(k)), " (annotation name)")
		size += len(k) + len(annotations[k])
	}
	if size > totalAnnotationSizeLimit {
		el.Addf(f("metadata.annotations"), "Too long: annotations hold %d bytes, at most %d are allowed", size, totalAnnotationSizeLimit)
	}
}

// validatePodContent validates everything in a pod but its name (which
// differs between a manifest and a running pod) and its node.
func validatePodContent(pod *corev1.Pod, f func(string) string, el *ErrorList) {
	invalid := invalidFunc(f, el)
	if pod.Namespace != "" {
		invalid("metadata.namespace", pod.Namespace, utilvalidation.IsDNS1123Label(pod.Namespace), "")
	}
	validateMetaMaps(pod.Labels, pod.Annotations, f, el)
	validateBallastAnnotations(pod.Annotations, pod.Name, f, el)

	spec := &pod.Spec
	// volumes
	volumes := map[string]bool{}
	for i, v := range spec.Volumes {
		p := fmt.Sprintf("spec.volumes[%d]", i)
		switch {
		case v.Name == "":
			el.Add(f(p+".name"), "Required value: name the volume")
		case volumes[v.Name]:
			el.Addf(f(p+".name"), "Duplicate value: %q: another volume has this name; volume names must be unique", v.Name)
		default:
			invalid(p+".name", v.Name, utilvalidation.IsDNS1123Label(v.Name), "")
		}
		volumes[v.Name] = true
		if volumeTypes(&v) > 1 {
			el.Add(f(p), "Forbidden: may not specify more than 1 volume type; keep one of hostPath, emptyDir, downwardAPI, configMap, secret or projected")
		}
		if v.HostPath != nil {
			hp := v.HostPath.Path
			switch {
			case hp == "":
				el.Add(f(p+".hostPath.path"), "Required value: set the path on the node")
			case !path.IsAbs(hp):
				el.Addf(f(p+".hostPath.path"), "Invalid value: %q: must be an absolute path", hp)
			case hasDotDot(hp):
				el.Addf(f(p+".hostPath.path"), "Invalid value: %q: must not contain '..'", hp)
			}
		}
	}

	// containers
	if len(spec.Containers) == 0 {
		el.Add(f("spec.containers"), "Required value: a pod needs at least one container; add one under spec.containers")
	}
	if n := len(spec.Containers) + len(spec.InitContainers); n > MaxContainersPerPod {
		el.Addf(f("spec.containers"), "Too many: %d containers and init containers, at most %d are allowed per pod; split the pod into several manifests", n, MaxContainersPerPod)
	}
	names := map[string]bool{}
	for i := range spec.Containers {
		validateContainer(&spec.Containers[i], f(fmt.Sprintf("spec.containers[%d]", i)), names, volumes, el)
	}

	// pod-level fields
	switch spec.RestartPolicy {
	case "", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		el.Addf(f("spec.restartPolicy"), `Unsupported value: %q: supported values: "Always", "OnFailure", "Never"`, spec.RestartPolicy)
	}
	if g := spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		el.Addf(f("spec.terminationGracePeriodSeconds"), "Invalid value: %d: must be greater than or equal to 0", *g)
	}
	switch spec.DNSPolicy {
	case "", corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSClusterFirstWithHostNet:
	case corev1.DNSNone:
		if spec.DNSConfig == nil || len(spec.DNSConfig.Nameservers) == 0 {
			el.Add(f("spec.dnsConfig"), "Required value: with dnsPolicy: None, set at least one nameserver in spec.dnsConfig.nameservers")
		}
	default:
		el.Addf(f("spec.dnsPolicy"), `Unsupported value: %q: supported values: "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"`, spec.DNSPolicy)
	}
	if dc := spec.DNSConfig; dc != nil {
		if len(dc.Nameservers) > 3 {
			el.Add(f("spec.dnsConfig.nameservers"), "Too many: at most 3 nameservers")
		}
		if len(dc.Searches) > 32 {
			el.Add(f("spec.dnsConfig.searches"), "Too many: at most 32 search domains")
		}
		for i, o := range dc.Options {
			if o.Name == "" {
				el.Add(f(fmt.Sprintf("spec.dnsConfig.options[%d].name", i)), "Required value: name the option")
			}
		}
	}
	if spec.PriorityClassName != "" {
		invalid("spec.priorityClassName", spec.PriorityClassName, utilvalidation.IsDNS1123Subdomain(spec.PriorityClassName), "")
	}
	if spec.SchedulerName != "" {
		invalid("spec.schedulerName", spec.SchedulerName, utilvalidation.IsDNS1123Subdomain(spec.SchedulerName), "")
	}
	for i, t := range spec.Tolerations {
		validateToleration(t, f(fmt.Sprintf("spec.tolerations[%d]", i)), el)
	}
	validatePodSpec(pod, f, el)
	validateLifecycle(pod, f, el)
}

func validateContainer(c *corev1.Container, p string, names, volumes map[string]bool, el *ErrorList) {
	invalid := func(field string, v any, msgs []string) { el.Invalid(field, v, msgs, "") }
	switch {
	case c.Name == "":
		el.Add(p+".name", "Required value: name the container")
	case names[c.Name]:
		el.Addf(p+".name", "Duplicate value: %q: another container has this name; container names must be unique", c.Name)
	default:
		invalid(p+".name", c.Name, utilvalidation.IsDNS1123Label(c.Name))
	}
	names[c.Name] = true
	if c.Image == "" {
		el.Add(p+".image", "Required value: set the container image")
	} else if strings.TrimSpace(c.Image) != c.Image {
		el.Addf(p+".image", "Invalid value: %q: must not have leading or trailing whitespace", c.Image)
	}
	switch c.ImagePullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		el.Addf(p+".imagePullPolicy", `Unsupported value: %q: supported values: "Always", "IfNotPresent", "Never"`, c.ImagePullPolicy)
	}
	if len(c.TerminationMessagePath) > 4096 {
		el.Add(p+".terminationMessagePath", "Too long: at most 4096 characters")
	}

	portNames := map[string]bool{}
	for i, port := range c.Ports {
		pp := fmt.Sprintf("%s.ports[%d]", p, i)
		if port.Name != "" {
			invalid(pp+".name", port.Name, utilvalidation.IsValidPortName(port.Name))
			if portNames[port.Name] {
				el.Addf(pp+".name", "Duplicate value: %q: another port of this container has this name", port.Name)
			}
			portNames[port.Name] = true
		}
		if port.ContainerPort == 0 {
			el.Add(pp+".containerPort", "Required value: set the port number (1-65535)")
		} else {
			invalid(pp+".containerPort", port.ContainerPort, utilvalidation.IsValidPortNum(int(port.ContainerPort)))
		}
		switch port.Protocol {
		case "", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			el.Addf(pp+".protocol", `Unsupported value: %q: supported values: "SCTP", "TCP", "UDP"`, port.Protocol)
		}
	}

	for i, e := range c.Env {
		ep := fmt.Sprintf("%s.env[%d].name", p, i)
		if e.Name == "" {
			el.Add(ep, "Required value: name the environment variable")
			continue
		}
		invalid(ep, e.Name, utilvalidation.IsEnvVarName(e.Name))
	}

	mounts := map[string]bool{}
	for i, m := range c.VolumeMounts {
		mp := fmt.Sprintf("%s.volumeMounts[%d]", p, i)
		switch {
		case m.Name == "":
			el.Add(mp+".name", "Required value: name the volume to mount")
		case !volumes[m.Name]:
			el.Addf(mp+".name", "Not found: %q: no volume has this name; add it under spec.volumes or fix the name", m.Name)
		}
		switch {
		case m.MountPath == "":
			el.Add(mp+".mountPath", "Required value: set where to mount the volume in the container")
		case !path.IsAbs(m.MountPath):
			el.Addf(mp+".mountPath", "Invalid value: %q: must be an absolute path", m.MountPath)
		case mounts[path.Clean(m.MountPath)]:
			el.Addf(mp+".mountPath", "Invalid value: %q: must be unique: another volume is mounted there", m.MountPath)
		}
		mounts[path.Clean(m.MountPath)] = true
	}
}

func validateToleration(t corev1.Toleration, p string, el *ErrorList) {
	if t.Key != "" {
		for _, m := range content.IsLabelKey(t.Key) {
			el.Addf(p+".key", "Invalid value: %q: %s", t.Key, m)
		}
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		if t.Key == "" {
			el.Add(p+".operator", `Invalid value: operator must be Exists when key is empty (to match all keys)`)
		}
		for _, m := range content.IsLabelValue(t.Value) {
			el.Addf(p+".value", "Invalid value: %q: %s", t.Value, m)
		}
	case corev1.TolerationOpExists:
		if t.Value != "" {
			el.Add(p+".value", "Invalid value: must be empty when operator is Exists")
		}
	default:
		el.Addf(p+".operator", `Unsupported value: %q: supported values: "Equal", "Exists"`, t.Operator)
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		el.Addf(p+".effect", `Unsupported value: %q: supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`, t.Effect)
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		el.Add(p+".effect", "Invalid value: must be NoExecute when tolerationSeconds is set")
	}
}
