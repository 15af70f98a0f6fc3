package rest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/apiserver/tables"
	"github.com/ballast-dev/ballast/internal/apiserver/watchcache"
)

// initialEventsEnd marks the bookmark that ends the initial events of a
// watch with sendInitialEvents=true.
const initialEventsEnd = "k8s.io/initial-events-end"

// watchEvent is one line of a watch stream.
type watchEvent struct {
	Type   string `json:"type"`
	Object any    `json:"object"`
}

func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	k := rq.Kind
	q := rq.Query
	sel, err := request.ParseSelectors(k, q)
	if err != nil {
		return err
	}
	if rq.Name != "" {
		sel.Field = fields.AndSelectors(sel.Field, fields.OneTermEqualSelector("metadata.name", rq.Name))
	}
	rvStr, match := q.Get("resourceVersion"), q.Get("resourceVersionMatch")
	bookmarks := q.Get("allowWatchBookmarks") == "true" || q.Get("allowWatchBookmarks") == "1"
	sendInitial := q.Get("sendInitialEvents")
	switch {
	case sendInitial != "" && sendInitial != "true" && sendInitial != "false":
		return request.BadRequest("sendInitialEvents %q is not true or false", sendInitial)
	case sendInitial != "" && match != string(metav1.ResourceVersionMatchNotOlderThan):
		return request.BadRequest("sendInitialEvents requires resourceVersionMatch=NotOlderThan")
	case sendInitial == "true" && !bookmarks:
		return request.BadRequest("sendInitialEvents=true requires allowWatchBookmarks=true")
	case sendInitial == "" && match != "":
		return request.BadRequest("resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")
	}
	timeout := time.Duration(30+rand.IntN(30)) * time.Minute
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return request.BadRequest("timeoutSeconds %q is not a non-negative integer", v)
		}
		if n > 0 {
			timeout = time.Duration(n) * time.Second
		}
	}
	tableMode, include, err := request.TableRequest(r, rq)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	opts := watchcache.WatchOptions{
		Filter:    &watchcache.Filter{Prefix: k.ListPrefix(rq.Namespace), Label: sel.Label, Field: sel.Field},
		Bookmarks: bookmarks,
		Deadline:  time.Now().Add(timeout),
	}
	// resourceVersion "" asks for the latest state (a consistent read), "0"
	// for any; a number for the changes after it, or with NotOlderThan
	// for a state at least that recent.
	var rv int64
	if rvStr != "" && rvStr != "0" {
		if rv, err = request.ParseRV(rvStr); err != nil {
			return err
		}
	}
	consistent := rvStr == ""
	switch {
	case sendInitial == "true" || (sendInitial == "" && (rvStr == "" || rvStr == "0")):
		opts.Initial, opts.InitialEnd, opts.From = true, sendInitial == "true", rv
	case sendInitial == "false" && (rvStr == "" || rvStr == "0"):
		// From now: nothing to send first.
	default:
		opts.From = rv
		consistent = false
	}
	c := s.cacheFor(k)
	if consistent {
		cur, err := s.store.Revision(ctx)
		if err != nil {
			return request.StorageError(err, k.GroupResource(), "")
		}
		opts.From = cur
		if !opts.Initial {
			// Start after the latest revision: wait for the cache to get there.
			wctx, wcancel := context.WithTimeout(ctx, FreshWait)
			err = c.WaitFresh(wctx, cur)
			wcancel()
			if err != nil {
				return cacheError(k, err)
			}
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, FreshWait)
	cw, startErr := c.Watch(wctx, opts)
	wcancel()
	if startErr != nil && !errors.Is(startErr, watchcache.ErrTooOld) {
		return cacheError(k, startErr)
	}
	if cw != nil {
		defer cw.Stop()
	}

	proto := !tableMode && request.WantsProtobuf(r)
	ct := "application/json"
	switch {
	case tableMode:
		ct = tables.ContentType
	case proto:
		ct = request.WatchProtobufType
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush() // the client waits for the headers before reading events
	ws := &watchStream{s: s, k: k, w: w, rc: rc, tableMode: tableMode, include: include, proto: proto}
	if startErr != nil {
		ws.status(request.Gone(fmt.Sprintf("too old resource version: %d (%d)", opts.From, c.Revision())).Status)
		return nil
	}
	sent := 0
	for d := range cw.Backlog() {
		if err := ws.write(d); err != nil {
			return nil
		}
		if sent++; sent%100 == 0 {
			if err := ws.flush(); err != nil {
				return nil
			}
		}
	}
	if err := ws.flush(); err != nil {
		return nil
	}
	// Events are flushed as they come while the stream is quiet, and at
	// most once per FlushInterval while they keep coming (see flushPace).
	pace := newFlushPace()
	soon := time.NewTimer(FlushInterval)
	soon.Stop()
	defer soon.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			// The watch's timeout, or the client gone: what is buffered
			// goes out if it still can.
			_ = ws.flush()
			return nil
		case <-soon.C:
			armed = false
			if err := ws.flush(); err != nil {
				return nil
			}
		case d, ok := <-cw.Events():
			for ok {
				if err := ws.write(d); err != nil {
					return nil
				}
				// Write what else is waiting before flushing once.
				select {
				case d, ok = <-cw.Events():
					continue
				default:
				}
				break
			}
			if !ok {
				if ws.flush() == nil {
					ws.ended(cw.Err(), c.Revision())
				}
				return nil
			}
			if armed {
				break // the flush already due sends these too
			}
			if wait := pace.next(time.Now()); wait > 0 {
				soon.Reset(wait)
				armed = true
			} else if err := ws.flush(); err != nil {
				return nil
			}
		}
	}
}

