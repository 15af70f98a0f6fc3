package nodemetrics

import (
	"context"
	"path"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// RuntimeInterceptor times every unary call to the container runtime into
// ballast_node_runtime_operations_duration_seconds{method,code}. Pass it to
// cri.Dial as grpc.WithChainUnaryInterceptor(m.RuntimeInterceptor()).
func (m *Metrics) RuntimeInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		start := time.Now()
		err := invoker(ctx, method, req, reply, cc, opts...)
		// "/runtime.v1.RuntimeService/StartContainer" -> "StartContainer".
		m.runtimeLatency.WithLabelValues(path.Base(method), status.Code(err).String()).Observe(time.Since(start).Seconds())
		return err
	}
}
