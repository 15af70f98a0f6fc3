package manifest

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"
)

const totalAnnotationSizeLimit = 256 * 1024

// validatePod validates a pod decoded from a manifest as Kubernetes
// validates a pod (for the fields this version supports), before defaults.
// prefix is the field path of the pod in the file ("" or "items[i]").
func validatePod(pod *corev1.Pod, prefix, nodeName string, el *errList) {
	f := func(p string) string { return joinField(prefix, p) }
	invalid := invalidFunc(f, el)

	// The name in a file is the static pod's: the node adds "-<node>".
	switch {
	case pod.Name == "":
		el.add(f("metadata.name"), "Required value: set metadata.name; the pod runs as <name>-<node name>")
	default:
		invalid("metadata.name", pod.Name, validation.IsDNS1123Subdomain(pod.Name), "")
		full := PodName(pod.Name, nodeName)
		if len(full) > validation.DNS1123SubdomainMaxLength {
			el.addf(f("metadata.name"), "Too long: the pod name %q (name-node) is %d characters, at most %d are allowed; shorten metadata.name",
				full, len(full), validation.DNS1123SubdomainMaxLength)
		} else if len(validation.IsDNS1123Subdomain(pod.Name)) == 0 {
			invalid("metadata.name", full, validation.IsDNS1123Subdomain(full), " (the pod name is <name>-<node name>)")
		}
	}
	if pod.Spec.NodeName != "" && !strings.EqualFold(pod.Spec.NodeName, nodeName) {
		el.addf(f("spec.nodeName"), "Invalid value: %q: this node is %q; a static pod runs on the node whose directory holds it, remove spec.nodeName", pod.Spec.NodeName, nodeName)
	}
	validatePodContent(pod, f, el)
}

// ValidatePod validates a pod as its node runs it, with the rules Parse
// applies to a manifest's pod: its name is the full pod name
// ("<name>-<node>"), and it may be defaulted already. The API server
// validates mirror pods with it, so that a pod is accepted or refused
// alike from a file and through the API. It returns nil, an *Error, or
// several joined (see Errors); they name the field but no file.
func ValidatePod(pod *corev1.Pod) error {
	el := &errList{lines: map[string]int{}}
	f := func(p string) string { return p }
	if pod.Name == "" {
		el.add("metadata.name", "Required value: name the pod")
	} else {
		invalidFunc(f, el)("metadata.name", pod.Name, validation.IsDNS1123Subdomain(pod.Name), "")
	}
	validatePodContent(pod, f, el)
	return el.err()
}

// invalidFunc returns a function that adds an "Invalid value" error to el
// for each of msgs about field p (f maps p to its full path).
func invalidFunc(f func(string) string, el *errList) func(p string, v any, msgs []string, hint string) {
	return func(p string, v any, msgs []string, hint string) {
		for _, m := range msgs {
			el.addf(f(p), "Invalid value: %s: %s%s", jsonText(v), m, hint)
		}
	}
}

// validateMetaMaps validates an object's labels and annotations.
func validateMetaMaps(labels, annotations map[string]string, f func(string) string, el *errList) {
	invalid := invalidFunc(f, el)
	for _, k := range sortedKeys(labels) {
		p := "metadata.labels[" + k + "]"
		invalid(p, k, content.IsLabelKey(k), " (label name)")
		invalid(p, labels[k], content.IsLabelValue(labels[k]), "")
	}
	size := 0
	for _, k := range sortedKeys(annotations) {
		invalid("metadata.annotations["+k+"]", k, content.IsLabelKey(strings.ToLower(k)), " (annotation name)")
		size += len(k) + len(annotations[k])
	}
	if size > totalAnnotationSizeLimit {
		el.addf(f("metadata.annotations"), "Too long: annotations hold %d bytes, at most %d are allowed", size, totalAnnotationSizeLimit)
	}
}

