package manifest

import "strings"

// The fields of probes, lifecycle hooks, init containers and
// activeDeadlineSeconds this version supports: those that change how a pod
// runs over time rather than how its containers are configured (their
// validation and defaults are internal/validation's).

// handlerRules are the fields of a probe or hook handler under prefix.
func handlerRules(prefix string, probe bool) []rule {
	rs := []rule{
		{path: prefix, mode: object},
		{path: prefix + ".exec", mode: allow},
		{path: prefix + ".httpGet", mode: allow},
	}
	if probe {
		rs = append(rs,
			rule{path: prefix + ".tcpSocket", mode: allow},
			rule{path: prefix + ".grpc", mode: allow},
			rule{path: prefix + ".initialDelaySeconds", mode: allow},
			rule{path: prefix + ".periodSeconds", mode: allow},
			rule{path: prefix + ".timeoutSeconds", mode: allow},
			rule{path: prefix + ".successThreshold", mode: allow},
			rule{path: prefix + ".failureThreshold", mode: allow},
			rule{path: prefix + ".terminationGracePeriodSeconds", mode: allow},
		)
	} else {
		rs = append(rs,
			rule{path: prefix + ".sleep", mode: allow},
			rule{path: prefix + ".tcpSocket", mode: refuse, msg: "tcpSocket lifecycle handlers are deprecated and never run (as in Kubernetes); use exec, httpGet or sleep"},
		)
	}
	return rs
}

var lifecycleRules = func() []rule {
	var rs []rule
	for _, pr := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
		rs = append(rs, handlerRules("spec.containers[]."+pr, true)...)
	}
	rs = append(rs, rule{path: "spec.containers[].lifecycle", mode: object})
	for _, h := range []string{"postStart", "preStop"} {
		rs = append(rs, handlerRules("spec.containers[].lifecycle."+h, false)...)
	}
	rs = append(rs,
		rule{path: "spec.initContainers", mode: object},
		rule{path: "spec.initContainers[].restartPolicy", mode: only, only: []any{"Always"}},
		rule{path: "spec.activeDeadlineSeconds", mode: allow},
	)
	return rs
}()

// withInitContainers returns the rules plus, for every rule about app
// containers, the same rule for init containers.
func withInitContainers(rs []rule) []rule {
	out := append([]rule(nil), rs...)
	for _, r := range rs {
		if rest, ok := strings.CutPrefix(r.path, "spec.containers[]."); ok {
			r.path = "spec.initContainers[]." + rest
			out = append(out, r)
		}
	}
	return out
}
