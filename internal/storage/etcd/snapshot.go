package etcd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
)

// RestoreRevisionBump is added to the revision of a restored store, and the
// revisions before it are marked compacted, as etcd advises for a restore
// under running clients: a watcher never sees revisions go back, and one
// that resumes from before the restore is told to list again (410 Gone).
const RestoreRevisionBump = 1_000_000_000

// Backup writes a snapshot of the store cfg names to path (etcd's snapshot
// API: a consistent copy of the whole keyspace, with its checksum). For an
// external cluster, it asks cfg.Endpoints[0]. For the embedded etcd in
// cfg.DataDir, it asks the running server through the data dir's socket; when
// none runs, it starts the member on the data dir for the time of the copy.
// It returns the etcd version that wrote the snapshot.
func Backup(ctx context.Context, cfg Config, path string) (string, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	zl := newZapLogger(log)
	ccfg := clientv3.Config{DialTimeout: 5 * time.Second}
	switch {
	case len(cfg.Endpoints) > 0:
		ccfg.Endpoints = cfg.Endpoints[:1]
		if cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != "" {
			info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
			tlsConfig, err := info.ClientConfig()
			if err != nil {
				return "", fmt.Errorf("etcd TLS files (cert %q, key %q, CA %q): %w", cfg.CertFile, cfg.KeyFile, cfg.CAFile, err)
			}
			ccfg.TLS = tlsConfig
		}
	case serving(cfg.DataDir):
		ccfg.Endpoints = []string{SocketURL(cfg.DataDir)}
	default:
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "member")); err != nil {
			return "", fmt.Errorf("no etcd data in %s (%v): give the server's data dir (--data-dir), or --etcd-servers for an external cluster", cfg.DataDir, err)
		}
		// No server runs on this data: open it here for the copy.
		e, err := startEmbedded(ctx, cfg.DataDir, zl, false)
		if err != nil {
			return "", fmt.Errorf("opening %s for the backup (if a server runs on it, its socket %s must answer): %w", cfg.DataDir, SocketPath(cfg.DataDir), err)
		}
		defer e.Close()
		ccfg.Endpoints = []string{clientURL(e)}
	}
	version, err := snapshot.SaveWithVersion(ctx, zl.Logger, ccfg, path)
	if err != nil {
		return "", fmt.Errorf("etcd snapshot from %s: %w", ccfg.Endpoints[0], err)
	}
	return version, nil
}

// serving tells whether an etcd answers on the socket of dir.
func serving(dir string) bool {
	c, err := net.DialTimeout("unix", SocketPath(dir), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Restore makes dir (which must not exist, or be empty) the data directory
// of an embedded etcd holding the snapshot at path, checked against its
// checksum, with revisions bumped by RestoreRevisionBump. A server started
// on dir serves exactly what the snapshot holds.
func Restore(path, dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case len(ents) > 0:
		return fmt.Errorf("%s is not empty: restore into a new data directory (or move this one away first)", dir)
	default:
		if err := os.Remove(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	// The member as startEmbedded configures it: same name, peer URL
	// and cluster token, so the restored directory opens as its own.
	peer := "http://127.0.0.1:0"
	err = etcdutl.NewV3(newZapLogger(log).Logger).Restore(etcdutl.RestoreConfig{
		SnapshotPath:        path,
		Name:                memberName,
		OutputDataDir:       dir,
		PeerURLs:            []string{peer},
		InitialCluster:      memberName + "=" + peer,
		InitialClusterToken: "etcd-cluster",
		RevisionBump:        RestoreRevisionBump,
		MarkCompacted:       true,
	})
	if err != nil {
		return fmt.Errorf("restoring %s into %s: %w", path, dir, err)
	}
	return os.Chmod(dir, 0o700)
}
