// Package hostinfo owns reading facts about the node from the host: its
// memory, kernel and OS image, for the Node's status and for defaults that
// depend on the node (resource limits, tmpfs sizes, OOM score adjustment).
package hostinfo

import (
	"bufio"
	"net"
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

// DefaultIPv4 is the node's address as the kubelet picks it: the first IPv4
// address of the default route's interface, else of any interface that is up
// and not loopback, else 127.0.0.1.
func DefaultIPv4() string {
	if data, err := os.ReadFile("/proc/net/route"); err == nil {
		if name := defaultRouteInterface(string(data)); name != "" {
			if ifc, err := net.InterfaceByName(name); err == nil {
				if ip := firstIPv4(ifc); ip != "" {
					return ip
				}
			}
		}
	}
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback == 0 && ifc.Flags&net.FlagUp != 0 {
			if ip := firstIPv4(&ifc); ip != "" {
				return ip
			}
		}
	}
	return "127.0.0.1"
}

// defaultRouteInterface finds the interface of the default route (destination
// 00000000) in /proc/net/route's text.
func defaultRouteInterface(routes string) string {
	lines := strings.Split(routes, "\n")
	if len(lines) < 2 {
		return ""
	}
	for _, line := range lines[1:] {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "00000000" {
			return f[0]
		}
	}
	return ""
}

func firstIPv4(ifc *net.Interface) string {
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
