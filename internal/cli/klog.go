package cli

import (
	"context"
	"io"
	"log/slog"

	"k8s.io/klog/v2"
)

// routeKlog sends what the Kubernetes libraries log through klog (the
// streaming proxies' "Error on socket receive ... use of closed network
// connection" when a WebSocket session ends, for one) to log at debug
// level: their real errors reach Ballast as returned errors, logged where
// they are handled; the rest is detail for --log-level debug.
func routeKlog(log *slog.Logger) {
	klog.SetSlogLogger(slog.New(debugOnly{log.Handler()}).With("component", "k8s.io/klog"))
}

// quietKlog silences klog, for commands whose output is the user's
// (ballast exec, ballast port-forward).
func quietKlog() { routeKlog(slog.New(slog.NewTextHandler(io.Discard, nil))) }

// debugOnly logs every record at debug level.
type debugOnly struct{ h slog.Handler }

func (d debugOnly) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugOnly) Handle(ctx context.Context, r slog.Record) error {
	if !d.h.Enabled(ctx, slog.LevelDebug) {
		return nil // klog's errors come here without asking Enabled
	}
	r.Level = slog.LevelDebug
	return d.h.Handle(ctx, r)
}

func (d debugOnly) WithAttrs(as []slog.Attr) slog.Handler { return debugOnly{d.h.WithAttrs(as)} }
func (d debugOnly) WithGroup(name string) slog.Handler    { return debugOnly{d.h.WithGroup(name)} }