// FlushInterval is the least time between two flushes of a watch stream
// that keeps receiving events, after a burst of FlushBurst. Every flush of
// a stream is a TLS record and a write to its connection (through HTTP/2,
// also two hand-offs between goroutines); with many watchers of busy
// resources that was most of the server's CPU.
const FlushInterval = 50 * time.Millisecond

// FlushBurst is how many flushes a quiet stream makes at once before
// FlushInterval spaces them: a few changes in a row (a graceful delete,
// then the delete) reach a watcher without waiting.
const FlushBurst = 4

// flushPace spaces a stream's flushes: a token bucket of FlushBurst,
// refilled at one per FlushInterval.
type flushPace struct{ lim *rate.Limiter }

func newFlushPace() flushPace {
	return flushPace{lim: rate.NewLimiter(rate.Every(FlushInterval), FlushBurst)}
}

// next is how long a stream that has just written must wait, at now,
// before it flushes (0: at once); the flush is then counted as made.
func (p flushPace) next(now time.Time) time.Duration {
	return p.lim.ReserveN(now, 1).DelayFrom(now)
}

// watchStream writes one watch's events.
type watchStream struct {
	s         *Server
	k         *kinds.Kind
	w         http.ResponseWriter
	rc        *http.ResponseController
	tableMode bool
	include   metav1.IncludeObjectPolicy
	// proto: the stream is protobuf (request.WatchFrame), not JSON lines.
	proto bool

	// buf holds what was written since the last flush (from flushBuffers,
	// returned at the flush, so a quiet watch holds none); pending is set
	// once anything was written since then.
	buf     *bufio.Writer
	pending bool
	// deadline is the write deadline last set.
	deadline time.Time
}

// flushBuffers are the streams' buffers between two flushes.
var flushBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

// Write buffers p until the next flush.
func (ws *watchStream) Write(p []byte) (int, error) {
	if ws.buf == nil {
		ws.buf = flushBuffers.Get().(*bufio.Writer)
		ws.buf.Reset(ws.w)
	}
	ws.pending = true
	return ws.buf.Write(p)
}

// keepDeadline moves the write deadline writeTimeout ahead once half of it
// has passed: through HTTP/2, setting a deadline is a round trip to the
// connection's goroutine, too dear to do for every event.
func (ws *watchStream) keepDeadline() {
	now := time.Now()
	if ws.deadline.Sub(now) < writeTimeout/2 {
		ws.deadline = now.Add(writeTimeout)
		_ = ws.rc.SetWriteDeadline(ws.deadline)
	}
}

// writeTimeout bounds how long a write to a watch may block (a client that
// stopped reading): between half of it and all of it.
const writeTimeout = time.Minute

