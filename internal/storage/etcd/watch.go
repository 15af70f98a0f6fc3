package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/ballast-dev/ballast/internal/storage"
)

// watchEventBuffer is how many events a watch holds for a slow reader
// before it stops reading from etcd.
const watchEventBuffer = 100

// watchCtx gives every watch the same gRPC metadata, so the etcd client
// puts them all on one stream and progressLoop's requests reach them all.
// Watches need a leader: one cut off from the cluster's majority ends with
// ErrUnavailable rather than waiting silently.
func watchCtx(ctx context.Context) context.Context {
	return metadata.NewOutgoingContext(ctx, metadata.Pairs(rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader))
}

type etcdWatch struct {
	events chan storage.Event
	mu     sync.Mutex
	err    error // guarded by mu
}

func (w *etcdWatch) Events() <-chan storage.Event { return w.events }

func (w *etcdWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *etcdWatch) setErr(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// Watch sends the changes under prefix after fromRevision (0: after the
// current revision). Deleted events carry the last value, with the
// revision of the delete.
func (s *Store) Watch(ctx context.Context, prefix string, fromRevision int64, progress bool) (storage.Watch, error) {
	if fromRevision <= 0 {
		rev, err := s.Revision(ctx)
		if err != nil {
			return nil, fmt.Errorf("watch %q: %w", prefix, err)
		}
		fromRevision = rev
	} else {
		// Fail at once when the start is compacted: a read at the first
		// revision the watch needs fails exactly when the watch would.
		_, err := s.client.Get(ctx, compactRevKey, clientv3.WithRev(fromRevision+1), clientv3.WithCountOnly())
		if err != nil && !errors.Is(err, rpctypes.ErrFutureRev) {
			return nil, mapErr(ctx, fmt.Sprintf("watch from revision %d", fromRevision), prefix, err)
		}
	}
	full := s.etcdKey(prefix)
	opts := []clientv3.OpOption{
		clientv3.WithRange(clientv3.GetPrefixRangeEnd(full)),
		clientv3.WithRev(fromRevision + 1),
		clientv3.WithPrevKV(),
	}
	if progress {
		opts = append(opts, clientv3.WithProgressNotify())
		s.progressWatches.Add(1)
	}
	wctx, cancel := context.WithCancel(watchCtx(ctx))
	wch := s.client.Watch(wctx, full, opts...)
	w := &etcdWatch{events: make(chan storage.Event, watchEventBuffer)}
	go func() {
		defer cancel()
		defer close(w.events)
		if progress {
			defer s.progressWatches.Add(-1)
		}
		s.runWatch(wctx, prefix, wch, w, fromRevision, progress)
	}()
	return w, nil
}

func (s *Store) runWatch(ctx context.Context, prefix string, wch clientv3.WatchChan, w *etcdWatch, from int64, progress bool) {
	send := func(e storage.Event) bool {
		select {
		case w.events <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// last is the revision up to which every change has been sent. etcd
	// answers progress requests only once its revision reaches the start
	// of every watch on the stream, so a watch that started at the current
	// revision of an idle etcd hears nothing: for such gaps, the watch
	// sends Progress at last itself when a whole interval passed silent.
	last := from
	sentSinceTick := false
	var tick <-chan time.Time
	if progress {
		t := time.NewTicker(s.progressInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-wch:
		case <-tick:
			if !sentSinceTick && !send(storage.Event{Type: storage.Progress, Revision: last}) {
				return
			}
			sentSinceTick = false
			continue
		case <-ctx.Done():
			return
		}
		if !ok {
			if ctx.Err() == nil {
				w.setErr(fmt.Errorf("etcd watch %q: %w: the client was closed", prefix, storage.ErrUnavailable))
			}
			return
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				w.setErr(mapErr(ctx, "watch", prefix, err))
			}
			return
		}
		if resp.Created {
			continue
		}
		if resp.IsProgressNotify() {
			if !progress || resp.Header.Revision < last {
				continue
			}
			last = resp.Header.Revision
			if !send(storage.Event{Type: storage.Progress, Revision: last}) {
				return
			}
			sentSinceTick = true
			continue
		}
		for _, ev := range resp.Events {
			e := s.event(ev)
			if !send(e) {
				return
			}
			last = e.Revision
			sentSinceTick = true
		}
	}
}

func (s *Store) event(ev *clientv3.Event) storage.Event {
	obj := s.object(ev.Kv)
	e := storage.Event{Object: obj, Revision: ev.Kv.ModRevision}
	switch {
	case ev.Type == mvccpb.DELETE:
		e.Type = storage.Deleted
		if ev.PrevKv != nil {
			e.Object.Value = ev.PrevKv.Value
		}
	case ev.IsCreate():
		e.Type = storage.Added
	default:
		e.Type = storage.Modified
	}
	return e
}

// RequestProgress asks etcd to tell every watch of the Store how far it
// has got; those that asked for progress send a Progress event (etcd
// answers once each watch on the stream has caught up).
func (s *Store) RequestProgress(ctx context.Context) error {
	if err := s.client.RequestProgress(watchCtx(ctx)); err != nil {
		return mapErr(ctx, "progress request", "", err)
	}
	return nil
}

// progressCounter counts running watches that asked for progress.
type progressCounter = atomic.Int64

// progressLoop asks etcd, every progress interval while some watch wants
// progress, to tell every watch of the Store how far it has got. etcd
// answers only when all are caught up, and its answer reaches every watch
// on the stream; those that did not ask drop it.
func (s *Store) progressLoop(ctx context.Context) {
	t := time.NewTicker(s.progressInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.progressWatches.Load() == 0 {
			continue
		}
		if err := s.client.RequestProgress(watchCtx(ctx)); err != nil && ctx.Err() == nil {
			s.log.Debug("etcd watch progress request failed", "err", err)
		}
	}
}
