package agent

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/podconfig"
	"github.com/ballast-dev/ballast/internal/podruntime"
	"github.com/ballast-dev/ballast/internal/prober"
)

// probeTargets lists the probes of the running containers of one pod.
func probeTargets(uid string, pod *corev1.Pod, rt *podruntime.Pod, hostIP string) []prober.Target {
	sb := rt.LatestSandbox()
	if sb == nil || !sb.Ready {
		return nil
	}
	host := podconfig.Host(pod, sb.IP, hostIP)
	var out []prober.Target
	add := func(ctr corev1.Container) {
		cur := rt.Latest(ctr.Name)
		if cur == nil || cur.State != podruntime.StateRunning || cur.SandboxID != sb.ID {
			return
		}
		for kind, pr := range map[prober.Kind]*corev1.Probe{prober.Liveness: ctr.LivenessProbe, prober.Readiness: ctr.ReadinessProbe, prober.Startup: ctr.StartupProbe} {
			if pr == nil {
				continue
			}
			out = append(out, prober.Target{
				PodUID: uid, PodName: pod.Namespace + "/" + pod.Name, Container: ctr.Name,
				ContainerID: cur.ID, Kind: kind, Probe: *pr, Ports: ctr.Ports, Host: host,
				StartedAt: cur.StartedAt, HasStartup: ctr.StartupProbe != nil,
			})
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(c)
		}
	}
	for _, c := range pod.Spec.Containers {
		add(c)
	}
	return out
}
