package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Truncate empties a container's current log file, which the runtime goes
// on appending to, and writes marker as its first line (on stderr, in the
// CRI format, so `kubectl logs` shows it). It returns how many bytes were
// dropped; a file that is gone or at most keep bytes long is left alone.
func Truncate(path string, keep int64, marker string, now time.Time) (int64, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if st.Size() <= keep {
		return 0, nil
	}
	// The runtime writes with O_APPEND: after the truncation its lines go on
	// at the new end, after the marker.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Truncate(0); err != nil {
		return 0, err
	}
	line := fmt.Sprintf("%s stderr F %s\n", now.UTC().Format(time.RFC3339Nano), marker)
	if _, err := f.WriteString(line); err != nil {
		return st.Size(), fmt.Errorf("writing the truncation marker: %w", err)
	}
	return st.Size(), nil
}

// DropRotated removes every rotated file of a container's log, and returns
// how many bytes that freed.
func DropRotated(path string) (int64, error) {
	rotated, err := RotatedFiles(path)
	if err != nil {
		return 0, err
	}
	var freed int64
	var errs []error
	for _, r := range rotated {
		st, err := os.Stat(r)
		if err == nil {
			freed += st.Size()
		}
		if err := os.Remove(r); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return freed, errors.Join(errs...)
}
