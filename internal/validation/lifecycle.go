package validation

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Validation and defaults of probes, lifecycle hooks, init containers and
// activeDeadlineSeconds: the fields that change how a pod runs over time
// rather than how its containers are configured.

// validateLifecycle checks init containers, probes, hooks and the deadline
// as Kubernetes does.
func validateLifecycle(pod *corev1.Pod, f func(string) string, el *ErrorList) {
	spec := &pod.Spec
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	names := map[string]bool{}
	for _, c := range spec.Containers {
		names[c.Name] = true
	}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		p := fmt.Sprintf("spec.initContainers[%d]", i)
		if names[c.Name] {
			el.Addf(f(p+".name"), "Duplicate value: %q: init and app containers share one name space; rename one", c.Name)
		}
		validateContainer(c, f(p), names, volumes, el)
		validateEnv(c, p, f, containersByName(spec), el)
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if !sidecar {
			for _, pr := range []struct {
				name  string
				probe *corev1.Probe
			}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}} {
				if pr.probe != nil {
					el.Addf(f(p+"."+pr.name), "Forbidden: may not be set for init containers without restartPolicy=Always")
				}
			}
			if c.Lifecycle != nil {
				el.Add(f(p+".lifecycle"), "Forbidden: may not be set for init containers without restartPolicy=Always")
			}
		}
		validateProbes(c, p, true, f, el)
	}
	for i := range spec.Containers {
		validateProbes(&spec.Containers[i], fmt.Sprintf("spec.containers[%d]", i), false, f, el)
	}
	if d := spec.ActiveDeadlineSeconds; d != nil && *d <= 0 {
		el.Addf(f("spec.activeDeadlineSeconds"), "Invalid value: %d: must be greater than 0", *d)
	}
}

func validateProbes(c *corev1.Container, p string, init bool, f func(string) string, el *ErrorList) {
	check := func(name string, pr *corev1.Probe, successMustBeOne bool) {
		if pr == nil {
			return
		}
		q := p + "." + name
		validateHandler(c, q, howMany(pr.Exec != nil, pr.HTTPGet != nil, pr.TCPSocket != nil, pr.GRPC != nil), pr.HTTPGet, pr.TCPSocket, f, el)
		for _, v := range []struct {
			field string
			val   int32
			min   int32
		}{{"initialDelaySeconds", pr.InitialDelaySeconds, 0}, {"timeoutSeconds", pr.TimeoutSeconds, 1}, {"periodSeconds", pr.PeriodSeconds, 1}, {"successThreshold", pr.SuccessThreshold, 1}, {"failureThreshold", pr.FailureThreshold, 1}} {
			if v.val < v.min && (v.val != 0 || v.min == 0) { // 0 is unset: defaulted later
				el.Addf(f(q+"."+v.field), "Invalid value: %d: must be greater than or equal to %d", v.val, v.min)
			}
		}
		if successMustBeOne && pr.SuccessThreshold > 1 {
			el.Addf(f(q+".successThreshold"), "Invalid value: %d: must be 1", pr.SuccessThreshold)
		}
		if g := pr.TerminationGracePeriodSeconds; g != nil && *g <= 0 {
			el.Addf(f(q+".terminationGracePeriodSeconds"), "Invalid value: %d: must be greater than 0", *g)
		}
		if pr.GRPC != nil && (pr.GRPC.Port < 1 || pr.GRPC.Port > 65535) {
			el.Addf(f(q+".grpc.port"), "Invalid value: %d: must be between 1 and 65535, inclusive", pr.GRPC.Port)
		}
	}
	check("livenessProbe", c.LivenessProbe, true)
	check("readinessProbe", c.ReadinessProbe, false)
	check("startupProbe", c.StartupProbe, true)
	if init && c.ReadinessProbe != nil {
		el.Add(f(p+".readinessProbe"), "Forbidden: may not be set for init containers")
	}
	if c.Lifecycle != nil {
		for _, h := range []struct {
			name string
			h    *corev1.LifecycleHandler
		}{{"postStart", c.Lifecycle.PostStart}, {"preStop", c.Lifecycle.PreStop}} {
			if h.h == nil {
				continue
			}
			q := p + ".lifecycle." + h.name
			validateHandler(c, q, howMany(h.h.Exec != nil, h.h.HTTPGet != nil, h.h.Sleep != nil, h.h.TCPSocket != nil), h.h.HTTPGet, nil, f, el)
			if h.h.Sleep != nil && h.h.Sleep.Seconds < 0 {
				el.Addf(f(q+".sleep.seconds"), "Invalid value: %d: must be greater than or equal to 0", h.h.Sleep.Seconds)
			}
		}
	}
}

// howMany counts what is set.
func howMany(set ...bool) int {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

func validateHandler(c *corev1.Container, q string, n int, hg *corev1.HTTPGetAction, tcp *corev1.TCPSocketAction, f func(string) string, el *ErrorList) {
	switch {
	case n == 0:
		el.Add(f(q), "Required value: must specify a handler type (exec, httpGet, tcpSocket, grpc or sleep)")
	case n > 1:
		el.Add(f(q), "Forbidden: may not specify more than 1 handler type")
	}
	if hg != nil {
		validateHandlerPort(c, hg.Port, q+".httpGet.port", f, el)
		if s := hg.Scheme; s != "" && s != corev1.URISchemeHTTP && s != corev1.URISchemeHTTPS {
			el.Addf(f(q+".httpGet.scheme"), `Unsupported value: %q: supported values: "HTTP", "HTTPS"`, s)
		}
	}
	if tcp != nil {
		validateHandlerPort(c, tcp.Port, q+".tcpSocket.port", f, el)
	}
}

func validateHandlerPort(c *corev1.Container, port intstr.IntOrString, q string, f func(string) string, el *ErrorList) {
	if port.Type == intstr.Int {
		if port.IntVal < 1 || port.IntVal > 65535 {
			el.Addf(f(q), "Invalid value: %d: must be between 1 and 65535, inclusive", port.IntVal)
		}
		return
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return
		}
	}
	el.Addf(f(q), "Invalid value: %q: must be a port number or the name of one of the container's ports", port.StrVal)
}

// setLifecycleDefaults fills in Kubernetes' defaults for init containers,
// probes and hooks.
func setLifecycleDefaults(pod *corev1.Pod) {
	for i := range pod.Spec.InitContainers {
		setContainerDefaults(&pod.Spec.InitContainers[i])
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			c := &list[i]
			for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if pr == nil {
					continue
				}
				if pr.TimeoutSeconds == 0 {
					pr.TimeoutSeconds = 1
				}
				if pr.PeriodSeconds == 0 {
					pr.PeriodSeconds = 10
				}
				if pr.SuccessThreshold == 0 {
					pr.SuccessThreshold = 1
				}
				if pr.FailureThreshold == 0 {
					pr.FailureThreshold = 3
				}
				defaultHTTPGet(pr.HTTPGet)
			}
			if c.Lifecycle != nil {
				for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
					if h != nil {
						defaultHTTPGet(h.HTTPGet)
					}
				}
			}
		}
	}
}

func defaultHTTPGet(h *corev1.HTTPGetAction) {
	if h == nil {
		return
	}
	if h.Path == "" {
		h.Path = "/"
	}
	if h.Scheme == "" {
		h.Scheme = corev1.URISchemeHTTP
	}
}

func containersByName(spec *corev1.PodSpec) map[string]*corev1.Container {
	out := map[string]*corev1.Container{}
	for i := range spec.Containers {
		out[spec.Containers[i].Name] = &spec.Containers[i]
	}
	return out
}
