// Package cri owns Ballast's conversation with the container runtime: the CRI v1
// client (runtime and image services), the labels and annotations Ballast puts on
// sandboxes and containers so that a restarted agent can adopt what runs, reading
// the runtime's state back as per-pod snapshots, and runtime events.
package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Runtime is a connection to a CRI runtime.
type Runtime struct {
	RS   runtimeapi.RuntimeServiceClient
	IS   runtimeapi.ImageServiceClient
	Conn *grpc.ClientConn
	// Endpoint is the unix socket path (without the unix:// scheme).
	Endpoint string
}

// SocketPath turns "unix:///run/x.sock" or "/run/x.sock" into a path, or says what is wrong.
func SocketPath(endpoint string) (string, error) {
	switch {
	case strings.HasPrefix(endpoint, "unix://"):
		p := strings.TrimPrefix(endpoint, "unix://")
		if p == "" {
			return "", fmt.Errorf("container runtime endpoint %q has no path; use unix:///run/containerd/containerd.sock", endpoint)
		}
		return p, nil
	case strings.HasPrefix(endpoint, "/"):
		return endpoint, nil
	default:
		return "", fmt.Errorf("container runtime endpoint %q: only unix sockets are supported (unix:///path/to.sock)", endpoint)
	}
}

// Dial connects to the runtime at endpoint. It does not wait for the runtime to
// answer: gRPC reconnects by itself, so a runtime that restarts is reached again.
func Dial(endpoint string, opts ...grpc.DialOption) (*Runtime, error) {
	path, err := SocketPath(endpoint)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("passthrough:///"+path, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16 << 20)),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to container runtime at %s: %w", path, err)
	}
	return &Runtime{RS: runtimeapi.NewRuntimeServiceClient(conn), IS: runtimeapi.NewImageServiceClient(conn), Conn: conn, Endpoint: path}, nil
}

// Close closes the connection.
func (r *Runtime) Close() error { return r.Conn.Close() }

// WaitReady waits until the runtime answers Version, or ctx ends.
func (r *Runtime) WaitReady(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := r.RS.Version(cctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			return v, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("container runtime at %s does not answer: %w", r.Endpoint, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// IsNotFound reports whether err is the runtime saying an object does not
// exist. containerd 1.6 answers some of these with code Unknown, so its
// message counts too.
func IsNotFound(err error) bool {
	return status.Code(err) == codes.NotFound || (err != nil && strings.Contains(err.Error(), "not found"))
}

// IsUnavailable reports whether err means the runtime could not be reached.
func IsUnavailable(err error) bool {
	c := status.Code(err)
	return c == codes.Unavailable || c == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)
}

// Message returns err's text without gRPC's "rpc error: code = ... desc ="
// framing, keeping the context that wraps it.
func Message(err error) string {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		s := se.GRPCStatus()
		return strings.Replace(err.Error(), fmt.Sprintf("rpc error: code = %s desc = ", s.Code()), "", 1)
	}
	return err.Error()
}

// ReopenLog asks the runtime to reopen a container's log file after rotation.
func (r *Runtime) ReopenLog(ctx context.Context, containerID string) error {
	_, err := r.RS.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: containerID})
	return err
}
