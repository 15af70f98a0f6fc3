package bench

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The node agent benchmark's printout: every round, the phases of the
// Ballast node, the calls of the raw rungs, the idle figures, and one table
// of the figures next to the targets with the attribution ladder.

func (g *group) name() string {
	pods := "1 pod"
	if g.n > 1 {
		pods = fmt.Sprintf("%d pods", g.n)
	}
	return g.mode.String() + ", " + pods
}

// rung returns the measured rounds of ladder rung r, nil if g does not measure it.
func (g *group) rung(r int) []roundResult {
	for k, x := range g.rungs {
		if x == r {
			return g.rounds[k]
		}
	}
	return nil
}

func (g *group) median(r int) time.Duration { return median(totals(g.rung(r))) }

func (g *group) floor() time.Duration   { return g.median(0) }
func (g *group) ballast() time.Duration { return g.median(len(ladder) - 1) }
func (g *group) ratio() float64         { return ms(g.ballast()) / ms(g.floor()) }

func (g *group) target() float64 {
	if g.n > 1 {
		return targetRatio20
	}
	return targetRatio1
}

func (r *results) print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	host, _ := os.Hostname()
	p("\n==== Ballast node agent benchmark ====\n")
	p("date %s, host %s, %d CPUs, %s, %s; load average before %s, after %s\n", r.when, host, runtime.NumCPU(), r.runtimeVersion, runtime.Version(), r.loadBefore, r.loadAfter)
	p("written -> serving: from the rename of the manifest file(s) (raw and executor: the first call) to the last pod answering GET / with 200\n")

	for _, g := range r.groups {
		var busy []float64
		for _, rs := range g.rounds {
			for _, x := range rs {
				busy = append(busy, x.busyBefore*100)
			}
		}
		slices.Sort(busy)
		counts := fmt.Sprint(len(g.rounds[0]))
		if n := len(g.rounds[len(g.rounds)/2]); n != len(g.rounds[0]) {
			counts = fmt.Sprintf("%d for the floor and the Ballast node, %d for the rungs between", len(g.rounds[0]), n)
		}
		p("\n%s: rounds (ms; medians of %s; warm-up not counted); CPU busy in the 0.5 s before a round: median %.0f%%, max %.0f%%\n",
			g.name(), counts, medianF(busy), busy[len(busy)-1])
		for k, ri := range g.rungs {
			rs := g.rounds[k]
			var parts []string
			var stalls int64
			var acpu, ccpu []float64
			for _, x := range rs {
				parts = append(parts, fmt.Sprintf("%.0f", ms(x.total)))
				stalls += x.stalls
				acpu, ccpu = append(acpu, x.agentCPU), append(ccpu, x.containerdCPU)
			}
			p("  %-50s %8.1f  [%s]  CPU ms: agent %.0f, containerd %.0f; slow GETs %d\n",
				ladder[ri].name, ms(median(totals(rs))), strings.Join(parts, " "), medianF(acpu), medianF(ccpu), stalls)
			for _, x := range rs {
				for _, s := range x.slow {
					p("      slow GET: %s\n", s)
				}
			}
		}
		if g.n == 1 || *fullLadder {
			p("  calls of the raw rungs (medians over pods, then rounds; ms): %s; then from the start: %s\n", strings.Join(callNames[:], ", "), strings.Join(rawPhaseNames, ", "))
			for k, ri := range g.rungs {
				if ladder[ri].exec || ladder[ri].node {
					continue
				}
				var cells []string
				for c := range callNames {
					var ds []time.Duration
					for _, x := range g.rounds[k] {
						ds = append(ds, x.calls[c])
					}
					if d := median(ds); d > 0 {
						cells = append(cells, fmt.Sprintf("%6.1f", ms(d)))
					} else {
						cells = append(cells, "     -")
					}
				}
				for i := range rawPhaseNames {
					cells = append(cells, fmt.Sprintf("%7.1f", ms(phaseMedian(g.rounds[k], i))))
				}
				p("    %-48s %s\n", ladder[ri].name, strings.Join(cells, " "))
			}
		}
		node := g.rung(len(ladder) - 1)
		var parts []string
		for i, n := range balPhaseNames {
			parts = append(parts, fmt.Sprintf("%s %.1f", n, ms(phaseMedian(node, i))))
		}
		p("  Ballast node phases (ms from the start): %s; serving (last) %.1f\n", strings.Join(parts, "; "), ms(g.ballast()))
	}

	if *idlePods > 0 {
		i := r.idle
		p("\nidle, %d pods (all serving %.0f ms after the files were written; then %s settle, %s measured)\n", *idlePods, ms(i.startAll), idleSettle, i.window.Round(time.Millisecond))
		p("  agent CPU %.3f%% of a core (utime+stime; by schedstat %.3f%%), RSS %.1f MB (%.1f MB right after the pods started)\n", i.cpuPct, i.cpuPctSched, i.rssMB, i.rssStartMB)
		p("  agent wakeups %.1f/s, read syscalls %.1f/s, write syscalls %.1f/s, log lines %d; containerd CPU %.3f%% of a core\n", i.wakeupsPerSec, i.syscrPerSec, i.syscwPerSec, len(i.logLines), i.containerdCPUPct)
		for _, l := range i.logLines {
			p("    agent log: %s\n", l)
		}
		var busy []string
		var busyMs, restMs float64
		for _, x := range i.bins {
			if x.cpuMs >= 2 {
				busy = append(busy, fmt.Sprintf("+%.1fs %.1fms", x.at.Seconds(), x.cpuMs))
				busyMs += x.cpuMs
			} else {
				restMs += x.cpuMs
			}
		}
		p("  agent CPU by 100 ms bin: %.1f ms in %d bins of >= 2 ms [%s], %.1f ms in the other %d bins\n", busyMs, len(busy), strings.Join(busy, ", "), restMs, len(i.bins)-len(busy))
	}
	r.table(w)
}

