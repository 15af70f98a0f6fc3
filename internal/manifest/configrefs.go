package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/wellknown"
)

// What a static pod references of the node's ConfigMaps and Secrets, and
// the part of its identity that covers their data.

// ConfigRef is one reference of a pod to a node-local ConfigMap or Secret.
type ConfigRef struct {
	Key ConfigKey
	// Item is the key whose value an env var takes (configMapKeyRef,
	// secretKeyRef); "" when the reference uses the whole object (envFrom,
	// a volume or a projection).
	Item     string
	Optional bool
	// Env: the reference sets environment variables, which are fixed when a
	// container starts.
	Env bool
	// Volume is the pod's volume that uses the object ("" for env).
	Volume string
	// Container is the container whose env uses the object ("" for a volume).
	Container string
}

// ConfigRefs lists every reference of the pod to a ConfigMap or Secret, in
// the order of its spec (volumes, then init and app containers).
func ConfigRefs(pod *corev1.Pod) []ConfigRef {
	ns := pod.Namespace
	if ns == "" {
		ns = corev1.NamespaceDefault
	}
	key := func(k ConfigKind, name string) ConfigKey { return ConfigKey{Kind: k, Namespace: ns, Name: name} }
	var out []ConfigRef
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			out = append(out, ConfigRef{Key: key(KindConfigMap, v.ConfigMap.Name), Optional: isTrue(v.ConfigMap.Optional), Volume: v.Name})
		case v.Secret != nil:
			out = append(out, ConfigRef{Key: key(KindSecret, v.Secret.SecretName), Optional: isTrue(v.Secret.Optional), Volume: v.Name})
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					out = append(out, ConfigRef{Key: key(KindConfigMap, src.ConfigMap.Name), Optional: isTrue(src.ConfigMap.Optional), Volume: v.Name})
				}
				if src.Secret != nil {
					out = append(out, ConfigRef{Key: key(KindSecret, src.Secret.Name), Optional: isTrue(src.Secret.Optional), Volume: v.Name})
				}
			}
		}
	}
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, ef := range c.EnvFrom {
			if r := ef.ConfigMapRef; r != nil {
				out = append(out, ConfigRef{Key: key(KindConfigMap, r.Name), Optional: isTrue(r.Optional), Env: true, Container: c.Name})
			}
			if r := ef.SecretRef; r != nil {
				out = append(out, ConfigRef{Key: key(KindSecret, r.Name), Optional: isTrue(r.Optional), Env: true, Container: c.Name})
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				out = append(out, ConfigRef{Key: key(KindConfigMap, r.Name), Item: r.Key, Optional: isTrue(r.Optional), Env: true, Container: c.Name})
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				out = append(out, ConfigRef{Key: key(KindSecret, r.Name), Item: r.Key, Optional: isTrue(r.Optional), Env: true, Container: c.Name})
			}
		}
	}
	return out
}

// ConfigKeys lists the objects the pod references, each once, sorted.
func ConfigKeys(pod *corev1.Pod) []ConfigKey {
	var keys []ConfigKey
	for _, r := range ConfigRefs(pod) {
		if !slices.Contains(keys, r.Key) {
			keys = append(keys, r.Key)
		}
	}
	slices.SortFunc(keys, CompareConfigKeys)
	return keys
}

// CompareConfigKeys orders keys by kind, namespace and name.
func CompareConfigKeys(a, b ConfigKey) int {
	switch {
	case a.Kind != b.Kind:
		return cmpString(string(a.Kind), string(b.Kind))
	case a.Namespace != b.Namespace:
		return cmpString(a.Namespace, b.Namespace)
	}
	return cmpString(a.Name, b.Name)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RestartsOnConfigChange tells whether a pod asks to be replaced when the
// data its volumes show changes (AnnotationRestartOnConfigChange "true"),
// rather than seeing its files updated in place.
func RestartsOnConfigChange(pod *corev1.Pod) bool {
	return pod.Annotations[wellknown.AnnotationRestartOnConfigChange] == "true"
}

// FixedConfigRefs are the references whose data is part of the pod's
// identity: those of env and envFrom (fixed at container start), and with
// RestartsOnConfigChange those of its volumes too.
func FixedConfigRefs(pod *corev1.Pod) []ConfigRef {
	restart := RestartsOnConfigChange(pod)
	var out []ConfigRef
	for _, r := range ConfigRefs(pod) {
		if r.Env || restart {
			r.Container, r.Volume = "", ""
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// WithConfigs gives a pod read from its file (Parse) the identity that
// covers the config data its FixedConfigRefs use, as lookup finds the
// objects now (nil: the node has no such object). A pod with no such
// reference is returned as it is. Otherwise the result is a copy whose UID
// and kubernetes.io/config.hash cover the file's hash and that data, and
// whose ballast.dev/config-hash is the hash of that data alone: a change to
// it makes a new pod, which replaces the old one as a changed manifest does.
func WithConfigs(pod *corev1.Pod, lookup func(ConfigKey) *Config) *corev1.Pod {
	refs := FixedConfigRefs(pod)
	if len(refs) == 0 {
		return pod
	}
	h := sha256.New()
	for _, r := range refs {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", r.Key.Kind, r.Key.Namespace, r.Key.Name, r.Item)
		obj := lookup(r.Key)
		switch {
		case obj == nil:
			h.Write([]byte("absent\n"))
		case r.Item != "":
			v, ok := obj.Value(r.Item)
			if !ok {
				h.Write([]byte("no key\n"))
				continue
			}
			fmt.Fprintf(h, "value:%d:", len(v))
			h.Write(v)
			h.Write([]byte("\n"))
		default:
			fmt.Fprintf(h, "data:%s\n", obj.Hash)
		}
	}
	data := hex.EncodeToString(h.Sum(nil))[:32]
	id := sha256.New()
	for _, part := range []string{identityVersion, "config", string(pod.UID), data} {
		fmt.Fprintf(id, "%d:%s\n", len(part), part)
	}
	uid := hex.EncodeToString(id.Sum(nil))[:32]
	out := pod.DeepCopy()
	out.UID = types.UID(uid)
	out.Annotations[wellknown.AnnotationConfigHash] = uid
	out.Annotations[wellknown.AnnotationConfigDataHash] = data
	return out
}

func isTrue(b *bool) bool { return b != nil && *b }

// SameManifest tells whether two pods come from the same content of a file
// (so that they differ only in the config data their identity covers): same
// spec, labels and annotations but for the identity's own.
func SameManifest(a, b *corev1.Pod) bool {
	if a.Namespace != b.Namespace || a.Name != b.Name || !maps.Equal(a.Labels, b.Labels) || !equality.Semantic.DeepEqual(a.Spec, b.Spec) {
		return false
	}
	own := func(k string) bool {
		return k == wellknown.AnnotationConfigHash || k == wellknown.AnnotationConfigDataHash || k == wellknown.AnnotationConfigSeen
	}
	for k, v := range a.Annotations {
		if !own(k) && b.Annotations[k] != v {
			return false
		}
	}
	for k := range b.Annotations {
		if _, ok := a.Annotations[k]; !ok && !own(k) {
			return false
		}
	}
	return true
}
