package podconfig

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ballast-dev/ballast/internal/manifest"
)

// What a pod takes from the node's ConfigMaps and Secrets: environment
// variables (configMapKeyRef, secretKeyRef, envFrom) and the files of
// configMap, secret and projected volumes, as the kubelet makes them, with
// its messages for what is missing. The objects come in: Configs holds those
// the node has.

// Configs are the node-local ConfigMaps and Secrets a pod references, by
// key (planner.Job.Configs): a missing one is not in it. Shared: never
// modify them.
type Configs map[manifest.ConfigKey]*manifest.Config

func (cs Configs) get(kind manifest.ConfigKind, namespace, name string) *manifest.Config {
	return cs[manifest.ConfigKey{Kind: kind, Namespace: namespace, Name: name}]
}

// The kinds of Files volumes: each is a directory of this name under the
// pod's (internal/volumes).
const (
	FilesDownwardAPI = "downward-api"
	FilesConfigMap   = "configmap"
	FilesSecret      = "secret"
	FilesProjected   = "projected"
)

func isTrue(b *bool) bool { return b != nil && *b }

func modeOr(m *int32, def fs.FileMode) fs.FileMode {
	if m != nil {
		return fs.FileMode(*m)
	}
	return def
}

// keyFiles adds the files of one configMap or secret source to files: every
// key (no items), or the items listed. A missing object or key fails unless
// optional, with the kubelet's message.
func keyFiles(files map[string]File, obj *manifest.Config, kind manifest.ConfigKind, name string, items []corev1.KeyToPath, optional bool, mode fs.FileMode) error {
	if obj == nil {
		if optional {
			return nil
		}
		return fmt.Errorf("%s %q not found", strings.ToLower(string(kind)), name)
	}
	if len(items) == 0 {
		for _, k := range obj.Keys() {
			v, _ := obj.Value(k)
			files[k] = File{Data: v, Mode: mode}
		}
		return nil
	}
	for _, it := range items {
		v, ok := obj.Value(it.Key)
		if !ok {
			if optional {
				continue
			}
			if kind == manifest.KindSecret {
				return fmt.Errorf("secret references non-existent secret key: %s", it.Key)
			}
			return fmt.Errorf("configmap references non-existent config key: %s", it.Key)
		}
		files[path.Clean(it.Path)] = File{Data: v, Mode: modeOr(it.Mode, mode)}
	}
	return nil
}

// configVolume plans a configMap, secret or projected volume; handled is
// false for any other kind.
func configVolume(pod *corev1.Pod, v *corev1.Volume, node Node, configs Configs) (vol Volume, handled bool, err error) {
	ns := pod.Namespace
	files := map[string]File{}
	switch {
	case v.ConfigMap != nil:
		cm := v.ConfigMap
		err = keyFiles(files, configs.get(manifest.KindConfigMap, ns, cm.Name), manifest.KindConfigMap, cm.Name, cm.Items, isTrue(cm.Optional), modeOr(cm.DefaultMode, 0o644))
		vol = Volume{Files: files, FilesKind: FilesConfigMap}
	case v.Secret != nil:
		s := v.Secret
		err = keyFiles(files, configs.get(manifest.KindSecret, ns, s.SecretName), manifest.KindSecret, s.SecretName, s.Items, isTrue(s.Optional), modeOr(s.DefaultMode, 0o644))
		vol = Volume{Files: files, FilesKind: FilesSecret, Memory: true}
	case v.Projected != nil:
		mode := modeOr(v.Projected.DefaultMode, 0o644)
		for _, src := range v.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				c := src.ConfigMap
				err = keyFiles(files, configs.get(manifest.KindConfigMap, ns, c.Name), manifest.KindConfigMap, c.Name, c.Items, isTrue(c.Optional), mode)
			case src.Secret != nil:
				s := src.Secret
				err = keyFiles(files, configs.get(manifest.KindSecret, ns, s.Name), manifest.KindSecret, s.Name, s.Items, isTrue(s.Optional), mode)
			case src.DownwardAPI != nil:
				var da map[string]File
				da, err = downwardAPIFiles(pod, &corev1.DownwardAPIVolumeSource{Items: src.DownwardAPI.Items, DefaultMode: v.Projected.DefaultMode}, node.Capacity)
				for k, f := range da {
					files[k] = f
				}
			default:
				err = fmt.Errorf("projected volume source not supported")
			}
			if err != nil {
				break
			}
		}
		// Secrets may be among the sources: in memory, as the kubelet's.
		vol = Volume{Files: files, FilesKind: FilesProjected, Memory: true}
	default:
		return Volume{}, false, nil
	}
	return vol, true, err
}

// envFrom adds the variables of a container's envFrom sources to env, in
// order (each object's keys sorted), and returns the keys skipped because
// they are not valid variable names, as the kubelet skips them.
func envFrom(pod *corev1.Pod, ctr *corev1.Container, configs Configs, add func(name, value string)) (skipped []string, err error) {
	for _, ef := range ctr.EnvFrom {
		var obj *manifest.Config
		var kind manifest.ConfigKind
		var name string
		var optional bool
		switch {
		case ef.ConfigMapRef != nil:
			kind, name, optional = manifest.KindConfigMap, ef.ConfigMapRef.Name, isTrue(ef.ConfigMapRef.Optional)
		case ef.SecretRef != nil:
			kind, name, optional = manifest.KindSecret, ef.SecretRef.Name, isTrue(ef.SecretRef.Optional)
		default:
			continue
		}
		obj = configs.get(kind, pod.Namespace, name)
		if obj == nil {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s %q not found", strings.ToLower(string(kind)), name)
		}
		for _, k := range obj.Keys() {
			key := ef.Prefix + k
			if len(validation.IsEnvVarName(key)) > 0 {
				skipped = append(skipped, fmt.Sprintf("%s (from %s %s/%s)", key, strings.ToLower(string(kind)), pod.Namespace, name))
				continue
			}
			v, _ := obj.Value(k)
			add(key, string(v))
		}
	}
	return skipped, nil
}

// keyRefValue is the value of a configMapKeyRef or secretKeyRef; set is
// false when an optional reference finds nothing (the variable is left out).
func keyRefValue(pod *corev1.Pod, vf *corev1.EnvVarSource, configs Configs) (value string, set bool, err error) {
	var kind manifest.ConfigKind
	var name, key string
	var optional bool
	switch {
	case vf.ConfigMapKeyRef != nil:
		r := vf.ConfigMapKeyRef
		kind, name, key, optional = manifest.KindConfigMap, r.Name, r.Key, isTrue(r.Optional)
	case vf.SecretKeyRef != nil:
		r := vf.SecretKeyRef
		kind, name, key, optional = manifest.KindSecret, r.Name, r.Key, isTrue(r.Optional)
	}
	obj := configs.get(kind, pod.Namespace, name)
	if obj == nil {
		if optional {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%s %q not found", strings.ToLower(string(kind)), name)
	}
	v, ok := obj.Value(key)
	if !ok {
		if optional {
			return "", false, nil
		}
		return "", false, fmt.Errorf("couldn't find key %s in %s %s/%s", key, kind, pod.Namespace, name)
	}
	return string(v), true, nil
}

// InvalidEnvFromKeys lists the keys of a container's envFrom objects that
// are not valid environment variable names (with their prefix), which the
// container's environment leaves out: the kubelet says so in an event.
func InvalidEnvFromKeys(pod *corev1.Pod, ctr *corev1.Container, configs Configs) []string {
	skipped, _ := envFrom(pod, ctr, configs, func(string, string) {})
	sort.Strings(skipped)
	return skipped
}
