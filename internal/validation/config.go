package validation

import (
	"encoding/json"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

// MaxConfigSize bounds the data of a ConfigMap or Secret, as Kubernetes
// does (corev1.MaxSecretSize: 1 MiB).
const MaxConfigSize = corev1.MaxSecretSize

// ValidateConfigMap validates a ConfigMap as Kubernetes does (metadata,
// keys, 1 MiB of values). path is its field path in its document, put
// before every field's ("" for none).
func ValidateConfigMap(cm *corev1.ConfigMap, path string) ErrorList {
	var el ErrorList
	validateConfig(cm, nil, fieldsIn(path), &el)
	return el
}

// ValidateSecret validates a Secret as ValidateConfigMap does, with its
// stringData merged into its data first, as the API server does, and the
// keys its type requires. No message holds a value.
func ValidateSecret(s *corev1.Secret, path string) ErrorList {
	var el ErrorList
	f := fieldsIn(path)
	for _, k := range slices.Sorted(maps.Keys(s.StringData)) {
		invalidKey(&el, f("stringData["+k+"]"), k)
	}
	merged := s.DeepCopy()
	MergeStringData(merged)
	validateConfig(nil, merged, f, &el)
	return el
}

// validateConfig validates a ConfigMap or a Secret (one of cm and s, the
// Secret's stringData merged) as Kubernetes does.
func validateConfig(cm *corev1.ConfigMap, s *corev1.Secret, f func(string) string, el *ErrorList) {
	var m *metav1.ObjectMeta
	var kind string
	if s != nil {
		m, kind = &s.ObjectMeta, "Secret"
	} else {
		m, kind = &cm.ObjectMeta, "ConfigMap"
	}
	invalid := invalidFunc(f, el)
	if m.Name == "" {
		el.Addf(f("metadata.name"), "Required value: name the %s", kind)
	} else {
		invalid("metadata.name", m.Name, utilvalidation.IsDNS1123Subdomain(m.Name), "")
	}
	invalid("metadata.namespace", m.Namespace, utilvalidation.IsDNS1123Label(m.Namespace), "")
	validateMetaMaps(m.Labels, m.Annotations, f, el)
	if cm != nil {
		for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
			invalidKey(el, f("data["+k+"]"), k)
			if _, dup := cm.BinaryData[k]; dup {
				el.Addf(f("data["+k+"]"), "Invalid value: %q: duplicate of key present in binaryData; keep it in one of them", k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(cm.BinaryData)) {
			invalidKey(el, f("binaryData["+k+"]"), k)
		}
	}
	if s != nil {
		for _, k := range slices.Sorted(maps.Keys(s.Data)) {
			invalidKey(el, f("data["+k+"]"), k)
		}
		validateSecretType(s, f, el)
	}
	if n := dataSize(cm, s); n > MaxConfigSize {
		el.Addf(f("data"), "Too long: the %s's values hold %d bytes, at most %d are allowed (1 MiB); split it, or mount the file from the node with a hostPath volume", kind, n, MaxConfigSize)
	}
}

// dataSize is the size of the values of a ConfigMap or Secret (one of cm
// and s), as counted against MaxConfigSize. (A key in both a ConfigMap's
// data and binaryData, refused above, counts its data value twice.)
func dataSize(cm *corev1.ConfigMap, s *corev1.Secret) int {
	n := 0
	if s != nil {
		for _, v := range s.Data {
			n += len(v)
		}
		return n
	}
	for _, v := range cm.Data {
		n += len(v)
	}
	for k, v := range cm.BinaryData {
		if d, both := cm.Data[k]; both {
			n += len(d)
		} else {
			n += len(v)
		}
	}
	return n
}

func invalidKey(el *ErrorList, field, key string) {
	for _, msg := range utilvalidation.IsConfigMapKey(key) {
		el.Addf(field, "Invalid value: %q: %s", key, msg)
	}
}

// validateSecretType checks the keys a Secret's type requires, as
// Kubernetes does. Messages never quote a value.
func validateSecretType(s *corev1.Secret, f func(string) string, el *ErrorList) {
	need := func(keys ...string) {
		for _, k := range keys {
			if _, ok := s.Data[k]; !ok {
				el.Addf(f("data["+k+"]"), "Required value: a Secret of type %s needs the key %q", s.Type, k)
			}
		}
	}
	validJSON := func(k string) {
		if v, ok := s.Data[k]; ok && !json.Valid(v) {
			el.Addf(f("data["+k+"]"), "Invalid value: must be valid JSON (a docker config file) for type %s", s.Type)
		}
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		el.Add(f("type"), "Forbidden: static pods cannot use service account tokens: there may be no API server to issue them; use type Opaque")
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
			el.Addf(f("data"), "Required value: a Secret of type %s needs the key %q or %q", s.Type, corev1.BasicAuthUsernameKey, corev1.BasicAuthPasswordKey)
		}
	case corev1.SecretTypeSSHAuth:
		need(corev1.SSHAuthPrivateKey)
	case corev1.SecretTypeTLS:
		need(corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
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
