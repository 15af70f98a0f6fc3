package manifest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ballast-dev/ballast/internal/manifest/decode"
	"github.com/ballast-dev/ballast/internal/suggest"
	"github.com/ballast-dev/ballast/internal/validation"
)

// ---- The fields this version of Ballast supports ----
//
// A manifest is checked by walking its generic form (as decoded from the
// file) against this table, in step with the Go type of the Kubernetes API
// object (which gives each field's JSON type and tells a field Kubernetes
// knows from a typo). A field is accepted only if the table allows it:
//
//   - allow: the field and everything under it that Kubernetes knows.
//   - object: the field, but under it only the fields the table lists.
//     (A path that has rules below it is an object implicitly.)
//   - only: the field, with one of the listed values.
//   - refuse: never accepted; msg says why and what to do instead.
//   - drop: accepted and ignored, as the kubelet ignores it.
//
// Anything else set in a file is refused by name: a field Kubernetes knows is
// "not supported by this version of Ballast yet", another is an unknown field.
// To support a field, add a line here (and honour it where pods are run).
// Patterns name list elements "[]" and map values "{}".

type mode int

const (
	allow mode = iota
	object
	only
	refuse
	drop
)

type rule struct {
	path string
	mode mode
	only []any // values accepted, for mode only
	msg  string
	// emptyOK: with mode refuse, an empty value ({} or null) is dropped
	// instead (kubeadm writes "status: {}" into its manifests).
	emptyOK bool
}

const (
	msgSA      = "static pods cannot use service accounts: there may be no API server to issue tokens; remove it"
	msgSAToken = "static pods cannot use service account tokens: there may be no API server to issue them; remove this source (configMap, secret and downwardAPI sources work)"
)

// objectRules are the fields every object of a manifest file has (what
// names it in the messages): apiVersion, kind and metadata.
func objectRules(what string) []rule {
	return []rule{
		{path: "apiVersion", mode: allow},
		{path: "kind", mode: allow},
		{path: "metadata", mode: object},
		{path: "metadata.name", mode: allow},
		{path: "metadata.namespace", mode: allow},
		{path: "metadata.labels", mode: allow},
		{path: "metadata.annotations", mode: allow},
		{path: "metadata.uid", mode: drop},
		{path: "metadata.resourceVersion", mode: drop},
		{path: "metadata.creationTimestamp", mode: drop},
		{path: "metadata.generateName", mode: refuse, msg: what + " needs a fixed name; set metadata.name instead"},
		{path: "metadata.ownerReferences", mode: refuse, msg: what + " is owned by its manifest file, not by an API object; remove it"},
		{path: "metadata.finalizers", mode: refuse, msg: what + " is removed by removing its file, finalizers would never run; remove it"},
	}
}

