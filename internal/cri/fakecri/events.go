package fakecri

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	eventsv1 "github.com/containerd/containerd/api/services/events/v1"
	"github.com/containerd/containerd/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Namespace is the containerd namespace of every event, the one CRI uses.
const Namespace = "k8s.io"

// Topics of the events the runtime publishes.
const (
	TopicTaskStart = "/tasks/start"
	TopicTaskExit  = "/tasks/exit"
)

// eventsService serves containerd's events service: Subscribe only.
type eventsService struct {
	eventsv1.UnimplementedEventsServer
	r *Runtime
}

type subscriber struct {
	filters []filter
	queue   []*types.Envelope // guarded by Runtime.mu
	wake    chan struct{}     // capacity 1: the queue has grown
	gone    chan struct{}     // closed when the runtime cuts the subscription
}

func (s *eventsService) Subscribe(req *eventsv1.SubscribeRequest, stream eventsv1.Events_SubscribeServer) error {
	fs, err := parseFilters(req.Filters)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	r := s.r
	sub := &subscriber{filters: fs, wake: make(chan struct{}, 1), gone: make(chan struct{})}
	r.mu.Lock()
	if r.down || r.closed {
		r.mu.Unlock()
		return status.Error(codes.Unavailable, "fake runtime is down")
	}
	r.subs[sub] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.subs, sub)
		r.mu.Unlock()
	}()
	for {
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case <-sub.gone:
			return status.Error(codes.Unavailable, "fake runtime is down")
		case <-sub.wake:
		}
		r.mu.Lock()
		q := sub.queue
		sub.queue = nil
		r.mu.Unlock()
		for _, env := range q {
			if err := stream.Send(env); err != nil {
				return err
			}
		}
	}
}

// dropSubscribersLocked cuts every subscription, as a runtime going away does.
func (r *Runtime) dropSubscribersLocked() {
	for sub := range r.subs {
		close(sub.gone)
		delete(r.subs, sub)
	}
}

func (r *Runtime) emitExitLocked(id string, pid uint32, code int32, at time.Time) {
	r.emitLocked(TopicTaskExit, "containerd.events.TaskExit", &eventsapi.TaskExit{
		ContainerID: id, ID: id, Pid: pid, ExitStatus: uint32(code), ExitedAt: timestamppb.New(at),
	})
}

func (r *Runtime) emitStartLocked(id string, pid uint32) {
	r.emitLocked(TopicTaskStart, "containerd.events.TaskStart", &eventsapi.TaskStart{ContainerID: id, Pid: pid})
}

// emitLocked queues an event for every subscriber whose filters match it. The
// type URL is spelled as containerd's typeurl package spells it.
func (r *Runtime) emitLocked(topic, typeURL string, ev proto.Message) {
	if len(r.subs) == 0 {
		return
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		panic(fmt.Sprintf("fakecri: marshalling %s: %v", typeURL, err))
	}
	env := &types.Envelope{Timestamp: timestamppb.New(r.nowLocked()), Namespace: Namespace, Topic: topic, Event: &anypb.Any{TypeUrl: typeURL, Value: b}}
	for sub := range r.subs {
		if !matchAny(sub.filters, env) {
			continue
		}
		sub.queue = append(sub.queue, env)
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// A filter is containerd's filter syntax, restricted to what envelopes carry:
// comma-separated clauses, all of which must hold, each `field`, `field==value`,
// `field!=value` or `field~=regexp`, the value bare or double-quoted. Fields
// are topic and namespace; any other field is absent. Several filters match
// when any does.
type filter []clause

type clause struct {
	field, op, value string
	re               *regexp.Regexp
}

func parseFilters(ss []string) ([]filter, error) {
	var out []filter
	for _, s := range ss {
		f, err := parseFilter(s)
		if err != nil {
			return nil, fmt.Errorf("event filter %q: %w", s, err)
		}
		out = append(out, f)
	}
	return out, nil
}

func parseFilter(s string) (filter, error) {
	var f filter
	for _, part := range splitOutsideQuotes(s) {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("empty clause")
		}
		var c clause
		if i := strings.IndexAny(part, "=!~"); i < 0 {
			c.field = part
		} else {
			if i+2 > len(part) || part[i+1] != '=' {
				return nil, fmt.Errorf("clause %q: the operator must be ==, != or ~=", part)
			}
			c.field, c.op, c.value = strings.TrimSpace(part[:i]), part[i:i+2], strings.TrimSpace(part[i+2:])
			if strings.HasPrefix(c.value, `"`) {
				v, err := strconv.Unquote(c.value)
				if err != nil {
					return nil, fmt.Errorf("clause %q: bad quoted value: %v", part, err)
				}
				c.value = v
			}
			if c.op == "~=" {
				re, err := regexp.Compile(c.value)
				if err != nil {
					return nil, fmt.Errorf("clause %q: %v", part, err)
				}
				c.re = re
			}
		}
		if c.field == "" {
			return nil, fmt.Errorf("clause %q has no field", part)
		}
		f = append(f, c)
	}
	return f, nil
}

func splitOutsideQuotes(s string) []string {
	var parts []string
	var quoted, escaped bool
	start := 0
	for i := 0; i < len(s); i++ {
		switch {
		case escaped:
			escaped = false
		case s[i] == '\\' && quoted:
			escaped = true
		case s[i] == '"':
			quoted = !quoted
		case s[i] == ',' && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func matchAny(fs []filter, env *types.Envelope) bool {
	if len(fs) == 0 {
		return true
	}
	for _, f := range fs {
		if f.match(env) {
			return true
		}
	}
	return false
}

func (f filter) match(env *types.Envelope) bool {
	for _, c := range f {
		var v string
		var present bool
		switch c.field {
		case "topic":
			v, present = env.Topic, env.Topic != ""
		case "namespace":
			v, present = env.Namespace, env.Namespace != ""
		}
		var ok bool
		switch c.op {
		case "":
			ok = present
		case "==":
			ok = present && v == c.value
		case "!=":
			ok = !present || v != c.value
		case "~=":
			ok = present && c.re.MatchString(v)
		}
		if !ok {
			return false
		}
	}
	return true
}
