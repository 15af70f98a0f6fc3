// Package request is how the API server reads a resource request and
// answers it: the path parsed into a Request (group, version, resource,
// namespace, name, subresource, verb), authorization of it, request bodies
// (JSON, YAML and protobuf, size limits, strict field validation), query
// options (dryRun, fieldValidation, label and field selectors,
// resourceVersion), and answers: objects, lists and their Tables, and
// failures as kube-apiserver's metav1.Status (Error). Every other part of
// the API server speaks through it.
package request

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/apiserver/resource"
	"github.com/ballast-dev/ballast/internal/auth"
	"github.com/ballast-dev/ballast/internal/storage"
)

// Request is one parsed resource request.
type Request struct {
	Kind        *kinds.Kind // nil: the path names nothing served
	Delegated   bool        // a delegated resource (Kind is nil)
	Group       string
	Version     string
	Resource    string
	Namespace   string
	Name        string
	Subresource string
	Verb        string // get, list, watch, create, update, patch, delete, deletecollection
	Query       url.Values
	User        auth.User
	NotFound    string // why the path is not served, when Kind is nil and not Delegated
	ProxyPath   string // the path after .../proxy, for the proxy subresources
}

// GVR is the group, version and resource the path names.
func (rq *Request) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: rq.Group, Version: rq.Version, Resource: rq.Resource}
}

// Attributes are what authorization decides on.
func (rq *Request) Attributes() auth.Attributes {
	return auth.Attributes{User: rq.User, Verb: rq.Verb, Group: rq.Group, Resource: rq.Resource,
		Subresource: rq.Subresource, Namespace: rq.Namespace, Name: rq.Name, LabelSelector: rq.Query.Get("labelSelector")}
}

// Served is what a path is resolved against: the stored kinds and the
// delegated resources, by group, version and resource.
type Served struct {
	Kinds     map[schema.GroupVersionResource]*kinds.Kind
	Delegated map[schema.GroupVersionResource]resource.Info
}

// Parse reads a resource path: /api/v1/... or /apis/<group>/<version>/....
// It reports false for non-resource paths (discovery, health, OpenAPI).
func (sv *Served) Parse(r *http.Request, path string) (*Request, bool) {
	rq := &Request{Query: r.URL.Query()}
	var rest string
	switch {
	case strings.HasPrefix(path, "/api/"):
		p := strings.SplitN(strings.TrimPrefix(path, "/api/"), "/", 2)
		if len(p) < 2 {
			return nil, false
		}
		rq.Version, rest = p[0], p[1]
	case strings.HasPrefix(path, "/apis/"):
		p := strings.SplitN(strings.TrimPrefix(path, "/apis/"), "/", 3)
		if len(p) < 3 {
			return nil, false
		}
		rq.Group, rq.Version, rest = p[0], p[1], p[2]
	default:
		return nil, false
	}
	segs := strings.Split(rest, "/")
	watchPath := false
	if segs[0] == "watch" {
		watchPath = true
		segs = segs[1:]
	}
	if len(segs) >= 3 && segs[0] == "namespaces" && !(len(segs) == 3 && (segs[2] == "status" || segs[2] == "finalize")) {
		rq.Namespace = segs[1]
		segs = segs[2:]
	}
	if len(segs) > 3 && segs[2] == "proxy" {
		// {nodes,pods}/NAME[:PORT]/proxy/PATH...: the rest is the proxied path.
		rq.ProxyPath = "/" + strings.Join(segs[3:], "/")
		segs = segs[:3]
	}
	for _, sg := range segs {
		if sg == "" {
			rq.NotFound = "the path has an empty segment"
			return rq, true
		}
	}
	if len(segs) == 0 || len(segs) > 3 {
		rq.NotFound = "the path is not of the form [namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]"
		return rq, true
	}
	rq.Resource = segs[0]
	if len(segs) > 1 {
		rq.Name = segs[1]
	}
	if len(segs) > 2 {
		rq.Subresource = segs[2]
	}
	gvr := schema.GroupVersionResource{Group: rq.Group, Version: rq.Version, Resource: rq.Resource}
	if d, ok := sv.Delegated[gvr]; ok {
		switch {
		case !d.Namespaced && rq.Namespace != "":
			rq.NotFound = fmt.Sprintf("%s are not namespaced: use the path without namespaces/%s", rq.Resource, rq.Namespace)
		case r.Method == http.MethodGet && rq.Name != "":
			rq.Delegated, rq.Verb = true, "get"
		case r.Method == http.MethodGet && (rq.Query.Get("watch") == "true" || watchPath):
			rq.Delegated, rq.Verb = true, "watch"
		case r.Method == http.MethodGet:
			rq.Delegated, rq.Verb = true, "list"
		default:
			rq.Delegated, rq.Verb = true, strings.ToLower(r.Method)
		}
		return rq, true
	}
	k := sv.Kinds[gvr]
	switch {
	case k == nil:
		gv := rq.Version
		if rq.Group != "" {
			gv = rq.Group + "/" + rq.Version
		}
		rq.NotFound = fmt.Sprintf("the server does not serve resource %q in %s; `kubectl api-resources` lists what Ballast serves", rq.Resource, gv)
		return rq, true
	case !k.Info.Namespaced && rq.Namespace != "":
		rq.NotFound = fmt.Sprintf("%s are not namespaced: use the path without namespaces/%s", rq.Resource, rq.Namespace)
		return rq, true
	case rq.Subresource != "" && !slices.Contains(k.Info.Subresources, rq.Subresource):
		rq.NotFound = fmt.Sprintf("%s has no subresource %q", rq.Resource, rq.Subresource)
		return rq, true
	}
	rq.Kind = k
	if rq.Subresource == "proxy" {
		// As kube-apiserver: the proxied request's method names the verb.
		rq.Verb = proxyVerb(r.Method)
		if rq.ProxyPath == "" {
			rq.ProxyPath = "/"
		}
		return rq, true
	}
	isWatch := watchPath || rq.Query.Get("watch") == "true" || rq.Query.Get("watch") == "1"
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case rq.Name != "" && isWatch:
			// /watch/.../NAME watches one object.
			rq.Verb = "watch"
		case rq.Name != "":
			rq.Verb = "get"
		case isWatch:
			rq.Verb = "watch"
		default:
			rq.Verb = "list"
		}
	case http.MethodPost:
		rq.Verb = "create"
	case http.MethodPut:
		rq.Verb = "update"
	case http.MethodPatch:
		rq.Verb = "patch"
	case http.MethodDelete:
		rq.Verb = "delete"
		if rq.Name == "" {
			rq.Verb = "deletecollection"
		}
	default:
		rq.Verb = strings.ToLower(r.Method)
	}
	if watchPath && rq.Verb != "watch" {
		rq.NotFound = "watch paths only serve GET"
		rq.Kind = nil
	}
	return rq, true
}

