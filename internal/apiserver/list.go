package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/tables"
	"github.com/ballast-dev/ballast/internal/apiserver/watchcache"
	"github.com/ballast-dev/ballast/internal/storage"
)

// selector is a request's label and field selectors.
type selector struct {
	label labels.Selector
	field fields.Selector
}

func (s *selector) empty() bool { return s.label.Empty() && s.field.Empty() }

func (s *selector) matches(k *kinds.Kind, o kinds.Object) bool {
	if !s.label.Empty() && !s.label.Matches(labels.Set(o.GetLabels())) {
		return false
	}
	if !s.field.Empty() && !s.field.Matches(k.Fields(o)) {
		return false
	}
	return true
}

// parseSelectors reads labelSelector and fieldSelector, refusing fields the
// kind does not support.
func parseSelectors(k *kinds.Kind, q url.Values) (*selector, error) {
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, badRequest("labelSelector %q is invalid: %v", q.Get("labelSelector"), err)
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return nil, badRequest("fieldSelector %q is invalid: %v", q.Get("fieldSelector"), err)
	}
	supported := k.Fields(k.NewObj())
	for _, req := range fs.Requirements() {
		if _, ok := supported[req.Field]; !ok {
			names := make([]string, 0, len(supported))
			for n := range supported {
				names = append(names, fmt.Sprintf("%q", n))
			}
			sort.Strings(names)
			return nil, badRequest("%q is not a known field selector for %s: only %s", req.Field, k.Info.Resource, strings.Join(names, ", "))
		}
	}
	return &selector{label: ls, field: fs}, nil
}

func parseRV(s string) (int64, error) {
	rv, err := strconv.ParseInt(s, 10, 64)
	if err != nil || rv < 0 {
		return 0, badRequest("resourceVersion %q is not a resourceVersion returned by this server (a decimal number)", s)
	}
	return rv, nil
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, rq *request) error {
	k := rq.kind
	q := rq.query
	sel, err := parseSelectors(k, q)
	if err != nil {
		return err
	}
	var limit int64
	if v := q.Get("limit"); v != "" {
		limit, err = strconv.ParseInt(v, 10, 64)
		if err != nil {
			return badRequest("limit %q is not an integer", v)
		}
		if limit < 0 {
			limit = 0
		}
	}
	rvStr, match, cont := q.Get("resourceVersion"), q.Get("resourceVersionMatch"), q.Get("continue")
	var readRev, notOlder int64
	switch {
	case match != "" && rvStr == "":
		return badRequest("resourceVersionMatch is forbidden unless resourceVersion is provided")
	case cont != "" && rvStr != "" && rvStr != "0":
		return badRequest("specifying resource version is not allowed when using continue")
	case cont != "" && match != "":
		return badRequest("resourceVersionMatch is forbidden when continue is provided")
	case match == string(metav1.ResourceVersionMatchExact):
		if rvStr == "0" {
			return badRequest("resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"")
		}
		if readRev, err = parseRV(rvStr); err != nil {
			return err
		}
	case match == "" || match == string(metav1.ResourceVersionMatchNotOlderThan):
		if rvStr != "" && rvStr != "0" {
			if notOlder, err = parseRV(rvStr); err != nil {
				return err
			}
		}
	default:
		return badRequest("resourceVersionMatch %q is not one of Exact, NotOlderThan", match)
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
		res, err := s.store.List(r.Context(), k.ListPrefix(rq.namespace), opts)
		if err != nil {
			if cont != "" && isCompacted(err) {
				return gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
			}
			if isCompacted(err) {
				return gone(fmt.Sprintf("The resourceVersion for the provided list is too old (%d); list with resourceVersion=\"\" for the current state.", readRev))
			}
			return storageError(err, k.GroupResource(), "")
		}
		lastRev = res.Revision
		if notOlder > 0 && res.Revision < notOlder {
			st := newStatus(http.StatusGatewayTimeout, metav1.StatusReasonTimeout,
				fmt.Sprintf("Too large resource version: %d, current: %d", notOlder, res.Revision))
			st.s.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}, RetryAfterSeconds: 1}
			return st
		}
		notOlder = 0
		readRev = res.Revision
		for _, so := range res.Objects {
			o, err := k.DecodeStored(so.Value, so.Revision)
			if err != nil {
				return internalError(err)
			}
			if sel.matches(k, o) {
				objs = append(objs, o)
			}
		}
		next, remaining = res.Continue, res.Remaining
		if next == "" || (limit > 0 && int64(len(objs)) >= limit) {
			break
		}
	}
	lm := metav1.ListMeta{ResourceVersion: strconv.FormatInt(lastRev, 10), Continue: next}
	if next != "" && sel.empty() && remaining > 0 {
		lm.RemainingItemCount = &remaining
	}
	return s.writeList(w, r, rq, lm, objs)
}

