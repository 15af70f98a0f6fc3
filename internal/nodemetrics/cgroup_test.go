package nodemetrics

import (
	"errors"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/cgroups"
)

// fakeCgroups maps PIDs to directories and directories to figures.
type fakeCgroups struct {
	dirs  map[int]cgroups.Dirs
	usage map[string]cgroups.Usage // by memory directory
}

func (f *fakeCgroups) DirsOf(pid int) (cgroups.Dirs, error) {
	d, ok := f.dirs[pid]
	if !ok {
		return cgroups.Dirs{}, errors.New("no such process")
	}
	return d, nil
}

func (f *fakeCgroups) Read(d cgroups.Dirs) (cgroups.Usage, error) {
	u, ok := f.usage[d.Memory]
	if !ok {
		return cgroups.Usage{}, errors.New("no such cgroup")
	}
	return u, nil
}

func dirsFor(id string) cgroups.Dirs {
	return cgroups.Dirs{CPU: "/sys/fs/cgroup/cpuacct/k8s.io/" + id, Memory: "/sys/fs/cgroup/memory/k8s.io/" + id}
}

// TestSummaryFromCgroups: running containers are read from their cgroups,
// found once from their PID; the runtime's CRI stats serve only those whose
// cgroup cannot be found or read, and are not asked for at all when every
// container's cgroup reads.
func TestSummaryFromCgroups(t *testing.T) {
	cg := &fakeCgroups{
		dirs: map[int]cgroups.Dirs{101: dirsFor("c1"), 102: dirsFor("c2"), 666: dirsFor("someone-else")},
		usage: map[string]cgroups.Usage{
			dirsFor("c1").Memory: {CPUNanos: 8e9, MemoryUsage: 300 << 20, WorkingSet: 200 << 20, RSS: 150 << 20, Limit: 1 << 30},
			dirsFor("c2").Memory: {CPUNanos: 2e9, MemoryUsage: 50 << 20, WorkingSet: 40 << 20},
		},
	}
	_, _, rt, now, h := newEnv(t, cg)

	// c2's PID belongs to a process in another container's cgroup (a PID
	// reused since the runtime answered): never taken for c2's.
	rt.pids = map[string]int{"c1": 101, "c2": 666}
	s := summary(t, h)
	app, side := s.Pods[0].Containers[0], s.Pods[0].Containers[1]
	if *app.CPU.UsageCoreNanoSeconds != 8e9 || *app.Memory.WorkingSetBytes != 200<<20 ||
		*app.Memory.UsageBytes != 300<<20 || *app.Memory.RSSBytes != 150<<20 || *app.Memory.AvailableBytes != (1<<30)-(200<<20) {
		t.Errorf("app from its cgroup: cpu %+v memory %+v", app.CPU, app.Memory)
	}
	if !app.CPU.Time.Time.Equal(t0) {
		t.Errorf("a cgroup reading is stamped %v, want the scrape's time %v", app.CPU.Time, t0)
	}
	if *side.CPU.UsageCoreNanoSeconds != 1e9 || *side.Memory.WorkingSetBytes != 20<<20 {
		t.Errorf("side from the runtime's stats: cpu %+v memory %+v", side.CPU, side.Memory)
	}
	if rt.statsCalls != 1 {
		t.Errorf("ListContainerStats called %d times for the container without a cgroup, want 1", rt.statsCalls)
	}

	// The next scrape uses what was found: no new PID lookups, and the
	// container left to the runtime is not searched again for a while.
	pidCalls := rt.pidCalls
	s = summary(t, h)
	if rt.pidCalls != pidCalls || rt.statsCalls != 2 {
		t.Errorf("second scrape: %d more PID lookups (want 0), %d ListContainerStats calls (want 2)", rt.pidCalls-pidCalls, rt.statsCalls)
	}

	// After findAgain, c2 is searched again, now found: the runtime is no
	// longer asked, and the pod is its containers' sum.
	rt.pids["c2"] = 102
	*now = t0.Add(findAgain)
	s = summary(t, h)
	p := s.Pods[0]
	if rt.statsCalls != 2 {
		t.Errorf("ListContainerStats called although every cgroup reads (%d calls)", rt.statsCalls)
	}
	if *p.CPU.UsageCoreNanoSeconds != 10e9 || *p.Memory.WorkingSetBytes != 240<<20 {
		t.Errorf("pod from its containers' cgroups: cpu %+v memory %+v", p.CPU, p.Memory)
	}

	// c1 exits (its cgroup is gone) before the agent sees it: its figures
	// come from the runtime for this scrape and its cgroup is searched anew.
	delete(cg.usage, dirsFor("c1").Memory)
	rt.ctrs = []*runtimeapi.ContainerStats{ctrStats("c1", 9e9, 1<<20, *now)}
	pidCalls = rt.pidCalls
	s = summary(t, h)
	if got := *s.Pods[0].Containers[0].CPU.UsageCoreNanoSeconds; got != 9e9 {
		t.Errorf("app after its cgroup went: %v core-ns, want the runtime's 9e9", got)
	}
	*now = now.Add(time.Second)
	summary(t, h)
	if rt.pidCalls != pidCalls+1 {
		t.Errorf("a container whose cgroup went was searched %d times since, want 1", rt.pidCalls-pidCalls)
	}
}
