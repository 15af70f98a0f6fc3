package cri

import (
	"bytes"
	"context"
	"io"
	"os"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ballast-dev/ballast/internal/logs"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// The kubelet's limits on termination messages.
const (
	maxTermMsgBytes    = 4096
	fallbackTailLines  = 80
	fallbackLimitBytes = 2048
)

// terminationMessage reads an exited container's termination message as the
// kubelet: the file mounted at its terminationMessagePath (at most 4096
// bytes); with FallbackToLogsOnError, when that is empty and the container
// failed, the last 80 lines (at most 2048 bytes) of its log.
func terminationMessage(s *runtimeapi.ContainerStatus) string {
	path := s.Annotations[wellknown.AnnotationTermMsgPath]
	var msg string
	if path != "" {
		for _, m := range s.Mounts {
			if m.ContainerPath != path {
				continue
			}
			if f, err := os.Open(m.HostPath); err == nil {
				b, _ := io.ReadAll(io.LimitReader(f, maxTermMsgBytes))
				f.Close()
				msg = string(b)
			}
			break
		}
	}
	if msg == "" && s.ExitCode != 0 && s.Annotations[wellknown.AnnotationTermMsgPolicy] == "FallbackToLogsOnError" && s.LogPath != "" {
		var buf bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		_ = logs.Read(ctx, s.LogPath, logs.ReadOptions{TailLines: fallbackTailLines, LimitBytes: fallbackLimitBytes}, &buf, &buf)
		cancel()
		msg = buf.String()
	}
	return msg
}