var rules = append(objectRules("a static pod"), []rule{
	{path: "spec", mode: object},
	{path: "spec.containers", mode: object},
	{path: "spec.containers[].name", mode: allow},
	{path: "spec.containers[].image", mode: allow},
	{path: "spec.containers[].imagePullPolicy", mode: allow},
	{path: "spec.containers[].command", mode: allow},
	{path: "spec.containers[].args", mode: allow},
	{path: "spec.containers[].workingDir", mode: allow},
	{path: "spec.containers[].env[].name", mode: allow},
	{path: "spec.containers[].env[].value", mode: allow},
	{path: "spec.containers[].env[].valueFrom", mode: object},
	{path: "spec.containers[].env[].valueFrom.fieldRef", mode: allow},
	{path: "spec.containers[].env[].valueFrom.resourceFieldRef", mode: allow},
	{path: "spec.containers[].env[].valueFrom.configMapKeyRef", mode: allow},
	{path: "spec.containers[].env[].valueFrom.secretKeyRef", mode: allow},
	{path: "spec.containers[].envFrom", mode: allow},
	{path: "spec.containers[].ports[].name", mode: allow},
	{path: "spec.containers[].ports[].containerPort", mode: allow},
	{path: "spec.containers[].ports[].protocol", mode: allow},
	{path: "spec.containers[].ports[].hostPort", mode: allow},
	{path: "spec.containers[].ports[].hostIP", mode: allow},
	{path: "spec.containers[].volumeMounts[].name", mode: allow},
	{path: "spec.containers[].volumeMounts[].mountPath", mode: allow},
	{path: "spec.containers[].volumeMounts[].readOnly", mode: allow},
	{path: "spec.containers[].volumeMounts[].subPath", mode: allow},
	{path: "spec.containers[].volumeMounts[].subPathExpr", mode: allow},
	{path: "spec.containers[].volumeMounts[].mountPropagation", mode: allow},
	{path: "spec.containers[].terminationMessagePath", mode: allow},
	{path: "spec.containers[].terminationMessagePolicy", mode: allow},
	{path: "spec.containers[].resources", mode: object},
	{path: "spec.containers[].resources.limits", mode: allow},
	{path: "spec.containers[].resources.requests", mode: allow},
	{path: "spec.containers[].resources.claims", mode: refuse, msg: "static pods cannot use ResourceClaims: there may be no API server; remove it"},
	{path: "spec.containers[].securityContext", mode: object},
	{path: "spec.containers[].securityContext.runAsUser", mode: allow},
	{path: "spec.containers[].securityContext.runAsGroup", mode: allow},
	{path: "spec.containers[].securityContext.runAsNonRoot", mode: allow},
	{path: "spec.containers[].securityContext.privileged", mode: allow},
	{path: "spec.containers[].securityContext.capabilities", mode: allow},
	{path: "spec.containers[].securityContext.allowPrivilegeEscalation", mode: allow},
	{path: "spec.containers[].securityContext.readOnlyRootFilesystem", mode: allow},
	{path: "spec.containers[].securityContext.seccompProfile", mode: allow},
	{path: "spec.containers[].securityContext.procMount", mode: allow},
	{path: "spec.containers[].stdin", mode: only, only: []any{false}},
	{path: "spec.containers[].tty", mode: only, only: []any{false}},

	{path: "spec.volumes[].name", mode: allow},
	{path: "spec.volumes[].hostPath.path", mode: allow},
	{path: "spec.volumes[].hostPath.type", mode: allow},
	{path: "spec.volumes[].emptyDir", mode: object},
	{path: "spec.volumes[].emptyDir.medium", mode: allow},
	{path: "spec.volumes[].emptyDir.sizeLimit", mode: allow},
	{path: "spec.volumes[].configMap", mode: allow},
	{path: "spec.volumes[].secret", mode: allow},
	{path: "spec.volumes[].downwardAPI", mode: object},
	{path: "spec.volumes[].downwardAPI.defaultMode", mode: allow},
	{path: "spec.volumes[].downwardAPI.items[].path", mode: allow},
	{path: "spec.volumes[].downwardAPI.items[].fieldRef", mode: allow},
	{path: "spec.volumes[].downwardAPI.items[].resourceFieldRef", mode: allow},
	{path: "spec.volumes[].downwardAPI.items[].mode", mode: allow},
	{path: "spec.volumes[].projected", mode: object},
	{path: "spec.volumes[].projected.defaultMode", mode: allow},
	{path: "spec.volumes[].projected.sources[].configMap", mode: allow},
	{path: "spec.volumes[].projected.sources[].secret", mode: allow},
	{path: "spec.volumes[].projected.sources[].downwardAPI", mode: allow},
	{path: "spec.volumes[].projected.sources[].serviceAccountToken", mode: refuse, msg: msgSAToken},
	{path: "spec.volumes[].projected.sources[].clusterTrustBundle", mode: refuse, msg: "static pods cannot read ClusterTrustBundles: there may be no API server; put the certificates in a ConfigMap of the manifest directory and project that"},
	{path: "spec.volumes[].persistentVolumeClaim", mode: refuse, msg: "static pods cannot use PersistentVolumeClaims: there may be no API server; use a hostPath volume"},

	{path: "spec.restartPolicy", mode: allow},
	{path: "spec.terminationGracePeriodSeconds", mode: allow},
	{path: "spec.hostNetwork", mode: allow},
	{path: "spec.nodeName", mode: allow},
	{path: "spec.dnsPolicy", mode: allow},
	{path: "spec.dnsConfig", mode: allow},
	{path: "spec.priorityClassName", mode: allow},
	{path: "spec.priority", mode: allow},
	{path: "spec.tolerations", mode: allow},
	{path: "spec.schedulerName", mode: allow},
	{path: "spec.enableServiceLinks", mode: allow},
	{path: "spec.securityContext", mode: object},
	{path: "spec.securityContext.runAsUser", mode: allow},
	{path: "spec.securityContext.runAsGroup", mode: allow},
	{path: "spec.securityContext.runAsNonRoot", mode: allow},
	{path: "spec.securityContext.supplementalGroups", mode: allow},
	{path: "spec.securityContext.fsGroup", mode: allow},
	{path: "spec.securityContext.fsGroupChangePolicy", mode: allow},
	{path: "spec.securityContext.seccompProfile", mode: allow},
	{path: "spec.securityContext.sysctls", mode: allow},
	{path: "spec.hostPID", mode: allow},
	{path: "spec.hostIPC", mode: allow},
	{path: "spec.shareProcessNamespace", mode: allow},
	{path: "spec.hostname", mode: allow},
	{path: "spec.subdomain", mode: allow},
	{path: "spec.hostAliases", mode: allow},
	{path: "spec.nodeSelector", mode: allow},
	{path: "spec.serviceAccountName", mode: refuse, msg: msgSA},
	{path: "spec.serviceAccount", mode: refuse, msg: msgSA},
	{path: "spec.automountServiceAccountToken", mode: only, only: []any{false}, msg: msgSA},
	{path: "spec.imagePullSecrets", mode: refuse, msg: "static pods cannot read Secrets: there may be no API server; put registry credentials in the node's docker config file (/var/lib/kubelet/config.json or ~/.docker/config.json) or in the container runtime's configuration"},
	{path: "status", mode: refuse, emptyOK: true, msg: "the status of a static pod is reported by Ballast, not read from the file; remove it"},
}...)

