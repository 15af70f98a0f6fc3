// Package discovery serves the Kubernetes discovery documents for the
// resources Ballast serves: /api, /apis, each group and group/version, the
// aggregated discovery form (apidiscovery.k8s.io/v2) kubectl asks for first,
// and /version.
package discovery

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"runtime"
	"sort"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	"github.com/ballast-dev/ballast/internal/apiserver/resource"
)

// GitVersion is what /version reports. Ballast implements the API as
// kube-apiserver 1.32 serves it (that is what its behaviour is checked
// against), so it claims 1.32: kubectl's version-skew check (+/-1 minor)
// passes for kubectl 1.31 to 1.33. The "+ballast" suffix is semver build
// metadata, which is ignored when versions are compared, so a client asking
// for ">= 1.32.0" is satisfied; a pre-release suffix such as "-ballast"
// would sort before v1.32.0 and fail such checks. Set at link time to
// override.
var GitVersion = "v1.32.0+ballast"

// GitCommit and BuildDate may be set at link time.
var (
	GitCommit = ""
	BuildDate = "1970-01-01T00:00:00Z"
)

// Media types of aggregated discovery.
const (
	AggregatedV2      = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
	AggregatedV2Beta1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
)

// Version is the /version document.
func Version() version.Info {
	major, minor := "1", "32"
	v := strings.TrimPrefix(GitVersion, "v")
	if parts := strings.SplitN(v, ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	return version.Info{
		Major:        major,
		Minor:        minor,
		GitVersion:   GitVersion,
		GitCommit:    GitCommit,
		GitTreeState: "clean",
		BuildDate:    BuildDate,
		GoVersion:    runtime.Version(),
		Compiler:     runtime.Compiler,
		Platform:     runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// StorageVersionHash is kube-apiserver's opaque hash of the version a
// resource is stored in: the first 8 bytes of sha256("group/version/kind"),
// base64. Clients only compare it for equality.
func StorageVersionHash(group, ver, kind string) string {
	sum := sha256.Sum256([]byte(group + "/" + ver + "/" + kind))
	return base64.StdEncoding.EncodeToString(sum[:8])
}

// groupVersion is one served group/version with its resources in order.
type groupVersion struct {
	group, version string
	infos          []resource.Info
}

func (gv groupVersion) String() string {
	if gv.group == "" {
		return gv.version
	}
	return gv.group + "/" + gv.version
}

// groupsOf groups infos by group/version, keeping first-seen order of
// groups and versions.
func groupsOf(infos []resource.Info) []groupVersion {
	var out []groupVersion
	idx := map[string]int{}
	for _, in := range infos {
		k := in.GroupVersion()
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, groupVersion{group: in.Group, version: in.Version})
		}
		out[i].infos = append(out[i].infos, in)
	}
	return out
}

// APIVersions is the /api document.
func APIVersions(infos []resource.Info, serverAddress string) *metav1.APIVersions {
	v := &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}}
	for _, gv := range groupsOf(infos) {
		if gv.group == "" {
			v.Versions = append(v.Versions, gv.version)
		}
	}
	if serverAddress != "" {
		v.ServerAddressByClientCIDRs = []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: serverAddress}}
	}
	return v
}

func apiGroup(name string, gvs []groupVersion) metav1.APIGroup {
	g := metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: name}
	for _, gv := range gvs {
		if gv.group != name {
			continue
		}
		d := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.version}
		g.Versions = append(g.Versions, d)
	}
	if len(g.Versions) > 0 {
		g.PreferredVersion = g.Versions[0]
	}
	return g
}

