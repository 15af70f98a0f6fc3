package planner

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/podruntime"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// This file holds the node-local ConfigMaps and Secrets: which pods a change
// of them concerns (decided again at once: a pod waiting for an object starts
// when it appears), the volume files of running pods brought up to date in
// place (Plan.Refresh), the objects a job's pod needs, the event of a pod
// replaced because the data its environment uses changed, warnings about
// files as events, and what readers see of the objects.

// Warning is about a manifest file that works but should be fixed.
type Warning struct {
	File, Message string
}

// ConfigView is a config object as readers see it, or one that pods
// reference and the node does not have (Config nil).
type ConfigView struct {
	Key manifest.ConfigKey
	// Config is shared with the planner (a Secret with its data): never
	// modify it, and never show a Secret's values.
	Config *manifest.Config
	// UsedBy are the pods that reference it, "namespace/name", sorted.
	UsedBy []string
}

// Reasons of the events this file records.
const (
	// ReasonConfigChanged: a pod is replaced because the config data its
	// identity covers changed.
	ReasonConfigChanged = "ConfigChanged"
	// ReasonInsecureFile: a manifest file holding Secrets may be read by
	// group or others.
	ReasonInsecureFile = "InsecureSecretFile"
)

// applyConfigs records the snapshot's config objects and warnings, and
// returns the keys of the objects that appeared, went away or whose data
// changed.
func (s *State) applyConfigs(snap Snapshot, out *Output) map[manifest.ConfigKey]bool {
	next := make(map[manifest.ConfigKey]*manifest.Config, len(snap.Configs))
	for _, c := range snap.Configs {
		next[c.Key()] = c
	}
	changed := map[manifest.ConfigKey]bool{}
	for k, c := range next {
		if old, ok := s.configs[k]; !ok || old.Hash != c.Hash {
			changed[k] = true
		}
	}
	for k := range s.configs {
		if _, ok := next[k]; !ok {
			changed[k] = true
		}
	}
	if len(changed) > 0 || !slices.EqualFunc(s.configList, snap.Configs, func(a, b *manifest.Config) bool { return a == b }) {
		out.Changed = true
	}
	s.configs, s.configList = next, snap.Configs
	for _, w := range snap.Warnings {
		if !slices.Contains(s.warnings, w) {
			out.Events = append(out.Events, Event{
				Ref:  corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: s.cfg.NodeName},
				Type: corev1.EventTypeWarning, Reason: ReasonInsecureFile, Message: w.Message,
			})
		}
	}
	if !slices.Equal(s.warnings, snap.Warnings) {
		s.warnings = snap.Warnings
		out.Changed = true
	}
	return changed
}

// markConfigUsers has every pod that references a changed object decided
// again now: one waiting for it starts (no back-off to wait out), one
// mounting it gets its files refreshed.
func (s *State) markConfigUsers(changed map[manifest.ConfigKey]bool) {
	if len(changed) == 0 {
		return
	}
	for _, p := range s.pods {
		if p.desired == nil {
			continue
		}
		for _, k := range manifest.ConfigKeys(p.desired) {
			if changed[k] {
				p.dirty = true
				break
			}
		}
	}
}

