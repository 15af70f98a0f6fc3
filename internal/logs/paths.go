// Package logs handles container log files in the kubelet's layout and the
// CRI log format: where they live, reading them as `kubectl logs` shows them
// (tail, timestamps, follow across rotation) and rotating them by size.
package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// RotationTimeFormat is the UTC timestamp suffix of rotated files:
// <container>/<restartCount>.log.<20060102-150405>.
const RotationTimeFormat = "20060102-150405"

// PodLogDir is the directory of one pod's logs, as the kubelet lays it out:
// <dataDir>/pods/<namespace>_<podName>_<uid>. It is the sandbox's LogDirectory.
func PodLogDir(dataDir, namespace, podName, uid string) string {
	return filepath.Join(dataDir, "pods", namespace+"_"+podName+"_"+uid)
}

// ContainerLogPath is the log path of one container instance relative to its
// pod's log directory: <container>/<restartCount>.log. It is what goes into the
// CRI ContainerConfig.LogPath.
func ContainerLogPath(container string, restartCount int) string {
	return filepath.Join(container, strconv.Itoa(restartCount)+".log")
}

// PreviousPath is the absolute log path of the instance before the one with
// restartCount, or "" when restartCount is 0 (there was none).
func PreviousPath(podLogDir, container string, restartCount int) string {
	if restartCount <= 0 {
		return ""
	}
	return filepath.Join(podLogDir, ContainerLogPath(container, restartCount-1))
}

// RemovePodLogs removes the log directory of one pod.
func RemovePodLogs(dataDir, namespace, podName, uid string) error {
	return os.RemoveAll(PodLogDir(dataDir, namespace, podName, uid))
}

// PruneContainerLogs removes the log files (and their rotated files) of a
// container's instances older than the previous one: it keeps the logs of
// restartCount and restartCount-1, as `kubectl logs --previous` needs.
func PruneContainerLogs(podLogDir, container string, restartCount int) error {
	dir := filepath.Join(podLogDir, container)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		i := strings.Index(name, ".log")
		if i <= 0 {
			continue
		}
		n, err := strconv.Atoi(name[:i])
		if err != nil || n >= restartCount-1 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RotatedFiles lists the rotated files of a log path (<path>.<timestamp>),
// oldest first. Compressed or temporary files are not listed.
func RotatedFiles(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, base+".") || e.IsDir() {
			continue
		}
		if _, err := time.Parse(RotationTimeFormat, name[len(base)+1:]); err != nil {
			continue
		}
		out = append(out, filepath.Join(dir, name))
	}
	sort.Strings(out) // the timestamp format sorts chronologically
	return out, nil
}

func rotatedName(path string, t time.Time) string {
	return fmt.Sprintf("%s.%s", path, t.UTC().Format(RotationTimeFormat))
}
