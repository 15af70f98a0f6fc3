// Package hostinfo owns reading facts about the node from the host: its
// memory, kernel and OS image, for the Node's status and for defaults that
// depend on the node (resource limits, tmpfs sizes, OOM score adjustment).
package hostinfo

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

var (
	memOnce  sync.Once
	memBytes int64
)

// MemoryBytes is the node's memory (MemTotal), 0 if unknown. Read once.
func MemoryBytes() int64 {
	memOnce.Do(func() {
		f, err := os.Open("/proc/meminfo")
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(fields[1], 10, 64)
				memBytes = kb * 1024
				return
			}
		}
	})
	return memBytes
}

// KernelVersion is the running kernel's release, "" if unknown.
func KernelVersion() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// OSImage is the OS's pretty name from /etc/os-release ("Linux" if unknown).
func OSImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

// Capacity is the node's cpu, memory and ephemeral-storage (the size of the
// root file system); a resource that cannot be read is left out.
func Capacity() corev1.ResourceList {
	c := corev1.ResourceList{
		corev1.ResourceCPU: *resource.NewMilliQuantity(int64(runtime.NumCPU())*1000, resource.DecimalSI),
	}
	if m := MemoryBytes(); m > 0 {
		c[corev1.ResourceMemory] = *resource.NewQuantity(m, resource.BinarySI)
	}
	var st syscall.Statfs_t
	if syscall.Statfs("/", &st) == nil {
		c[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(st.Blocks)*st.Bsize, resource.BinarySI)
	}
	return c
}
