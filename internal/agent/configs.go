package agent

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/planner"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

// The node-local ConfigMaps and Secrets, for readers: the mirror sync (the
// objects themselves) and the local API (as shown: never a Secret's values).

// Configs returns the node's ConfigMaps and Secrets, sorted by kind,
// namespace and name. They hold the Secrets' values: never show them.
func (a *Agent) Configs() []*manifest.Config {
	var out []*manifest.Config
	for _, c := range a.View().Configs {
		if c.Config != nil {
			out = append(out, c.Config)
		}
	}
	return out
}

// ConfigMaps returns the node's ConfigMaps as the local API shows them
// (see shownMeta), and those its pods reference that no file defines.
func (a *Agent) ConfigMaps() []corev1.ConfigMap {
	v := a.View()
	var out []corev1.ConfigMap
	for _, c := range v.Configs {
		if c.Key.Kind != manifest.KindConfigMap {
			continue
		}
		cm := corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}}
		if c.Config != nil {
			cm = *c.Config.ConfigMap.DeepCopy()
		}
		cm.ObjectMeta = shownMeta(c, v.Warnings)
		out = append(out, cm)
	}
	return out
}

// Secrets returns the node's Secrets as the local API shows them: every
// key with an empty value (manifest.Redacted), and those its pods
// reference that no file defines.
func (a *Agent) Secrets() []corev1.Secret {
	v := a.View()
	var out []corev1.Secret
	for _, c := range v.Configs {
		if c.Key.Kind != manifest.KindSecret {
			continue
		}
		s := corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}}
		if c.Config != nil {
			s = *manifest.Redacted(c.Config.Secret)
		}
		s.ObjectMeta = shownMeta(c, v.Warnings)
		s.Annotations[wellknown.AnnotationSecretData] = wellknown.SecretDataNodeLocal
		out = append(out, s)
	}
	return out
}

// shownMeta is an object's metadata with what the node knows of it: its
// file, the pods that use it, what is wrong with its file, or that it is
// missing.
func shownMeta(c planner.ConfigView, warnings []planner.Warning) metav1.ObjectMeta {
	var m metav1.ObjectMeta
	if c.Config != nil {
		m = *c.Config.Meta().DeepCopy()
	}
	m.Namespace, m.Name = c.Key.Namespace, c.Key.Name
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	if len(c.UsedBy) > 0 {
		m.Annotations[wellknown.AnnotationUsedBy] = strings.Join(c.UsedBy, ",")
	}
	if c.Config == nil {
		m.Annotations[wellknown.AnnotationConfigMissing] = "referenced by pods, but no manifest file defines it"
		return m
	}
	m.Annotations[wellknown.AnnotationManifest] = c.Config.File
	for _, w := range warnings {
		if w.File == c.Config.File {
			m.Annotations[wellknown.AnnotationFileWarning] = w.Message
		}
	}
	return m
}
