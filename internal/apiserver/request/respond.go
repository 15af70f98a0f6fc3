package request

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/tables"
	"github.com/ballast-dev/ballast/internal/auth"
)

// WriteList answers with a list of rq's kind, or its Table when asked; now
// dates the Table's rows.
func WriteList(w http.ResponseWriter, r *http.Request, rq *Request, lm metav1.ListMeta, objs []kinds.Object, now time.Time) error {
	if ok, include, err := TableRequest(r, rq); err != nil {
		return err
	} else if ok {
		ros := make([]runtime.Object, len(objs))
		for i, o := range objs {
			ros[i] = o
		}
		t, err := tables.ForList(rq.Kind.Info, ros, include, now)
		if err != nil {
			return InternalError(err)
		}
		t.ListMeta = lm
		WriteJSON(w, http.StatusOK, tables.ContentType, t)
		return nil
	}
	if objs == nil {
		objs = []kinds.Object{}
	}
	if WantsProtobuf(r) {
		if items, err := protoItems(objs); err == nil {
			WriteProtoList(w, rq.Kind, lm, items)
			return nil
		}
		// A kind without a protobuf form answers in JSON (see WriteObject).
	}
	body := listBody{TypeMeta: metav1.TypeMeta{Kind: rq.Kind.Info.ListKind, APIVersion: rq.Kind.Info.GroupVersion()}, ListMeta: lm, Items: objs}
	WriteJSON(w, http.StatusOK, "application/json", body)
	return nil
}

// TableRequest tells whether the request asks for a Table, and what to include.
func TableRequest(r *http.Request, rq *Request) (bool, metav1.IncludeObjectPolicy, error) {
	ok, _ := tables.WantsTable(r.Header.Get("Accept"))
	if !ok || rq.Subresource == "log" {
		return false, "", nil
	}
	include, err := tables.ParseIncludeObject(rq.Query.Get("includeObject"))
	if err != nil {
		return false, "", BadRequest("%v", err)
	}
	return true, include, nil
}

// WriteObject answers with one object, or its Table when asked; now dates
// the Table's row.
func WriteObject(w http.ResponseWriter, r *http.Request, rq *Request, code int, o kinds.Object, now time.Time) error {
	if ok, include, err := TableRequest(r, rq); err != nil {
		return err
	} else if ok && rq.Verb == "get" {
		t, err := tables.ForObject(rq.Kind.Info, o, include, now)
		if err != nil {
			return InternalError(err)
		}
		WriteJSON(w, code, tables.ContentType, t)
		return nil
	}
	if WantsProtobuf(r) {
		if body, err := EncodeProto(o); err == nil {
			writeProto(w, code, body)
			return nil
		}
		// A kind without a protobuf form answers in JSON, which every
		// client that asks for protobuf also accepts.
	}
	WriteJSON(w, code, "application/json", o)
	return nil
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, code int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		WriteError(w, InternalError(fmt.Errorf("encoding the response: %w", err)))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

// Authorize asks authorize about rq and, when it is refused, answers it:
// 401 for anonymous callers, else 403 naming the object.
func Authorize(w http.ResponseWriter, rq *Request, authorize func(auth.Attributes) auth.Decision) bool {
	d := authorize(rq.Attributes())
	if d.Allowed {
		return true
	}
	msg := fmt.Sprintf("%s is forbidden: %s", objectString(rq), d.Reason)
	if rq.User.Name == auth.AnonymousUser {
		Deny(w, rq.User, d, msg)
		return false
	}
	st := NewStatus(http.StatusForbidden, metav1.StatusReasonForbidden, msg)
	st.Status.Details = &metav1.StatusDetails{Name: rq.Name, Group: rq.Group, Kind: rq.Resource}
	WriteStatus(w, st.Status)
	return false
}

func objectString(rq *Request) string {
	res := rq.Resource
	if rq.Group != "" {
		res += "." + rq.Group
	}
	if rq.Name != "" {
		return fmt.Sprintf("%s %q", res, rq.Name)
	}
	return res
}

// Deny answers a refused request: 401 for anonymous callers, else 403.
func Deny(w http.ResponseWriter, user auth.User, d auth.Decision, msg string) {
	if user.Name == auth.AnonymousUser {
		WriteStatus(w, NewStatus(http.StatusUnauthorized, metav1.StatusReasonUnauthorized,
			"Unauthorized: "+d.Reason).Status)
		return
	}
	WriteStatus(w, NewStatus(http.StatusForbidden, metav1.StatusReasonForbidden, msg).Status)
}

// listBody is a typed list's JSON form with raw items.
type listBody struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []kinds.Object `json:"items"`
}

// protoItems are the objects' protobuf messages.
func protoItems(objs []kinds.Object) ([][]byte, error) {
	items := make([][]byte, len(objs))
	for i, o := range objs {
		b, err := ProtoBytes(o)
		if err != nil {
			return nil, err
		}
		items[i] = b
	}
	return items, nil
}
