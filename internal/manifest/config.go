package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/validation"
)

// Node-local ConfigMaps and Secrets: a manifest file may define them beside
// its pods, and static pods of the same namespace use them as Kubernetes
// pods use API objects (volumes, env, envFrom).

// ConfigKind is the kind of a node-local config object.
type ConfigKind string

// The config kinds.
const (
	KindConfigMap ConfigKind = "ConfigMap"
	KindSecret    ConfigKind = "Secret"
)

// ConfigKey names a config object on the node.
type ConfigKey struct {
	Kind            ConfigKind
	Namespace, Name string
}

// String is "configmap default/app", as kubectl names objects.
func (k ConfigKey) String() string {
	return strings.ToLower(string(k.Kind)) + " " + k.Namespace + "/" + k.Name
}

// NotFound is the kubelet's message for a missing object: `configmap "x" not found`.
func (k ConfigKey) NotFound() string {
	return fmt.Sprintf("%s %q not found", strings.ToLower(string(k.Kind)), k.Name)
}

// Config is one ConfigMap or Secret of a manifest file: exactly one of
// ConfigMap and Secret is set (a Secret's stringData is merged into its data
// and cleared). It is shared once made: never modify it.
type Config struct {
	// File is the manifest file that defines it.
	File      string
	ConfigMap *corev1.ConfigMap
	Secret    *corev1.Secret
	// Hash changes exactly when the data (every key and value) does. It is
	// for telling versions apart on the node, never for display.
	Hash string
}

// Key names the object.
func (c *Config) Key() ConfigKey {
	m := c.Meta()
	return ConfigKey{Kind: c.Kind(), Namespace: m.Namespace, Name: m.Name}
}

// Kind is ConfigMap or Secret.
func (c *Config) Kind() ConfigKind {
	if c.Secret != nil {
		return KindSecret
	}
	return KindConfigMap
}

// Meta is the object's metadata.
func (c *Config) Meta() *metav1.ObjectMeta {
	if c.Secret != nil {
		return &c.Secret.ObjectMeta
	}
	return &c.ConfigMap.ObjectMeta
}

// Immutable tells whether the object is marked immutable.
func (c *Config) Immutable() bool {
	var im *bool
	if c.Secret != nil {
		im = c.Secret.Immutable
	} else {
		im = c.ConfigMap.Immutable
	}
	return im != nil && *im
}

// Keys lists the object's keys, sorted (a ConfigMap's data and binaryData).
func (c *Config) Keys() []string {
	var keys []string
	if c.Secret != nil {
		for k := range c.Secret.Data {
			keys = append(keys, k)
		}
	} else {
		for k := range c.ConfigMap.Data {
			keys = append(keys, k)
		}
		for k := range c.ConfigMap.BinaryData {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Value returns the value of key, and whether the object has it.
func (c *Config) Value(key string) ([]byte, bool) {
	if c.Secret != nil {
		v, ok := c.Secret.Data[key]
		return v, ok
	}
	if v, ok := c.ConfigMap.Data[key]; ok {
		return []byte(v), true
	}
	v, ok := c.ConfigMap.BinaryData[key]
	return v, ok
}

// decodeConfig turns a checked ConfigMap or Secret item into a Config and
// validates it as Kubernetes does.
func decodeConfig(it *item, path string) *Config {
	c := &Config{File: path}
	switch it.kind {
	case kindConfigMap:
		cm := &corev1.ConfigMap{}
		if err := json.Unmarshal(it.canon, cm); err != nil {
			it.el.add(it.prefix, "Invalid value: the ConfigMap cannot be decoded; check its data")
			return nil
		}
		cm.APIVersion, cm.Kind = "v1", "ConfigMap"
		c.ConfigMap = cm
	case kindSecret:
		s := &corev1.Secret{}
		if err := json.Unmarshal(it.canon, s); err != nil {
			// Never the decoder's message: it may quote the data.
			it.el.add(it.prefix, "Invalid value: the Secret cannot be decoded; check its data (base64) and stringData")
			return nil
		}
		s.APIVersion, s.Kind = "v1", "Secret"
		c.Secret = s
	}
	m := c.Meta()
	if m.Namespace == "" {
		m.Namespace = corev1.NamespaceDefault
	}
	if s := c.Secret; s != nil {
		it.el.addAll(validation.ValidateSecret(s, it.prefix))
		validation.MergeStringData(s)
	} else {
		it.el.addAll(validation.ValidateConfigMap(c.ConfigMap, it.prefix))
	}
	c.Hash = configHash(c)
	return c
}

// ValidateConfigChange checks a new version of a config object against the
// one it replaces, as Kubernetes validates an update: the data of an
// immutable object cannot change, nor can it become mutable. It returns nil
// or an *Error naming file and object.
func ValidateConfigChange(old, next *Config) error {
	if !old.Immutable() {
		return nil
	}
	msg := ""
	switch {
	case !next.Immutable():
		msg = "field is immutable when `immutable` is set: it cannot be unset"
	case old.Hash != next.Hash:
		msg = "field is immutable when `immutable` is set: its data cannot change"
	case old.Secret != nil && next.Secret != nil && old.Secret.Type != next.Secret.Type:
		msg = "field is immutable when `immutable` is set: its type cannot change"
	}
	if msg == "" {
		return nil
	}
	return &Error{File: next.File, Msg: fmt.Sprintf("%s %s: Forbidden: %s; it keeps its previous content. To change it, give it a new name (and use that), or remove it from the file first", strings.ToLower(string(next.Kind())), next.Meta().Name, msg)}
}

// configHash hashes the kind and every key and value of a config object.
func configHash(c *Config) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", c.Kind())
	write := func(tag string, k string, v []byte) {
		fmt.Fprintf(h, "%s:%d:%s:%d:", tag, len(k), k, len(v))
		h.Write(v)
	}
	if s := c.Secret; s != nil {
		for _, k := range slices.Sorted(maps.Keys(s.Data)) {
			write("d", k, s.Data[k])
		}
	} else {
		for _, k := range slices.Sorted(maps.Keys(c.ConfigMap.Data)) {
			write("d", k, []byte(c.ConfigMap.Data[k]))
		}
		for _, k := range slices.Sorted(maps.Keys(c.ConfigMap.BinaryData)) {
			write("b", k, c.ConfigMap.BinaryData[k])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Redacted returns a copy of a Secret without its values: every key is
// listed with an empty value, as node-local Secrets are shown (mirror
// Secrets, `ballast get secrets`).
func Redacted(s *corev1.Secret) *corev1.Secret {
	out := s.DeepCopy()
	for k := range out.Data {
		out.Data[k] = []byte{}
	}
	out.StringData = nil
	return out
}
