package etcd

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapLogger is a zap.Logger for etcd's server and client that passes
// warnings and errors on to slog and drops the rest.
type zapLogger struct {
	*zap.Logger
}

func newZapLogger(log *slog.Logger) *zapLogger {
	return &zapLogger{zap.New(&slogCore{log: log})}
}

// quietMessages are warnings etcd prints on every start and stop of an
// embedded member configured as Ballast configures it: they say nothing useful.
// Errors the Store returns to its callers are not logged again either.
var quietMessages = []string{
	"Running http and grpc server on single port",
	"simple token is not cryptographically signed",
	// Closing the embedded etcd.
	"setting up serving from embedded etcd failed",
	"stopping insecure grpc server due to error",
	"stopped insecure grpc server due to error",
	// The client, on errors it returns (compacted, not found, conflicts).
	"retrying of unary invoker failed",
}

// slogCore is a zapcore.Core writing to slog.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.WarnLevel }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	for _, m := range quietMessages {
		if strings.HasPrefix(e.Message, m) {
			return nil
		}
	}
	level := slog.LevelWarn
	if e.Level >= zapcore.ErrorLevel {
		level = slog.LevelError
	}
	ctx := context.Background()
	if !c.log.Enabled(ctx, level) {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields)+1)
	attrs = append(attrs, slog.String("component", "etcd"))
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	c.log.LogAttrs(ctx, level, e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
