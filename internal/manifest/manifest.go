// Package manifest owns the static pod manifest file format: which file
// names in the manifest directory are manifests (Ignored), reading one file
// strictly (its text decoded by internal/manifest/decode, YAML or JSON; v1
// Pods, ConfigMaps and Secrets, alone, in several YAML documents or in a v1
// List), refusing by name every field this version of Ballast does not
// support (the schema), checking what is particular to a static pod (its
// name with the node's, its node), validating and defaulting each object
// with internal/validation, every message at its file and line (Error), and
// giving each pod its static-pod identity (name, UID, config hash,
// annotations), which covers the node-local ConfigMap and Secret data the
// pod's environment uses (WithConfigs).
//
// It is pure: it never reads files, clocks or the environment.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/manifest/decode"
	"github.com/ballast-dev/ballast/internal/validation"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// identityVersion is part of every hash. Never change it: doing so would
// restart every static pod on upgrade.
const identityVersion = "ballast.dev/static-pod-identity/v1"

// Ignored reports whether a directory entry is not a manifest, and why (for a log line).
// Manifests end in .yaml, .yml or .json. Ignored: dotfiles, editor swap/backup
// files (".x.swp", "x.yaml~", "x.yaml.bak", "x.yaml.orig", "4913", "#x#"), anything else.
func Ignored(name string) (reason string, ignored bool) {
	base := filepath.Base(name)
	lower := strings.ToLower(base)
	switch {
	case name == "" || base == "." || base == "..":
		return "not a file name", true
	case strings.HasPrefix(base, "."):
		return "hidden file (name starts with a dot; editors keep swap and temporary files so)", true
	case strings.HasSuffix(base, "~"):
		return "editor backup file (name ends with ~)", true
	case strings.HasPrefix(base, "#") && strings.HasSuffix(base, "#") && len(base) > 1:
		return "editor auto-save file (#name#)", true
	case base == "4913":
		return "vim's write-test file", true
	}
	for _, ext := range []string{".swp", ".swo", ".swx", ".bak", ".orig", ".old", ".tmp", ".temp", ".rej", ".save",
		".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp", ".rpmnew", ".rpmsave", ".rpmorig", ".ucf-old", ".ucf-new", ".ucf-dist"} {
		if strings.HasSuffix(lower, ext) {
			return "backup or temporary file (name ends with " + ext + ")", true
		}
	}
	switch filepath.Ext(lower) {
	case ".yaml", ".yml", ".json":
		return "", false
	}
	return "not a manifest (name does not end with .yaml, .yml or .json)", true
}

// File is what one manifest file defines: static pods and node-local
// ConfigMaps and Secrets. Everything in it is shared once returned: never
// modify it.
type File struct {
	Pods    []*corev1.Pod
	Configs []*Config
}

// Parse decodes one manifest file's content and returns the static pods it
// defines, ready to run on nodeName (see ParseFile, which also returns the
// file's ConfigMaps and Secrets).
func Parse(path string, data []byte, nodeName string) ([]*corev1.Pod, error) {
	f, err := ParseFile(path, data, nodeName)
	if err != nil {
		return nil, err
	}
	return f.Pods, nil
}