// maxBody bounds request bodies (kube-apiserver allows 3 MiB objects).
const maxBody = 3 << 20

// ReadBody reads a request body, turning YAML and protobuf (for kind k)
// into JSON. A body of another media type is refused with 415, as
// kube-apiserver does; patch bodies (patch true) are returned as sent, for
// servePatch to check their patch type.
func ReadBody(r *http.Request, k *kinds.Kind, patch bool) ([]byte, string, error) {
	body, mt, err := readBody(r, patch)
	if err != nil || patch {
		return body, mt, err
	}
	return toJSON(k, body, mt)
}

// readBody reads a request body as sent, with its media type, refusing
// (unless patch) media types no object comes in.
func readBody(r *http.Request, patch bool) ([]byte, string, error) {
	ct := r.Header.Get("Content-Type")
	mt := ""
	if ct != "" {
		var err error
		mt, _, err = mime.ParseMediaType(ct)
		if err != nil {
			return nil, "", UnsupportedMedia(fmt.Sprintf("the Content-Type %q cannot be parsed: %v", ct, err))
		}
	}
	if !patch {
		switch mt {
		case "", "application/json", "application/yaml", ProtobufType:
		default:
			return nil, "", UnsupportedMedia(fmt.Sprintf("the body of the request was in an unknown format (Content-Type %q) - accepted media types include: application/json, application/yaml, %s", ct, ProtobufType))
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, "", BadRequest("reading the request body: %v", err)
	}
	if len(body) > maxBody {
		return nil, "", TooLarge("the server has received a request that is too large: the request body is larger than 3 MiB")
	}
	return body, mt, nil
}

// toJSON turns a body of media type mt (YAML, protobuf of kind k) into JSON.
func toJSON(k *kinds.Kind, body []byte, mt string) ([]byte, string, error) {
	switch mt {
	case "application/yaml":
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, "", BadRequest("the request body is not valid YAML: %v", err)
		}
		return j, "application/json", nil
	case ProtobufType:
		o, err := decodeProtobuf(k, body)
		if err != nil {
			return nil, "", err
		}
		j, err := json.Marshal(o)
		if err != nil {
			return nil, "", BadRequest("the protobuf request body is not a valid %s: %v", k.Info.Kind, err)
		}
		return j, "application/json", nil
	}
	return body, mt, nil
}

// maxStored bounds an object as stored: etcd refuses requests over 1.5 MiB
// by default (--max-request-bytes), which kube-apiserver answers with 413.
const maxStored = 3 << 19