// replacementEvents records, for each new pod of the snapshot that replaces
// a pod of the same file and content, because config data its identity
// covers changed, an event on the new pod saying so.
func (s *State) replacementEvents(snap Snapshot, changed map[manifest.ConfigKey]bool, out *Output) {
	old := map[string]*pod{}
	for _, p := range s.pods {
		if p.desired != nil {
			old[p.desired.Namespace+"/"+p.desired.Name] = p
		}
	}
	for _, d := range snap.Pods {
		if s.pods[string(d.Pod.UID)] != nil {
			continue
		}
		o := old[d.Pod.Namespace+"/"+d.Pod.Name]
		if o == nil || o.file != d.File || o.desired.Annotations[wellknown.AnnotationConfigDataHash] == d.Pod.Annotations[wellknown.AnnotationConfigDataHash] ||
			!manifest.SameManifest(o.desired, d.Pod) {
			continue
		}
		var names []string
		for _, r := range manifest.FixedConfigRefs(d.Pod) {
			if n := r.Key.String(); changed[r.Key] && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		what := "the data of " + strings.Join(names, ", ")
		if len(names) == 0 {
			what = "the config data"
		}
		uses := "its environment uses (env and envFrom are fixed when a container starts)"
		if manifest.RestartsOnConfigChange(d.Pod) {
			uses = "it uses (its environment, and its volumes with " + wellknown.AnnotationRestartOnConfigChange + ")"
		}
		out.Events = append(out.Events, podEvent(d.Pod, "", corev1.EventTypeNormal, ReasonConfigChanged,
			fmt.Sprintf("Replacing the pod: %s changed, which %s; the new pod starts once the old one has stopped", what, uses)))
	}
}

// volumeState is the version of the config data a pod's configMap, secret
// and projected volumes show, and their names. ok is false when a required
// object is missing: the files cannot be written now (they keep what they
// show, as the kubelet's).
func (s *State) volumeState(pod *corev1.Pod) (version string, volumes []string, ok bool) {
	var b strings.Builder
	for _, r := range manifest.ConfigRefs(pod) {
		if r.Volume == "" {
			continue
		}
		if !slices.Contains(volumes, r.Volume) {
			volumes = append(volumes, r.Volume)
		}
		c := s.configs[r.Key]
		switch {
		case c != nil:
			fmt.Fprintf(&b, "%s=%s;", r.Key, c.Hash)
		case r.Optional:
			fmt.Fprintf(&b, "%s absent;", r.Key)
		default:
			return "", volumes, false
		}
	}
	return b.String(), volumes, true
}

// refresh adds to a running pod's plan the volumes whose files show other
// data than the objects have now. A pod whose sandbox is new (or going)
// gets its volumes written when its containers start.
func (s *State) refresh(p *pod, plan *podplan.Plan) {
	if p.desired == nil || plan.CreateSandbox || plan.KillPod || plan.RemovePod || plan.StopSandbox || plan.DeadlineExceeded {
		return
	}
	sb := p.rt.LatestSandbox()
	if sb == nil || !sb.Ready || !hasContainerIn(p.rt.Containers, sb.ID) {
		return // nothing of the pod's on the host to update yet
	}
	version, volumes, ok := s.volumeState(p.desired)
	if !ok || len(volumes) == 0 || version == p.volumesAt {
		return
	}
	plan.Refresh = volumes
}

func hasContainerIn(cs []podruntime.Container, sandboxID string) bool {
	for _, c := range cs {
		if c.SandboxID == sandboxID {
			return true
		}
	}
	return false
}

// jobConfigs are the objects of the node a pod references (those it has).
func (s *State) jobConfigs(pod *corev1.Pod) map[manifest.ConfigKey]*manifest.Config {
	if pod == nil {
		return nil
	}
	var out map[manifest.ConfigKey]*manifest.Config
	for _, k := range manifest.ConfigKeys(pod) {
		if c := s.configs[k]; c != nil {
			if out == nil {
				out = map[manifest.ConfigKey]*manifest.Config{}
			}
			out[k] = c
		}
	}
	return out
}

// dispatchedConfigs notes the version of config data a job writes into the
// pod's volumes (a start prepares them all, a refresh rewrites them).
func (s *State) dispatchedConfigs(p *pod) {
	p.jobVolumes = ""
	if p.desired == nil || (len(p.plan.Start) == 0 && len(p.plan.Refresh) == 0) {
		return
	}
	if version, volumes, ok := s.volumeState(p.desired); ok && len(volumes) > 0 {
		p.jobVolumes = version
	}
}

// configViews lists the node's config objects, and those its pods
// reference but it does not have, with the pods that use each.
func (s *State) configViews() []ConfigView {
	users := map[manifest.ConfigKey][]string{}
	for _, p := range s.pods {
		if p.desired == nil {
			continue
		}
		for _, k := range manifest.ConfigKeys(p.desired) {
			users[k] = append(users[k], p.desired.Namespace+"/"+p.desired.Name)
		}
	}
	var out []ConfigView
	for _, c := range s.configList {
		u := users[c.Key()]
		sort.Strings(u)
		out = append(out, ConfigView{Key: c.Key(), Config: c, UsedBy: u})
		delete(users, c.Key())
	}
	for k, u := range users {
		sort.Strings(u)
		out = append(out, ConfigView{Key: k, UsedBy: u})
	}
	sort.SliceStable(out, func(i, j int) bool { return manifest.CompareConfigKeys(out[i].Key, out[j].Key) < 0 })
	return out
}