// ParseFile decodes one manifest file's content: JSON (one object) or YAML
// (one or more documents), each a v1 Pod, ConfigMap or Secret, or a v1 List
// of them (the kubelet accepts a Pod or a List of Pods). It validates every
// object strictly, as Kubernetes does, and returns the static pods, ready to
// run on nodeName, and the ConfigMaps and Secrets (stringData merged into
// data, namespace defaulted).
//
// On bad input it returns an *Error, or several joined with errors.Join (see
// Errors). No message ever holds a value of a Secret's (or ConfigMap's) data.
func ParseFile(path string, data []byte, nodeName string) (*File, error) {
	docs, err := decode.File(path, data)
	if err != nil {
		var de *decode.Error
		if !errors.As(err, &de) {
			de = &decode.Error{Msg: err.Error()}
		}
		return nil, &Error{File: path, Line: de.Line, Field: de.Field, Msg: de.Msg}
	}
	fl := &errList{file: path, lines: map[string]int{}}
	var items []*item
	for d, doc := range docs {
		el := &errList{file: path, lines: doc.Lines}
		for _, it := range splitItems(doc.Object, el) {
			it.el, it.doc, it.docLine = el, d, doc.Line
			if len(docs) == 1 {
				it.doc = -1
			}
			items = append(items, it)
		}
		fl.errs = append(fl.errs, el.errs...)
	}
	if len(fl.errs) > 0 {
		return nil, fl.err()
	}
	collect := func() bool {
		for _, it := range items {
			fl.errs = append(fl.errs, it.el.errs...)
			it.el.errs = nil
		}
		return len(fl.errs) == 0
	}
	for _, it := range items {
		c := &checker{el: it.el, table: &table, secret: it.kind == kindSecret}
		if it.kind != kindPod {
			c.table = &configTable
		}
		c.object(it.obj, it.kind.goType(), it.prefix, it.prefix, "", false)
	}
	if !collect() {
		return nil, fl.err()
	}
	for _, it := range items {
		b, err := json.Marshal(it.obj) // map keys sorted: canonical
		if err != nil {
			it.el.add(it.prefix, "Invalid value: "+err.Error())
			continue
		}
		it.canon = b
		switch it.kind {
		case kindPod:
			pod := &corev1.Pod{}
			if err := json.Unmarshal(b, pod); err != nil {
				it.el.add(it.prefix, "Invalid value: "+err.Error())
				continue
			}
			it.pod = pod
			validatePod(pod, it.prefix, nodeName, it.el)
		default:
			it.config = decodeConfig(it, path)
		}
	}
	if !collect() {
		return nil, fl.err()
	}
	checkDuplicates(items)
	if !collect() {
		return nil, fl.err()
	}
	out := &File{}
	for _, it := range items {
		if it.pod == nil {
			out.Configs = append(out.Configs, it.config)
			continue
		}
		validation.SetDefaults(it.pod)
		setIdentity(it.pod, path, nodeName, it.podIndex, it.canon)
		out.Pods = append(out.Pods, it.pod)
	}
	return out, nil
}

// objKind is a kind of object a manifest file may hold.
type objKind int

const (
	kindPod objKind = iota
	kindConfigMap
	kindSecret
)

var kindNames = map[string]objKind{"Pod": kindPod, "ConfigMap": kindConfigMap, "Secret": kindSecret}

func (k objKind) String() string { return [...]string{"Pod", "ConfigMap", "Secret"}[k] }

func (k objKind) goType() reflect.Type {
	switch k {
	case kindConfigMap:
		return reflect.TypeFor[corev1.ConfigMap]()
	case kindSecret:
		return reflect.TypeFor[corev1.Secret]()
	}
	return reflect.TypeFor[corev1.Pod]()
}

// item is one object of a file: a document, or an item of a List.
type item struct {
	obj    map[string]any
	kind   objKind
	prefix string // field path of the object in its document ("" or "items[i]")
	// podIndex is part of a pod's identity: "" for a Pod document, its
	// ordinal among the pods of its List otherwise (as it always was).
	podIndex string
	el       *errList // the document's
	doc      int      // the document's index; -1 when the file has one
	docLine  int
	canon    []byte
	pod      *corev1.Pod
	config   *Config
}

// where names the item for a message about another one.
func (it *item) where() string {
	switch {
	case it.doc < 0:
		return it.prefix
	case it.prefix == "":
		return fmt.Sprintf("the document at line %d", it.docLine)
	}
	return fmt.Sprintf("%s of the document at line %d", it.prefix, it.docLine)
}

// splitItems checks a document's apiVersion and kind and returns its
// objects: itself, or the items of a List.
func splitItems(obj map[string]any, el *errList) []*item {
	if !checkTypeMeta(obj, "", el, true) {
		return nil
	}
	if k, ok := kindNames[obj["kind"].(string)]; ok {
		return []*item{{obj: obj, kind: k}}
	}
	listKind := obj["kind"].(string)
	for k := range obj {
		switch k {
		case "apiVersion", "kind", "items":
		case "metadata":
			delete(obj, k) // list metadata (resourceVersion...) means nothing here
		default:
			el.add(k, "Unknown field: a List holds apiVersion, kind and items only; remove it")
		}
	}
	raw, ok := obj["items"].([]any)
	if !ok && obj["items"] != nil {
		el.add("items", "Invalid type: must be a list of objects (Pods, ConfigMaps, Secrets), not "+decode.Describe(obj["items"]))
		return nil
	}
	if len(raw) == 0 {
		el.add("items", "Required value: this List holds nothing; add pods (or ConfigMaps and Secrets) to items, or remove the file")
		return nil
	}
	var items []*item
	pods := 0
	for i, it := range raw {
		p := fmt.Sprintf("items[%d]", i)
		m, ok := it.(map[string]any)
		if !ok {
			el.add(p, "Invalid type: must be a Pod, ConfigMap or Secret, not "+decode.Describe(it))
			continue
		}
		if !checkTypeMeta(m, p, el, false) {
			continue
		}
		k := kindPod // a List's item without a kind is a Pod, as always
		if s, ok := m["kind"].(string); ok {
			k = kindNames[s]
		}
		if listKind == "PodList" && k != kindPod {
			el.addf(decode.JoinField(p, "kind"), "Unsupported value: %q: a PodList holds Pods only; make it a List", k)
			continue
		}
		ni := &item{obj: m, kind: k, prefix: p}
		if k == kindPod {
			ni.podIndex = fmt.Sprint(pods)
			pods++
		}
		items = append(items, ni)
	}
	return items
}

