package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/testutil"
	"github.com/ballast-dev/ballast/internal/wellknown"
	"github.com/ballast-dev/ballast/test/realkube"
)

// What the safe-changes issue (11) asks of a cold start of a chain and of a
// bad edit, next to the kubelet 1.32.
const (
	targetChainOverhead = time.Second // Ballast: all serving <= the chain's readiness times + this
	targetChainSpeedup  = 3.0         // the kubelet's time / Ballast's
	targetRevertSlack   = 2 * time.Second
)

// The method.
var (
	chainRounds = 3
	// The first pod listens after chainListen and its readiness probe
	// starts at chainFirst: it becomes Ready at that probe, 3 s after it
	// starts (a listen at the very second a probe runs would make it 3 or
	// 4 s by a coin flip).
	chainFirst    = 3 * time.Second
	chainListen   = 2500 * time.Millisecond
	chainTimeout  = 3 * time.Minute  // the kubelet's crash back-off doubles from 10 s
	editDeadline  = 10 * time.Second // ballast.dev/rollout-deadline of the edited pod
	editSettle    = time.Second      // ballast.dev/rollout-settle
	editWindow    = editDeadline + 20*time.Second
	chainPodNames = []string{"chain-a", "chain-b", "chain-c"}
)

type chainRound struct {
	total time.Duration           // manifests written -> all three serve
	pods  map[string]*podTimeline // by manifest name
	err   error
	// calls: Ballast's runtime calls for each pod, from its log (when the
	// sandbox call started and returned, when the container started).
	calls map[string]string
	// timedOut: not all served within chainTimeout (total is then that).
	timedOut bool
}

type editResult struct {
	// back: the edit -> the old pod serving again (0 when it never
	// stopped); down: how long the port did not answer.
	back, down time.Duration
	never      bool   // not serving again within editWindow
	state      string // what the agent reports of the pod at the end
}

type orderResults struct {
	run   *sideBySide
	chain map[string][]chainRound // by contender
	edit  map[string]editResult
}

var (
	orderOnce   sync.Once
	orderReport *orderResults
)

// BenchmarkStartOrder measures, side by side on one containerd, Ballast's
// `ballast.dev/after` against the real kubelet 1.32 (which has no start
// order): a cold start of a chain of three host-network pods in which each
// exits unless the previous one answers (the first becomes Ready 3 s after
// it starts), until all three serve; and a bad edit (an image tag that
// does not exist) until the old pod serves again. b.N is ignored
// (-benchtime 1x). It never fails on a missed target.
func BenchmarkStartOrder(b *testing.B) {
	orderOnce.Do(func() { orderReport = runOrder(b) })
	if orderReport == nil {
		b.Fatal("the start order benchmark did not complete")
	}
	r := orderReport
	b.ReportMetric(0, "ns/op")
	bal, kub := r.chainMedian("Ballast"), r.chainMedian("kubelet")
	b.ReportMetric(bal.Seconds(), "chain_ballast_s")
	b.ReportMetric(kub.Seconds(), "chain_kubelet_s")
	b.ReportMetric(r.readinessMedian().Seconds(), "chain_readiness_s")
	if bal > 0 {
		b.ReportMetric(kub.Seconds()/bal.Seconds(), "chain_speedup_x")
	}
	b.ReportMetric(r.edit["Ballast"].back.Seconds(), "edit_ballast_back_s")
	kubeletBack := 0.0
	if !r.edit["kubelet"].never {
		kubeletBack = r.edit["kubelet"].back.Seconds()
	}
	b.ReportMetric(kubeletBack, "edit_kubelet_back_s")
}

func runOrder(b testing.TB) *orderResults {
	s := startSideBySide(b, "order")
	ports := map[string]int{}
	for _, n := range append(slices.Clone(chainPodNames), "edit") {
		ports[n] = realkube.FreePort(b)
	}
	r := &orderResults{run: s, chain: map[string][]chainRound{}, edit: map[string]editResult{}}
	s.each(b, func(c *contender) {
		for i := range chainRounds {
			cr := runChain(c, i, s.image, ports)
			// A kubelet still in crash back-off after chainTimeout is a
			// figure (at least that long); Ballast not serving is a bug.
			if cr.err != nil && (c.ballast || !cr.timedOut) {
				b.Fatalf("%s, chain round %d: %v", c.name, i+1, cr.err)
			}
			r.chain[c.name] = append(r.chain[c.name], cr)
			s.clear(b, c)
		}
		er, err := runEdit(c, s.image, ports["edit"])
		if err != nil {
			b.Fatalf("%s, bad edit: %v", c.name, err)
		}
		r.edit[c.name] = er
		s.clear(b, c)
	})
	r.print(os.Stdout)
	return r
}

