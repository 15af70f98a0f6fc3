package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/request"
	"github.com/ballast-dev/ballast/internal/apiserver/watchcache"
	"github.com/ballast-dev/ballast/internal/storage"
)

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, rq *request.Request) error {
	k := rq.Kind
	q := rq.Query
	sel, err := request.ParseSelectors(k, q)
	if err != nil {
		return err
	}
	var limit int64
	if v := q.Get("limit"); v != "" {
		limit, err = strconv.ParseInt(v, 10, 64)
		if err != nil {
			return request.BadRequest("limit %q is not an integer", v)
		}
		if limit < 0 {
			limit = 0
		}
	}
	rvStr, match, cont := q.Get("resourceVersion"), q.Get("resourceVersionMatch"), q.Get("continue")
	var readRev, notOlder int64
	switch {
	case match != "" && rvStr == "":
		return request.BadRequest("resourceVersionMatch is forbidden unless resourceVersion is provided")
	case cont != "" && rvStr != "" && rvStr != "0":
		return request.BadRequest("specifying resource version is not allowed when using continue")
	case cont != "" && match != "":
		return request.BadRequest("resourceVersionMatch is forbidden when continue is provided")
	case match == string(metav1.ResourceVersionMatchExact):
		if rvStr == "0" {
			return request.BadRequest("resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"")
		}
		if readRev, err = request.ParseRV(rvStr); err != nil {
			return err
		}
	case match == "" || match == string(metav1.ResourceVersionMatchNotOlderThan):
		if rvStr != "" && rvStr != "0" {
			if notOlder, err = request.ParseRV(rvStr); err != nil {
				return err
			}
		}
	default:
		return request.BadRequest("resourceVersionMatch %q is not one of Exact, NotOlderThan", match)
	}
	if cont != "" {
		readRev = 0
	}
	if done, err := s.listFromCache(w, r, rq, sel, rvStr, match, limit, cont, notOlder); done || err != nil {
		return err
	}
	var (
		objs      []kinds.Object
		lastRev   int64
		remaining int64
	)
	next := cont
	for {
		opts := storage.ListOptions{Continue: next, Revision: readRev}
		if limit > 0 {
			opts.Limit = limit - int64(len(objs))
		}
		res, err := s.store.List(r.Context(), k.ListPrefix(rq.Namespace), opts)
		if err != nil {
			if cont != "" && isCompacted(err) {
				return request.Gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
			}
			if isCompacted(err) {
				return request.Gone(fmt.Sprintf("The resourceVersion for the provided list is too old (%d); list with resourceVersion=\"\" for the current state.", readRev))
			}
			return request.StorageError(err, k.GroupResource(), "")
		}
		lastRev = res.Revision
		if notOlder > 0 && res.Revision < notOlder {
			st := request.NewStatus(http.StatusGatewayTimeout, metav1.StatusReasonTimeout,
				fmt.Sprintf("Too large resource version: %d, current: %d", notOlder, res.Revision))
			st.Status.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}, RetryAfterSeconds: 1}
			return st
		}
		notOlder = 0
		readRev = res.Revision
		for _, so := range res.Objects {
			o, err := k.DecodeStored(so.Value, so.Revision)
			if err != nil {
				return request.InternalError(err)
			}
			if sel.Matches(k, o) {
				objs = append(objs, o)
			}
		}
		next, remaining = res.Continue, res.Remaining
		if next == "" || (limit > 0 && int64(len(objs)) >= limit) {
			break
		}
	}
	lm := metav1.ListMeta{ResourceVersion: strconv.FormatInt(lastRev, 10), Continue: next}
	if next != "" && sel.Empty() && remaining > 0 {
		lm.RemainingItemCount = &remaining
	}
	return request.WriteList(w, r, rq, lm, objs, s.now())
}

// listFromCache serves a list from the watch cache where kube-apiserver
// does: resourceVersion "0" (any state; limit ignored), NotOlderThan a
// resourceVersion without limit, and the latest state without limit (a
// consistent read: the cache first reaches etcd's current revision).
// Exact reads, continued and limited lists of a given or latest state go
// to etcd. It reports whether it answered; when the cache cannot (not
// loaded, or not fresh in time) etcd answers instead.
func (s *Server) listFromCache(w http.ResponseWriter, r *http.Request, rq *request.Request, sel *request.Selector, rvStr, match string, limit int64, cont string, notOlder int64) (bool, error) {
	switch {
	case cont != "" || match == string(metav1.ResourceVersionMatchExact):
		return false, nil
	case rvStr == "0":
	case limit > 0:
		return false, nil
	}
	k := rq.Kind
	c := s.cacheFor(k)
	minRev := notOlder
	if rvStr == "" {
		cur, err := s.store.Revision(r.Context())
		if err != nil {
			return true, request.StorageError(err, k.GroupResource(), "")
		}
		minRev = cur
	}
	ctx, cancel := context.WithTimeout(r.Context(), FreshWait)
	err := c.WaitFresh(ctx, minRev)
	cancel()
	if err != nil {
		return false, nil
	}
	items, rev, err := c.List(&watchcache.Filter{Prefix: k.ListPrefix(rq.Namespace), Label: sel.Label, Field: sel.Field})
	if err != nil {
		return false, nil
	}
	lm := metav1.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}
	table, _, _ := request.TableRequest(r, rq)
	if !table && request.WantsProtobuf(r) {
		msgs := make([][]byte, len(items))
		for i, it := range items {
			if msgs[i], err = protoItem(k, it); err != nil {
				return true, request.InternalError(err)
			}
		}
		request.WriteProtoList(w, k, lm, msgs)
		return true, nil
	}
	if table || k.ToServed != nil {
		objs := make([]kinds.Object, len(items))
		for i, it := range items {
			if objs[i], err = k.DecodeStored(it.Raw, 0); err != nil {
				return true, request.InternalError(err)
			}
		}
		return true, request.WriteList(w, r, rq, lm, objs, s.now())
	}
	// The items go out as the cache holds them, not decoded again.
	head, err := json.Marshal(struct {
		metav1.TypeMeta `json:",inline"`
		metav1.ListMeta `json:"metadata"`
	}{metav1.TypeMeta{Kind: k.Info.ListKind, APIVersion: k.Info.GroupVersion()}, lm})
	if err != nil {
		return true, request.InternalError(err)
	}
	size := len(head) + 16
	for _, it := range items {
		size += len(it.Raw) + 1
	}
	body := make([]byte, 0, size)
	body = append(body, head[:len(head)-1]...)
	body = append(body, `,"items":[`...)
	for i, it := range items {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, it.Raw...)
	}
	body = append(body, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return true, nil
}

func isCompacted(err error) bool {
	return err != nil && errors.Is(err, storage.ErrCompacted)
}
