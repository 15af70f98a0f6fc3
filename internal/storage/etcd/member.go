package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// SocketFile is the embedded etcd's client socket, in its data directory:
// root-only (the directory is 0700), so the data stays the server's, and
// `ballast server backup` and an etcd static pod's server reach it with no
// port to know and no TLS to set up.
const SocketFile = "etcd.sock"

// maxSocketPath bounds a unix socket's path (108 bytes with its NUL on Linux).
const maxSocketPath = 108

// SocketPath is the client socket of the embedded etcd in dir.
func SocketPath(dir string) string { return filepath.Join(dir, SocketFile) }

// SocketURL is the client URL of the socket of the embedded etcd in dir, for
// Config.Endpoints.
func SocketURL(dir string) string { return "unix://" + SocketPath(dir) }

// Serve runs an etcd member in dir on its own (`ballast etcd`, the etcd
// static pod of `ballast init --etcd=pod`), serving clients on SocketURL(dir),
// until ctx ends or etcd fails. ready, if set, is called once it serves.
func Serve(ctx context.Context, dir string, log *slog.Logger, ready func()) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e, err := startEmbedded(ctx, dir, newZapLogger(log), true)
	if err != nil {
		return err
	}
	defer e.Close()
	log.Info("etcd serving", "dir", dir, "socket", SocketPath(dir))
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd in %s: %w", dir, err)
	}
}

// Health tells whether the member of dir answers on its socket (the etcd
// pod's readiness probe): nil when a read succeeds.
func Health(ctx context.Context, dir string) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{SocketURL(dir)}, DialTimeout: 2 * time.Second, Context: ctx,
		Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd on %s: %w", SocketPath(dir), err)
	}
	defer c.Close()
	if _, err := c.Get(ctx, "health"); err != nil {
		return fmt.Errorf("etcd on %s: %w", SocketPath(dir), err)
	}
	return nil
}