// listFromCache serves a list from the watch cache where kube-apiserver
// does: resourceVersion "0" (any state; limit ignored), NotOlderThan a
// resourceVersion without limit, and the latest state without limit (a
// consistent read: the cache first reaches etcd's current revision).
// Exact reads, continued and limited lists of a given or latest state go
// to etcd. It reports whether it answered; when the cache cannot (not
// loaded, or not fresh in time) etcd answers instead.
func (s *Server) listFromCache(w http.ResponseWriter, r *http.Request, rq *request, sel *selector, rvStr, match string, limit int64, cont string, notOlder int64) (bool, error) {
	switch {
	case cont != "" || match == string(metav1.ResourceVersionMatchExact):
		return false, nil
	case rvStr == "0":
	case limit > 0:
		return false, nil
	}
	k := rq.kind
	c := s.cacheFor(k)
	minRev := notOlder
	if rvStr == "" {
		cur, err := s.store.Revision(r.Context())
		if err != nil {
			return true, storageError(err, k.GroupResource(), "")
		}
		minRev = cur
	}
	ctx, cancel := context.WithTimeout(r.Context(), freshWait)
	err := c.WaitFresh(ctx, minRev)
	cancel()
	if err != nil {
		return false, nil
	}
	items, rev, err := c.List(&watchcache.Filter{Prefix: k.ListPrefix(rq.namespace), Label: sel.label, Field: sel.field})
	if err != nil {
		return false, nil
	}
	lm := metav1.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}
	if ok, _, _ := s.tableRequest(r, rq); ok || k.ToServed != nil {
		objs := make([]kinds.Object, len(items))
		for i, it := range items {
			if objs[i], err = k.DecodeStored(it.Raw, 0); err != nil {
				return true, internalError(err)
			}
		}
		return true, s.writeList(w, r, rq, lm, objs)
	}
	// The items go out as the cache holds them, not decoded again.
	head, err := json.Marshal(struct {
		metav1.TypeMeta `json:",inline"`
		metav1.ListMeta `json:"metadata"`
	}{metav1.TypeMeta{Kind: k.Info.ListKind, APIVersion: k.Info.GroupVersion()}, lm})
	if err != nil {
		return true, internalError(err)
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

// listBody is a typed list's JSON form with raw items.
type listBody struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []kinds.Object `json:"items"`
}

func (s *Server) writeList(w http.ResponseWriter, r *http.Request, rq *request, lm metav1.ListMeta, objs []kinds.Object) error {
	if ok, include, err := s.tableRequest(r, rq); err != nil {
		return err
	} else if ok {
		ros := make([]runtime.Object, len(objs))
		for i, o := range objs {
			ros[i] = o
		}
		t, err := tables.ForList(rq.kind.Info, ros, include, s.now())
		if err != nil {
			return internalError(err)
		}
		t.ListMeta = lm
		writeJSON(w, http.StatusOK, tables.ContentType, t)
		return nil
	}
	if objs == nil {
		objs = []kinds.Object{}
	}
	body := listBody{TypeMeta: metav1.TypeMeta{Kind: rq.kind.Info.ListKind, APIVersion: rq.kind.Info.GroupVersion()}, ListMeta: lm, Items: objs}
	writeJSON(w, http.StatusOK, "application/json", body)
	return nil
}

// tableRequest tells whether the request asks for a Table, and what to include.
func (s *Server) tableRequest(r *http.Request, rq *request) (bool, metav1.IncludeObjectPolicy, error) {
	ok, _ := tables.WantsTable(r.Header.Get("Accept"))
	if !ok || rq.subresource == "log" {
		return false, "", nil
	}
	include, err := tables.ParseIncludeObject(rq.query.Get("includeObject"))
	if err != nil {
		return false, "", badRequest("%v", err)
	}
	return true, include, nil
}

// writeObject answers with one object, or its Table when asked.
func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, rq *request, code int, o kinds.Object) error {
	if ok, include, err := s.tableRequest(r, rq); err != nil {
		return err
	} else if ok && rq.verb == "get" {
		t, err := tables.ForObject(rq.kind.Info, o, include, s.now())
		if err != nil {
			return internalError(err)
		}
		writeJSON(w, code, tables.ContentType, t)
		return nil
	}
	writeJSON(w, code, "application/json", o)
	return nil
}

func writeJSON(w http.ResponseWriter, code int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, internalError(fmt.Errorf("encoding the response: %w", err)))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