// CheckStoredSize refuses to store value, the encoding of k's object name,
// when etcd would refuse it.
func CheckStoredSize(k *kinds.Kind, name string, value []byte) error {
	if len(value) <= maxStored {
		return nil
	}
	return TooLarge(fmt.Sprintf("%s %q is too large to store: %d bytes, the limit is %d bytes (1.5 MiB); make it smaller", k.Info.Kind, name, len(value), maxStored))
}

// fieldValidation reads ?fieldValidation=: "Strict", "Warn" (default) or "Ignore".
func fieldValidation(q url.Values) (string, error) {
	switch v := q.Get("fieldValidation"); v {
	case "", "Warn", "warn":
		return "Warn", nil
	case "Strict", "strict":
		return "Strict", nil
	case "Ignore", "ignore":
		return "Ignore", nil
	default:
		return "", BadRequest("fieldValidation %q is not one of Strict, Warn, Ignore", v)
	}
}

// DryRun reads ?dryRun=: only "All" is supported.
func DryRun(vals []string) (bool, error) {
	for _, v := range vals {
		if v != metav1.DryRunAll {
			return false, BadRequest("dryRun %q is not supported: use dryRun=All", v)
		}
	}
	return len(vals) > 0, nil
}

// AddWarnings sends warnings as Warning headers, as kubectl shows them.
func AddWarnings(w http.ResponseWriter, warnings []string) {
	for _, msg := range warnings {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", msg))
	}
}

// ProtobufType is the media type of Kubernetes protobuf bodies.
const ProtobufType = "application/vnd.kubernetes.protobuf"

// protobufMagic starts every Kubernetes protobuf message.
var protobufMagic = []byte{0x6b, 0x38, 0x73, 0x00}

// decodeProtobuf decodes a Kubernetes protobuf envelope (magic, then a
// runtime.Unknown holding the object) of kind k: the kubelet and client-go
// clientsets send protobuf bodies (and DeleteOptions as a DELETE's body).
func decodeProtobuf(k *kinds.Kind, body []byte) (runtime.Object, error) {
	bad := func(err error) error {
		return BadRequest("the protobuf request body is not a valid %s: %v", k.Info.Kind, err)
	}
	if !bytes.HasPrefix(body, protobufMagic) {
		return nil, bad(errors.New("it does not start with the protobuf envelope's magic number"))
	}
	var u runtime.Unknown
	if err := u.Unmarshal(body[len(protobufMagic):]); err != nil {
		return nil, bad(err)
	}
	var o runtime.Object = k.NewObj()
	if u.Kind == "DeleteOptions" { // the body of a DELETE (the kubelet's, client-go's with options)
		o = &metav1.DeleteOptions{}
	}
	pm, ok := o.(interface{ Unmarshal([]byte) error })
	if !ok {
		return nil, bad(fmt.Errorf("%s cannot be decoded from protobuf; send JSON", k.Info.Kind))
	}
	if err := pm.Unmarshal(u.Raw); err != nil {
		return nil, bad(err)
	}
	o.GetObjectKind().SetGroupVersionKind(schema.FromAPIVersionAndKind(u.APIVersion, u.Kind))
	return o, nil
}

// DecodeBody decodes a request body into the served kind. strict reports unknown fields.
func DecodeBody(k *kinds.Kind, body []byte, strict bool) (kinds.Object, []string, error) {
	o := k.NewObj()
	var warnings []string
	strictErrs, err := sigsjson.UnmarshalStrict(body, o)
	if err != nil {
		return nil, nil, BadRequest("the request body is not a valid %s: %v", k.Info.Kind, err)
	}
	for _, e := range strictErrs {
		warnings = append(warnings, e.Error())
	}
	if strict && len(warnings) > 0 {
		return nil, nil, BadRequest("strict decoding error: %v", JoinErr(warnings))
	}
	return o, warnings, nil
}

// JoinErr joins strict decoding errors with commas.
func JoinErr(s []string) string {
	out := ""
	for i, e := range s {
		if i > 0 {
			out += ", "
		}
		out += e
	}
	return out
}

// Selector is a request's label and field selectors.
type Selector struct {
	Label labels.Selector
	Field fields.Selector
}

// Empty tells whether the selector selects everything.
func (s *Selector) Empty() bool { return s.Label.Empty() && s.Field.Empty() }

// Matches tells whether o, of kind k, is selected.
func (s *Selector) Matches(k *kinds.Kind, o kinds.Object) bool {
	if !s.Label.Empty() && !s.Label.Matches(labels.Set(o.GetLabels())) {
		return false
	}
	if !s.Field.Empty() && !s.Field.Matches(k.Fields(o)) {
		return false
	}
	return true
}

