// Package printers prints pods for people: kubectl's columns and STATUS
// reasons, plus what Ballast knows about manifest files; and the node's and
// pods' CPU and memory as kubectl top prints them (ballast top).
package printers

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

const nodeUnreachablePodReason = "NodeLost"

// PodReason is the STATUS column of `kubectl get pods`.
func PodReason(pod *corev1.Pod) string {
	reason, _, _, _ := summarize(pod)
	return reason
}

// ReadyCount is the READY column: ready containers (restartable init
// containers, "sidecars", included once started) out of all of them.
func ReadyCount(pod *corev1.Pod) (ready, total int) {
	_, ready, total, _ = summarize(pod)
	return ready, total
}

// Restarts is the RESTARTS column: the restart count and when the last
// restart happened (nil when unknown).
func Restarts(pod *corev1.Pod) (count int, lastRestart *time.Time) {
	_, _, _, r := summarize(pod)
	if r.last.IsZero() {
		return r.count, nil
	}
	t := r.last
	return r.count, &t
}

// Age prints the time from t to now as kubectl does (5s, 3m20s, 2d3h).
func Age(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

type restarts struct {
	count int
	last  time.Time
}

func (r *restarts) add(st *corev1.ContainerStatus) {
	r.count += int(st.RestartCount)
	if term := st.LastTerminationState.Terminated; term != nil && term.FinishedAt.Time.After(r.last) {
		r.last = term.FinishedAt.Time
	}
}

func isSidecar(c *corev1.Container) bool {
	return c != nil && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func hasCondition(pod *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func terminatedReason(prefix string, t *corev1.ContainerStateTerminated) string {
	switch {
	case t.Reason != "":
		return prefix + t.Reason
	case t.Signal != 0:
		return prefix + "Signal:" + strconv.Itoa(int(t.Signal))
	default:
		return prefix + "ExitCode:" + strconv.Itoa(int(t.ExitCode))
	}
}

// summarize computes the STATUS, READY and RESTARTS columns the way kubectl's
// pod printer does.
func summarize(pod *corev1.Pod) (reason string, ready, total int, rs restarts) {
	reason = string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}

	total = len(pod.Spec.Containers)
	inits := make(map[string]*corev1.Container, len(pod.Spec.InitContainers))
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		inits[c.Name] = c
		if isSidecar(c) {
			total++
		}
	}

	// Init containers run in order: the first one not done decides.
	var all, sidecars restarts
	initializing := false
	for i := range pod.Status.InitContainerStatuses {
		st := &pod.Status.InitContainerStatuses[i]
		all.add(st)
		sidecar := isSidecar(inits[st.Name])
		if sidecar {
			sidecars.add(st)
		}
		if t := st.State.Terminated; t != nil && t.ExitCode == 0 {
			continue
		}
		if sidecar && st.Started != nil && *st.Started {
			if st.Ready {
				ready++
			}
			continue
		}
		initializing = true
		switch {
		case st.State.Terminated != nil:
			reason = terminatedReason("Init:", st.State.Terminated)
		case st.State.Waiting != nil && st.State.Waiting.Reason != "" && st.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + st.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		break
	}
	rs = all

	if !initializing || hasCondition(pod, corev1.PodInitialized) {
		rs = sidecars
		running := false
		// The first container in the spec wins: walk backwards.
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			st := &pod.Status.ContainerStatuses[i]
			rs.add(st)
			switch {
			case st.State.Waiting != nil && st.State.Waiting.Reason != "":
				reason = st.State.Waiting.Reason
			case st.State.Terminated != nil:
				reason = terminatedReason("", st.State.Terminated)
			case st.Ready && st.State.Running != nil:
				running = true
				ready++
			}
		}
		// A completed container next to a running one: the pod still runs.
		if reason == "Completed" && running {
			if hasCondition(pod, corev1.PodReady) {
				reason = "Running"
			} else {
				reason = "NotReady"
			}
		}
	}

	if pod.DeletionTimestamp != nil {
		if pod.Status.Reason == nodeUnreachablePodReason {
			reason = "Unknown"
		} else if pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
			reason = "Terminating"
		}
	}
	return reason, ready, total, rs
}

