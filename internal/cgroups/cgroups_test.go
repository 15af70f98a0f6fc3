package cgroups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
)

// Mount tables as /proc/self/mountinfo gives them (the fields dirsOf uses).
var (
	hybrid = []*procfs.MountInfo{
		{MountPoint: "/sys/fs/cgroup", Root: "/", FSType: "tmpfs", SuperOptions: map[string]string{"rw": ""}},
		{MountPoint: "/sys/fs/cgroup/cpu,cpuacct", Root: "/", FSType: "cgroup", SuperOptions: map[string]string{"rw": "", "cpu": "", "cpuacct": ""}},
		{MountPoint: "/sys/fs/cgroup/memory", Root: "/", FSType: "cgroup", SuperOptions: map[string]string{"rw": "", "memory": ""}},
		{MountPoint: "/sys/fs/cgroup/unified", Root: "/", FSType: "cgroup2", SuperOptions: map[string]string{"rw": ""}},
	}
	unified = []*procfs.MountInfo{
		{MountPoint: "/sys/fs/cgroup", Root: "/", FSType: "cgroup2", SuperOptions: map[string]string{"rw": ""}},
	}
	// A v2 tree mounted from inside a cgroup namespace's view: only
	// /kubepods is visible, at /sys/fs/cgroup.
	nested = []*procfs.MountInfo{
		{MountPoint: "/sys/fs/cgroup", Root: "/kubepods", FSType: "cgroup2"},
	}
	noCgroups = []*procfs.MountInfo{
		{MountPoint: "/", Root: "/", FSType: "ext4"},
	}
)

func TestDirsOf(t *testing.T) {
	v1Lines := []procfs.Cgroup{
		{HierarchyID: 4, Controllers: []string{"memory"}, Path: "/k8s.io/abc"},
		{HierarchyID: 2, Controllers: []string{"cpu", "cpuacct"}, Path: "/k8s.io/abc"},
		{HierarchyID: 1, Controllers: []string{"name=systemd"}, Path: "/"},
		{HierarchyID: 0, Controllers: nil, Path: "/"},
	}
	v2Lines := []procfs.Cgroup{{HierarchyID: 0, Path: "/kubepods/pod1/cri-containerd-abc.scope"}}
	tests := []struct {
		name    string
		mounts  []*procfs.MountInfo
		cgroups []procfs.Cgroup
		want    Dirs
		wantErr string
	}{
		{"hybrid host: the v1 controllers win over the empty v2 tree", hybrid, v1Lines,
			Dirs{CPU: "/sys/fs/cgroup/cpu,cpuacct/k8s.io/abc", Memory: "/sys/fs/cgroup/memory/k8s.io/abc"}, ""},
		{"unified host", unified, v2Lines,
			Dirs{CPU: "/sys/fs/cgroup/kubepods/pod1/cri-containerd-abc.scope", Memory: "/sys/fs/cgroup/kubepods/pod1/cri-containerd-abc.scope", CPUv2: true, MemoryV2: true}, ""},
		{"mount root below the hierarchy's root", nested, v2Lines,
			Dirs{CPU: "/sys/fs/cgroup/pod1/cri-containerd-abc.scope", Memory: "/sys/fs/cgroup/pod1/cri-containerd-abc.scope", CPUv2: true, MemoryV2: true}, ""},
		{"a cgroup outside the mounted part", nested, []procfs.Cgroup{{HierarchyID: 0, Path: "/kubepodsX/abc"}},
			Dirs{}, "cpuacct controller of this cgroup is not mounted"},
		{"nothing mounted", noCgroups, v1Lines, Dirs{}, "not mounted"},
		{"v1 memory only: no cpuacct anywhere", hybrid[2:3], v1Lines[:1], Dirs{}, "cpuacct"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dirsOf(mountsOf(tc.mounts), tc.cgroups)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name string
		dirs Dirs
		want Usage
	}{
		{"v1", Dirs{CPU: "testdata/v1/cpuacct", Memory: "testdata/v1/memory"}, Usage{
			CPUNanos: 52374881923, MemoryUsage: 104857600, WorkingSet: 104857600 - 20971520,
			RSS: 62914560, PageFaults: 1356, MajorPageFaults: 2, Limit: 0, // v1's "no limit"
		}},
		{"v2", Dirs{CPU: "testdata/v2", Memory: "testdata/v2", CPUv2: true, MemoryV2: true}, Usage{
			CPUNanos: 27102624000, MemoryUsage: 52428800, WorkingSet: 52428800 - 10485760,
			RSS: 31457280, PageFaults: 4242, MajorPageFaults: 7, Limit: 268435456,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Read(tc.dirs)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestReadBroken: a cgroup that is gone or a file that does not parse is
// an error naming the file, never figures made up.
func TestReadBroken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := Dirs{CPU: dir, Memory: dir}
	if _, err := Read(d); err == nil {
		t.Fatal("read an empty directory without an error")
	}
	write("cpuacct.usage", "12x\n")
	if _, err := Read(d); err == nil || !strings.Contains(err.Error(), "cpuacct.usage") {
		t.Fatalf("err = %v, want one naming cpuacct.usage", err)
	}
	write("cpuacct.usage", "12\n")
	write("memory.usage_in_bytes", "100\n")
	write("memory.limit_in_bytes", "1000\n")
	write("memory.stat", "total_rss 10\n")
	if _, err := Read(d); err == nil || !strings.Contains(err.Error(), "total_inactive_file") {
		t.Fatalf("err = %v, want one naming the missing field", err)
	}
	write("memory.stat", "total_rss 10\ntotal_inactive_file 400\ntotal_pgfault 1\ntotal_pgmajfault 0\n")
	u, err := Read(d)
	if err != nil {
		t.Fatal(err)
	}
	if u.WorkingSet != 0 || u.Limit != 1000 {
		t.Errorf("inactive file above usage: working set %d (want 0), limit %d (want 1000)", u.WorkingSet, u.Limit)
	}
}

// TestOpenHere: on any Linux host with cgroups, this process's own
// cgroup reads (the tests run on such hosts).
func TestOpenHere(t *testing.T) {
	fs, err := Open()
	if err != nil {
		t.Fatalf("no cgroup filesystem found on a Linux test host: %v", err)
	}
	d, err := fs.DirsOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	u, err := Read(d)
	if err != nil {
		t.Fatalf("reading this process's cgroup %+v: %v", d, err)
	}
	if u.CPUNanos == 0 || u.MemoryUsage == 0 {
		t.Errorf("this process's cgroup shows no CPU or memory use: %+v", u)
	}
}