// configRules are the fields of a node-local ConfigMap or Secret.
var configRules = append(objectRules("a ConfigMap or Secret of the manifest directory"), []rule{
	{path: "data", mode: allow},
	{path: "binaryData", mode: allow},
	{path: "stringData", mode: allow},
	{path: "type", mode: allow},
	{path: "immutable", mode: allow},
}...)

const msgNotYet = "not supported by this version of Ballast yet; remove it from the manifest (Ballast refuses what it cannot honour rather than ignore it)"

type ruleIndex struct {
	byPath   map[string]*rule
	interior map[string]bool // paths with rules below them
}

var table = newRuleIndex(withInitContainers(append(append([]rule(nil), rules...), lifecycleRules...)))

var configTable = newRuleIndex(configRules)

func newRuleIndex(all []rule) ruleIndex {
	ix := ruleIndex{byPath: map[string]*rule{}, interior: map[string]bool{}}
	for i := range all {
		r := &all[i]
		if _, dup := ix.byPath[r.path]; dup {
			panic("manifest: duplicate rule " + r.path)
		}
		ix.byPath[r.path] = r
		for p := parentPattern(r.path); p != ""; p = parentPattern(p) {
			ix.interior[p] = true
		}
	}
	return ix
}

func parentPattern(p string) string {
	p = strings.TrimSuffix(strings.TrimSuffix(p, "[]"), "{}")
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return strings.TrimSuffix(strings.TrimSuffix(p[:i], "[]"), "{}")
	}
	return ""
}

// ---- The walk ----

// checker checks an object's generic form in place (dropping ignored
// fields) against the rules of its kind.
type checker struct {
	el    *errList
	table *ruleIndex
	// secret: the object is a Secret; no message shows a value of its data.
	secret bool
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// object checks the fields of a mapping against struct type t.
// path is the field path shown to users, raw the path used while decoding
// (they differ under maps), pat the table pattern.
func (c *checker) object(obj map[string]any, t reflect.Type, path, raw, pat string, inAllowed bool) {
	fields := jsonFields(t)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		v := obj[key]
		p, rp, pt := decode.JoinField(path, key), decode.JoinField(raw, key), decode.JoinField(pat, key)
		c.aliasLine(p, rp)
		ft, known := fields[key]
		r := c.table.byPath[pt]
		switch {
		case r != nil && r.mode == refuse && r.emptyOK && isEmpty(v):
			delete(obj, key)
		case r != nil && r.mode == refuse:
			c.el.add(p, "Forbidden: "+r.msg)
		case r != nil && r.mode == drop:
			delete(obj, key)
		case !known:
			c.el.add(p, "Unknown field: "+unknownMsg(key, fields))
		case r != nil && r.mode == only:
			if !c.value(v, ft, p, rp, pt, true) {
				continue
			}
			ok := false
			for _, o := range r.only {
				if v == o {
					ok = true
				}
			}
			if !ok {
				msg := r.msg
				if msg == "" {
					msg = "not supported by this version of Ballast yet; only " + listValues(r.only) + " is accepted (or leave the field out)"
				}
				c.el.addf(p, "Unsupported value: %s: %s", validation.JSONText(v), msg)
			}
		case r != nil && r.mode == allow:
			c.value(v, ft, p, rp, pt, true)
		case r != nil && r.mode == object, c.table.interior[pt]:
			c.value(v, ft, p, rp, pt, false)
		case inAllowed:
			c.value(v, ft, p, rp, pt, true)
		default:
			c.el.add(p, "Forbidden: "+msgNotYet)
		}
	}
}

