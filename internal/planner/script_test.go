package planner_test

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/podplan"
	"github.com/ballast-dev/ballast/internal/podruntime"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/*.txt")

// TestScripts runs the scripts under testdata/. Each is a sequence of cases:
//
//	# comment
//	command arg arg
//	----
//	expected output (one line per action, event or fact)
//	<blank line>
//
// The commands feed the planner inputs with a fake clock and a simulated
// runtime that carries out jobs as a real one would; see (*script).run for
// each command. `go test ./internal/planner -update` rewrites the expected
// output.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

type scriptCase struct {
	line     int
	cmd      string
	args     []string
	body     []string
	expected string
}

func parseScript(t *testing.T, path string) []scriptCase {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var cases []scriptCase
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		c := scriptCase{line: i + 1}
		fields, err := splitArgs(l)
		if err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		c.cmd, c.args = fields[0], fields[1:]
		for i++; i < len(lines) && lines[i] != "----"; i++ {
			c.body = append(c.body, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: %q has no ---- line", path, c.line, l)
		}
		var exp []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			exp = append(exp, lines[i])
		}
		c.expected = strings.Join(exp, "\n")
		cases = append(cases, c)
	}
	return cases
}

// splitArgs splits on spaces, keeping "double quoted" words whole.
func splitArgs(l string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted, have := false, false
	for _, r := range l {
		switch {
		case r == '"':
			quoted, have = !quoted, true
		case r == ' ' && !quoted:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if have {
		out = append(out, cur.String())
	}
	return out, nil
}

func runScript(t *testing.T, path string) {
	cases := parseScript(t, path)
	s := newScript()
	var rewritten strings.Builder
	data, _ := os.ReadFile(path)
	lines := strings.Split(string(data), "\n")
	prev := 0
	for _, c := range cases {
		got, err := s.run(c)
		if err != nil {
			// A script mistake: shown as the output, so it fails the
			// comparison (and -update shows where it went wrong).
			got = "error: " + err.Error()
		}
		got = strings.TrimRight(got, "\n")
		if *update {
			// Copy everything up to the ---- line, then the new output.
			end := c.line - 1 + len(c.body) + 1
			rewritten.WriteString(strings.Join(lines[prev:end+1], "\n") + "\n")
			if got != "" {
				rewritten.WriteString(got + "\n")
			}
			prev = end + 1
			for prev < len(lines) && lines[prev] != "" {
				prev++
			}
			continue
		}
		if got != c.expected {
			t.Errorf("%s:%d: %s %s\n--- got:\n%s\n--- want:\n%s", path, c.line, c.cmd, strings.Join(c.args, " "), got, c.expected)
		}
	}
	if *update {
		rewritten.WriteString(strings.Join(lines[prev:], "\n"))
		if err := os.WriteFile(path, []byte(rewritten.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// script is a planner driven by a fake clock, and a simulated runtime that
// carries out the jobs the planner hands out.
type script struct {
	s      *planner.State
	cfg    planner.Config
	now    time.Time
	start  time.Time
	pods   map[string]*corev1.Pod // by label
	labels map[string]string      // UID -> label
	world  map[string]*podruntime.Pod
	jobs   map[string]planner.Job // in flight, by UID
	// applied holds the Done of jobs carried out in the runtime but not yet
	// reported (`apply`), with the read the job made then.
	applied map[string]planner.Done
	// saved holds the rollout records on "disk", by file.
	saved map[string]planner.Rollout
	seq   int
	// configs are the ConfigMaps and Secrets defined with `object`, by
	// label; alias maps the label of a pod whose identity covers config
	// data (see snapshot) to its UID now.
	configs map[string][]*manifest.Config
	alias   map[string]string
}

func newScript() *script {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &script{
		cfg: planner.Config{NodeName: "node", HostIP: "10.0.0.1", Backoff: podplan.DefaultBackoff()},
		now: start, start: start,
		pods: map[string]*corev1.Pod{}, labels: map[string]string{},
		world: map[string]*podruntime.Pod{}, jobs: map[string]planner.Job{}, applied: map[string]planner.Done{},
		saved: map[string]planner.Rollout{}, configs: map[string][]*manifest.Config{}, alias: map[string]string{},
	}
}

func (sc *script) planner() *planner.State {
	if sc.s == nil {
		sc.s = planner.New(sc.cfg)
	}
	return sc.s
}

func kv(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		m[k] = v
	}
	return m
}

func (sc *script) run(c scriptCase) (string, error) {
	a := kv(c.args)
	switch c.cmd {
	case "config":
		if sc.s != nil {
			return "", errors.New("config must come before the first step")
		}
		for k, v := range a {
			switch k {
			case "workers":
				sc.cfg.Workers, _ = strconv.Atoi(v)
			default:
				d, err := time.ParseDuration(v)
				if err != nil {
					return "", fmt.Errorf("%s: %v", k, err)
				}
				switch k {
				case "relist":
					sc.cfg.Relist = d
				case "retry":
					sc.cfg.RetryInitial = d
				case "retry-max":
					sc.cfg.RetryMax = d
				case "backoff":
					sc.cfg.Backoff.BackoffInitial = d
				case "backoff-max":
					sc.cfg.Backoff.BackoffMax = d
				case "pull-backoff":
					sc.cfg.Backoff.PullBackoffInitial = d
				case "pull-backoff-max":
					sc.cfg.Backoff.PullBackoffMax = d
				default:
					return "", fmt.Errorf("unknown config %s", k)
				}
			}
		}
		return "", nil
	case "pod":
		return "", sc.definePod(c.args[0], c.args[1:], c.body)
	case "object":
		// object LABEL, with the YAML of ConfigMaps and Secrets as its body.
		f, err := manifest.ParseFile("/m/"+c.args[0]+".yaml", []byte(strings.Join(c.body, "\n")), "node")
		if err != nil {
			return "", err
		}
		sc.configs[c.args[0]] = f.Configs
		return "", nil
	case "configs":
		return sc.dumpConfigs(), nil
	case "snapshot":
		// snapshot [POD...] [+OBJECT...] [FILE:MESSAGE...] [warn=FILE:MESSAGE]
		var snap planner.Snapshot
		if why, ok := a["unavailable"]; ok {
			return sc.step(planner.Snapshot{Unavailable: why, Dir: "/m"}), nil
		}
		objs := map[manifest.ConfigKey]*manifest.Config{}
		for _, arg := range c.args {
			if label, ok := strings.CutPrefix(arg, "+"); ok {
				cs, ok := sc.configs[label]
				if !ok {
					return "", fmt.Errorf("no object %q defined", label)
				}
				for _, c := range cs {
					objs[c.Key()] = c
					snap.Configs = append(snap.Configs, c)
				}
			}
		}
		slices.SortFunc(snap.Configs, func(a, b *manifest.Config) int { return manifest.CompareConfigKeys(a.Key(), b.Key()) })
		for _, arg := range c.args {
			if strings.HasPrefix(arg, "+") {
				continue
			}
			if w, ok := strings.CutPrefix(arg, "warn="); ok {
				file, msg, _ := strings.Cut(w, ":")
				snap.Warnings = append(snap.Warnings, planner.Warning{File: "/m/" + file, Message: msg})
				continue
			}
			if file, msg, ok := strings.Cut(arg, ":"); ok {
				// FILE:MESSAGE names a broken file; FILE:MESSAGE#POD,POD the pods it keeps.
				pr := planner.Problem{File: "/m/" + file, Message: msg}
				if m, pods, ok := strings.Cut(msg, "#"); ok {
					pr.Message = m
					for _, p := range strings.Split(pods, ",") {
						pr.Pods = append(pr.Pods, p+"-node")
					}
				}
				snap.Problems = append(snap.Problems, pr)
				continue
			}
			pod := sc.pods[arg]
			if pod == nil {
				return "", fmt.Errorf("no pod %q defined", arg)
			}
			// As the source does: the identity covers the config data.
			pod = manifest.WithConfigs(pod, func(k manifest.ConfigKey) *manifest.Config { return objs[k] })
			sc.labelDerived(arg, pod)
			snap.Pods = append(snap.Pods, planner.Desired{Pod: pod, File: pod.Annotations[wellknown.AnnotationManifest]})
		}
		return sc.step(snap), nil
	case "relist":
		if _, ok := a["fail"]; ok {
			return sc.step(planner.Relisted{Err: errors.New("runtime down")}), nil
		}
		pods := map[string]*podruntime.Pod{}
		for uid, rt := range sc.world {
			pods[uid] = clone(rt)
		}
		return sc.step(planner.Relisted{Pods: pods}), nil
	case "tick":
		d, err := time.ParseDuration(c.args[0])
		if err != nil {
			return "", err
		}
		sc.now = sc.now.Add(d)
		return sc.step(planner.Tick{}), nil
	case "apply":
		uid := sc.uid(c.args[0])
		d, err := sc.apply(uid, a)
		if err != nil {
			return "", err
		}
		sc.applied[uid] = d
		return "", nil
	case "done":
		uid := sc.uid(c.args[0])
		d, ok := sc.applied[uid]
		if !ok {
			var err error
			if d, err = sc.apply(uid, a); err != nil {
				return "", err
			}
		}
		delete(sc.applied, uid)
		return sc.step(d), nil
	case "exit":
		return sc.exit(c.args[0], a)
	case "observed":
		uid := sc.uid(c.args[0])
		return sc.step(planner.Observed{UID: uid, Pod: clone(sc.world[uid])}), nil
	case "probe":
		label, ctr, _ := strings.Cut(c.args[0], "/")
		uid := sc.uid(label)
		cur := sc.world[uid].Latest(ctr)
		if cur == nil {
			return "", fmt.Errorf("no container %s in %s", ctr, label)
		}
		in := planner.Probed{UID: uid, Container: ctr, ContainerID: cur.ID}
		switch a["kind"] {
		case "liveness":
			in.Kind = podruntime.Liveness
		case "readiness":
			in.Kind = podruntime.Readiness
		case "startup":
			in.Kind = podruntime.Startup
		default:
			return "", fmt.Errorf("probe kind %q", a["kind"])
		}
		_, in.Success = a["success"]
		_, in.Exhausted = a["exhausted"]
		in.Output, in.Failed = a["failed"], a["failed"] != ""
		return sc.step(in), nil
	case "images-arrived":
		return sc.step(planner.ImagesArrived{}), nil
	case "reconnected":
		return sc.step(planner.Reconnected{}), nil
	case "status":
		return sc.status(c.args[0]), nil
	case "world":
		return sc.dumpWorld(), nil
	case "state":
		return sc.dumpState(), nil
	case "restart-agent":
		// A new agent: a fresh planner over the same runtime, given the
		// rollout records saved so far.
		sc.s, sc.jobs, sc.applied = nil, map[string]planner.Job{}, map[string]planner.Done{}
		var rs []planner.Rollout
		for _, f := range slices.Sorted(maps.Keys(sc.saved)) {
			rs = append(rs, sc.saved[f])
		}
		return sc.step(planner.Restored{Rollouts: rs}), nil
	}
	return "", fmt.Errorf("unknown command %q", c.cmd)
}

// definePod makes a pod from a manifest body, or from a short form:
// pod NAME [file=F] [image=I] [restart=P] [containers=a,b] [init=x] [sidecar=s]
// [deadline=N] [selector=k=v] [v=N]. Its label is NAME (the pod is NAME-node).
func (sc *script) definePod(label string, args, body []string) error {
	a := kv(args)
	file := a["file"]
	if file == "" {
		file = label + ".yaml"
	}
	var y string
	if len(body) > 0 {
		y = strings.Join(body, "\n")
	} else {
		name := label
		if n := a["name"]; n != "" {
			name = n
		}
		image := a["image"]
		if image == "" {
			image = "app:v1"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n", name)
		if r := a["restart"]; r != "" {
			fmt.Fprintf(&b, "  restartPolicy: %s\n", r)
		}
		if d := a["deadline"]; d != "" {
			fmt.Fprintf(&b, "  activeDeadlineSeconds: %s\n", d)
		}
		if sel := a["selector"]; sel != "" {
			k, v, _ := strings.Cut(sel, ":")
			fmt.Fprintf(&b, "  nodeSelector:\n    %s: %q\n", k, v)
		}
		ctr := func(name string, extra string) {
			fmt.Fprintf(&b, "  - name: %s\n    image: %s\n%s", name, image, extra)
			if v := a["v"]; v != "" {
				fmt.Fprintf(&b, "    env:\n    - name: VERSION\n      value: %q\n", v)
			}
		}
		if a["init"] != "" || a["sidecar"] != "" {
			b.WriteString("  initContainers:\n")
			for _, n := range splitList(a["init"]) {
				ctr(n, "")
			}
			for _, n := range splitList(a["sidecar"]) {
				ctr(n, "    restartPolicy: Always\n")
			}
		}
		b.WriteString("  containers:\n")
		names := splitList(a["containers"])
		if len(names) == 0 {
			names = []string{"app"}
		}
		for _, n := range names {
			ctr(n, "")
		}
		y = b.String()
	}
	pods, err := manifest.Parse("/m/"+file, []byte(y), "node")
	if err != nil {
		return err
	}
	if len(pods) != 1 {
		return fmt.Errorf("%d pods", len(pods))
	}
	// As the source does: the time the node first saw the file.
	pods[0].Annotations[wellknown.AnnotationConfigSeen] = sc.now.Format(time.RFC3339Nano)
	sc.pods[label] = pods[0]
	sc.labels[string(pods[0].UID)] = label
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// labelDerived labels a pod whose identity covers config data: the first
// UID of label is label, each next one label with one more prime (').
func (sc *script) labelDerived(label string, pod *corev1.Pod) {
	uid := string(pod.UID)
	if _, ok := sc.labels[uid]; ok {
		return
	}
	name := label
	for {
		if _, taken := sc.alias[name]; !taken {
			break
		}
		name += "'"
	}
	sc.alias[name] = uid
	sc.labels[uid] = name
}

func (sc *script) uid(label string) string {
	if uid, ok := sc.alias[label]; ok {
		return uid
	}
	if p := sc.pods[label]; p != nil {
		return string(p.UID)
	}
	return label
}

func (sc *script) label(uid string) string {
	if l, ok := sc.labels[uid]; ok {
		return l
	}
	return uid
}

func (sc *script) step(in planner.Input) string {
	out := sc.planner().Step(sc.now, in)
	var b strings.Builder
	if out.Relist {
		b.WriteString("relist\n")
	}
	for _, o := range out.Observe {
		if o.ExitedID == "" {
			fmt.Fprintf(&b, "observe %s\n", sc.label(o.UID))
		} else {
			fmt.Fprintf(&b, "observe %s (exited %s)\n", sc.label(o.UID), o.ExitedID)
		}
	}
	for _, uid := range out.Cancel {
		fmt.Fprintf(&b, "cancel %s\n", sc.label(uid))
	}
	for _, j := range out.Jobs {
		sc.jobs[j.UID] = j
		d := describePlan(j.Plan)
		if len(j.Configs) > 0 {
			var names []string
			for k := range j.Configs {
				names = append(names, strings.ToLower(string(k.Kind))+"/"+k.Name)
			}
			sort.Strings(names)
			d += " (configs " + strings.Join(names, ",") + ")"
		}
		fmt.Fprintf(&b, "job %s: %s\n", sc.label(j.UID), d)
	}
	for _, e := range out.Events {
		obj := strings.TrimSuffix(e.Ref.Name, "-node")
		if e.Ref.FieldPath != "" {
			obj += "/" + strings.TrimSuffix(strings.TrimPrefix(e.Ref.FieldPath, "spec.containers{"), "}")
		}
		fmt.Fprintf(&b, "event %s %s %s: %s\n", obj, e.Type, e.Reason, e.Message)
	}
	for _, r := range out.Saves {
		if r.Empty() {
			delete(sc.saved, r.File)
		} else {
			sc.saved[r.File] = r
		}
		fmt.Fprintf(&b, "save %s: %s\n", strings.TrimPrefix(r.File, "/m/"), sc.describeRollout(r))
	}
	for _, st := range out.Started {
		fmt.Fprintf(&b, "started %s %s after its file was seen\n", sc.label(st.UID), st.Since)
	}
	if !out.WakeAt.IsZero() {
		fmt.Fprintf(&b, "wake +%s\n", out.WakeAt.Sub(sc.now))
	}
	if out.Changed {
		b.WriteString("changed\n")
	}
	return b.String()
}

func describePlan(p podplan.Plan) string {
	var parts []string
	for _, k := range p.KillContainers {
		parts = append(parts, fmt.Sprintf("kill=%s(grace %d)", k.Name, k.GraceSeconds))
	}
	if p.KillPod {
		parts = append(parts, "kill-pod")
	}
	if p.RemovePod {
		parts = append(parts, "remove-pod")
	}
	if p.CreateSandbox {
		parts = append(parts, "create-sandbox")
	}
	for _, s := range p.Start {
		d := "start=" + s.Name
		if s.RestartCount > 0 {
			d += fmt.Sprintf("(restart %d, backoff %s)", s.RestartCount, s.Backoff)
		}
		parts = append(parts, d)
	}
	if p.StopSandbox {
		parts = append(parts, "stop-sandbox")
	}
	if n := len(p.RemoveContainers); n > 0 {
		parts = append(parts, fmt.Sprintf("remove-containers=%d", n))
	}
	if n := len(p.RemoveSandboxes); n > 0 {
		parts = append(parts, fmt.Sprintf("remove-sandboxes=%d", n))
	}
	if len(p.Refresh) > 0 {
		parts = append(parts, "refresh="+strings.Join(p.Refresh, ","))
	}
	return strings.Join(parts, " ")
}

// steps maps the waiting reasons a script names to the failed step.
var steps = map[string]planner.Step{
	"ContainerCreating":          planner.StepSandbox,
	"CreateContainerConfigError": planner.StepConfig,
	"CreateContainerError":       planner.StepCreate,
	"RunContainerError":          planner.StepStart,
	"PostStartHookError":         planner.StepPostStart,
}

// apply carries out the job in flight for a pod in the simulated runtime and
// returns its Done. Arguments: fail=MSG (nothing happened; with noread, not
// even the job's read of the pod), waiting=CTR:REASON
// (that container could not start), pullfail=IMAGE (its pull failed),
// interrupt=CTR:created|canceled (the agent died while starting it).
func (sc *script) apply(uid string, a map[string]string) (planner.Done, error) {
	j, ok := sc.jobs[uid]
	if !ok {
		return planner.Done{}, fmt.Errorf("no job in flight for %s", sc.label(uid))
	}
	delete(sc.jobs, uid)
	d := planner.Done{UID: uid}
	if msg, ok := a["fail"]; ok {
		d.Err = errors.New(msg)
		d.Runtime = clone(sc.world[uid])
		if d.Runtime == nil {
			d.Runtime = &podruntime.Pod{UID: uid}
		}
		if _, ok := a["noread"]; ok {
			d.Runtime = nil // the job's own read failed too
		}
		return d, nil
	}
	failCtr, failReason, _ := strings.Cut(a["waiting"], ":")
	rt := sc.world[uid]
	if rt == nil {
		rt = &podruntime.Pod{UID: uid, Name: j.Runtime.Name, Namespace: j.Runtime.Namespace}
		sc.world[uid] = rt
	}
	stop := func(id string) {
		for i := range rt.Containers {
			if c := &rt.Containers[i]; c.ID == id && c.State == podruntime.StateRunning {
				c.State, c.ExitCode, c.FinishedAt, c.Reason = podruntime.StateExited, 143, sc.now, "Error"
			}
		}
	}
	p := j.Plan
	for _, k := range p.KillContainers {
		stop(k.ID)
	}
	if p.KillPod {
		for _, c := range rt.Containers {
			stop(c.ID)
		}
		for i := range rt.Sandboxes {
			rt.Sandboxes[i].Ready = false
		}
	}
	if p.RemovePod {
		delete(sc.world, uid)
		rt = &podruntime.Pod{UID: uid}
	}
	if p.CreateSandbox {
		sc.seq++
		sb := podruntime.Sandbox{ID: fmt.Sprintf("sb%d", sc.seq), Ready: true, CreatedAt: sc.now, Pod: j.Desired}
		if old := rt.LatestSandbox(); old != nil {
			sb.Attempt = old.Attempt + 1
		}
		rt.Sandboxes = append([]podruntime.Sandbox{sb}, rt.Sandboxes...)
	}
	for _, s := range p.Start {
		if s.Name == failCtr {
			d.Failed = map[string]planner.Failure{s.Name: {Step: steps[failReason], Message: "simulated"}}
			d.Err = errors.New("starting " + s.Name)
			continue
		}
		var image string
		for _, c := range append(append([]corev1.Container{}, j.Desired.Spec.InitContainers...), j.Desired.Spec.Containers...) {
			if c.Name == s.Name {
				image = c.Image
			}
		}
		if image == a["pullfail"] {
			d.Pulls = map[string]*podplan.PullFailure{image: {Image: image, At: sc.now, Reason: "ErrImagePull", Err: "failed to pull " + image}}
			continue
		}
		sc.seq++
		c := podruntime.Container{ID: fmt.Sprintf("c%d", sc.seq), SandboxID: rt.LatestSandbox().ID, Name: s.Name,
			State: podruntime.StateRunning, CreatedAt: sc.now, StartedAt: sc.now, Image: image,
			RestartCount: s.RestartCount, Backoff: s.Backoff, BackoffSince: s.BackoffSince}
		if ictr, how, _ := strings.Cut(a["interrupt"], ":"); ictr == s.Name {
			// The agent died during this start: created and never started,
			// or StartContainer cut off by the agent's own context.
			c.StartedAt = time.Time{}
			c.State = podruntime.StateCreated
			if how == "canceled" {
				c.State, c.ExitCode, c.FinishedAt = podruntime.StateExited, 128, sc.now
				c.Reason, c.Message = "StartError", "failed to start containerd task: context canceled: unknown"
			}
		}
		rt.Containers = append([]podruntime.Container{c}, rt.Containers...)
		d.PullsOK = append(d.PullsOK, image)
	}
	if p.StopSandbox {
		for i := range rt.Sandboxes {
			rt.Sandboxes[i].Ready = false
		}
	}
	drop := map[string]bool{}
	for _, id := range append(append([]string{}, p.RemoveContainers...), p.RemoveSandboxes...) {
		drop[id] = true
	}
	rt.Containers = filter(rt.Containers, func(c podruntime.Container) bool { return !drop[c.ID] })
	rt.Sandboxes = filter(rt.Sandboxes, func(s podruntime.Sandbox) bool { return !drop[s.ID] })
	if rt.Empty() {
		delete(sc.world, uid)
	}
	d.Runtime = clone(rt)
	return d, nil
}

func filter[T any](s []T, keep func(T) bool) []T {
	var out []T
	for _, v := range s {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

// exit ends a running container (or, with no /CTR, the pod's sandbox) in the
// simulated runtime and feeds the exit. code=N sets the exit code (default 1);
// quiet loses the event.
func (sc *script) exit(target string, a map[string]string) (string, error) {
	label, ctr, _ := strings.Cut(target, "/")
	rt := sc.world[sc.uid(label)]
	if rt == nil {
		return "", fmt.Errorf("%s has nothing in the runtime", label)
	}
	code := 1
	if v, ok := a["code"]; ok {
		code, _ = strconv.Atoi(v)
	}
	if ctr == "" {
		sb := rt.LatestSandbox()
		sb.Ready = false
		for i := range rt.Containers {
			if c := &rt.Containers[i]; c.SandboxID == sb.ID && c.State == podruntime.StateRunning {
				c.State, c.ExitCode, c.FinishedAt = podruntime.StateExited, 137, sc.now
			}
		}
		return sc.step(planner.Exited{ID: sb.ID}), nil
	}
	c := rt.Latest(ctr)
	if c == nil || c.State != podruntime.StateRunning {
		return "", fmt.Errorf("%s is not running", target)
	}
	c.State, c.ExitCode, c.FinishedAt = podruntime.StateExited, int32(code), sc.now
	if code != 0 {
		c.Reason = "Error"
	} else {
		c.Reason = "Completed"
	}
	if _, quiet := a["quiet"]; quiet {
		return "", nil // the event was lost
	}
	return sc.step(planner.Exited{ID: c.ID}), nil
}

func clone(rt *podruntime.Pod) *podruntime.Pod {
	if rt == nil {
		return nil
	}
	c := *rt
	c.Sandboxes = append([]podruntime.Sandbox(nil), rt.Sandboxes...)
	c.Containers = append([]podruntime.Container(nil), rt.Containers...)
	return &c
}

// status prints what readers see of a pod: phase, reason, and each container.
func (sc *script) status(label string) string {
	uid := sc.uid(label)
	for _, p := range sc.planner().View().Pods {
		if string(p.UID) != uid {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "phase %s", p.Status.Phase)
		if p.Status.Reason != "" {
			fmt.Fprintf(&b, " (%s)", p.Status.Reason)
		}
		if msg := p.Annotations[wellknown.AnnotationManifestError]; msg != "" {
			fmt.Fprintf(&b, " manifest-error %q", msg)
		}
		if msg := p.Annotations[wellknown.AnnotationRolloutReverted]; msg != "" {
			fmt.Fprintf(&b, " reverted %q", msg)
		}
		b.WriteString("\n")
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			fmt.Fprintf(&b, "  %s: ", cs.Name)
			switch {
			case cs.State.Running != nil:
				b.WriteString("running")
			case cs.State.Terminated != nil:
				fmt.Fprintf(&b, "terminated %s (exit %d)", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
			case cs.State.Waiting != nil:
				fmt.Fprintf(&b, "waiting %s", cs.State.Waiting.Reason)
				if cs.State.Waiting.Message != "" {
					fmt.Fprintf(&b, ": %s", cs.State.Waiting.Message)
				}
			}
			fmt.Fprintf(&b, " restarts=%d ready=%v\n", cs.RestartCount, cs.Ready)
		}
		return b.String()
	}
	return "not in view"
}

func (sc *script) dumpWorld() string {
	var lines []string
	for uid, rt := range sc.world {
		var parts []string
		for _, sb := range rt.Sandboxes {
			st := "notready"
			if sb.Ready {
				st = "ready"
			}
			parts = append(parts, fmt.Sprintf("%s(%s)", sb.ID, st))
		}
		for _, c := range rt.Containers {
			d := fmt.Sprintf("%s:%s(%s", c.Name, c.ID, c.State)
			if c.State == podruntime.StateExited {
				d += fmt.Sprintf(" %d", c.ExitCode)
			}
			parts = append(parts, d+")")
		}
		lines = append(lines, sc.label(uid)+": "+strings.Join(parts, " "))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// dumpConfigs prints the config objects readers see, and who uses them.
func (sc *script) dumpConfigs() string {
	var lines []string
	for _, c := range sc.planner().View().Configs {
		what := "missing"
		if c.Config != nil {
			what = "keys " + strings.Join(c.Config.Keys(), ",")
		}
		lines = append(lines, fmt.Sprintf("%s: %s, used by %s", c.Key, what, strings.Join(c.UsedBy, ",")))
	}
	for _, w := range sc.planner().View().Warnings {
		lines = append(lines, fmt.Sprintf("warning %s: %s", w.File, w.Message))
	}
	return strings.Join(lines, "\n")
}

func (sc *script) dumpState() string {
	var lines []string
	for uid, l := range sc.planner().Lifecycle() {
		lines = append(lines, sc.label(uid)+": "+l.String())
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func (sc *script) describeRollout(r planner.Rollout) string {
	if r.Empty() {
		return "forget"
	}
	var parts []string
	if r.Good != nil {
		parts = append(parts, "good="+sc.label(string(r.Good.UID)))
	}
	if r.Candidate != "" {
		parts = append(parts, fmt.Sprintf("candidate=%s until +%s", sc.label(r.Candidate), r.Deadline.Sub(sc.now)))
	}
	if r.Rejected != "" {
		parts = append(parts, fmt.Sprintf("rejected=%s (%s)", sc.label(r.Rejected), r.Reason))
	}
	return strings.Join(parts, " ")
}
