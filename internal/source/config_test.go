package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/manifest"
	"github.com/ballast-dev/ballast/internal/wellknown"
)

func configMapYAML(name, value string, extra string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n" + extra + "data:\n  key: " + value + "\n"
}

// A pod whose env uses a ConfigMap, and one that only mounts it.
const configPods = `apiVersion: v1
kind: Pod
metadata:
  name: env
spec:
  containers:
  - name: c
    image: app:v1
    envFrom: [{configMapRef: {name: cfg}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: vol
spec:
  volumes: [{name: v, configMap: {name: cfg}}]
  containers:
  - name: c
    image: app:v1
`

func config(s Snapshot, name string) *manifest.Config {
	for _, c := range s.Configs {
		if c.Key().Name == name {
			return c
		}
	}
	return nil
}

func pod(s Snapshot, name string) *Desired {
	for i := range s.Pods {
		if s.Pods[i].Pod.Name == name+"-"+testNode {
			return &s.Pods[i]
		}
	}
	return nil
}

func value(c *manifest.Config) string {
	if c == nil {
		return "<none>"
	}
	v, _ := c.Value("key")
	return string(v)
}

func TestConfigObjects(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "cfg.yaml")
	write(t, cfgPath, configMapYAML("cfg", "a", ""))
	write(t, filepath.Join(dir, "pods.yaml"), configPods)
	h := start(t, dir, nil)
	s := h.last
	c := config(s, "cfg")
	if c == nil || c.File != cfgPath || value(c) != "a" || len(s.Pods) != 2 || len(s.Problems) != 0 {
		t.Fatalf("got %s", describe(s))
	}
	env, vol := pod(s, "env"), pod(s, "vol")
	if env.Pod.Annotations[wellknown.AnnotationConfigDataHash] == "" || vol.Pod.Annotations[wellknown.AnnotationConfigDataHash] != "" {
		t.Errorf("config hash: env %q, vol %q", env.Pod.Annotations[wellknown.AnnotationConfigDataHash], vol.Pod.Annotations[wellknown.AnnotationConfigDataHash])
	}
	envUID, volUID, seen := env.Pod.UID, vol.Pod.UID, env.Pod.Annotations[wellknown.AnnotationConfigSeen]

	// A change of the data: the env pod is a new pod, the volume one is not.
	write(t, cfgPath, configMapYAML("cfg", "b", ""))
	s = h.next()
	if value(config(s, "cfg")) != "b" {
		t.Fatalf("got %s", describe(s))
	}
	if pod(s, "env").Pod.UID == envUID || pod(s, "vol").Pod.UID != volUID {
		t.Errorf("after a data change: env %s -> %s, vol %s -> %s", envUID, pod(s, "env").Pod.UID, volUID, pod(s, "vol").Pod.UID)
	}
	if pod(s, "env").Pod.Annotations[wellknown.AnnotationConfigSeen] == "" || pod(s, "env").Pod.Annotations[wellknown.AnnotationConfigSeen] < seen {
		t.Errorf("the new pod's config.seen: %q", pod(s, "env").Pod.Annotations[wellknown.AnnotationConfigSeen])
	}

	// An invalid file keeps its last good content.
	write(t, cfgPath, configMapYAML("cfg", "1", ""))
	s = h.next()
	if value(config(s, "cfg")) != "b" || len(s.Problems) != 1 || !strings.Contains(s.Problems[0].Err.Error(), "data[key]: Invalid type: must be a string") {
		t.Fatalf("got %s", describe(s))
	}
	// Defined twice: the file first by name wins, the other has a problem.
	write(t, cfgPath, configMapYAML("cfg", "c", ""))
	h.next()
	other := filepath.Join(dir, "a-other.yaml")
	write(t, other, configMapYAML("cfg", "other", ""))
	s = h.next()
	if value(config(s, "cfg")) != "other" || len(s.Problems) != 1 || s.Problems[0].File != cfgPath ||
		!strings.Contains(s.Problems[0].Err.Error(), "configmap default/cfg is already defined by "+other) {
		t.Fatalf("got %s", describe(s))
	}
	os.Remove(other)
	s = h.next()
	if value(config(s, "cfg")) != "c" || len(s.Problems) != 0 {
		t.Fatalf("got %s", describe(s))
	}
	// Removed: gone.
	os.Remove(cfgPath)
	s = h.next()
	if config(s, "cfg") != nil {
		t.Fatalf("got %s", describe(s))
	}
}

func TestImmutableConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cfg.yaml")
	write(t, path, configMapYAML("cfg", "a", "immutable: true\n"))
	h := start(t, dir, nil)
	write(t, path, configMapYAML("cfg", "b", "immutable: true\n"))
	s := h.next()
	if value(config(s, "cfg")) != "a" || len(s.Problems) != 1 || !strings.Contains(s.Problems[0].Err.Error(), "its data cannot change") {
		t.Fatalf("got %s", describe(s))
	}
	// Removed and written again: a new object, as in Kubernetes.
	os.Remove(path)
	h.waitFor("the object gone", func(s Snapshot) bool { return config(s, "cfg") == nil }, nil)
	write(t, path, configMapYAML("cfg", "b", "immutable: true\n"))
	s = h.waitFor("the new object", func(s Snapshot) bool { return config(s, "cfg") != nil }, nil)
	if value(config(s, "cfg")) != "b" || len(s.Problems) != 0 {
		t.Fatalf("got %s", describe(s))
	}
}

func TestSecretFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.yaml")
	write(t, path, "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: s3cr3t-marker}\n")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	h := start(t, dir, nil)
	s := h.last
	if config(s, "s") == nil || len(s.Warnings) != 1 || s.Warnings[0].File != path ||
		!strings.Contains(s.Warnings[0].Message, "readable by group or others (mode 0644); restrict it to its owner: chmod 600 "+path) {
		t.Fatalf("got %s", describe(s))
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s = h.next()
	if len(s.Warnings) != 0 || config(s, "s") == nil {
		t.Fatalf("got %s", describe(s))
	}
	if strings.Contains(h.logs.String(), "s3cr3t-marker") {
		t.Errorf("the log shows the secret:\n%s", h.logs.String())
	}
	if n := strings.Count(h.logs.String(), "secret file readable by others"); n != 1 {
		t.Errorf("warned %d times in the log, want once", n)
	}
}