// ---- the pods ----

// chainManifest is one pod of the chain: host network on its own port, a
// readiness probe every second (chain-a's from 3 s after it starts, when it
// has listened for 0.5 s); chain-b needs chain-a and chain-c needs
// chain-b (NEEDS: it exits 1 at start unless that port answers), and on
// Ballast waits for it (ballast.dev/after). The kubelet gets the same pod
// without the annotation (it has no start order). Each round's pods have
// names of their own (roundName): a kubelet holds a new pod back while one
// of the same name terminates, and retries only ~10 s later, which would
// measure the previous round's cleanup.
func chainManifest(round, i int, image string, ports map[string]int, ballast bool) string {
	name := roundName(round, chainPodNames[i])
	var ann, env, delay string
	if i == 0 {
		env = fmt.Sprintf("    - {name: SERVE_AFTER, value: %q}\n", chainListen)
		delay = fmt.Sprintf("      initialDelaySeconds: %d\n", int(chainFirst.Seconds()))
	} else {
		prev := chainPodNames[i-1]
		env = fmt.Sprintf("    - {name: NEEDS, value: \"127.0.0.1:%d\"}\n", ports[prev])
		if ballast {
			ann = fmt.Sprintf("  annotations:\n    %s: %s\n", wellknown.AnnotationAfter, roundName(round, prev))
		}
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
%[2]sspec:
  hostNetwork: true
  containers:
  - name: app
    image: %[3]s
    env:
    - {name: PORT, value: "%[4]d"}
    - {name: POD_NAME, value: %[1]s}
%[5]s    readinessProbe:
      httpGet: {path: /healthz, port: %[4]d}
      periodSeconds: 1
%[6]s`, name, ann, image, ports[chainPodNames[i]], env, delay)
}

// editManifest is the pod that is edited: host network, a readiness probe
// every second, a short rollout deadline and settle time on Ballast.
func editManifest(image string, port int, ballast bool) string {
	ann := ""
	if ballast {
		ann = fmt.Sprintf("  annotations:\n    %s: %s\n    %s: %s\n",
			wellknown.AnnotationRolloutDeadline, editDeadline, wellknown.AnnotationRolloutSettle, editSettle)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: edit
%[1]sspec:
  hostNetwork: true
  containers:
  - name: app
    image: %[2]s
    env:
    - {name: PORT, value: "%[3]d"}
    - {name: POD_NAME, value: edit}
    readinessProbe:
      httpGet: {path: /healthz, port: %[3]d}
      periodSeconds: 1
`, ann, image, port)
}

// ---- the chain ----

// runChain writes the chain's three manifests at once into the
// contender's directory (its runtime empty) and waits until all three
// serve.
func runChain(c *contender, round int, image string, ports map[string]int) chainRound {
	files := map[string]string{}
	watched := map[string]int{}
	for i, name := range chainPodNames {
		files[roundName(round, name)] = chainManifest(round, i, image, ports, c.ballast)
		watched[roundName(round, name)] = ports[name]
	}
	// The port watch starts with the clock: no earlier answer is possible.
	t0 := time.Now()
	w := watchTimelines(c, t0, watched, 10*time.Millisecond, 20*time.Millisecond)
	if _, err := placeManifests(c.manifests, files); err != nil {
		w.close()
		return chainRound{err: err}
	}
	err := w.waitServed(chainTimeout)
	pods := w.close()
	cr := chainRound{pods: map[string]*podTimeline{}, err: err}
	for _, name := range chainPodNames {
		pt := pods[roundName(round, name)]
		cr.pods[name] = pt
		cr.total = max(cr.total, pt.served)
		if pt.served < 0 {
			cr.timedOut, cr.total = true, chainTimeout
		}
	}
	if c.agent != nil {
		cr.calls = runtimeCalls(c.agent, t0, round)
	}
	return cr
}

// roundName is a pod's manifest name in a round.
func roundName(round int, name string) string { return fmt.Sprintf("r%d-%s", round, name) }

