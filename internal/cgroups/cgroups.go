// Package cgroups reads a running container's CPU and memory figures
// straight from its control group, as cAdvisor does for the kubelet, so a
// metrics scrape costs a few small file reads per container instead of a
// round trip through the container runtime (containerd's
// ListContainerStats takes ~1 ms per container).
//
// It owns three things: finding where the cgroup filesystems are mounted
// (cgroup v1, v2, or the hybrid layout where v1 controllers sit beside an
// empty v2 tree), finding a process's cgroup directories from
// /proc/<pid>/cgroup, and reading and parsing the figures the kubelet's
// summary API reports (cumulative CPU time; memory usage, working set, RSS,
// page faults and the limit). The parsing is pure and table-tested; the
// file reads are at the edges (FS, Read).
package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// Usage is one container's figures, read at one instant.
type Usage struct {
	// CPUNanos is the CPU time used since the cgroup was made, in
	// core-nanoseconds.
	CPUNanos uint64
	// MemoryUsage is the memory charged to the cgroup (page cache included).
	MemoryUsage uint64
	// WorkingSet is usage minus inactive file pages: what the kubelet
	// evicts and `kubectl top` reports on.
	WorkingSet uint64
	// RSS is anonymous memory (v1 total_rss, v2 anon).
	RSS uint64
	// PageFaults and MajorPageFaults are the cgroup's fault counters.
	PageFaults, MajorPageFaults uint64
	// Limit is the memory limit in bytes; 0 when there is none.
	Limit uint64
}

// Dirs are a process's cgroup directories for the CPU and memory figures.
type Dirs struct {
	// CPU is the v1 cpuacct directory, or the v2 directory.
	CPU string
	// Memory is the v1 memory directory, or the v2 directory.
	Memory string
	// CPUv2, MemoryV2 say which layout each directory has (a hybrid host
	// could mix them).
	CPUv2, MemoryV2 bool
}

// mount is where one cgroup hierarchy is mounted.
type mount struct {
	point, root string // mount point; the hierarchy's path mounted there
	v2          bool
	opts        map[string]string // v1: the superblock options name its controllers
}

// FS finds and reads cgroups on this host.
type FS struct {
	proc   procfs.FS
	mounts []mount
}

// Open finds the host's cgroup mounts from /proc/self/mountinfo. It fails
// when neither the v1 cpuacct and memory hierarchies nor a v2 tree are
// mounted: callers then read figures some other way (the runtime's CRI
// stats).
func Open() (*FS, error) {
	proc, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, err
	}
	infos, err := proc.GetMounts()
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	ms := mountsOf(infos)
	if len(ms) == 0 {
		return nil, errors.New("no cgroup filesystem is mounted")
	}
	return &FS{proc: proc, mounts: ms}, nil
}

// mountsOf picks the cgroup mounts out of the mount table.
func mountsOf(infos []*procfs.MountInfo) []mount {
	var ms []mount
	for _, mi := range infos {
		switch mi.FSType {
		case "cgroup2":
			ms = append(ms, mount{point: mi.MountPoint, root: mi.Root, v2: true})
		case "cgroup":
			ms = append(ms, mount{point: mi.MountPoint, root: mi.Root, opts: mi.SuperOptions})
		}
	}
	return ms
}

// DirsOf returns the cgroup directories of the process pid.
func (fs *FS) DirsOf(pid int) (Dirs, error) {
	p, err := fs.proc.Proc(pid)
	if err != nil {
		return Dirs{}, err
	}
	cgs, err := p.Cgroups()
	if err != nil {
		return Dirs{}, fmt.Errorf("reading /proc/%d/cgroup: %w", pid, err)
	}
	return dirsOf(fs.mounts, cgs)
}

// dirsOf resolves a process's cgroups (its /proc/<pid>/cgroup lines)
// against the mounts: a v1 hierarchy carrying the controller when the
// process is in one and it is mounted, else the v2 tree.
func dirsOf(ms []mount, cgs []procfs.Cgroup) (Dirs, error) {
	var d Dirs
	var err error
	if d.CPU, d.CPUv2, err = dirOf(ms, cgs, "cpuacct"); err != nil {
		return Dirs{}, err
	}
	if d.Memory, d.MemoryV2, err = dirOf(ms, cgs, "memory"); err != nil {
		return Dirs{}, err
	}
	return d, nil
}

