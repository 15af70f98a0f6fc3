// Package manifest owns the static pod manifest file format: which file
// names in the manifest directory are manifests (Ignored), decoding one file
// strictly (YAML or JSON, one v1 Pod or a v1 List of Pods), refusing by name
// every field this version of Ballast does not support, validating the pod
// as Kubernetes would, applying Kubernetes' defaults, and giving each pod its
// static-pod identity (name, UID, config hash, annotations).
//
// It is pure: it never reads files, clocks or the environment.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

// MaxContainersPerPod bounds a pod's containers and init containers
// together. A node starts and stops a pod's containers one job at a time:
// a pod of a thousand containers takes minutes either way and holds up the
// runtime for everyone else. Static pods are system components; a hundred is
// far beyond what one needs.
const MaxContainersPerPod = 100

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

// Parse decodes one manifest file's content (YAML or JSON; one v1 Pod, or a v1 List whose items are Pods, as the kubelet accepts),
// validates it strictly and returns the static pods it defines, ready to run on nodeName.
//
// On bad input it returns an *Error, or several joined with errors.Join (see Errors).
func Parse(path string, data []byte, nodeName string) ([]*corev1.Pod, error) {
	el := &errList{file: path, lines: map[string]int{}}
	obj, ok := decode(path, data, el)
	if !ok {
		return nil, el.err()
	}
	items, prefixes := splitItems(obj, el)
	if len(el.errs) > 0 {
		return nil, el.err()
	}
	c := &checker{el: el}
	for i, item := range items {
		c.checkPod(item, prefixes[i])
	}
	if len(el.errs) > 0 {
		return nil, el.err()
	}
	pods := make([]*corev1.Pod, len(items))
	canon := make([][]byte, len(items))
	for i, item := range items {
		b, err := json.Marshal(item) // map keys sorted: canonical
		if err != nil {
			el.add(prefixes[i], "Invalid value: "+err.Error())
			continue
		}
		canon[i] = b
		pod := &corev1.Pod{}
		if err := json.Unmarshal(b, pod); err != nil {
			el.add(prefixes[i], "Invalid value: "+err.Error())
			continue
		}
		pods[i] = pod
		validatePod(pod, prefixes[i], nodeName, el)
	}
	if len(el.errs) > 0 {
		return nil, el.err()
	}
	seen := map[string]int{}
	for i, pod := range pods {
		key := pod.Namespace + "/" + pod.Name
		if j, dup := seen[key]; dup {
			el.addf(joinField(prefixes[i], "metadata.name"),
				"Duplicate value: %q: items[%d] already defines this pod; give each pod its own name", pod.Name, j)
			continue
		}
		seen[key] = i
	}
	if len(el.errs) > 0 {
		return nil, el.err()
	}
	for i, pod := range pods {
		index := ""
		if prefixes[i] != "" {
			index = fmt.Sprint(i)
		}
		SetDefaults(pod)
		setIdentity(pod, path, nodeName, index, canon[i])
	}
	return pods, nil
}

// splitItems checks apiVersion and kind and returns the pods' generic forms
// with their field path prefixes.
func splitItems(obj map[string]any, el *errList) ([]map[string]any, []string) {
	if !checkTypeMeta(obj, "", el, true) {
		return nil, nil
	}
	if obj["kind"] == "Pod" {
		return []map[string]any{obj}, []string{""}
	}
	// A List (or PodList) of pods.
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
		el.add("items", "Invalid type: must be a list of pods, not "+describe(obj["items"]))
		return nil, nil
	}
	if len(raw) == 0 {
		el.add("items", "Required value: this List holds no pod; add pods to items, or remove the file")
		return nil, nil
	}
	var items []map[string]any
	var prefixes []string
	for i, it := range raw {
		p := fmt.Sprintf("items[%d]", i)
		m, ok := it.(map[string]any)
		if !ok {
			el.add(p, "Invalid type: must be a Pod, not "+describe(it))
			continue
		}
		if !checkTypeMeta(m, p, el, false) {
			continue
		}
		items = append(items, m)
		prefixes = append(prefixes, p)
	}
	return items, prefixes
}

func checkTypeMeta(obj map[string]any, prefix string, el *errList, top bool) bool {
	ok := true
	av, hasAV := obj["apiVersion"]
	switch {
	case !hasAV && top:
		el.add(joinField(prefix, "apiVersion"), "Required value: set apiVersion: v1")
		ok = false
	case hasAV && av != "v1":
		el.addf(joinField(prefix, "apiVersion"), "Unsupported value: %s: a static pod is apiVersion: v1", jsonText(av))
		ok = false
	}
	k, hasKind := obj["kind"]
	switch {
	case !hasKind && top:
		el.add(joinField(prefix, "kind"), "Required value: set kind: Pod")
		ok = false
	case !hasKind:
	case top && (k == "List" || k == "PodList"):
	case k != "Pod":
		what := "a Pod, or a List of Pods"
		if !top {
			what = "a Pod"
		}
		el.addf(joinField(prefix, "kind"), "Unsupported value: %s: a manifest file holds %s; Ballast runs static pods only", jsonText(k), what)
		ok = false
	}
	return ok
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