func (c *checker) aliasLine(path, raw string) {
	if path == raw {
		return
	}
	if n, ok := c.el.lines[raw]; ok {
		c.el.lines[path] = n
	}
}

// value checks that v has the JSON type of t and recurses into it.
func (c *checker) value(v any, t reflect.Type, path, raw, pat string, inAllowed bool) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		// Quantity, Time, IntOrString...: scalars checked when decoded.
		switch v.(type) {
		case string, int64, float64:
			return true
		}
		return c.typeErr(path, "a string or a number", v)
	}
	if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
		// []byte (a Secret's data, a ConfigMap's binaryData): base64 text.
		s, ok := v.(string)
		if !ok {
			return c.typeErr(path, "a base64 string", v)
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			c.el.add(path, "Invalid value: not valid base64 (values under data are base64-encoded; put plain text under stringData instead)")
			return false
		}
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return c.typeErr(path, "a mapping", v)
		}
		c.object(m, t, path, raw, pat, inAllowed)
		return true
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return c.typeErr(path, "a list", v)
		}
		for i, e := range l {
			p, rp := fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf("%s[%d]", raw, i)
			c.aliasLine(p, rp)
			if e == nil {
				c.el.add(p, "Invalid value: null: a list item cannot be null; remove it")
				continue
			}
			c.value(e, t.Elem(), p, rp, pat+"[]", inAllowed)
		}
		return true
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return c.typeErr(path, "a mapping", v)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p, rp := path+"["+k+"]", decode.JoinField(raw, k)
			c.aliasLine(p, rp)
			c.value(m[k], t.Elem(), p, rp, pat+"{}", inAllowed)
		}
		return true
	case reflect.String:
		if _, ok := v.(string); !ok {
			hint := ""
			switch v.(type) {
			case int64, float64, bool:
				hint = "; put it in quotes"
			}
			return c.typeErr(path, "a string", v, hint)
		}
		return true
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			hint := ""
			if s, isStr := v.(string); isStr {
				if _, err := strconv.ParseBool(s); err == nil || s == "yes" || s == "no" {
					hint = "; write true or false, without quotes"
				}
			}
			return c.typeErr(path, "a boolean (true or false)", v, hint)
		}
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := v.(int64)
		if !ok {
			hint := ""
			if s, isStr := v.(string); isStr {
				if _, err := strconv.ParseInt(s, 10, 64); err == nil {
					hint = "; remove the quotes"
				}
			}
			return c.typeErr(path, "a whole number", v, hint)
		}
		bits := t.Bits()
		if bits < 64 && (i < -1<<(bits-1) || i > 1<<(bits-1)-1) {
			c.el.addf(path, "Invalid value: %d: out of range for a %d-bit number", i, bits)
			return false
		}
		return true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, ok := v.(int64)
		if !ok || i < 0 {
			return c.typeErr(path, "a whole number, not negative", v)
		}
		if t.Bits() < 64 && uint64(i) > math.MaxUint64>>(64-t.Bits()) {
			c.el.addf(path, "Invalid value: %d: out of range", i)
			return false
		}
		return true
	case reflect.Float32, reflect.Float64:
		switch v.(type) {
		case int64, float64:
			return true
		}
		return c.typeErr(path, "a number", v)
	case reflect.Interface:
		return true
	}
	c.el.addf(path, "Invalid type: cannot be checked (%s)", t)
	return false
}

func (c *checker) typeErr(path, want string, v any, hint ...string) bool {
	d := decode.Describe(v)
	if c.secret {
		d = decode.DescribeValue(v, path)
	}
	c.el.addf(path, "Invalid type: must be %s, not %s%s", want, d, strings.Join(hint, ""))
	return false
}

func unknownMsg(key string, fields map[string]reflect.Type) string {
	msg := fmt.Sprintf("%q is not a field Kubernetes knows here", key)
	if best := suggest.Closest(key, maps.Keys(fields)); best != "" {
		return msg + fmt.Sprintf("; did you mean %q?", best)
	}
	return msg + "; check its spelling and indentation, or remove it"
}

func listValues(vs []any) string {
	var s []string
	for _, v := range vs {
		s = append(s, validation.JSONText(v))
	}
	return strings.Join(s, " or ")
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields returns the JSON field names of a struct type, following inline
// (embedded) structs, with their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if cached, ok := fieldCache.Load(t); ok {
		return cached.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					add(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			out[name] = f.Type
		}
	}
	if t.Kind() == reflect.Struct {
		add(t)
	}
	fieldCache.Store(t, out)
	return out
}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(t) == 0
	}
	return false
}
