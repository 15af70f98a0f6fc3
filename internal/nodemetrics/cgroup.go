package nodemetrics

import (
	"context"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/cgroups"
)

// Cgroups reads containers' figures from their cgroups (*cgroups.FS).
type Cgroups interface {
	DirsOf(pid int) (cgroups.Dirs, error)
	Read(cgroups.Dirs) (cgroups.Usage, error)
}

// cgroupStats reads running containers' figures from their cgroups, as
// cAdvisor does for the kubelet: a few small file reads per container
// instead of the runtime's ListContainerStats (about 1 ms per container on
// containerd 1.6). Each container's cgroup directories are found once,
// from its PID (one verbose ContainerStatus call), and kept while the
// container runs. A container whose cgroup cannot be found or read is
// left to the caller, which asks the runtime for it.
type cgroupStats struct {
	cg Cgroups
	rt Runtime

	mu   sync.Mutex
	dirs map[string]cgroupDirs // by container ID
}

type cgroupDirs struct {
	dirs cgroups.Dirs
	ok   bool // false: not found for this container; the runtime's stats serve it
	// at is when a search that found nothing ran; it is tried again
	// after findAgain (the runtime may have been briefly unavailable).
	at time.Time
}

// findAgain is how long a container whose cgroup was not found is served
// from the runtime's stats before the search is tried again.
const findAgain = time.Minute

// read returns the figures of the containers ids it could read from their
// cgroups, as CRI stats stamped now; the others are left out.
func (c *cgroupStats) read(ctx context.Context, ids []string, now time.Time) map[string]*runtimeapi.ContainerStats {
	out := make(map[string]*runtimeapi.ContainerStats, len(ids))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirs == nil {
		c.dirs = map[string]cgroupDirs{}
	}
	live := make(map[string]bool, len(ids))
	for _, id := range ids {
		live[id] = true
		d, known := c.dirs[id]
		if !known || (!d.ok && now.Sub(d.at) >= findAgain) {
			d = c.find(ctx, id, now)
			if ctx.Err() != nil {
				return out // not this container's fault: try again next scrape
			}
			c.dirs[id] = d
		}
		if !d.ok {
			continue
		}
		u, err := c.cg.Read(d.dirs)
		if err != nil {
			// Exited since the agent last looked, or the cgroup moved:
			// find it again next time.
			delete(c.dirs, id)
			continue
		}
		out[id] = usageStats(id, u, now)
	}
	for id := range c.dirs {
		if !live[id] {
			delete(c.dirs, id)
		}
	}
	return out
}

// find locates container id's cgroup from its first process. The
// directories must name the container (containerd's /k8s.io/<id>,
// systemd's cri-containerd-<id>.scope): a PID reused by another process
// since the runtime answered, or a runtime in another PID namespace, then
// never passes another cgroup off as the container's.
func (c *cgroupStats) find(ctx context.Context, id string, now time.Time) cgroupDirs {
	pid, err := c.rt.ContainerPID(ctx, id)
	if err != nil {
		return cgroupDirs{at: now}
	}
	d, err := c.cg.DirsOf(pid)
	if err != nil || !strings.Contains(d.CPU, id) || !strings.Contains(d.Memory, id) {
		return cgroupDirs{at: now}
	}
	return cgroupDirs{dirs: d, ok: true}
}

// usageStats is a cgroup reading as the runtime's CRI stats would give it.
func usageStats(id string, u cgroups.Usage, at time.Time) *runtimeapi.ContainerStats {
	ts := at.UnixNano()
	v := func(x uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: x} }
	mem := &runtimeapi.MemoryUsage{Timestamp: ts, WorkingSetBytes: v(u.WorkingSet), UsageBytes: v(u.MemoryUsage),
		RssBytes: v(u.RSS), PageFaults: v(u.PageFaults), MajorPageFaults: v(u.MajorPageFaults)}
	if u.Limit > 0 {
		mem.AvailableBytes = v(u.Limit - min(u.WorkingSet, u.Limit))
	}
	return &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: id},
		Cpu:        &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: v(u.CPUNanos)},
		Memory:     mem,
	}
}