// APIGroupList is the /apis document: every named group.
func APIGroupList(infos []resource.Info) *metav1.APIGroupList {
	l := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{}}
	gvs := groupsOf(infos)
	seen := map[string]bool{}
	for _, gv := range gvs {
		if gv.group == "" || seen[gv.group] {
			continue
		}
		seen[gv.group] = true
		l.Groups = append(l.Groups, apiGroup(gv.group, gvs))
	}
	return l
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// APIResourceList is the /api/v1 or /apis/<group>/<version> document, with
// subresources as "pods/status".
func APIResourceList(infos []resource.Info, group, ver string) *metav1.APIResourceList {
	gvStr := ver
	if group != "" {
		gvStr = group + "/" + ver
	}
	l := &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: gvStr,
		APIResources: []metav1.APIResource{},
	}
	for _, in := range infos {
		if in.Group != group || in.Version != ver {
			continue
		}
		r := metav1.APIResource{
			Name:         in.Resource,
			SingularName: in.Singular,
			Namespaced:   in.Namespaced,
			Kind:         in.Kind,
			Verbs:        sortedCopy(in.Verbs),
			ShortNames:   in.ShortNames,
			Categories:   in.Categories,
		}
		if in.HasVerb("get") || in.HasVerb("list") {
			r.StorageVersionHash = StorageVersionHash(in.Group, in.Version, in.Kind)
		}
		l.APIResources = append(l.APIResources, r)
		for _, sub := range in.Subresources {
			l.APIResources = append(l.APIResources, metav1.APIResource{
				Name:       in.Resource + "/" + sub,
				Namespaced: in.Namespaced,
				Kind:       resource.SubresourceKind(in.Kind, sub),
				Verbs:      resource.SubresourceVerbs(sub),
			})
		}
	}
	return l
}

func scope(in resource.Info) apidiscoveryv2.ResourceScope {
	if in.Namespaced {
		return apidiscoveryv2.ScopeNamespace
	}
	return apidiscoveryv2.ScopeCluster
}

// Aggregated is the aggregated discovery document for /api (core == true)
// or /apis.
func Aggregated(infos []resource.Info, core bool) *apidiscoveryv2.APIGroupDiscoveryList {
	l := &apidiscoveryv2.APIGroupDiscoveryList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"},
		Items:    []apidiscoveryv2.APIGroupDiscovery{},
	}
	idx := map[string]int{}
	for _, gv := range groupsOf(infos) {
		if (gv.group == "") != core {
			continue
		}
		i, ok := idx[gv.group]
		if !ok {
			i = len(l.Items)
			idx[gv.group] = i
			l.Items = append(l.Items, apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: gv.group}})
		}
		vd := apidiscoveryv2.APIVersionDiscovery{Version: gv.version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		for _, in := range gv.infos {
			gvk := metav1.GroupVersionKind{Group: in.Group, Version: in.Version, Kind: in.Kind}
			rd := apidiscoveryv2.APIResourceDiscovery{
				Resource:         in.Resource,
				ResponseKind:     &gvk,
				Scope:            scope(in),
				SingularResource: in.Singular,
				Verbs:            sortedCopy(in.Verbs),
				ShortNames:       in.ShortNames,
				Categories:       in.Categories,
			}
			for _, sub := range in.Subresources {
				k := gvk
				k.Kind = resource.SubresourceKind(in.Kind, sub)
				rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
					Subresource:  sub,
					ResponseKind: &k,
					Verbs:        resource.SubresourceVerbs(sub),
				})
			}
			vd.Resources = append(vd.Resources, rd)
		}
		l.Items[i].Versions = append(l.Items[i].Versions, vd)
	}
	return l
}

// Negotiated is the form of discovery a request's Accept header asks for.
type Negotiated int

const (
	// Legacy is plain JSON: APIVersions, APIGroupList.
	Legacy Negotiated = iota
	// AggregatedV2Form is apidiscovery.k8s.io/v2 APIGroupDiscoveryList.
	AggregatedV2Form
	// AggregatedV2Beta1Form is the same document as apidiscovery.k8s.io/v2beta1.
	AggregatedV2Beta1Form
	// NotAcceptable: nothing in Accept can be served.
	NotAcceptable
)