// runtimeCalls reads from Ballast's log (each line timed as it arrived)
// when it called RunPodSandbox for each chain pod, when that returned and
// when the container started, in s from t0, by name in the chain.
func runtimeCalls(a *agent, t0 time.Time, round int) map[string]string {
	out := map[string]string{}
	for _, l := range a.since(t0) {
		f := logFields(l.text)
		name := strings.TrimSuffix(strings.TrimPrefix(f["pod"], "default/"), "-"+nodeName)
		name = strings.TrimPrefix(name, roundName(round, ""))
		at := l.at.Sub(t0).Seconds()
		switch f["msg"] {
		case "pod sandbox started":
			took, _ := time.ParseDuration(f["took"])
			out[name] += fmt.Sprintf(" sandbox %.2f-%.2f", at-took.Seconds(), at)
		case "container started":
			out[name] += fmt.Sprintf(" started %.2f", at)
		}
	}
	return out
}

// readiness is the sum of the readiness times the chain waits for, as the
// node reported them (a running container -> Ready): chain-a's and
// chain-b's. Whatever else a chain's start takes is the node's own.
func (cr chainRound) readiness() time.Duration {
	var sum time.Duration
	for _, name := range chainPodNames[:len(chainPodNames)-1] {
		pt := cr.pods[name]
		if pt.running < 0 || pt.ready < 0 {
			return -1
		}
		sum += pt.ready - pt.running
	}
	return sum
}

// ---- the bad edit ----

