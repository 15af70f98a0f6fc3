// Package diskspace owns how full the disk under a data directory is and
// what Ballast does about it. On the node: a Monitor decides, with
// hysteresis, whether the disk holding the data directory is under
// pressure, caps and truncates container logs (with a marker line) while it
// is, records events, and says so for the Node's DiskPressure condition and
// `ballast pods`; running pods are never touched. On the server: Guard
// wraps the storage so that, while the disk holding etcd is nearly full,
// writes that add data are refused (the API answers 507) and reads,
// deletes and nodes' heartbeats go on, so etcd never meets a full disk.
package diskspace

import (
	"errors"
	"fmt"
	"syscall"
)

// Usage is how much of a file system is free.
type Usage struct {
	Free, Total uint64 // bytes; Free is what an unprivileged writer may use
}

// FreePercent is Free as a percentage of Total.
func (u Usage) FreePercent() float64 {
	if u.Total == 0 {
		return 100
	}
	return 100 * float64(u.Free) / float64(u.Total)
}

func (u Usage) String() string {
	return fmt.Sprintf("%s free of %s (%.1f%%)", bytes(u.Free), bytes(u.Total), u.FreePercent())
}

func bytes(n uint64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}

// Statfs reads the usage of the file system holding path.
func Statfs(path string) (Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	return Usage{Free: st.Bavail * uint64(st.Bsize), Total: st.Blocks * uint64(st.Bsize)}, nil
}

// Thresholds say when a disk is under pressure: from when its free space
// falls below Enter percent until it is back at Leave percent or more.
type Thresholds struct {
	Enter, Leave float64
}

var (
	// NodeThresholds are the node's: the kubelet's default hard eviction
	// threshold for the node's file system (nodefs.available<10%).
	NodeThresholds = Thresholds{Enter: 10, Leave: 15}
	// ServerThresholds are the API server's, lower than the node's so that
	// on a shared disk the node frees container logs first.
	ServerThresholds = Thresholds{Enter: 5, Leave: 8}
)

// Pressure decides whether a disk is under pressure now, given whether it
// was.
func (t Thresholds) Pressure(u Usage, was bool) bool {
	if was {
		return u.FreePercent() < t.Leave
	}
	return u.FreePercent() < t.Enter
}

// IsNoSpace tells whether err is a write that failed for want of space.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
