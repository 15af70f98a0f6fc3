// Package openapi serves /openapi/v2 and /openapi/v3 for the resources
// Ballast serves, generated at start by reflection over their Go types
// (k8s.io/api), with kube-apiserver's schema names, descriptions from the
// types' SwaggerDoc and its x-kubernetes-* extensions, so `kubectl explain`,
// kubectl's field-validation probe and strategic merge patches work.
package openapi

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	nodev1 "k8s.io/api/node/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kschema "k8s.io/apimachinery/pkg/runtime/schema"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/ballast-dev/ballast/internal/apiserver/discovery"
	"github.com/ballast-dev/ballast/internal/apiserver/resource"
)

// scheme knows the list types of the served kinds.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, eventsv1.AddToScheme, coordinationv1.AddToScheme, authorizationv1.AddToScheme,
		metricsv1beta1.AddToScheme, nodev1.AddToScheme, storagev1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// Spec holds the generated documents; it is an http.Handler for
// /openapi/v2, /openapi/v3 and /openapi/v3/<group-version path>.
type Spec struct {
	v2 document
	// v2pb is v2 in protobuf, made once when first asked for.
	v2pbOnce sync.Once
	v2pb     document
	v2pbErr  error
	index    document
	v3       map[string]document // "api/v1", "apis/coordination.k8s.io/v1"
	start    time.Time
	v3Keys   []string
}

type document struct {
	body []byte
	hash string // upper-case hex sha512, as kube-apiserver
}

func newDocument(v any) (document, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return document{}, err
	}
	sum := sha512.Sum512(body)
	return document{body: body, hash: fmt.Sprintf("%X", sum)}, nil
}