// table prints the figures next to the targets, with the
// attribution: the floor, then what each rung adds to the rung measured
// before it, then Ballast / floor.
func (r *results) table(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	const cell = "%16s"
	p("\n==== pod start against the honest floor (medians, ms; each row adds to the one above) ====\n")
	p("%-50s", "")
	for _, g := range r.groups {
		p(cell, g.mode.String())
	}
	p("\n%-50s", "")
	for _, g := range r.groups {
		p(cell, strings.TrimPrefix(g.name(), g.mode.String()+", "))
	}
	p("\n")
	for ri, rg := range ladder {
		p("%-50s", rg.name)
		for _, g := range r.groups {
			switch {
			case g.rung(ri) == nil:
				p(cell, "·")
			case ri == 0:
				p(cell, fmt.Sprintf("%.1f", ms(g.floor())))
			default:
				prev := 0
				for _, x := range g.rungs {
					if x < ri {
						prev = x
					}
				}
				p(cell, fmt.Sprintf("%+.1f", ms(g.median(ri)-g.median(prev))))
			}
		}
		p("\n")
	}
	p("%-50s", "= Ballast node")
	for _, g := range r.groups {
		p(cell, fmt.Sprintf("%.1f", ms(g.ballast())))
	}
	p("\n%-50s", "Ballast node / floor")
	for _, g := range r.groups {
		p(cell, fmt.Sprintf("%.2fx", g.ratio()))
	}
	p("\n%-50s", "target")
	for _, g := range r.groups {
		p(cell, fmt.Sprintf("<= %.2fx %s", g.target(), verdict(g.ratio() <= g.target())))
	}
	p("\n(·: not measured for 20 pods; there a row covers the rows since the last one measured)\n")
	p("(the hello pods' sandbox seccomp profile, as Ballast sets it: %s)\n", strings.Join(r.sandboxSeccomp, ", "))
	if *idlePods > 0 {
		i := r.idle
		p("%-50s %10.3f  target <= 0.2  %s\n", fmt.Sprintf("idle CPU, %d pods (%% of a core)", *idlePods), i.cpuPct, verdict(i.cpuPct <= targetIdleCPU))
		p("%-50s %10.1f  target <= 40   %s\n", fmt.Sprintf("idle RSS, %d pods (MB)", *idlePods), i.rssMB, verdict(i.rssMB <= targetIdleRSS))
	}
	p("(kubelet 1.32 on this kind of machine: ~1.5x the floor for 1 pod, ~1.65x for 20; ~1%% CPU, 80-90 MB idle)\n\n")
}

func (r *results) metrics(b *testing.B) {
	b.ReportMetric(0, "ns/op") // the run's length means nothing
	for _, g := range r.groups {
		key := strings.ReplaceAll(g.mode.String(), " network", "net") + fmt.Sprintf("_%dpod", g.n)
		b.ReportMetric(ms(g.floor()), "floor_"+key+"_ms")
		b.ReportMetric(ms(g.ballast()), "ballast_"+key+"_ms")
		b.ReportMetric(g.ratio(), "ratio_"+key)
	}
	if *idlePods > 0 {
		b.ReportMetric(r.idle.cpuPct, "idle_cpu_pct")
		b.ReportMetric(r.idle.rssMB, "idle_rss_MB")
	}
}