// ParseSelectors reads labelSelector and fieldSelector, refusing fields the
// kind does not support.
func ParseSelectors(k *kinds.Kind, q url.Values) (*Selector, error) {
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, BadRequest("labelSelector %q is invalid: %v", q.Get("labelSelector"), err)
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return nil, BadRequest("fieldSelector %q is invalid: %v", q.Get("fieldSelector"), err)
	}
	supported := k.Fields(k.NewObj())
	for _, req := range fs.Requirements() {
		if _, ok := supported[req.Field]; !ok {
			names := make([]string, 0, len(supported))
			for n := range supported {
				names = append(names, fmt.Sprintf("%q", n))
			}
			sort.Strings(names)
			return nil, BadRequest("%q is not a known field selector for %s: only %s", req.Field, k.Info.Resource, strings.Join(names, ", "))
		}
	}
	return &Selector{Label: ls, Field: fs}, nil
}

// ParseRV reads a resourceVersion.
func ParseRV(s string) (int64, error) {
	rv, err := strconv.ParseInt(s, 10, 64)
	if err != nil || rv < 0 {
		return 0, BadRequest("resourceVersion %q is not a resourceVersion returned by this server (a decimal number)", s)
	}
	return rv, nil
}

// checkFieldManager refuses a fieldManager longer than kube-apiserver allows.
func checkFieldManager(rq *Request) error {
	if fm := rq.Query.Get("fieldManager"); len(fm) > 128 {
		return BadRequest("fieldManager %q is longer than 128 characters", fm)
	}
	return nil
}

// CheckGVK refuses an object whose apiVersion or kind is not k's.
func CheckGVK(k *kinds.Kind, o kinds.Object) error {
	gvk := o.GetObjectKind().GroupVersionKind()
	if gvk.Empty() {
		return nil
	}
	want := k.Info.GVK()
	if gvk.GroupVersion() != want.GroupVersion() {
		return BadRequest("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion(), want.GroupVersion())
	}
	if gvk.Kind != "" && gvk.Kind != want.Kind {
		return BadRequest("the kind in the data (%s) does not match the expected kind (%s)", gvk.Kind, want.Kind)
	}
	return nil
}

// ReadObject reads the object of a create or an update: the body decoded
// into rq's kind (strictly under fieldValidation=Strict) and checked to be
// of it, the strict decoding's warnings, the field validation and dryRun.
//
// A protobuf body is decoded straight into the kind's Go type (it has no
// unknown fields to report), not through JSON.
func ReadObject(r *http.Request, rq *Request) (o kinds.Object, warnings []string, fv string, dry bool, err error) {
	body, mt, err := readBody(r, false)
	if err != nil {
		return nil, nil, "", false, err
	}
	if fv, dry, err = writeOptions(rq); err != nil {
		return nil, nil, "", false, err
	}
	if mt == ProtobufType {
		po, err := decodeProtobuf(rq.Kind, body)
		if err != nil {
			return nil, nil, "", false, err
		}
		if o, _ = po.(kinds.Object); o == nil {
			return nil, nil, "", false, BadRequest("the protobuf request body is a %s, not a %s", po.GetObjectKind().GroupVersionKind().Kind, rq.Kind.Info.Kind)
		}
	} else {
		if body, _, err = toJSON(rq.Kind, body, mt); err != nil {
			return nil, nil, "", false, err
		}
		if o, warnings, err = DecodeBody(rq.Kind, body, fv == "Strict"); err != nil {
			return nil, nil, "", false, err
		}
	}
	if err := CheckGVK(rq.Kind, o); err != nil {
		return nil, nil, "", false, err
	}
	return o, warnings, fv, dry, nil
}

// WriteRequest reads what every write (create, update, patch) needs: the
// body and its media type, the field validation (Strict, Warn or Ignore),
// and dryRun.
func WriteRequest(r *http.Request, rq *Request) (body []byte, mediaType, fv string, dry bool, err error) {
	body, mediaType, err = ReadBody(r, rq.Kind, rq.Verb == "patch")
	if err != nil {
		return nil, "", "", false, err
	}
	if fv, dry, err = writeOptions(rq); err != nil {
		return nil, "", "", false, err
	}
	return body, mediaType, fv, dry, nil
}

// writeOptions reads a write's field validation and dryRun, and checks
// its fieldManager.
func writeOptions(rq *Request) (fv string, dry bool, err error) {
	if fv, err = fieldValidation(rq.Query); err != nil {
		return "", false, err
	}
	if dry, err = DryRun(rq.Query["dryRun"]); err != nil {
		return "", false, err
	}
	if err := checkFieldManager(rq); err != nil {
		return "", false, err
	}
	return fv, dry, nil
}

// proxyVerb is the verb kube-apiserver authorizes a proxied request as.
func proxyVerb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return ""
}

// Get reads one object of kind k from store as served, failing as a Status.
func Get(ctx context.Context, store storage.Store, k *kinds.Kind, ns, name string) (kinds.Object, error) {
	o, err := k.Get(ctx, store, ns, name)
	if err != nil {
		return nil, StorageError(err, k.GroupResource(), name)
	}
	return o, nil
}
