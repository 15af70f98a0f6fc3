package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Node-local ConfigMaps and Secrets: a manifest file may define them beside
// its pods, and static pods of the same namespace use them as Kubernetes
// pods use API objects (volumes, env, envFrom).

// MaxConfigSize bounds the data of a ConfigMap or Secret, as Kubernetes
// does (corev1.MaxSecretSize: 1 MiB).
const MaxConfigSize = corev1.MaxSecretSize

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

// Size is the size of the object's values, as Kubernetes counts it against
// MaxConfigSize.
func (c *Config) Size() int {
	n := 0
	for _, k := range c.Keys() {
		v, _ := c.Value(k)
		n += len(v)
	}
	return n
}

// decodeConfig turns a checked ConfigMap or Secret item into a Config and
// validates it as Kubernetes does.
func decodeConfig(it *item, path string) *Config {
	f := func(p string) string { return joinField(it.prefix, p) }
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
		for _, k := range sortedKeys(s.StringData) {
			invalidKey(it.el, f("stringData["+k+"]"), k)
		}
		MergeStringData(s)
		c.Secret = s
	}
	m := c.Meta()
	if m.Namespace == "" {
		m.Namespace = corev1.NamespaceDefault
	}
	validateConfig(c, f, it.el)
	c.Hash = configHash(c)
	return c
}

// validateConfig validates a ConfigMap or Secret as Kubernetes does.
func validateConfig(c *Config, f func(string) string, el *errList) {
	m := c.Meta()
	invalid := invalidFunc(f, el)
	if m.Name == "" {
		el.addf(f("metadata.name"), "Required value: name the %s", c.Kind())
	} else {
		invalid("metadata.name", m.Name, validation.IsDNS1123Subdomain(m.Name), "")
	}
	invalid("metadata.namespace", m.Namespace, validation.IsDNS1123Label(m.Namespace), "")
	validateMetaMaps(m.Labels, m.Annotations, f, el)
	if cm := c.ConfigMap; cm != nil {
		for _, k := range sortedKeys(cm.Data) {
			invalidKey(el, f("data["+k+"]"), k)
			if _, dup := cm.BinaryData[k]; dup {
				el.addf(f("data["+k+"]"), "Invalid value: %q: duplicate of key present in binaryData; keep it in one of them", k)
			}
		}
		for _, k := range sortedKeys(cm.BinaryData) {
			invalidKey(el, f("binaryData["+k+"]"), k)
		}
	}
	if s := c.Secret; s != nil {
		for _, k := range sortedKeys(s.Data) {
			invalidKey(el, f("data["+k+"]"), k)
		}
		validateSecretType(s, f, el)
	}
	if n := c.Size(); n > MaxConfigSize {
		el.addf(f("data"), "Too long: the %s's values hold %d bytes, at most %d are allowed (1 MiB); split it, or mount the file from the node with a hostPath volume", c.Kind(), n, MaxConfigSize)
	}
}

func invalidKey(el *errList, field, key string) {
	for _, msg := range validation.IsConfigMapKey(key) {
		el.addf(field, "Invalid value: %q: %s", key, msg)
	}
}

// validateSecretType checks the keys a Secret's type requires, as
// Kubernetes does. Messages never quote a value.
func validateSecretType(s *corev1.Secret, f func(string) string, el *errList) {
	need := func(keys ...string) {
		for _, k := range keys {
			if _, ok := s.Data[k]; !ok {
				el.addf(f("data["+k+"]"), "Required value: a Secret of type %s needs the key %q", s.Type, k)
			}
		}
	}
	validJSON := func(k string) {
		if v, ok := s.Data[k]; ok && !json.Valid(v) {
			el.addf(f("data["+k+"]"), "Invalid value: must be valid JSON (a docker config file) for type %s", s.Type)
		}
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		el.add(f("type"), "Forbidden: static pods cannot use service account tokens: there may be no API server to issue them; use type Opaque")
	case corev1.SecretTypeDockercfg:
		need(corev1.DockerConfigKey)
		validJSON(corev1.DockerConfigKey)
	case corev1.SecretTypeDockerConfigJson:
		need(corev1.DockerConfigJsonKey)
		validJSON(corev1.DockerConfigJsonKey)
	case corev1.SecretTypeBasicAuth:
		_, u := s.Data[corev1.BasicAuthUsernameKey]
		_, p := s.Data[corev1.BasicAuthPasswordKey]
		if !u && !p {
			el.addf(f("data"), "Required value: a Secret of type %s needs the key %q or %q", s.Type, corev1.BasicAuthUsernameKey, corev1.BasicAuthPasswordKey)
		}
	case corev1.SecretTypeSSHAuth:
		need(corev1.SSHAuthPrivateKey)
	case corev1.SecretTypeTLS:
		need(corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
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
		for _, k := range sortedKeys(s.Data) {
			write("d", k, s.Data[k])
		}
	} else {
		for _, k := range sortedKeys(c.ConfigMap.Data) {
			write("d", k, []byte(c.ConfigMap.Data[k]))
		}
		for _, k := range sortedKeys(c.ConfigMap.BinaryData) {
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

// ValidateConfigMap validates a ConfigMap as the node validates one of its
// files (keys, 1 MiB, metadata); the API server checks mirror ConfigMaps
// with it. It returns nil, an *Error, or several joined (see Errors); they
// name the field but no file.
func ValidateConfigMap(cm *corev1.ConfigMap) error {
	return validateObjectConfig(&Config{ConfigMap: cm})
}

// ValidateSecret validates a Secret as ValidateConfigMap does (its data
// merged with stringData first, as the API server does). No message holds
// a value.
func ValidateSecret(s *corev1.Secret) error {
	el := &errList{lines: map[string]int{}}
	for _, k := range sortedKeys(s.StringData) {
		invalidKey(el, "stringData["+k+"]", k)
	}
	merged := s.DeepCopy()
	MergeStringData(merged)
	validateConfig(&Config{Secret: merged}, func(p string) string { return p }, el)
	return el.err()
}

func validateObjectConfig(c *Config) error {
	el := &errList{lines: map[string]int{}}
	validateConfig(c, func(p string) string { return p }, el)
	return el.err()
}

// MergeStringData writes a Secret's stringData over its data and clears it,
// and defaults its type to Opaque, as the API server does.
func MergeStringData(s *corev1.Secret) {
	if len(s.StringData) > 0 && s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
}
