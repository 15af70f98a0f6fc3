package planner

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

// This file holds health-gated replacement: a changed manifest's new pod is
// watched until it has been Ready for its settle time (it then becomes the
// file's last good pod) or fails before its deadline, in which case the
// file's pod is its last good one again (reverted) until the file changes.

// Rollout defaults.
const (
	DefaultRolloutDeadline = 2 * time.Minute
	DefaultRolloutSettle   = 5 * time.Second
	// crashLoopRestarts is the restart count at which a new pod has failed.
	crashLoopRestarts = 3
)

// Rollout is what must survive an agent restart of one manifest file's
// rollouts: its last good pod, the pod being watched and until when, and the
// pod that failed (with why), which the file's pod is not until it changes.
type Rollout struct {
	File      string      `json:"file"`
	Good      *corev1.Pod `json:"good,omitempty"`
	Candidate string      `json:"candidate,omitempty"`
	Deadline  time.Time   `json:"deadline,omitzero"`
	Rejected  string      `json:"rejected,omitempty"`
	// RejectedHash is the rejected pod's config hash, Reason why it failed.
	RejectedHash string `json:"rejectedHash,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// Empty reports whether there is nothing to remember (the record may go).
func (r *Rollout) Empty() bool { return r.Good == nil && r.Candidate == "" && r.Rejected == "" }

// rollout is a file's record plus what needs no saving.
type rollout struct {
	Rollout
	readySince time.Time
	// saved: a record of the file is on disk.
	saved bool
}

// save asks for the record to be written, when there is something worth
// keeping across a restart: a last good pod (and so a pod to revert to) or a
// rejected one. A new file's first pod is not saved until it succeeds.
func (r *rollout) save(out *Output) {
	if r.Good == nil && r.Rejected == "" {
		if r.saved {
			r.saved = false
			out.Saves = append(out.Saves, Rollout{File: r.File})
		}
		return
	}
	r.saved = true
	out.Saves = append(out.Saves, r.Rollout)
}

// Restored gives the planner the rollout records saved before a restart. It
// must be the first input.
type Restored struct{ Rollouts []Rollout }

func (Restored) input() {}

func (s *State) applyRestored(r Restored) {
	for _, ro := range r.Rollouts {
		s.files[ro.File] = &rollout{Rollout: ro, saved: true}
	}
}

// effective returns the pod a file's desired pod stands for now: itself, or
// the file's last good pod while this one is the rejected one. A new pod of
// the file starts being watched.
func (s *State) effective(now time.Time, d Desired, out *Output) (Desired, *rollout) {
	r := s.files[d.File]
	if r == nil {
		r = &rollout{Rollout: Rollout{File: d.File}}
		s.files[d.File] = r
	}
	uid := string(d.Pod.UID)
	if r.Rejected == uid && r.Good != nil {
		return Desired{Pod: r.Good, File: d.File}, r
	}
	changed := false
	if r.Rejected != "" && r.Rejected != uid {
		// The file changed since: a new rollout.
		r.Rejected, r.RejectedHash, r.Reason = "", "", ""
		changed = true
	}
	switch {
	case r.Good != nil && string(r.Good.UID) == uid:
		if r.Candidate != "" {
			r.Candidate, r.Deadline, r.readySince = "", time.Time{}, time.Time{}
			changed = true
		}
	case r.Candidate != uid:
		r.Candidate, r.readySince = uid, time.Time{}
		r.Deadline = now.Add(annotationDuration(d.Pod, wellknown.AnnotationRolloutDeadline, DefaultRolloutDeadline))
		changed = true
	}
	if changed {
		r.save(out)
	}
	return d, r
}

// forget drops the records of files that are gone.
func (s *State) forgetFiles(files map[string]bool, out *Output) {
	for f, r := range s.files {
		if !files[f] {
			delete(s.files, f)
			if r.saved {
				out.Saves = append(out.Saves, Rollout{File: r.File})
			}
		}
	}
}

// judgeRollouts checks every pod being watched: one Ready for its settle
// time becomes its file's last good pod; one that failed, when the file has
// a last good pod to go back to, is rejected. It reports whether a file's
// pod changed (a revert), so that the caller decides again.
func (s *State) judgeRollouts(now time.Time, out *Output) bool {
	reverted := false
	for _, f := range sortedKeys(s.files) {
		r := s.files[f]
		if r.Candidate == "" {
			continue
		}
		p := s.pods[r.Candidate]
		if p == nil || p.desired == nil || string(p.desired.UID) != r.Candidate {
			continue
		}
		canRevert := r.Good != nil && p.desired.Annotations[wellknown.AnnotationRollout] != "replace"
		why := ""
		if canRevert {
			why = failure(&p.status)
		}
		if why == "" && podReady(&p.status) {
			if r.readySince.IsZero() {
				r.readySince = now
			}
			settle := annotationDuration(p.desired, wellknown.AnnotationRolloutSettle, DefaultRolloutSettle)
			if !now.Before(r.readySince.Add(settle)) {
				r.Good, r.Candidate, r.Deadline, r.readySince = p.desired, "", time.Time{}, time.Time{}
				r.save(out)
				continue
			}
			p.wake(r.readySince.Add(settle))
			continue
		}
		r.readySince = time.Time{}
		if !canRevert {
			continue // nothing to go back to, or the kubelet's way was asked for
		}
		if why == "" && !now.Before(r.Deadline) {
			why = fmt.Sprintf("not Ready within the rollout deadline of %s%s", annotationDuration(p.desired, wellknown.AnnotationRolloutDeadline, DefaultRolloutDeadline), notReadyDetail(&p.status))
		}
		if why == "" {
			p.wake(r.Deadline)
			continue
		}
		r.Rejected, r.RejectedHash, r.Reason = r.Candidate, p.desired.Annotations[wellknown.AnnotationConfigHash], why
		r.Candidate, r.Deadline = "", time.Time{}
		r.save(out)
		msg := fmt.Sprintf("The new pod of %s failed: %s; reverted to its last good pod (config hash %s). Fix the file to try again.",
			r.File, why, r.Good.Annotations[wellknown.AnnotationConfigHash])
		out.Events = append(out.Events, podEvent(r.Good, "", corev1.EventTypeWarning, "RolloutReverted", msg))
		out.Events = append(out.Events, Event{Ref: s.nodeRef(), Type: corev1.EventTypeWarning, Reason: "RolloutReverted",
			Message: p.desired.Name + ": " + msg})
		reverted = true
	}
	return reverted
}

// failure says why a new pod has failed for good, or "": an image that
// cannot be pulled, a container that cannot be created or started, or one
// that crash-loops.
func failure(st *corev1.PodStatus) string {
	for _, cs := range append(append([]corev1.ContainerStatus{}, st.InitContainerStatuses...), st.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
				"CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PostStartHookError":
				return fmt.Sprintf("container %s: %s: %s", cs.Name, w.Reason, w.Message)
			}
		}
		if cs.RestartCount >= crashLoopRestarts {
			last := ""
			if t := cs.LastTerminationState.Terminated; t != nil {
				last = fmt.Sprintf(", last exit code %d (%s)", t.ExitCode, t.Reason)
			}
			return fmt.Sprintf("container %s crash-loops: %d restarts%s", cs.Name, cs.RestartCount, last)
		}
	}
	return ""
}

// notReadyDetail names the containers that are not ready.
func notReadyDetail(st *corev1.PodStatus) string {
	var names []string
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready {
			names = append(names, cs.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " (containers not ready: " + strings.Join(names, ", ") + ")"
}

func podReady(st *corev1.PodStatus) bool {
	for _, c := range st.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// annotationDuration reads a duration annotation (validated when the
// manifest was read), or def.
func annotationDuration(pod *corev1.Pod, key string, def time.Duration) time.Duration {
	if v, ok := pod.Annotations[key]; ok {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	return def
}

func (s *State) nodeRef() corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Node", Name: s.cfg.NodeName, UID: typesUID(s.cfg.NodeName)}
}

// reverted reports whether a pod runs because its file's new pod was rejected.
func (s *State) reverted(p *pod) bool {
	r := s.files[p.file]
	return r != nil && r.Rejected != "" && r.Good != nil && string(r.Good.UID) == p.uid
}

// whileUnavailable is the snapshot to act on: a directory that cannot be
// read is not an empty one. Its pods go on as the last snapshot had them
// (after an agent restart, as the runtime recorded them), with a problem
// that names the directory, until it is back; removing files still stops
// their pods.
func (s *State) whileUnavailable(in Snapshot) Snapshot {
	if in.Unavailable == "" {
		return in
	}
	if s.snap.Unavailable != "" {
		return s.snap // still as it was when the directory went
	}
	var pods []string
	for _, d := range s.snap.Pods {
		pods = append(pods, d.Pod.Name)
	}
	return Snapshot{Pods: s.snap.Pods, Configs: s.snap.Configs, Warnings: s.snap.Warnings, Unavailable: in.Unavailable, Dir: in.Dir,
		Problems: append(append([]Problem(nil), s.snap.Problems...), Problem{File: in.Dir, Pods: pods,
			Message: fmt.Sprintf("the manifest directory %s cannot be read (%s); its pods keep running as they were until it is back", in.Dir, in.Unavailable)})}
}