// New generates the documents for infos.
func New(infos []resource.Info) (*Spec, error) {
	s := &Spec{v3: map[string]document{}, start: time.Now()}

	// v2: one document for everything.
	v2b := newBuilder(false)
	v2paths := schema{}
	for _, in := range infos {
		if err := addResource(v2b, v2paths, in); err != nil {
			return nil, err
		}
	}
	v2 := schema{
		"swagger":     "2.0",
		"info":        schema{"title": "Kubernetes", "version": discovery.GitVersion},
		"paths":       v2paths,
		"definitions": v2b.defs,
		"securityDefinitions": schema{"BearerToken": schema{
			"description": "Bearer Token authentication", "type": "apiKey", "name": "authorization", "in": "header",
		}},
		"security": []schema{{"BearerToken": []string{}}},
	}
	var err error
	if s.v2, err = newDocument(v2); err != nil {
		return nil, err
	}

	// v3: one document per group/version.
	byGV := map[string][]resource.Info{}
	for _, in := range infos {
		key := "apis/" + in.Group + "/" + in.Version
		if in.Group == "" {
			key = "api/" + in.Version
		}
		if _, ok := byGV[key]; !ok {
			s.v3Keys = append(s.v3Keys, key)
		}
		byGV[key] = append(byGV[key], in)
	}
	sort.Strings(s.v3Keys)
	indexPaths := schema{}
	for _, key := range s.v3Keys {
		b := newBuilder(true)
		paths := schema{}
		for _, in := range byGV[key] {
			if err := addResource(b, paths, in); err != nil {
				return nil, err
			}
		}
		doc := schema{
			"openapi": "3.0.0",
			"info":    schema{"title": "Kubernetes", "version": discovery.GitVersion},
			"paths":   paths,
			"components": schema{
				"schemas": b.defs,
				"securitySchemes": schema{"BearerToken": schema{
					"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header",
				}},
			},
			"security": []schema{{"BearerToken": []string{}}},
		}
		d, err := newDocument(doc)
		if err != nil {
			return nil, err
		}
		s.v3[key] = d
		indexPaths[key] = schema{"serverRelativeURL": "/openapi/v3/" + key + "?hash=" + d.hash}
	}
	if s.index, err = newDocument(schema{"paths": indexPaths}); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler generates the documents for infos and serves them.
func Handler(infos []resource.Info) (http.Handler, error) {
	s, err := New(infos)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// V3Paths are the group/version paths of /openapi/v3, e.g. "api/v1".
func (s *Spec) V3Paths() []string { return append([]string(nil), s.v3Keys...) }

// V3 returns the document of a group/version path ("api/v1") and its hash.
func (s *Spec) V3(path string) (body []byte, hash string, ok bool) {
	d, ok := s.v3[path]
	return d.body, d.hash, ok
}

// V2 returns the swagger 2.0 document.
func (s *Spec) V2() []byte { return s.v2.body }

// MediaTypeV2Protobuf is the media type of /openapi/v2 in protobuf
// (gnostic's openapi_v2.Document), as kube-openapi answers it; clients
// (client-go's discovery: kubectl, helm) ask for it as
// MediaTypeV2ProtobufDeprecated, which mime.ParseMediaType cannot parse.
const (
	MediaTypeV2Protobuf           = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
	MediaTypeV2ProtobufDeprecated = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
)

// prefersV2Protobuf: the Accept header prefers the protobuf v2 document to
// JSON (the highest q wins, then the first listed), as kube-openapi decides.
func prefersV2Protobuf(accept string) bool {
	best, bestQ := "", -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		mt = strings.TrimSpace(mt)
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && k == "q" {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		switch mt {
		case MediaTypeV2Protobuf, MediaTypeV2ProtobufDeprecated:
			mt = MediaTypeV2Protobuf
		case "application/json", "*/*", "application/*":
			mt = "application/json"
		default:
			continue
		}
		if q > bestQ {
			best, bestQ = mt, q
		}
	}
	return best == MediaTypeV2Protobuf
}

// v2Protobuf is the v2 document in protobuf, made on first request (most
// servers are never asked).
func (s *Spec) v2Protobuf() (document, error) {
	s.v2pbOnce.Do(func() {
		doc, err := openapi_v2.ParseDocument(s.v2.body)
		if err != nil {
			s.v2pbErr = fmt.Errorf("converting /openapi/v2 to protobuf: %w", err)
			return
		}
		body, err := proto.Marshal(doc)
		if err != nil {
			s.v2pbErr = fmt.Errorf("encoding /openapi/v2 as protobuf: %w", err)
			return
		}
		s.v2pb = document{body: body, hash: fmt.Sprintf("%X", sha512.Sum512(body))}
	})
	return s.v2pb, s.v2pbErr
}

// acceptsJSON: the Accept header allows JSON.
func acceptsJSON(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json", "*/*", "application/*":
			return true
		}
	}
	return false
}

func (s *Spec) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		status(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+": use GET")
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	if p == "/openapi/v2" && prefersV2Protobuf(r.Header.Get("Accept")) {
		d, err := s.v2Protobuf()
		if err != nil {
			status(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
			return
		}
		serveAs(w, r, d, false, MediaTypeV2Protobuf)
		return
	}
	if !acceptsJSON(r.Header.Get("Accept")) {
		status(w, http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable,
			"only application/json (and "+MediaTypeV2Protobuf+" for /openapi/v2) is served for "+r.URL.Path)
		return
	}
	switch {
	case p == "/openapi/v2":
		serve(w, r, s.v2, false)
		return
	case p == "/openapi/v3":
		serve(w, r, s.index, false)
		return
	case strings.HasPrefix(p, "/openapi/v3/"):
		key := strings.TrimPrefix(p, "/openapi/v3/")
		d, ok := s.v3[key]
		if !ok {
			break
		}
		hash := r.URL.Query().Get("hash")
		if hash != "" && hash != d.hash {
			// An old hash: send the client to the current document.
			u := *r.URL
			u.RawQuery = "hash=" + d.hash
			http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
			return
		}
		serve(w, r, d, hash != "")
		return
	}
	status(w, http.StatusNotFound, metav1.StatusReasonNotFound,
		"no OpenAPI document at "+r.URL.Path+"; /openapi/v3 lists the documents served")
}

func serve(w http.ResponseWriter, r *http.Request, d document, immutable bool) {
	serveAs(w, r, d, immutable, "application/json")
}

func serveAs(w http.ResponseWriter, r *http.Request, d document, immutable bool, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("ETag", `"`+d.hash+`"`)
	h.Set("Vary", "Accept")
	if immutable {
		h.Set("Cache-Control", "public, immutable")
		h.Set("Expires", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat))
	} else {
		h.Set("Cache-Control", "no-cache, private")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(d.body))
}

func status(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code)}
	body, _ := json.Marshal(&st)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// gvkExt is the x-kubernetes-group-version-kind value.
func gvkExt(gvk kschema.GroupVersionKind) schema {
	return schema{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}
}

// addGVK records gvk on the definition named name.
func addGVK(b *builder, name string, gvk kschema.GroupVersionKind) {
	def := b.defs[name]
	list, _ := def["x-kubernetes-group-version-kind"].([]schema)
	for _, e := range list {
		if e["group"] == gvk.Group && e["version"] == gvk.Version && e["kind"] == gvk.Kind {
			return
		}
	}
	def["x-kubernetes-group-version-kind"] = append(list, gvkExt(gvk))
}

var (
	statusType        = reflect.TypeFor[metav1.Status]()
	deleteOptionsType = reflect.TypeFor[metav1.DeleteOptions]()
	watchEventType    = reflect.TypeFor[metav1.WatchEvent]()
	patchType         = reflect.TypeFor[metav1.Patch]()
)

// typeOf is the Go type of a kind of the resource's group/version.
func typeOf(in resource.Info, kind string) (reflect.Type, error) {
	if kind == in.Kind && in.New != nil {
		t := reflect.TypeOf(in.New())
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		return t, nil
	}
	obj, err := scheme.New(kschema.GroupVersionKind{Group: in.Group, Version: in.Version, Kind: kind})
	if err != nil {
		return nil, fmt.Errorf("openapi: no Go type for %s %s: %w", in.GroupVersion(), kind, err)
	}
	return reflect.TypeOf(obj).Elem(), nil
}