// validatePodContent validates everything in a pod but its name (which
// differs between a manifest and a running pod) and its node.
func validatePodContent(pod *corev1.Pod, f func(string) string, el *errList) {
	invalid := invalidFunc(f, el)
	if pod.Namespace != "" {
		invalid("metadata.namespace", pod.Namespace, validation.IsDNS1123Label(pod.Namespace), "")
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
			el.add(f(p+".name"), "Required value: name the volume")
		case volumes[v.Name]:
			el.addf(f(p+".name"), "Duplicate value: %q: another volume has this name; volume names must be unique", v.Name)
		default:
			invalid(p+".name", v.Name, validation.IsDNS1123Label(v.Name), "")
		}
		volumes[v.Name] = true
		if volumeTypes(&v) > 1 {
			el.add(f(p), "Forbidden: may not specify more than 1 volume type; keep one of hostPath, emptyDir, downwardAPI, configMap, secret or projected")
		}
		if v.HostPath != nil {
			hp := v.HostPath.Path
			switch {
			case hp == "":
				el.add(f(p+".hostPath.path"), "Required value: set the path on the node")
			case !path.IsAbs(hp):
				el.addf(f(p+".hostPath.path"), "Invalid value: %q: must be an absolute path", hp)
			case hasDotDot(hp):
				el.addf(f(p+".hostPath.path"), "Invalid value: %q: must not contain '..'", hp)
			}
		}
	}

	// containers
	if len(spec.Containers) == 0 {
		el.add(f("spec.containers"), "Required value: a pod needs at least one container; add one under spec.containers")
	}
	if n := len(spec.Containers) + len(spec.InitContainers); n > MaxContainersPerPod {
		el.addf(f("spec.containers"), "Too many: %d containers and init containers, at most %d are allowed per pod; split the pod into several manifests", n, MaxContainersPerPod)
	}
	names := map[string]bool{}
	for i := range spec.Containers {
		validateContainer(&spec.Containers[i], f(fmt.Sprintf("spec.containers[%d]", i)), names, volumes, el)
	}

	// pod-level fields
	switch spec.RestartPolicy {
	case "", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		el.addf(f("spec.restartPolicy"), `Unsupported value: %q: supported values: "Always", "OnFailure", "Never"`, spec.RestartPolicy)
	}
	if g := spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		el.addf(f("spec.terminationGracePeriodSeconds"), "Invalid value: %d: must be greater than or equal to 0", *g)
	}
	switch spec.DNSPolicy {
	case "", corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSClusterFirstWithHostNet:
	case corev1.DNSNone:
		if spec.DNSConfig == nil || len(spec.DNSConfig.Nameservers) == 0 {
			el.add(f("spec.dnsConfig"), "Required value: with dnsPolicy: None, set at least one nameserver in spec.dnsConfig.nameservers")
		}
	default:
		el.addf(f("spec.dnsPolicy"), `Unsupported value: %q: supported values: "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"`, spec.DNSPolicy)
	}
	if dc := spec.DNSConfig; dc != nil {
		if len(dc.Nameservers) > 3 {
			el.add(f("spec.dnsConfig.nameservers"), "Too many: at most 3 nameservers")
		}
		if len(dc.Searches) > 32 {
			el.add(f("spec.dnsConfig.searches"), "Too many: at most 32 search domains")
		}
		for i, o := range dc.Options {
			if o.Name == "" {
				el.add(f(fmt.Sprintf("spec.dnsConfig.options[%d].name", i)), "Required value: name the option")
			}
		}
	}
	if spec.PriorityClassName != "" {
		invalid("spec.priorityClassName", spec.PriorityClassName, validation.IsDNS1123Subdomain(spec.PriorityClassName), "")
	}
	if spec.SchedulerName != "" {
		invalid("spec.schedulerName", spec.SchedulerName, validation.IsDNS1123Subdomain(spec.SchedulerName), "")
	}
	for i, t := range spec.Tolerations {
		validateToleration(t, f(fmt.Sprintf("spec.tolerations[%d]", i)), el)
	}
	validatePodSpec(pod, f, el)
	validateLifecycle(pod, f, el)
}

