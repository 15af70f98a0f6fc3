package planner

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/podruntime"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// This file holds start order: a pod whose manifest says
// `ballast.dev/after: etcd,other` starts no container while a pod of this
// node named so (by manifest name) is not Ready. A name that matches no pod
// keeps it waiting, with a warning; pods that wait for each other in a cycle
// are a manifest problem of their files. A dependency that becomes unready
// later stops nothing that runs.

// ReasonWaitingForDependency is the waiting reason of a container held back
// by its pod's ballast.dev/after.
const ReasonWaitingForDependency = "WaitingForDependency"

// order is the dependency graph of the desired pods, built for one decision pass.
type order struct {
	node   string
	byName map[string][]*pod // desired pods by manifest name
	// cycle names the cycle a pod's manifest name is in.
	cycle map[string]string
}

// after returns the manifest names a pod waits for.
func after(pod *corev1.Pod) []string {
	v, ok := pod.Annotations[wellknown.AnnotationAfter]
	if !ok {
		return nil
	}
	var out []string
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func (s *State) manifestName(pod *corev1.Pod) string {
	return strings.TrimSuffix(pod.Name, "-"+s.cfg.NodeName)
}

func (s *State) order() *order {
	o := &order{node: s.cfg.NodeName, byName: map[string][]*pod{}, cycle: map[string]string{}}
	edges := map[string][]string{}
	for _, uid := range s.sortedUIDs() {
		p := s.pods[uid]
		if p.desired == nil {
			continue
		}
		name := s.manifestName(p.desired)
		o.byName[name] = append(o.byName[name], p)
		edges[name] = append(edges[name], after(p.desired)...)
	}
	// Depth-first search for cycles; each name in one is marked with it.
	const (
		unseen = iota
		onPath
		done
	)
	mark := map[string]int{}
	var path []string
	var visit func(n string)
	visit = func(n string) {
		mark[n] = onPath
		path = append(path, n)
		for _, d := range edges[n] {
			switch mark[d] {
			case unseen:
				if _, ok := edges[d]; ok {
					visit(d)
				}
			case onPath:
				i := len(path) - 1
				for path[i] != d {
					i--
				}
				cycle := strings.Join(append(append([]string{}, path[i:]...), d), " -> ")
				for _, m := range path[i:] {
					if _, ok := o.cycle[m]; !ok {
						o.cycle[m] = cycle
					}
				}
			}
		}
		path = path[:len(path)-1]
		mark[n] = done
	}
	names := make([]string, 0, len(edges))
	for n := range edges {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if mark[n] == unseen {
			visit(n)
		}
	}
	return o
}

// problems are the manifest files whose pods wait for each other in a cycle.
func (s *State) orderProblems(o *order) []Problem {
	var out []Problem
	for _, name := range sortedKeys(o.cycle) {
		for _, p := range o.byName[name] {
			out = append(out, Problem{File: p.file, Pods: []string{p.desired.Name},
				Message: fmt.Sprintf("%s: %s: the pods wait for each other in a cycle (%s); remove one of the names so that one can start first",
					p.file, wellknown.AnnotationAfter, o.cycle[name])})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}

// waitsFor says what a pod waits for before its containers may start, and
// the names that match no pod; "" when it may start.
func (o *order) waitsFor(p *pod) (why string, missing []string) {
	name := strings.TrimSuffix(p.desired.Name, "-"+o.node)
	if c, ok := o.cycle[name]; ok {
		return fmt.Sprintf("%s forms a cycle (%s): fix the manifests", wellknown.AnnotationAfter, c), nil
	}
	var notReady []string
	for _, dep := range after(p.desired) {
		deps := o.byName[dep]
		if len(deps) == 0 {
			missing = append(missing, dep)
			continue
		}
		for _, d := range deps {
			if !podReady(&d.status) {
				notReady = append(notReady, d.desired.Name)
			}
		}
	}
	switch {
	case len(missing) > 0:
		return fmt.Sprintf("waiting for %s (%s): no static pod of that name on this node", strings.Join(missing, ", "), wellknown.AnnotationAfter), missing
	case len(notReady) > 0:
		return fmt.Sprintf("waiting for %s to be Ready (%s)", strings.Join(notReady, ", "), wellknown.AnnotationAfter), nil
	}
	return "", nil
}

// holdBack takes the starts out of a pod's plan while it waits for other
// pods, and says so for every container that does not run.
func holdBack(plan *podplan.Plan, p *pod, why string) {
	if !plan.CreateSandbox && len(plan.Start) == 0 {
		return
	}
	plan.CreateSandbox, plan.Start = false, nil
	plan.Waiting = map[string]podruntime.Waiting{}
	for _, c := range append(append([]corev1.Container{}, p.desired.Spec.InitContainers...), p.desired.Spec.Containers...) {
		if cur := p.rt.Latest(c.Name); cur == nil || cur.State != podruntime.StateRunning {
			plan.Waiting[c.Name] = podruntime.Waiting{Reason: ReasonWaitingForDependency, Message: why}
		}
	}
}

// dependents marks dirty the pods that wait for a pod whose readiness changed.
func (s *State) wakeDependents(changed map[string]bool) bool {
	woke := false
	for _, p := range s.pods {
		if p.desired == nil {
			continue
		}
		for _, dep := range after(p.desired) {
			if changed[dep] && !p.dirty {
				p.dirty, woke = true, true
			}
		}
	}
	return woke
}
