package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/ballast-dev/ballast/internal/apiserver/tables"
	"github.com/ballast-dev/ballast/internal/storage"
)

// initialEventsEnd marks the bookmark that ends the initial events of a
// watch with sendInitialEvents=true.
const initialEventsEnd = "k8s.io/initial-events-end"

// watchEvent is one line of a watch stream.
type watchEvent struct {
	Type   string `json:"type"`
	Object any    `json:"object"`
}

func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, rq *request) error {
	k := rq.kind
	q := rq.query
	sel, err := parseSelectors(k, q)
	if err != nil {
		return err
	}
	if rq.name != "" {
		sel.field = fields.AndSelectors(sel.field, fields.OneTermEqualSelector("metadata.name", rq.name))
	}
	rvStr, match := q.Get("resourceVersion"), q.Get("resourceVersionMatch")
	bookmarks := q.Get("allowWatchBookmarks") == "true" || q.Get("allowWatchBookmarks") == "1"
	sendInitial := q.Get("sendInitialEvents")
	switch {
	case sendInitial != "" && sendInitial != "true" && sendInitial != "false":
		return badRequest("sendInitialEvents %q is not true or false", sendInitial)
	case sendInitial != "" && match != string(metav1.ResourceVersionMatchNotOlderThan):
		return badRequest("sendInitialEvents requires resourceVersionMatch=NotOlderThan")
	case sendInitial == "true" && !bookmarks:
		return badRequest("sendInitialEvents=true requires allowWatchBookmarks=true")
	case sendInitial == "" && match != "":
		return badRequest("resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")
	}
	timeout := time.Duration(30+rand.IntN(30)) * time.Minute
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("timeoutSeconds %q is not a non-negative integer", v)
		}
		if n > 0 {
			timeout = time.Duration(n) * time.Second
		}
	}
	tableMode, include, err := s.tableRequest(r, rq)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	prefix := k.listPrefix(rq.namespace)
	initial := sendInitial == "true" || (sendInitial == "" && (rvStr == "" || rvStr == "0"))
	var (
		fromRev  int64
		initObjs []object
		matched  = map[string]bool{} // keys the client holds, when a selector filters
	)
	trackKeys := !sel.empty()
	switch {
	case initial:
		var minRev int64
		if rvStr != "" && rvStr != "0" {
			if minRev, err = parseRV(rvStr); err != nil {
				return err
			}
		}
		objs, rev, err := s.listAll(ctx, k, prefix, sel, 0)
		if err != nil {
			return err
		}
		if rev < minRev {
			return newStatus(http.StatusGatewayTimeout, metav1.StatusReasonTimeout,
				fmt.Sprintf("Too large resource version: %d, current: %d", minRev, rev))
		}
		initObjs, fromRev = objs, rev
	case rvStr == "" || rvStr == "0":
		if fromRev, err = s.store.Revision(ctx); err != nil {
			return storageError(err, gr(k), "")
		}
	default:
		if fromRev, err = parseRV(rvStr); err != nil {
			return err
		}
	}

	var ww storage.Watch
	var startErr error
	if !initial && trackKeys {
		// Which objects match at fromRev decides ADDED/DELETED later.
		var objs []object
		objs, _, startErr = s.listAll(ctx, k, prefix, sel, fromRev)
		for _, o := range objs {
			matched[k.key(o.GetNamespace(), o.GetName())] = true
		}
	}
	if startErr == nil {
		ww, startErr = s.store.Watch(ctx, prefix, fromRev, bookmarks)
	}
	if startErr != nil && !errors.Is(startErr, storage.ErrCompacted) {
		return storageError(startErr, gr(k), "")
	}

	ct := "application/json"
	if tableMode {
		ct = tables.ContentType
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush() // the client waits for the headers before reading events
	enc := json.NewEncoder(w)
	send := func(typ string, o any) error {
		if tableMode {
			if obj, ok := o.(object); ok && typ != "BOOKMARK" {
				t, err := tables.ForObject(k.info, obj, include, s.now())
				if err != nil {
					return err
				}
				o = t
			}
		}
		if err := enc.Encode(watchEvent{Type: typ, Object: o}); err != nil {
			return err
		}
		return rc.Flush()
	}
	sendStatus := func(st metav1.Status) {
		st.Kind, st.APIVersion = "Status", "v1"
		_ = send("ERROR", st)
	}
	if startErr != nil {
		cur, _ := s.store.Revision(ctx)
		sendStatus(gone(fmt.Sprintf("too old resource version: %d (%d)", fromRev, cur)).s)
		return nil
	}
	bookmark := func(rev int64, end bool) error {
		o := k.newObj()
		k.setTypeMeta(o)
		o.SetResourceVersion(strconv.FormatInt(rev, 10))
		if end {
			o.SetAnnotations(map[string]string{initialEventsEnd: "true"})
		}
		return send("BOOKMARK", o)
	}
	for _, o := range initObjs {
		if trackKeys {
			matched[k.key(o.GetNamespace(), o.GetName())] = true
		}
		if err := send("ADDED", o); err != nil {
			return nil
		}
	}
	if sendInitial == "true" {
		if err := bookmark(fromRev, true); err != nil {
			return nil
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-ww.Events():
			if !ok {
				err := ww.Err()
				switch {
				case err == nil || ctx.Err() != nil:
				case errors.Is(err, storage.ErrCompacted):
					cur, _ := s.store.Revision(context.WithoutCancel(ctx))
					sendStatus(gone(fmt.Sprintf("too old resource version: %d (%d)", fromRev, cur)).s)
				default:
					sendStatus(storageError(err, gr(k), "").s)
				}
				return nil
			}
			if ev.Type == storage.Progress {
				if bookmarks {
					if err := bookmark(ev.Revision, false); err != nil {
						return nil
					}
				}
				continue
			}
			fromRev = ev.Revision
			o, err := k.decodeStored(ev.Object.Value, ev.Revision)
			if err != nil {
				sendStatus(internalError(err).s)
				return nil
			}
			typ := string(ev.Type)
			if trackKeys {
				key := k.key(o.GetNamespace(), o.GetName())
				was, now := matched[key], ev.Type != storage.Deleted && sel.matches(k, o)
				switch {
				case was && now:
					typ = "MODIFIED"
				case !was && now:
					typ = "ADDED"
				case was && !now:
					typ = "DELETED"
				default:
					continue
				}
				if now {
					matched[key] = true
				} else {
					delete(matched, key)
				}
			}
			if err := send(typ, o); err != nil {
				return nil
			}
		}
	}
}

// listAll lists every object under prefix matching sel, at rev (0: latest),
// and returns them with the revision read at.
func (s *Server) listAll(ctx context.Context, k *kind, prefix string, sel *selector, rev int64) ([]object, int64, error) {
	var out []object
	cont := ""
	for {
		res, err := s.store.List(ctx, prefix, storage.ListOptions{Limit: 1000, Continue: cont, Revision: rev})
		if err != nil {
			if errors.Is(err, storage.ErrCompacted) {
				return nil, 0, err
			}
			return nil, 0, storageError(err, gr(k), "")
		}
		rev = res.Revision
		for _, so := range res.Objects {
			o, err := k.decodeStored(so.Value, so.Revision)
			if err != nil {
				return nil, 0, internalError(err)
			}
			if sel.matches(k, o) {
				out = append(out, o)
			}
		}
		if res.Continue == "" {
			return out, rev, nil
		}
		cont = res.Continue
	}
}
