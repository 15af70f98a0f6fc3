package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/planner"
)

// rolloutStore keeps the planner's rollout records on disk, one file per
// manifest file (named by a hash of its path), written atomically.
type rolloutStore struct {
	dir string
	log *slog.Logger
}

func (r rolloutStore) path(file string) string {
	sum := sha256.Sum256([]byte(file))
	return filepath.Join(r.dir, hex.EncodeToString(sum[:12])+".json")
}

// save writes (or, for an empty record, removes) each record. A record that
// cannot be written is logged: the rollout goes on, it just would not
// survive a restart.
func (r rolloutStore) save(records []planner.Rollout) {
	for _, rec := range records {
		path := r.path(rec.File)
		if rec.Empty() {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				r.log.Warn("cannot remove a rollout record", "file", rec.File, "record", path, "err", err)
			}
			continue
		}
		data, err := json.Marshal(rec)
		if err == nil {
			if err = os.MkdirAll(r.dir, 0o700); err == nil {
				err = atomicfile.WriteFile(path, data, 0o600)
			}
		}
		if err != nil {
			r.log.Warn("cannot save a rollout record; it will not survive a restart", "file", rec.File, "record", path, "err", err)
		}
	}
}

// load reads every record. One that cannot be read is logged and skipped:
// its manifest's pod then starts from its file.
func (r rolloutStore) load() []planner.Rollout {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("cannot read the rollout records", "dir", r.dir, "err", err)
		}
		return nil
	}
	var out []planner.Rollout
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(r.dir, e.Name())
		var rec planner.Rollout
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err != nil || rec.File == "" {
			r.log.Warn("ignoring an unreadable rollout record", "record", path, "err", err)
			continue
		}
		out = append(out, rec)
	}
	return out
}