// write writes one delivery. The JSON of the stored kind goes out as the
// cache holds it; other encodings (tables, events.k8s.io) are built once
// per event for all watchers.
func (ws *watchStream) write(d watchcache.Delivery) error {
	ws.keepDeadline()
	if d.Type == watchcache.Bookmark {
		o := ws.k.NewObj()
		ws.k.SetTypeMeta(o)
		o.SetResourceVersion(strconv.FormatInt(d.Rev, 10))
		if d.InitialEnd {
			o.SetAnnotations(map[string]string{initialEventsEnd: "true"})
		}
		return ws.encode(watchEvent{Type: d.Type, Object: o})
	}
	if ws.proto {
		return ws.writeProto(d)
	}
	if !ws.tableMode && ws.k.ToServed == nil {
		it, err := d.Item()
		if err != nil {
			ws.status(request.InternalError(err).Status)
			return err
		}
		for _, b := range [][]byte{[]byte(`{"type":"` + d.Type + `","object":`), it.Raw, []byte("}\n")} {
			if _, err := ws.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	build := func() ([]byte, error) {
		it, err := d.Item()
		if err != nil {
			return nil, err
		}
		var o any
		if o, err = ws.k.DecodeStored(it.Raw, 0); err != nil {
			return nil, err
		}
		if ws.tableMode {
			if o, err = tables.ForObject(ws.k.Info, o.(kinds.Object), ws.include, ws.s.now()); err != nil {
				return nil, err
			}
		}
		b, err := json.Marshal(watchEvent{Type: d.Type, Object: o})
		return append(b, '\n'), err
	}
	return ws.writeBuilt(d, fmt.Sprintf("%s|%s|%t|%s", d.Type, ws.k.Info.GVR(), ws.tableMode, ws.include), build)
}

// writeBuilt writes what build makes of a delivery: once per event for
// every watcher (memoized under key), or for this watcher alone (initial
// objects). A build that fails ends the stream with an error.
func (ws *watchStream) writeBuilt(d watchcache.Delivery, key string, build func() ([]byte, error)) error {
	var b []byte
	var err error
	if ev := d.Event(); ev != nil {
		b, err = ev.Frame(key, build)
	} else {
		b, err = build()
	}
	if err != nil {
		ws.status(request.InternalError(err).Status)
		return err
	}
	_, err = ws.Write(b)
	return err
}

// writeProto writes one delivery as a protobuf frame, built once per
// event for every protobuf watcher; the object's own protobuf message is
// kept with the cached object (protoItem), so initial events and lists
// reuse it.
func (ws *watchStream) writeProto(d watchcache.Delivery) error {
	build := func() ([]byte, error) {
		it, err := d.Item()
		if err != nil {
			return nil, err
		}
		msg, err := protoItem(ws.k, it)
		if err != nil {
			return nil, err
		}
		obj, err := request.Envelope(ws.k.Info.GroupVersion(), ws.k.Info.Kind, msg)
		if err != nil {
			return nil, err
		}
		return request.WatchFrame(d.Type, obj)
	}
	return ws.writeBuilt(d, "proto|"+d.Type+"|"+ws.k.Info.GVR().String(), build)
}

// protoItem is a cached object's protobuf message as kind k serves it,
// made once per object and kept with it.
func protoItem(k *kinds.Kind, it watchcache.Item) ([]byte, error) {
	return it.Encoding("proto|"+k.Info.GVR().String(), func() ([]byte, error) {
		o, err := k.DecodeStored(it.Raw, 0)
		if err != nil {
			return nil, err
		}
		return request.ProtoBytes(o)
	})
}

// encode writes a bookmark or an error, in the stream's encoding.
func (ws *watchStream) encode(ev watchEvent) error {
	if ws.proto {
		o, ok := ev.Object.(runtime.Object)
		if !ok {
			return fmt.Errorf("a watch event of %T", ev.Object)
		}
		obj, err := request.EncodeProto(o)
		if err != nil {
			return err
		}
		b, err := request.WatchFrame(ev.Type, obj)
		if err != nil {
			return err
		}
		_, err = ws.Write(b)
		return err
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = ws.Write(append(b, '\n'))
	return err
}

// flush sends what was written since the last flush, if anything.
func (ws *watchStream) flush() error {
	if !ws.pending {
		return nil
	}
	ws.pending = false
	err := ws.buf.Flush()
	ws.buf.Reset(nil)
	flushBuffers.Put(ws.buf)
	ws.buf = nil
	if err != nil {
		return err
	}
	return ws.rc.Flush()
}

// status ends the stream with an ERROR event.
func (ws *watchStream) status(st metav1.Status) {
	st.Kind, st.APIVersion = "Status", "v1"
	ws.keepDeadline()
	if ws.encode(watchEvent{Type: "ERROR", Object: &st}) == nil {
		_ = ws.flush()
	}
}

// ended tells the client why the cache ended its watcher.
func (ws *watchStream) ended(err error, rev int64) {
	res := ws.k.Info.Resource
	switch {
	case err == nil:
	case errors.Is(err, watchcache.ErrTooSlow):
		// client-go backs off and watches again from its last resourceVersion.
		st := request.NewStatus(http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests,
			fmt.Sprintf("the watch of %s was closed because this client read its events too slowly (%v); watch again from the last resourceVersion received", res, err))
		st.Status.Details = &metav1.StatusDetails{RetryAfterSeconds: 1}
		ws.status(st.Status)
	case errors.Is(err, watchcache.ErrReset):
		ws.status(request.Gone(fmt.Sprintf("too old resource version: the server's cache of %s was reloaded from etcd (%v) at %d; list again", res, err, rev)).Status)
	default:
		ws.status(request.InternalError(err).Status)
	}
}
