package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/realkube"
)

// The method of the pod start comparison with the kubelet.
var (
	startRounds1, startRounds20 = 5, 3
	startTimeout                = 2 * time.Minute
)

type podStartResults struct {
	run *sideBySide
	// rounds by contender and pod count: manifests written -> all serving
	rounds map[string]map[int][]time.Duration
}

var (
	podStartOnce   sync.Once
	podStartReport *podStartResults
)

// BenchmarkPodStartVsKubelet records, side by side on one containerd, the
// time from writing N static pod manifests at once to every container
// serving, for the real kubelet 1.32 (standalone) and `ballast node`, for
// 1 and 20 host-network pods (each the hello image on a port of its own,
// polled with GET / on 127.0.0.1 from the clock's start: the same
// observation for both, asking nothing of either agent). For the record
// (the node issue, 8): BenchmarkNodeAgent holds Ballast's figures against
// the raw CRI floor. b.N is ignored (-benchtime 1x).
func BenchmarkPodStartVsKubelet(b *testing.B) {
	podStartOnce.Do(func() { podStartReport = runPodStart(b) })
	if podStartReport == nil {
		b.Fatal("the pod start comparison did not complete")
	}
	r := podStartReport
	b.ReportMetric(0, "ns/op")
	for _, n := range []int{1, 20} {
		bal, kub := median(r.rounds["Ballast"][n]), median(r.rounds["kubelet"][n])
		b.ReportMetric(ms(bal), fmt.Sprintf("ballast_%dpods_ms", n))
		b.ReportMetric(ms(kub), fmt.Sprintf("kubelet_%dpods_ms", n))
		if bal > 0 {
			b.ReportMetric(ms(kub)/ms(bal), fmt.Sprintf("kubelet_over_ballast_%dpods_x", n))
		}
	}
}

func runPodStart(b testing.TB) *podStartResults {
	s := startSideBySide(b, "podstart")
	ports := make([]int, 20)
	for i := range ports {
		ports[i] = realkube.FreePort(b)
	}
	r := &podStartResults{run: s, rounds: map[string]map[int][]time.Duration{}}
	s.each(b, func(c *contender) {
		r.rounds[c.name] = map[int][]time.Duration{}
		round := func(n, i int) time.Duration {
			d, err := startRound(c, s.image, ports[:n], i)
			if err != nil {
				b.Fatalf("%s, %d pods: %v", c.name, n, err)
			}
			s.clear(b, c)
			return d
		}
		round(1, 0) // warm-up, not counted: first sandbox, first container
		for i := range startRounds1 {
			r.rounds[c.name][1] = append(r.rounds[c.name][1], round(1, 1+i))
		}
		for i := range startRounds20 {
			r.rounds[c.name][20] = append(r.rounds[c.name][20], round(20, 1+startRounds1+i))
		}
	})
	r.print(os.Stdout)
	return r
}

// startManifest is a host-network hello pod on its own port.
func startManifest(name, image string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
spec:
  hostNetwork: true
  containers:
  - name: app
    image: %[2]s
    env:
    - {name: PORT, value: "%[3]d"}
    - {name: POD_NAME, value: %[1]s}
`, name, image, port)
}

// startRound writes len(ports) manifests at once and returns how long
// until every pod served. Each round's pods have names of their own (see
// chainManifest).
func startRound(c *contender, image string, ports []int, round int) (time.Duration, error) {
	files, watched := map[string]string{}, map[string]int{}
	for i, port := range ports {
		name := roundName(round, fmt.Sprintf("p%02d", i))
		files[name] = startManifest(name, image, port)
		watched[name] = port
	}
	every := 3 * time.Millisecond
	if len(ports) > 1 {
		every = 10 * time.Millisecond
	}
	t0 := time.Now()
	w := watchTimelines(c, t0, watched, every, 0)
	if _, err := placeManifests(c.manifests, files); err != nil {
		w.close()
		return 0, err
	}
	err := w.waitServed(startTimeout)
	var total time.Duration
	for _, pt := range w.close() {
		total = max(total, pt.served)
	}
	return total, err
}

func (r *podStartResults) print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	list := func(ds []time.Duration) string {
		var s []string
		for _, d := range ds {
			s = append(s, fmt.Sprintf("%.0f", ms(d)))
		}
		return strings.Join(s, " ")
	}
	r.run.header(w, "Pod start: Ballast vs the kubelet (for the record, issue 8)")
	p("host-network hello pods on ports of their own; manifests written at once -> every pod answers GET /\n")
	p("(polled every 3 ms for 1 pod, 10 ms for 20), after a warm-up round\n")
	for _, n := range []int{1, 20} {
		bal, kub := r.rounds["Ballast"][n], r.rounds["kubelet"][n]
		ratio := 0.0
		if median(bal) > 0 {
			ratio = ms(median(kub)) / ms(median(bal))
		}
		p("  %2d pod(s): Ballast median %7.1f ms [%s]; kubelet median %7.1f ms [%s]; kubelet/Ballast %.2fx\n",
			n, ms(median(bal)), list(bal), ms(median(kub)), list(kub), ratio)
	}
	p("\n")
}
