package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/cri"
	"github.com/ballast-dev/ballast/internal/engine"
	"github.com/ballast-dev/ballast/internal/events"
	"github.com/ballast-dev/ballast/internal/podconfig"
	"github.com/ballast-dev/ballast/internal/prober"
)

// criExec runs commands in containers through CRI ExecSync, for exec probes
// and exec lifecycle hooks.
type criExec struct{ rt *cri.Runtime }

func (e criExec) Exec(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (string, int32, error) {
	r, err := e.rt.RS.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: containerID, Cmd: cmd, Timeout: int64(max(timeout/time.Second, 1))})
	if err != nil {
		return "", 0, fmt.Errorf("exec %v: %s", cmd, cri.Message(err))
	}
	return string(r.Stdout) + string(r.Stderr), r.ExitCode, nil
}

// probeTargets lists the probes of every running container of the pods the
// agent runs. Called by the loop after each change.
func (a *Agent) probeTargets() []prober.Target {
	var out []prober.Target
	for _, p := range a.pods {
		if p.desired == nil || p.rt == nil {
			continue
		}
		sb := p.rt.LatestSandbox()
		if sb == nil || !sb.Ready {
			continue
		}
		host := podconfig.Host(p.desired, sb.IP, a.opts.HostIP)
		add := func(ctr corev1.Container) {
			insts := p.rt.ContainersNamed(ctr.Name)
			if len(insts) == 0 || insts[0].State != cri.StateRunning || insts[0].SandboxID != sb.ID {
				return
			}
			for kind, pr := range map[prober.Kind]*corev1.Probe{prober.Liveness: ctr.LivenessProbe, prober.Readiness: ctr.ReadinessProbe, prober.Startup: ctr.StartupProbe} {
				if pr == nil {
					continue
				}
				out = append(out, prober.Target{
					PodUID: p.uid, PodName: p.desired.Namespace + "/" + p.desired.Name, Container: ctr.Name,
					ContainerID: insts[0].ID, Kind: kind, Probe: *pr, Ports: ctr.Ports, Host: host,
					StartedAt: insts[0].StartedAt, HasStartup: ctr.StartupProbe != nil,
				})
			}
		}
		for _, c := range p.desired.Spec.InitContainers {
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				add(c)
			}
		}
		for _, c := range p.desired.Spec.Containers {
			add(c)
		}
	}
	prober.SortTargets(out)
	return out
}

// updateProbes hands the prober the current set when it changed.
func (a *Agent) updateProbes() {
	if a.prober == nil {
		return
	}
	ts := a.probeTargets()
	keys := make([]prober.Key, len(ts))
	for i, t := range ts {
		keys[i] = prober.Key{ContainerID: t.ContainerID, Kind: t.Kind}
	}
	if slices.Equal(keys, a.probeKeys) {
		return
	}
	a.probeKeys = keys
	a.prober.Update(ts)
}

// applyProbe records a probe result on its pod, in the loop.
func (a *Agent) applyProbe(r prober.Result) {
	p := a.pods[r.Target.PodUID]
	if p == nil || p.desired == nil {
		return
	}
	if p.probes == nil {
		p.probes = map[string]engine.ProbeState{}
	}
	ps := p.probes[r.Target.Container]
	if ps.ContainerID != r.Target.ContainerID {
		ps = engine.ProbeState{ContainerID: r.Target.ContainerID}
	}
	switch r.Target.Kind {
	case prober.Readiness:
		ps.Ready = r.Success
	case prober.Startup:
		ps.Started = r.Success
		ps.StartupFailed = r.Exhausted
	case prober.Liveness:
		ps.LivenessFailed = r.Exhausted
	}
	if r.Failed {
		a.events.Event(events.PodRef(p.desired, r.Target.Container), corev1.EventTypeWarning, "Unhealthy",
			fmt.Sprintf("%s probe failed: %s", r.Target.Kind, r.Output))
	}
	if r.Exhausted {
		what := "liveness"
		if r.Target.Kind == prober.Startup {
			what = "startup"
		}
		ps.Message = fmt.Sprintf("Container %s failed %s probe, will be restarted", r.Target.Container, what)
		ps.GraceSeconds = graceSeconds(p.desired, &r.Target.Probe)
	}
	p.probes[r.Target.Container] = ps
	a.markDirty(p)
}

// graceSeconds is the grace period to kill a container with: the probe's own
// terminationGracePeriodSeconds when set, else the pod's.
func graceSeconds(pod *corev1.Pod, pr *corev1.Probe) int64 {
	if pr != nil && pr.TerminationGracePeriodSeconds != nil {
		return *pr.TerminationGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}

// currentProbes returns the probe states of the containers' current instances.
func (p *podState) currentProbes() map[string]engine.ProbeState {
	if len(p.probes) == 0 {
		return nil
	}
	out := map[string]engine.ProbeState{}
	for name, ps := range p.probes {
		insts := p.rt.ContainersNamed(name)
		if len(insts) > 0 && insts[0].ID == ps.ContainerID {
			out[name] = ps
		}
	}
	return out
}
