package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/apiserver/kinds"
	"github.com/ballast-dev/ballast/internal/auth"
)

// request is one parsed resource request.
type request struct {
	kind        *kinds.Kind // nil: the path names nothing served
	delegate    *Delegate   // set (with kind nil) for a delegated resource
	group       string
	version     string
	resource    string
	namespace   string
	name        string
	subresource string
	verb        string // get, list, watch, create, update, patch, delete, deletecollection
	query       url.Values
	user        auth.User
	notFound    string // why the path is not served, when kind == nil
	proxyPath   string // the path after .../proxy, for the proxy subresources
}

func (rq *request) attributes() auth.Attributes {
	return auth.Attributes{User: rq.user, Verb: rq.verb, Group: rq.group, Resource: rq.resource,
		Subresource: rq.subresource, Namespace: rq.namespace, Name: rq.name, LabelSelector: rq.query.Get("labelSelector")}
}

// parse reads a resource path: /api/v1/... or /apis/<group>/<version>/....
// It reports false for non-resource paths (discovery, health, OpenAPI).
func (s *Server) parse(r *http.Request, path string) (*request, bool) {
	rq := &request{query: r.URL.Query()}
	var rest string
	switch {
	case strings.HasPrefix(path, "/api/"):
		p := strings.SplitN(strings.TrimPrefix(path, "/api/"), "/", 2)
		if len(p) < 2 {
			return nil, false
		}
		rq.version, rest = p[0], p[1]
	case strings.HasPrefix(path, "/apis/"):
		p := strings.SplitN(strings.TrimPrefix(path, "/apis/"), "/", 3)
		if len(p) < 3 {
			return nil, false
		}
		rq.group, rq.version, rest = p[0], p[1], p[2]
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
		rq.namespace = segs[1]
		segs = segs[2:]
	}
	if len(segs) > 3 && segs[2] == "proxy" {
		// {nodes,pods}/NAME[:PORT]/proxy/PATH...: the rest is the proxied path.
		rq.proxyPath = "/" + strings.Join(segs[3:], "/")
		segs = segs[:3]
	}
	for _, sg := range segs {
		if sg == "" {
			rq.notFound = "the path has an empty segment"
			return rq, true
		}
	}
	if len(segs) == 0 || len(segs) > 3 {
		rq.notFound = "the path is not of the form [namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]"
		return rq, true
	}
	rq.resource = segs[0]
	if len(segs) > 1 {
		rq.name = segs[1]
	}
	if len(segs) > 2 {
		rq.subresource = segs[2]
	}
	gvr := schema.GroupVersionResource{Group: rq.group, Version: rq.version, Resource: rq.resource}
	if d := s.delegates[gvr]; d != nil {
		switch {
		case !d.Info.Namespaced && rq.namespace != "":
			rq.notFound = fmt.Sprintf("%s are not namespaced: use the path without namespaces/%s", rq.resource, rq.namespace)
		case r.Method == http.MethodGet && rq.name != "":
			rq.delegate, rq.verb = d, "get"
		case r.Method == http.MethodGet && (rq.query.Get("watch") == "true" || watchPath):
			rq.delegate, rq.verb = d, "watch"
		case r.Method == http.MethodGet:
			rq.delegate, rq.verb = d, "list"
		default:
			rq.delegate, rq.verb = d, strings.ToLower(r.Method)
		}
		return rq, true
	}
	k := s.kinds[gvr]
	switch {
	case k == nil:
		gv := rq.version
		if rq.group != "" {
			gv = rq.group + "/" + rq.version
		}
		rq.notFound = fmt.Sprintf("the server does not serve resource %q in %s; `kubectl api-resources` lists what Ballast serves", rq.resource, gv)
		return rq, true
	case !k.Info.Namespaced && rq.namespace != "":
		rq.notFound = fmt.Sprintf("%s are not namespaced: use the path without namespaces/%s", rq.resource, rq.namespace)
		return rq, true
	case rq.subresource != "" && !contains(k.Info.Subresources, rq.subresource):
		rq.notFound = fmt.Sprintf("%s has no subresource %q", rq.resource, rq.subresource)
		return rq, true
	}
	rq.kind = k
	if rq.subresource == "proxy" {
		// As kube-apiserver: the proxied request's method names the verb.
		rq.verb = proxyVerb(r.Method)
		if rq.proxyPath == "" {
			rq.proxyPath = "/"
		}
		return rq, true
	}
	isWatch := watchPath || rq.query.Get("watch") == "true" || rq.query.Get("watch") == "1"
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case rq.name != "" && isWatch:
			// /watch/.../NAME watches one object.
			rq.verb = "watch"
		case rq.name != "":
			rq.verb = "get"
		case isWatch:
			rq.verb = "watch"
		default:
			rq.verb = "list"
		}
	case http.MethodPost:
		rq.verb = "create"
	case http.MethodPut:
		rq.verb = "update"
	case http.MethodPatch:
		rq.verb = "patch"
	case http.MethodDelete:
		rq.verb = "delete"
		if rq.name == "" {
			rq.verb = "deletecollection"
		}
	default:
		rq.verb = strings.ToLower(r.Method)
	}
	if watchPath && rq.verb != "watch" {
		rq.notFound = "watch paths only serve GET"
		rq.kind = nil
	}
	return rq, true
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// maxBody bounds request bodies (kube-apiserver allows 3 MiB objects).
const maxBody = 3 << 20