func dirOf(ms []mount, cgs []procfs.Cgroup, controller string) (string, bool, error) {
	v1 := func(m mount) bool { _, ok := m.opts[controller]; return !m.v2 && ok }
	for _, cg := range cgs {
		if cg.HierarchyID != 0 && slices.Contains(cg.Controllers, controller) {
			if dir, ok := mountedAt(ms, cg.Path, v1); ok {
				return dir, false, nil
			}
		}
	}
	for _, cg := range cgs {
		if cg.HierarchyID == 0 {
			if dir, ok := mountedAt(ms, cg.Path, func(m mount) bool { return m.v2 }); ok {
				return dir, true, nil
			}
		}
	}
	return "", false, fmt.Errorf("the %s controller of this cgroup is not mounted where it can be read", controller)
}

// mountedAt is the directory of the cgroup at path in the first mount
// that fits and shows that part of its hierarchy.
func mountedAt(ms []mount, p string, fits func(mount) bool) (string, bool) {
	for _, m := range ms {
		if fits(m) {
			if dir, ok := under(m, p); ok {
				return dir, true
			}
		}
	}
	return "", false
}

// under is the directory of the cgroup at path (relative to its
// hierarchy's root) in mount m, when m shows that part of the hierarchy.
func under(m mount, p string) (string, bool) {
	rel, ok := strings.CutPrefix(path.Clean(p), path.Clean(m.root))
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/") && m.root != "/") {
		return "", false
	}
	return filepath.Join(m.point, rel), true
}

// Read reads the figures of the cgroup at d.
func Read(d Dirs) (Usage, error) {
	var u Usage
	var err error
	if d.CPUv2 {
		b, rerr := os.ReadFile(filepath.Join(d.CPU, "cpu.stat"))
		if rerr != nil {
			return Usage{}, rerr
		}
		u.CPUNanos, err = cpuStatV2(b)
	} else {
		u.CPUNanos, err = readUint(filepath.Join(d.CPU, "cpuacct.usage"))
	}
	if err != nil {
		return Usage{}, err
	}
	usageFile, limitFile := "memory.usage_in_bytes", "memory.limit_in_bytes"
	if d.MemoryV2 {
		usageFile, limitFile = "memory.current", "memory.max"
	}
	if u.MemoryUsage, err = readUint(filepath.Join(d.Memory, usageFile)); err != nil {
		return Usage{}, err
	}
	if u.Limit, err = readUint(filepath.Join(d.Memory, limitFile)); err != nil {
		return Usage{}, err
	}
	stat, err := os.ReadFile(filepath.Join(d.Memory, "memory.stat"))
	if err != nil {
		return Usage{}, err
	}
	if err := memoryStat(&u, stat, d.MemoryV2); err != nil {
		return Usage{}, fmt.Errorf("%s: %w", filepath.Join(d.Memory, "memory.stat"), err)
	}
	return u, nil
}

// unlimited is above any real memory limit: v1 writes "no limit" as the
// largest page-aligned int64 (9223372036854771712).
const unlimited = 1 << 62

func readUint(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" { // v2's "no limit"
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", file, s)
	}
	if v >= unlimited {
		return 0, nil
	}
	return v, nil
}

// cpuStatV2 is usage_usec of a v2 cpu.stat, in nanoseconds.
func cpuStatV2(b []byte) (uint64, error) {
	kv, err := keyValues(b)
	if err != nil {
		return 0, err
	}
	us, ok := kv["usage_usec"]
	if !ok {
		return 0, errors.New("cpu.stat has no usage_usec")
	}
	return us * 1000, nil
}

// memoryStat fills the working set, RSS and fault counters from
// memory.stat, as cAdvisor does: the working set is usage minus inactive
// file pages (never below zero); v1 reads the hierarchical total_ fields.
func memoryStat(u *Usage, b []byte, v2 bool) error {
	kv, err := keyValues(b)
	if err != nil {
		return err
	}
	inactive, rss, faults, major := "total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault"
	if v2 {
		inactive, rss, faults, major = "inactive_file", "anon", "pgfault", "pgmajfault"
	}
	for _, k := range []string{inactive, rss, faults, major} {
		if _, ok := kv[k]; !ok {
			return fmt.Errorf("no %s", k)
		}
	}
	u.WorkingSet = u.MemoryUsage - min(kv[inactive], u.MemoryUsage)
	u.RSS, u.PageFaults, u.MajorPageFaults = kv[rss], kv[faults], kv[major]
	return nil
}

// keyValues parses "key value" lines.
func keyValues(b []byte) (map[string]uint64, error) {
	kv := map[string]uint64{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %q is not a number", strings.TrimSpace(line), v)
		}
		kv[k] = n
	}
	return kv, nil
}

// Read reads the figures of the cgroup at d (the package's Read, as a
// method so callers can take FS behind an interface).
func (fs *FS) Read(d Dirs) (Usage, error) { return Read(d) }
