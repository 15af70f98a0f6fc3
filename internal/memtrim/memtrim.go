// Package memtrim owns giving back the memory of code that ran once: Ballast
// is one binary (node agent, API server, embedded etcd), and Go runs every
// linked package's initialization at start, which faults in pages of the
// executable that a node agent never touches again. Those pages are clean
// copies of the file; dropping them from the process costs nothing, and any
// that are still used come back on their next access.
package memtrim

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// madvDontneed is MADV_DONTNEED.
const madvDontneed = 4

// Executable drops the resident pages of the read-only (never written)
// mappings of the running executable, and returns how many bytes of
// mappings it advised. Writable mappings (data, heap) are never touched.
func Executable() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/x
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), madvDontneed); e != 0 {
			return total, fmt.Errorf("madvise %s: %w", fields[0], e)
		}
		total += int64(end - start)
	}
	return total, sc.Err()
}

var afterStartup sync.Once

// AfterStartup trims the executable (see Executable) once start-up is done,
// delay after the call, unless ctx ends first. A process that runs several
// services (ballast up) trims once, whoever asks first.
func AfterStartup(ctx context.Context, delay time.Duration, log *slog.Logger) {
	afterStartup.Do(func() {
		go func() {
			select {
			case <-ctx.Done():
			case <-time.After(delay):
				n, err := Executable()
				log.Debug("trimmed start-up pages of the executable", "advisedBytes", n, "err", err)
			}
		}()
	})
}
