package nodemetrics

import (
	"errors"
	"time"

	"github.com/prometheus/procfs"
)

// ProcHost reads the node's totals from /proc.
type ProcHost struct{ FS procfs.FS }

// NewProcHost reads the host's /proc.
func NewProcHost() (*ProcHost, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, err
	}
	return &ProcHost{FS: fs}, nil
}

// CPU is the time all CPUs spent not idle (user, nice, system, irq, softirq,
// steal) since boot, from /proc/stat.
func (h *ProcHost) CPU() (time.Duration, error) {
	st, err := h.FS.Stat()
	if err != nil {
		return 0, err
	}
	c := st.CPUTotal
	secs := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	return time.Duration(secs * float64(time.Second)), nil
}

// Memory is MemTotal and MemAvailable from /proc/meminfo, in bytes.
func (h *ProcHost) Memory() (uint64, uint64, error) {
	mi, err := h.FS.Meminfo()
	if err != nil {
		return 0, 0, err
	}
	if mi.MemTotalBytes == nil || mi.MemAvailableBytes == nil {
		return 0, 0, errors.New("/proc/meminfo has no MemTotal or MemAvailable")
	}
	return *mi.MemTotalBytes, *mi.MemAvailableBytes, nil
}

// BootTime is btime from /proc/stat.
func (h *ProcHost) BootTime() (time.Time, error) {
	st, err := h.FS.Stat()
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(st.BootTime), 0), nil
}
