package cri

import (
	"context"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	eventsv1 "github.com/containerd/containerd/api/services/events/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Exit is a container (or sandbox) process that ended.
type Exit struct {
	ID       string
	ExitCode uint32
}

// WatchExits reports container exits as they happen, so the agent reacts to a
// crash in milliseconds without polling the runtime.
//
// CRI v1's GetContainerEvents is not served by containerd 1.6, so this uses
// containerd's own events service on the same socket (topic /tasks/exit in the
// k8s.io namespace). It calls reconnected each time a subscription is
// (re)established, so the caller can relist what it may have missed. When the
// runtime is not containerd it returns false at once and the caller relies on
// its periodic relist alone.
func (r *Runtime) WatchExits(ctx context.Context, out chan<- Exit, reconnected func()) bool {
	cl := eventsv1.NewEventsClient(r.Conn)
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		stream, err := cl.Subscribe(sctx, &eventsv1.SubscribeRequest{Filters: []string{`topic=="/tasks/exit",namespace=="k8s.io"`}})
		if err == nil {
			var first bool
			for {
				env, err := stream.Recv()
				if err != nil {
					if status.Code(err) == codes.Unimplemented {
						cancel()
						return false
					}
					break
				}
				if !first {
					first = true
				}
				var ev eventsapi.TaskExit
				if proto.Unmarshal(env.GetEvent().GetValue(), &ev) != nil {
					continue
				}
				if ev.ID != "" && ev.ID != ev.ContainerID {
					// An exec'd process (an exec probe, a hook, kubectl
					// exec) ended, not the container.
					continue
				}
				select {
				case out <- Exit{ID: ev.ContainerID, ExitCode: ev.ExitStatus}:
				case <-ctx.Done():
				}
				delay = 100 * time.Millisecond
			}
		} else if status.Code(err) == codes.Unimplemented {
			cancel()
			return false
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
		// The stream broke (runtime restart?): after it is back, relist.
		if r.probe(ctx) && reconnected != nil {
			reconnected()
		}
	}
	return true
}

func (r *Runtime) probe(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := r.RS.Version(cctx, nil)
	return err == nil
}