func validateContainer(c *corev1.Container, p string, names, volumes map[string]bool, el *errList) {
	invalid := func(field string, v any, msgs []string) {
		for _, m := range msgs {
			el.addf(field, "Invalid value: %s: %s", jsonText(v), m)
		}
	}
	switch {
	case c.Name == "":
		el.add(p+".name", "Required value: name the container")
	case names[c.Name]:
		el.addf(p+".name", "Duplicate value: %q: another container has this name; container names must be unique", c.Name)
	default:
		invalid(p+".name", c.Name, validation.IsDNS1123Label(c.Name))
	}
	names[c.Name] = true
	if c.Image == "" {
		el.add(p+".image", "Required value: set the container image")
	} else if strings.TrimSpace(c.Image) != c.Image {
		el.addf(p+".image", "Invalid value: %q: must not have leading or trailing whitespace", c.Image)
	}
	switch c.ImagePullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		el.addf(p+".imagePullPolicy", `Unsupported value: %q: supported values: "Always", "IfNotPresent", "Never"`, c.ImagePullPolicy)
	}
	if len(c.TerminationMessagePath) > 4096 {
		el.add(p+".terminationMessagePath", "Too long: at most 4096 characters")
	}

	portNames := map[string]bool{}
	for i, port := range c.Ports {
		pp := fmt.Sprintf("%s.ports[%d]", p, i)
		if port.Name != "" {
			invalid(pp+".name", port.Name, validation.IsValidPortName(port.Name))
			if portNames[port.Name] {
				el.addf(pp+".name", "Duplicate value: %q: another port of this container has this name", port.Name)
			}
			portNames[port.Name] = true
		}
		if port.ContainerPort == 0 {
			el.add(pp+".containerPort", "Required value: set the port number (1-65535)")
		} else {
			invalid(pp+".containerPort", port.ContainerPort, validation.IsValidPortNum(int(port.ContainerPort)))
		}
		switch port.Protocol {
		case "", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			el.addf(pp+".protocol", `Unsupported value: %q: supported values: "SCTP", "TCP", "UDP"`, port.Protocol)
		}
	}

	for i, e := range c.Env {
		ep := fmt.Sprintf("%s.env[%d].name", p, i)
		if e.Name == "" {
			el.add(ep, "Required value: name the environment variable")
			continue
		}
		invalid(ep, e.Name, validation.IsEnvVarName(e.Name))
	}

	mounts := map[string]bool{}
	for i, m := range c.VolumeMounts {
		mp := fmt.Sprintf("%s.volumeMounts[%d]", p, i)
		switch {
		case m.Name == "":
			el.add(mp+".name", "Required value: name the volume to mount")
		case !volumes[m.Name]:
			el.addf(mp+".name", "Not found: %q: no volume has this name; add it under spec.volumes or fix the name", m.Name)
		}
		switch {
		case m.MountPath == "":
			el.add(mp+".mountPath", "Required value: set where to mount the volume in the container")
		case !path.IsAbs(m.MountPath):
			el.addf(mp+".mountPath", "Invalid value: %q: must be an absolute path", m.MountPath)
		case mounts[path.Clean(m.MountPath)]:
			el.addf(mp+".mountPath", "Invalid value: %q: must be unique: another volume is mounted there", m.MountPath)
		}
		mounts[path.Clean(m.MountPath)] = true
	}
}

func validateToleration(t corev1.Toleration, p string, el *errList) {
	if t.Key != "" {
		for _, m := range content.IsLabelKey(t.Key) {
			el.addf(p+".key", "Invalid value: %q: %s", t.Key, m)
		}
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		if t.Key == "" {
			el.add(p+".operator", `Invalid value: operator must be Exists when key is empty (to match all keys)`)
		}
		for _, m := range content.IsLabelValue(t.Value) {
			el.addf(p+".value", "Invalid value: %q: %s", t.Value, m)
		}
	case corev1.TolerationOpExists:
		if t.Value != "" {
			el.add(p+".value", "Invalid value: must be empty when operator is Exists")
		}
	default:
		el.addf(p+".operator", `Unsupported value: %q: supported values: "Equal", "Exists"`, t.Operator)
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		el.addf(p+".effect", `Unsupported value: %q: supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`, t.Effect)
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		el.add(p+".effect", "Invalid value: must be NoExecute when tolerationSeconds is set")
	}
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}