// readBody reads a request body, turning YAML and protobuf (for kind k)
// into JSON. A body of another media type is refused with 415, as
// kube-apiserver does; patch bodies (patch true) are returned as sent, for
// servePatch to check their patch type.
func readBody(r *http.Request, k *kinds.Kind, patch bool) ([]byte, string, error) {
	ct := r.Header.Get("Content-Type")
	mt := ""
	if ct != "" {
		var err error
		mt, _, err = mime.ParseMediaType(ct)
		if err != nil {
			return nil, "", unsupportedMedia(fmt.Sprintf("the Content-Type %q cannot be parsed: %v", ct, err))
		}
	}
	if !patch {
		switch mt {
		case "", "application/json", "application/yaml", protobufType:
		default:
			return nil, "", unsupportedMedia(fmt.Sprintf("the body of the request was in an unknown format (Content-Type %q) - accepted media types include: application/json, application/yaml, %s", ct, protobufType))
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, "", badRequest("reading the request body: %v", err)
	}
	if len(body) > maxBody {
		return nil, "", tooLarge("the server has received a request that is too large: the request body is larger than 3 MiB")
	}
	if mt == "application/yaml" && !patch {
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, "", badRequest("the request body is not valid YAML: %v", err)
		}
		return j, "application/json", nil
	}
	if mt == protobufType && !patch {
		j, err := protobufToJSON(k, body)
		if err != nil {
			return nil, "", badRequest("the protobuf request body is not a valid %s: %v", k.Info.Kind, err)
		}
		return j, "application/json", nil
	}
	return body, mt, nil
}

// maxStored bounds an object as stored: etcd refuses requests over 1.5 MiB
// by default (--max-request-bytes), which kube-apiserver answers with 413.
const maxStored = 3 << 19

// checkStoredSize refuses to store value, the encoding of k's object name,
// when etcd would refuse it.
func checkStoredSize(k *kinds.Kind, name string, value []byte) error {
	if len(value) <= maxStored {
		return nil
	}
	return tooLarge(fmt.Sprintf("%s %q is too large to store: %d bytes, the limit is %d bytes (1.5 MiB); make it smaller", k.Info.Kind, name, len(value), maxStored))
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
		return "", badRequest("fieldValidation %q is not one of Strict, Warn, Ignore", v)
	}
}

// dryRun reads ?dryRun=: only "All" is supported.
func dryRun(vals []string) (bool, error) {
	for _, v := range vals {
		if v != metav1.DryRunAll {
			return false, badRequest("dryRun %q is not supported: use dryRun=All", v)
		}
	}
	return len(vals) > 0, nil
}

func addWarnings(w http.ResponseWriter, warnings []string) {
	for _, msg := range warnings {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", msg))
	}
}

const protobufType = "application/vnd.kubernetes.protobuf"

// protobufMagic starts every Kubernetes protobuf message.
var protobufMagic = []byte{0x6b, 0x38, 0x73, 0x00}

// protobufToJSON decodes a Kubernetes protobuf envelope (magic, then a
// runtime.Unknown holding the object) of kind k, as JSON. Some clients
// (kubectl auth can-i) send protobuf bodies.
func protobufToJSON(k *kinds.Kind, body []byte) ([]byte, error) {
	if !bytes.HasPrefix(body, protobufMagic) {
		return nil, errors.New("it does not start with the protobuf envelope's magic number")
	}
	var u runtime.Unknown
	if err := u.Unmarshal(body[len(protobufMagic):]); err != nil {
		return nil, err
	}
	var o runtime.Object = k.NewObj()
	if u.Kind == "DeleteOptions" { // the body of a DELETE (the kubelet's, client-go's with options)
		o = &metav1.DeleteOptions{}
	}
	pm, ok := o.(interface{ Unmarshal([]byte) error })
	if !ok {
		return nil, fmt.Errorf("%s cannot be decoded from protobuf; send JSON", k.Info.Kind)
	}
	if err := pm.Unmarshal(u.Raw); err != nil {
		return nil, err
	}
	o.GetObjectKind().SetGroupVersionKind(schema.FromAPIVersionAndKind(u.APIVersion, u.Kind))
	return json.Marshal(o)
}

// decodeBody decodes a request body into the served kind. strict reports unknown fields.
func decodeBody(k *kinds.Kind, body []byte, strict bool) (kinds.Object, []string, error) {
	o := k.NewObj()
	var warnings []string
	strictErrs, err := sigsjson.UnmarshalStrict(body, o)
	if err != nil {
		return nil, nil, badRequest("the request body is not a valid %s: %v", k.Info.Kind, err)
	}
	for _, e := range strictErrs {
		warnings = append(warnings, e.Error())
	}
	if strict && len(warnings) > 0 {
		return nil, nil, badRequest("strict decoding error: %v", joinErr(warnings))
	}
	return o, warnings, nil
}

func joinErr(s []string) string {
	out := ""
	for i, e := range s {
		if i > 0 {
			out += ", "
		}
		out += e
	}
	return out
}
