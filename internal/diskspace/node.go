package diskspace

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/localapi"
	"github.com/ballast-dev/ballast/internal/logs"
)

// Recorder records an event (internal/events.Recorder).
type Recorder interface {
	Event(ref corev1.ObjectReference, eventType, reason, message string)
}

// Monitor is the node's view of the disk holding its data directory
// (container logs, volumes, rollout records, a managed containerd's
// images). Call Check periodically; it is safe for concurrent use.
type Monitor struct {
	// Dir is the data directory; NodeName names the Node in events.
	Dir, NodeName string
	Log           *slog.Logger
	Recorder      Recorder
	// Thresholds (zero: NodeThresholds).
	Thresholds Thresholds
	// LogCap is the size past which a current container log is truncated
	// while the disk is under pressure (0: 1 MiB).
	LogCap int64
	// Statfs and Now are for tests (nil: Statfs, time.Now).
	Statfs func(string) (Usage, error)
	Now    func() time.Time

	mu       sync.Mutex
	pressure bool
	usage    Usage
	err      error
}

// DefaultLogCap is Monitor.LogCap's default.
const DefaultLogCap = 1 << 20

// Check reads the disk's usage. Under pressure it drops the rotated files
// of the containers' logs and truncates every current one over LogCap, with
// a marker line; it records an event when pressure begins, when it ends,
// and when logs were truncated. Running pods are left alone.
func (m *Monitor) Check(containers []logs.Container) {
	statfs, now := m.Statfs, m.Now
	if statfs == nil {
		statfs = Statfs
	}
	if now == nil {
		now = time.Now
	}
	th := m.Thresholds
	if th == (Thresholds{}) {
		th = NodeThresholds
	}
	u, err := statfs(m.Dir)
	m.mu.Lock()
	was := m.pressure
	m.err = err
	if err == nil {
		m.usage = u
		m.pressure = th.Pressure(u, was)
	}
	is := m.pressure
	m.mu.Unlock()
	if err != nil {
		m.log().Warn("cannot read the data directory's disk usage", "dir", m.Dir, "err", err)
		return
	}
	switch {
	case is && !was:
		msg := fmt.Sprintf("the disk holding %s is nearly full: %s; container logs are truncated (with a marker line) and capped at %s until %.0f%% is free; running pods are not affected",
			m.Dir, u, bytes(uint64(m.logCap())), th.Leave)
		m.log().Warn("disk pressure", "dir", m.Dir, "free", u.String())
		m.event(corev1.EventTypeWarning, "NodeHasDiskPressure", msg)
	case was && !is:
		m.log().Info("disk pressure is over", "dir", m.Dir, "free", u.String())
		m.event(corev1.EventTypeNormal, "NodeHasNoDiskPressure", fmt.Sprintf("the disk holding %s has space again: %s", m.Dir, u))
	}
	if !is {
		return
	}
	marker := fmt.Sprintf("ballast: log truncated at %s: the disk holding %s is nearly full (%s); earlier output was dropped", now().UTC().Format(time.RFC3339), m.Dir, u)
	var freed int64
	n := 0
	for _, c := range containers {
		f, err := logs.DropRotated(c.Path)
		freed += f
		if err != nil {
			m.log().Warn("removing rotated container logs", "path", c.Path, "err", err)
		}
		d, err := logs.Truncate(c.Path, m.logCap(), marker, now())
		if d > 0 {
			freed += d
			n++
		}
		if err != nil {
			m.log().Warn("truncating a container log", "path", c.Path, "err", err)
		}
	}
	if freed > 0 {
		m.log().Warn("container logs truncated for disk space", "logs", n, "freed", bytes(uint64(freed)))
		m.event(corev1.EventTypeWarning, "ContainerLogsTruncated", fmt.Sprintf("the disk holding %s is nearly full (%s): %d container logs truncated and rotated logs removed, %s freed",
			m.Dir, u, n, bytes(uint64(freed))))
	}
}

// Pressure tells whether the disk is under pressure, and if so says so in
// a sentence for `ballast pods` and the Node's DiskPressure condition.
func (m *Monitor) Pressure() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.pressure {
		return false, ""
	}
	th := m.Thresholds
	if th == (Thresholds{}) {
		th = NodeThresholds
	}
	return true, fmt.Sprintf("the disk holding %s is nearly full (%s): container logs are truncated until %.0f%% is free; running pods are not affected; free space on it",
		m.Dir, m.usage, th.Leave)
}

func (m *Monitor) logCap() int64 {
	if m.LogCap > 0 {
		return m.LogCap
	}
	return DefaultLogCap
}

func (m *Monitor) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

func (m *Monitor) event(eventType, reason, msg string) {
	if m.Recorder != nil {
		m.Recorder.Event(corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: m.NodeName}, eventType, reason, msg)
	}
}

// Mount serves the node's problems with its disk on the local API
// (localapi.NodeProblemsPath), for `ballast pods`.
func (m *Monitor) Mount() localapi.Mount {
	return localapi.Mount{Patterns: []string{"GET " + localapi.NodeProblemsPath}, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		out := []string{}
		if p, why := m.Pressure(); p {
			out = append(out, why)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})}
}