// Options select the table's columns.
type Options struct {
	Wide          bool // IP, NODE, MANIFEST
	AllNamespaces bool // a leading NAMESPACE column
}

// PrintPods prints the pods as a table: NAME READY STATUS RESTARTS AGE, with
// wide also IP NODE MANIFEST. Pods whose manifest file is invalid get a
// footnote; problems maps a pod name to a message and overrides the
// ballast.dev/manifest-error annotation.
func PrintPods(w io.Writer, pods []corev1.Pod, wide bool, now time.Time, problems map[string]string) error {
	return PrintPodTable(w, pods, Options{Wide: wide}, now, problems)
}

// PrintPodTable is PrintPods with more column choices.
func PrintPodTable(w io.Writer, pods []corev1.Pod, opts Options, now time.Time, problems map[string]string) error {
	if len(pods) == 0 {
		_, err := fmt.Fprintln(w, "No pods found.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	var head []string
	if opts.AllNamespaces {
		head = append(head, "NAMESPACE")
	}
	head = append(head, "NAME", "READY", "STATUS", "RESTARTS", "AGE")
	if opts.Wide {
		head = append(head, "IP", "NODE", "MANIFEST")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))

	var notes []string
	for i := range pods {
		p := &pods[i]
		reason, ready, total, rs := summarize(p)
		restartCol := strconv.Itoa(rs.count)
		if rs.count != 0 && !rs.last.IsZero() {
			restartCol = fmt.Sprintf("%d (%s ago)", rs.count, Age(rs.last, now))
		}
		var row []string
		if opts.AllNamespaces {
			row = append(row, p.Namespace)
		}
		if note := problem(p, problems); note != "" {
			notes = append(notes, p.Name+": "+note)
		}
		row = append(row, p.Name, fmt.Sprintf("%d/%d", ready, total), reason, restartCol, Age(p.CreationTimestamp.Time, now))
		if opts.Wide {
			row = append(row, orNone(p.Status.PodIP), orNone(p.Spec.NodeName), orNone(p.Annotations[wellknown.AnnotationManifest]))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			if _, err := fmt.Fprintln(w, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// problem is the footnote of one pod, or "".
func problem(p *corev1.Pod, problems map[string]string) string {
	if msg := problems[p.Name]; msg != "" {
		return msg
	}
	file := p.Annotations[wellknown.AnnotationManifest]
	if file == "" {
		file = "file"
	}
	if msg := p.Annotations[wellknown.AnnotationManifestError]; msg != "" {
		return fmt.Sprintf("manifest %s: %s (running last good version)", file, msg)
	}
	if why := p.Annotations[wellknown.AnnotationRolloutReverted]; why != "" {
		return fmt.Sprintf("reverted: the new pod of %s failed: %s (running the last good pod until the file changes)", file, why)
	}
	return ""
}

// PrintProblems prints problems of manifest files that have no pod, one a line.
func PrintProblems(w io.Writer, problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	sorted := append([]string(nil), problems...)
	sort.Strings(sorted)
	for _, p := range sorted {
		if _, err := fmt.Fprintln(w, "problem: "+p); err != nil {
			return err
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// PrintPodList prints the list as "json" or "yaml", as kubectl's -o does.
func PrintPodList(w io.Writer, list *corev1.PodList, format string) error {
	out := list.DeepCopy()
	out.APIVersion, out.Kind = "v1", "List"
	if list.Kind != "" {
		out.Kind = list.Kind
	}
	for i := range out.Items {
		out.Items[i].APIVersion, out.Items[i].Kind = "v1", "Pod"
	}
	return PrintAny(w, out, format)
}

// PrintAny prints any API object as "json" or "yaml".
func PrintAny(w io.Writer, out any, format string) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(out, "", "    ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case "yaml":
		b, err := yaml.Marshal(out)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	default:
		return fmt.Errorf("unknown output format %q: use json or yaml", format)
	}
}
