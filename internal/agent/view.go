package agent

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/events"
	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// View is an immutable picture of what the agent runs, published after every
// change for readers on other goroutines (the local API, the mirror sync).
type View = planner.View

// LogRef locates a container's current and previous log files.
type LogRef = planner.LogRef

// View returns the latest published view.
func (a *Agent) View() *View { return a.view.Load() }

// Pods returns the pods the agent runs, with status.
func (a *Agent) Pods() []corev1.Pod { return a.View().Pods }

// Events returns the events the agent recorded, oldest first.
func (a *Agent) Events() []corev1.Event { return a.events.List() }

// Recorder is the agent's event recorder (for publishing events to an API).
func (a *Agent) Recorder() *events.Recorder { return a.events }

// ManifestProblems returns the manifest files the agent cannot use.
func (a *Agent) ManifestProblems() []localapi.ManifestProblem {
	v := a.View()
	var out []localapi.ManifestProblem
	for _, p := range v.Problems {
		mp := localapi.ManifestProblem{File: p.File, Error: p.Message, Pods: p.Pods}
		if len(mp.Pods) == 0 {
			// Pods kept from the runtime's record after an agent restart.
			for _, pod := range v.Pods {
				if pod.Annotations[wellknown.AnnotationManifest] == p.File && pod.Annotations[wellknown.AnnotationManifestError] != "" {
					mp.Pods = append(mp.Pods, pod.Name)
				}
			}
		}
		out = append(out, mp)
	}
	return out
}

// LogFile finds the log file of a container, for the local API.
func (a *Agent) LogFile(namespace, pod, container string, previous bool) (string, func() bool, error) {
	v := a.View()
	var found *corev1.Pod
	for i := range v.Pods {
		if v.Pods[i].Namespace == namespace && v.Pods[i].Name == pod {
			found = &v.Pods[i]
		}
	}
	if found == nil {
		return "", nil, fmt.Errorf("pod %s/%s not found on this node", namespace, pod)
	}
	if container == "" {
		if len(found.Spec.Containers) != 1 {
			var names []string
			for _, c := range found.Spec.Containers {
				names = append(names, c.Name)
			}
			return "", nil, fmt.Errorf("pod %s/%s has several containers: choose one of [%s]", namespace, pod, strings.Join(names, " "))
		}
		container = found.Spec.Containers[0].Name
	}
	ref, ok := v.Logs[namespace+"/"+pod+"/"+container]
	if !ok {
		var names []string
		for k := range v.Logs {
			if strings.HasPrefix(k, namespace+"/"+pod+"/") {
				names = append(names, strings.TrimPrefix(k, namespace+"/"+pod+"/"))
			}
		}
		sort.Strings(names)
		return "", nil, fmt.Errorf("container %q is not in pod %s/%s: choose one of [%s]", container, namespace, pod, strings.Join(names, " "))
	}
	if previous {
		if ref.Previous == "" {
			return "", nil, fmt.Errorf("previous terminated container %q in pod %s/%s not found", container, namespace, pod)
		}
		return ref.Previous, func() bool { return false }, nil
	}
	if ref.Current == "" {
		return "", nil, fmt.Errorf("container %q in pod %s/%s has not started yet", container, namespace, pod)
	}
	id := ref.CurrentID
	running := func() bool {
		cur := a.View().Logs[namespace+"/"+pod+"/"+container]
		return cur.CurrentID == id && cur.Running
	}
	return ref.Current, running, nil
}

// broadcast wakes every waiter at once: a channel closed and replaced on fire.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
	}
	b.ch = make(chan struct{})
}

// RuntimeReady reports whether the container runtime answered the last
// read of its state (the node's Ready condition follows it).
func (a *Agent) RuntimeReady() bool { return a.View().RuntimeReady }

// Changed returns a channel closed at the next published change.
func (a *Agent) Changed() <-chan struct{} { return a.changed.wait() }

// EventsChanged returns a channel closed at the next recorded event.
func (a *Agent) EventsChanged() <-chan struct{} { return a.events.Changed() }