// Negotiate reads an Accept header for /api or /apis. The first acceptable
// media type wins (kubectl lists them in order of preference).
func Negotiate(accept string) Negotiated {
	if strings.TrimSpace(accept) == "" {
		return Legacy
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json":
		case "*/*", "application/*":
			return Legacy
		default:
			continue
		}
		as, g, v := params["as"], params["g"], params["v"]
		switch {
		case as == "" && g == "" && v == "":
			return Legacy
		case as == "APIGroupDiscoveryList" && g == "apidiscovery.k8s.io" && v == "v2":
			return AggregatedV2Form
		case as == "APIGroupDiscoveryList" && g == "apidiscovery.k8s.io" && v == "v2beta1":
			return AggregatedV2Beta1Form
		}
	}
	return NotAcceptable
}

// Handler serves /api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>
// and /version for infos. Other paths get a 404 Status; see Paths for the
// exact paths to route here.
func Handler(infos []resource.Info) http.Handler {
	infos = append([]resource.Info(nil), infos...)
	return &handler{infos: infos, gvs: groupsOf(infos)}
}

// Paths lists the exact URL paths Handler serves.
func Paths(infos []resource.Info) []string {
	out := []string{"/api", "/apis", "/version"}
	seen := map[string]bool{}
	for _, gv := range groupsOf(infos) {
		if gv.group == "" {
			out = append(out, "/api/"+gv.version)
			continue
		}
		if !seen[gv.group] {
			seen[gv.group] = true
			out = append(out, "/apis/"+gv.group)
		}
		out = append(out, "/apis/"+gv.group+"/"+gv.version)
	}
	return out
}

type handler struct {
	infos []resource.Info
	gvs   []groupVersion
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed,
			fmt.Sprintf("%s is not allowed on %s: discovery is read-only, use GET", r.Method, r.URL.Path))
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case p == "/version":
		writeJSON(w, r, "application/json", Version())
		return
	case p == "/api" || p == "/apis":
		core := p == "/api"
		switch Negotiate(r.Header.Get("Accept")) {
		case AggregatedV2Form:
			writeJSON(w, r, AggregatedV2, Aggregated(h.infos, core))
		case AggregatedV2Beta1Form:
			l := Aggregated(h.infos, core)
			l.APIVersion = "apidiscovery.k8s.io/v2beta1"
			writeJSON(w, r, AggregatedV2Beta1, l)
		case NotAcceptable:
			writeStatus(w, http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable,
				"only application/json and "+AggregatedV2+" are served here")
		default:
			if core {
				writeJSON(w, r, "application/json", APIVersions(h.infos, r.Host))
			} else {
				writeJSON(w, r, "application/json", APIGroupList(h.infos))
			}
		}
		return
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "api":
		if h.hasGV("", parts[1]) {
			writeJSON(w, r, "application/json", APIResourceList(h.infos, "", parts[1]))
			return
		}
	case len(parts) == 2 && parts[0] == "apis":
		g := apiGroup(parts[1], h.gvs)
		if len(g.Versions) > 0 {
			writeJSON(w, r, "application/json", &g)
			return
		}
	case len(parts) == 3 && parts[0] == "apis":
		if h.hasGV(parts[1], parts[2]) {
			writeJSON(w, r, "application/json", APIResourceList(h.infos, parts[1], parts[2]))
			return
		}
	}
	writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
		fmt.Sprintf("the server could not find the requested resource %s; `kubectl api-resources` lists what Ballast serves", r.URL.Path))
}

func (h *handler) hasGV(group, ver string) bool {
	for _, gv := range h.gvs {
		if gv.group == group && gv.version == ver {
			return true
		}
	}
	return false
}

// writeJSON writes v with an ETag and answers If-None-Match with 304.
func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "encoding discovery: "+err.Error())
		return
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	etag := fmt.Sprintf("%q", fmt.Sprintf("%X", sum[:16]))
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("Vary", "Accept")
	hd.Set("ETag", etag)
	hd.Set("Cache-Control", "no-cache, private")
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reason,
		Code:     int32(code),
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(&st)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