// runEdit runs the edit pod until it is its file's last good pod (on
// Ballast: Ready for its settle time, recorded; on the kubelet: serving and
// Ready), then replaces the file by one whose image tag does not exist, and
// watches the port: when it stops answering and when it answers again.
func runEdit(c *contender, image string, port int) (editResult, error) {
	t0, err := placeManifests(c.manifests, map[string]string{"edit": editManifest(image, port, c.ballast)})
	if err != nil {
		return editResult{}, err
	}
	w := watchTimelines(c, t0, map[string]int{"edit": port}, 10*time.Millisecond, 20*time.Millisecond)
	err = w.waitServed(time.Minute)
	w.close()
	if err != nil {
		return editResult{}, err
	}
	if err := waitGood(c, filepath.Join(c.manifests, "edit.yaml")); err != nil {
		return editResult{}, err
	}

	bad := strings.Replace(image, ":v1", ":does-not-exist", 1)
	t0, err = placeManifests(c.manifests, map[string]string{"edit": editManifest(bad, port, c.ballast)})
	if err != nil {
		return editResult{}, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var res editResult
	var downAt time.Duration = -1
	for {
		_, err := get(addr)
		now := time.Since(t0)
		if err != nil && downAt < 0 {
			downAt = now
		}
		if err == nil && downAt >= 0 {
			res.back, res.down = now, now-downAt
			break
		}
		if now > editWindow {
			if downAt < 0 {
				// Never out of service: the old pod kept serving.
				break
			}
			res.never = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// What the agent shows of the pod: on the kubelet, at the end of the
	// window; on Ballast, once it reports the pod serving again as
	// running (it may answer a moment before the agent has seen it start).
	err = testutil.PollEvery(50*time.Millisecond, 5*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		l, err := c.pods(ctx)
		if err != nil {
			return err
		}
		for i := range l.Items {
			if p := &l.Items[i]; p.Name == "edit-"+c.node && len(p.Status.ContainerStatuses) > 0 {
				res.state = describeState(p, p.Status.ContainerStatuses[0])
				if res.never || p.Status.ContainerStatuses[0].State.Running != nil {
					return nil
				}
			}
		}
		return fmt.Errorf("edit-%s: %s", c.node, res.state)
	})
	if err != nil && res.state == "" {
		return res, fmt.Errorf("reading the pods after the edit: %w", err)
	}
	return res, nil
}

// waitGood waits until Ballast has recorded the file's pod as its last good
// one (its rollout record has it), or, on the kubelet, returns: it has no
// such notion.
func waitGood(c *contender, file string) error {
	if !c.ballast {
		return nil
	}
	return testutil.PollEvery(50*time.Millisecond, time.Minute, func() error {
		recs, err := os.ReadDir(filepath.Join(c.dataDir, "rollouts"))
		if err != nil {
			return err
		}
		for _, e := range recs {
			var rec planner.Rollout
			if b, err := os.ReadFile(filepath.Join(c.dataDir, "rollouts", e.Name())); err == nil && json.Unmarshal(b, &rec) == nil && rec.File == file && rec.Good != nil {
				return nil
			}
		}
		return fmt.Errorf("no rollout record with a last good pod for %s", file)
	})
}

// ---- the report ----

func (r *orderResults) chainMedian(who string) time.Duration {
	var ds []time.Duration
	for _, cr := range r.chain[who] {
		ds = append(ds, cr.total)
	}
	return median(ds)
}

// readinessMedian is the median of Ballast's rounds' readiness sums.
func (r *orderResults) readinessMedian() time.Duration {
	var ds []time.Duration
	for _, cr := range r.chain["Ballast"] {
		ds = append(ds, cr.readiness())
	}
	return median(ds)
}

func (r *orderResults) print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	sec := func(d time.Duration) string {
		if d < 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", d.Seconds())
	}
	r.run.header(w, "Start order and bad edits: Ballast vs the kubelet (issue 11)")
	p("\n")
	p("cold start of a chain: %s listens after %s, Ready at its first probe %s after it starts; %s exits unless %s answers, %s unless %s does;\n",
		chainPodNames[0], chainListen, chainFirst, chainPodNames[1], chainPodNames[0], chainPodNames[2], chainPodNames[1])
	p("host network, a readiness probe every 1 s; Ballast waits with %s, the kubelet restarts with crash back-off.\n", wellknown.AnnotationAfter)
	p("s from the manifests written: running / Ready (as the agent reports, polled every 20 ms) / serving (GET every 10 ms), restarts\n")
	for _, who := range []string{"Ballast", "kubelet"} {
		for i, cr := range r.chain[who] {
			var parts []string
			for _, name := range chainPodNames {
				pt := cr.pods[name]
				parts = append(parts, fmt.Sprintf("%s %s/%s/%s r%d", strings.TrimPrefix(name, "chain-"), sec(pt.running), sec(pt.ready), sec(pt.served), pt.restarts))
			}
			more := " "
			if cr.timedOut {
				more = ">"
			}
			p("  %-8s round %d: all serving %s%6.2f s   [%s]\n", who, i+1, more, cr.total.Seconds(), strings.Join(parts, "  "))
			if len(cr.calls) > 0 {
				var calls []string
				for _, name := range chainPodNames {
					calls = append(calls, strings.TrimPrefix(name, "chain-")+":"+cr.calls[name])
				}
				p("           runtime calls (its log): %s\n", strings.Join(calls, ";  "))
			}
		}
	}
	bal, kub, ready := r.chainMedian("Ballast"), r.chainMedian("kubelet"), r.readinessMedian()
	p("  median: Ballast %.2f s, kubelet %.2f s\n", bal.Seconds(), kub.Seconds())
	p("  the readiness the chain waits for (Ballast, running -> Ready of %s and %s): median %.2f s\n", chainPodNames[0], chainPodNames[1], ready.Seconds())
	okOverhead := ready >= 0 && bal <= ready+targetChainOverhead
	p("  goal: Ballast within %s of those readiness times: %.2f s over: %s\n", targetChainOverhead, (bal - ready).Seconds(), verdict(okOverhead))
	speedup := 0.0
	if bal > 0 {
		speedup = kub.Seconds() / bal.Seconds()
	}
	p("  goal: Ballast at least %.0fx faster than the kubelet: %.1fx: %s\n\n", targetChainSpeedup, speedup, verdict(speedup >= targetChainSpeedup))

	p("bad edit: the serving pod's image tag replaced by one that does not exist (Ballast: %s %s, %s %s)\n",
		wellknown.AnnotationRolloutDeadline, editDeadline, wellknown.AnnotationRolloutSettle, editSettle)
	for _, who := range []string{"Ballast", "kubelet"} {
		e := r.edit[who]
		switch {
		case e.never:
			p("  %-8s old pod serving again: never (watched %s); it shows: %s\n", who, editWindow, e.state)
		case e.back == 0:
			p("  %-8s the old pod never stopped serving; it shows: %s\n", who, e.state)
		default:
			p("  %-8s old pod serving again %.2f s after the edit (out of service %.2f s); it shows: %s\n", who, e.back.Seconds(), e.down.Seconds(), e.state)
		}
	}
	be := r.edit["Ballast"]
	p("  goal: Ballast serving again within the deadline + %s (%s): %s\n\n", targetRevertSlack, editDeadline+targetRevertSlack,
		verdict(!be.never && be.back <= editDeadline+targetRevertSlack))
}
