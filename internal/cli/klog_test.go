package cli

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

func TestKlogGoesToDebug(t *testing.T) {
	defer quietKlog()
	var info, debug bytes.Buffer
	routeKlog(slog.New(slog.NewTextHandler(&info, &slog.HandlerOptions{Level: slog.LevelInfo})))
	klog.ErrorS(nil, "Error on socket receive")
	klog.Flush()
	if info.Len() != 0 {
		t.Errorf("at level info, klog's errors are detail: %q", info.String())
	}
	routeKlog(slog.New(slog.NewTextHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug})))
	klog.ErrorS(nil, "Error on socket receive")
	klog.Flush()
	if s := debug.String(); !strings.Contains(s, "level=DEBUG") || !strings.Contains(s, "Error on socket receive") || !strings.Contains(s, "component=k8s.io/klog") {
		t.Errorf("at level debug: %q", s)
	}
}
