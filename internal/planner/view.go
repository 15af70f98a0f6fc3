package planner

import (
	"maps"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/events"
	"github.com/ballast-dev/ballast/internal/podruntime"
	"github.com/ballast-dev/ballast/internal/podstatus"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// View is what readers see of the node: its pods with true status, the
// manifest files it cannot use, where container logs are, and whether the
// runtime answers. It shares nothing with the planner's state.
type View struct {
	Pods     []corev1.Pod // sorted by namespace/name
	Problems []Problem
	// Logs maps namespace/pod/container to its log files.
	Logs         map[string]LogRef
	RuntimeReady bool
	// Configs are the node-local ConfigMaps and Secrets (and those pods
	// reference that the node lacks), sorted by kind, namespace and name;
	// Warnings are about files that work but should be fixed.
	Configs  []ConfigView
	Warnings []Warning
}

// LogRef locates a container's current and previous log files.
type LogRef struct {
	Current, Previous string
	CurrentID         string
	Running           bool
}

// View returns a copy of what readers see now.
func (s *State) View() *View {
	v := &View{Problems: append(append([]Problem(nil), s.problems...), s.cycles...), Logs: map[string]LogRef{}, RuntimeReady: s.runtimeReady,
		Configs: s.configViews(), Warnings: append([]Warning(nil), s.warnings...)}
	problemByPod := map[string]string{}
	problemByFile := map[string]string{}
	for _, pr := range v.Problems {
		problemByFile[pr.File] = pr.Message
		for _, name := range pr.Pods {
			problemByPod[name] = pr.Message
		}
	}
	for _, p := range s.pods {
		if p.desired == nil {
			continue
		}
		pod := p.desired.DeepCopy()
		pod.Status = *p.status.DeepCopy()
		if msg, ok := problemByPod[pod.Name]; ok {
			pod.Annotations[wellknown.AnnotationManifestError] = msg
		} else if p.kept {
			msg := problemByFile[p.file]
			if msg == "" && s.snap.Unavailable != "" {
				msg = problemByFile[s.snap.Dir]
			}
			pod.Annotations[wellknown.AnnotationManifestError] = msg
		}
		if s.reverted(p) {
			r := s.files[p.file]
			pod.Annotations[wellknown.AnnotationRolloutReverted] = r.Reason
			pod.Annotations[wellknown.AnnotationRolloutRejectedHash] = r.RejectedHash
			pod.Annotations[wellknown.AnnotationRolloutRunningHash] = r.Good.Annotations[wellknown.AnnotationConfigHash]
		}
		if pod.CreationTimestamp.IsZero() {
			pod.CreationTimestamp = metav1.NewTime(p.startTime.Truncate(time.Second))
		}
		pod.UID = types.UID(p.uid)
		v.Pods = append(v.Pods, *pod)
		for _, c := range pod.Spec.Containers {
			insts := p.rt.ContainersNamed(c.Name)
			ref := LogRef{}
			if len(insts) > 0 {
				ref.Current, ref.CurrentID = insts[0].LogPath, insts[0].ID
				ref.Running = insts[0].State == podruntime.StateRunning
			}
			if len(insts) > 1 {
				ref.Previous = insts[1].LogPath
			}
			v.Logs[pod.Namespace+"/"+pod.Name+"/"+c.Name] = ref
		}
	}
	sort.Slice(v.Pods, func(i, j int) bool {
		if v.Pods[i].Namespace != v.Pods[j].Namespace {
			return v.Pods[i].Namespace < v.Pods[j].Namespace
		}
		return v.Pods[i].Name < v.Pods[j].Name
	})
	return v
}

// Running calls fn for every desired pod with what the runtime holds for it
// (for the caller's probe targets), in UID order.
func (s *State) Running(fn func(uid string, desired *corev1.Pod, rt *podruntime.Pod)) {
	for _, uid := range s.sortedUIDs() {
		if p := s.pods[uid]; p.desired != nil && p.rt != nil {
			fn(uid, p.desired, p.rt)
		}
	}
}

// Lifecycle returns where each pod stands, by UID (for tests and debugging).
func (s *State) Lifecycle() map[string]Lifecycle {
	m := map[string]Lifecycle{}
	for uid, p := range s.pods {
		m[uid] = p.life
	}
	return m
}

// noteStart sets when the pod first ran on this node: now, or its oldest
// sandbox's creation if earlier (after an agent restart).
func (p *pod) noteStart(now time.Time) {
	if p.desired == nil {
		return
	}
	if p.startTime.IsZero() {
		p.startTime = now
	}
	if p.rt != nil {
		for _, sb := range p.rt.Sandboxes {
			if sb.CreatedAt.Before(p.startTime) {
				p.startTime = sb.CreatedAt
			}
		}
	}
}

// statuses computes the status of every pod touched in this step, and
// returns the manifest names of the pods whose readiness changed.
func (s *State) statuses(now time.Time, out *Output) map[string]bool {
	var readied map[string]bool
	for _, p := range s.pods {
		if !p.touched || p.desired == nil {
			p.touched = false
			continue
		}
		p.touched = false
		p.noteStart(now)
		waiting := maps.Clone(p.failed)
		if waiting == nil {
			waiting = map[string]podruntime.Waiting{}
		}
		maps.Copy(waiting, p.waiting)
		st := podstatus.Compute(podstatus.Input{
			Pod: p.desired, Runtime: p.rt, Waiting: waiting, HostIP: s.cfg.HostIP,
			StartTime: p.startTime, Now: now, Previous: &p.status, RuntimeName: s.cfg.RuntimeName,
			Probes: p.currentProbes(), DeadlineExceeded: p.deadlineExceeded,
		})
		if p.fromFile && allRunning(&st) {
			p.fromFile, p.startedFromFile = false, true
			if seen, err := time.Parse(time.RFC3339Nano, p.desired.Annotations[wellknown.AnnotationConfigSeen]); err == nil {
				out.Started = append(out.Started, Started{UID: p.uid, Since: now.Sub(seen)})
			}
		}
		if !equality.Semantic.DeepEqual(st, p.status) {
			if podReady(&st) != podReady(&p.status) {
				if readied == nil {
					readied = map[string]bool{}
				}
				readied[s.manifestName(p.desired)] = true
			}
			p.status = st
			out.Changed = true
		}
	}
	return readied
}

func typesUID(s string) types.UID { return types.UID(s) }

// podEvent is an event about a pod, or one of its containers.
func podEvent(pod *corev1.Pod, container, eventType, reason, message string) Event {
	return Event{Ref: events.PodRef(pod, container), Type: eventType, Reason: reason, Message: message}
}

// allRunning reports whether every regular container runs.
func allRunning(st *corev1.PodStatus) bool {
	if len(st.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range st.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}
