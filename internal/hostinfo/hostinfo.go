// Package hostinfo owns reading facts about the node from the host: its
// memory, kernel and OS image, for the Node's status and for defaults that
// depend on the node (resource limits, tmpfs sizes, OOM score adjustment).
package hostinfo

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync"
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