func checkTypeMeta(obj map[string]any, prefix string, el *errList, top bool) bool {
	ok := true
	av, hasAV := obj["apiVersion"]
	switch {
	case !hasAV && top:
		el.add(decode.JoinField(prefix, "apiVersion"), "Required value: set apiVersion: v1")
		ok = false
	case hasAV && av != "v1":
		el.addf(decode.JoinField(prefix, "apiVersion"), "Unsupported value: %s: a static pod (and a ConfigMap or Secret) is apiVersion: v1", validation.JSONText(av))
		ok = false
	}
	k, hasKind := obj["kind"]
	s, isString := k.(string)
	_, known := kindNames[s]
	switch {
	case !hasKind && top:
		el.add(decode.JoinField(prefix, "kind"), "Required value: set kind: Pod (or ConfigMap, Secret, List)")
		ok = false
	case !hasKind:
	case top && isString && (s == "List" || s == "PodList"):
	case !isString || !known:
		what := "Pods, ConfigMaps and Secrets, or a List of them"
		if !top {
			what = "a Pod, ConfigMap or Secret"
		}
		el.addf(decode.JoinField(prefix, "kind"), "Unsupported value: %s: a manifest file holds %s; Ballast runs static pods only", validation.JSONText(k), what)
		ok = false
	}
	return ok
}

// checkDuplicates refuses two objects of one kind, namespace and name in a
// file.
func checkDuplicates(items []*item) {
	seen := map[string]*item{}
	for _, it := range items {
		var key string
		switch {
		case it.pod != nil:
			ns := it.pod.Namespace
			if ns == "" {
				ns = corev1.NamespaceDefault
			}
			key = "Pod/" + ns + "/" + it.pod.Name
		case it.config != nil:
			key = it.config.Key().String()
		default:
			continue
		}
		if first, dup := seen[key]; dup {
			what := "this pod"
			if it.pod == nil {
				what = "this " + it.kind.String()
			}
			meta, _ := it.obj["metadata"].(map[string]any)
			name, _ := meta["name"].(string)
			it.el.addf(decode.JoinField(it.prefix, "metadata.name"),
				"Duplicate value: %q: %s already defines %s; give each its own name", name, first.where(), what)
			continue
		}
		seen[key] = it
	}
}

// PodName is the name of the static pod named name in its file, on node nodeName.
func PodName(name, nodeName string) string {
	return name + "-" + strings.ToLower(nodeName)
}

// setIdentity gives pod its static-pod name, node, UID and annotations.
// The hash covers the canonical generic content (not Go structs, so that
// new fields or defaults in a later Ballast never change it), the node, the
// file path and the item index in a List.
func setIdentity(pod *corev1.Pod, path, nodeName, index string, canonical []byte) {
	h := sha256.New()
	for _, part := range []string{identityVersion, nodeName, path, index} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	h.Write(canonical)
	sum := hex.EncodeToString(h.Sum(nil))[:32]

	pod.Name = PodName(pod.Name, nodeName)
	pod.Spec.NodeName = nodeName
	pod.UID = types.UID(sum)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[wellknown.AnnotationConfigHash] = sum
	pod.Annotations[wellknown.AnnotationConfigSource] = wellknown.ConfigSourceFile
	pod.Annotations[wellknown.AnnotationManifest] = path

	// The kubelet lets static pods tolerate every NoExecute taint.
	for _, t := range pod.Spec.Tolerations {
		if t.Key == "" && t.Operator == corev1.TolerationOpExists && t.Effect == corev1.TaintEffectNoExecute && t.TolerationSeconds == nil {
			return
		}
	}
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
		Operator: corev1.TolerationOpExists,
		Effect:   corev1.TaintEffectNoExecute,
	})
}
