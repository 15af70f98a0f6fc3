package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// secretMarker is the value of a Secret: no output of Ballast may ever
// show it (logs, events, ballast pods -o yaml, ballast get, the local API,
// mirror objects, error messages).
const secretMarker = "Zq9-s3cr3t-marker-7Kx"

// noMarker fails t for each output (named by its first line) that shows
// the secret value.
func noMarker(t *testing.T, outputs []string) {
	t.Helper()
	for _, o := range outputs {
		if strings.Contains(o, secretMarker) {
			t.Errorf("the secret value shows in %s", strings.SplitN(o, "\n", 2)[0])
		}
	}
}

// writeMode writes a manifest atomically with the given mode.
func (n *node) writeMode(file, content string, mode os.FileMode) {
	n.t.Helper()
	tmp := filepath.Join(filepath.Dir(n.manifests), ".tmp-"+file)
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.manifests, file)); err != nil {
		n.t.Fatal(err)
	}
}

func appConfig(version string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  a: %[1]s
  b: %[1]s
  c: %[1]s
  app.conf: "conf %[1]s"
`, version)
}

const credsYAML = `apiVersion: v1
kind: Secret
metadata:
  name: creds
type: kubernetes.io/basic-auth
stringData:
  username: admin
  password: ` + secretMarker + `
`

// filesPod mounts ConfigMap, Secret and projected volumes (and a subPath of
// the ConfigMap), and uses no env from them: a change of their data updates
// its files in place.
func filesPod(image string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: files
spec:
  volumes:
  - {name: cfg, configMap: {name: app-config}}
  - {name: one, configMap: {name: app-config, items: [{key: app.conf, path: app.conf}]}}
  - {name: creds, secret: {secretName: creds, defaultMode: 0400, items: [{key: password, path: password}, {key: username, path: user, mode: 0444}]}}
  - name: all
    projected:
      defaultMode: 0440
      sources:
      - configMap: {name: app-config, items: [{key: a, path: config/a}]}
      - secret: {name: creds, items: [{key: username, path: secret/user}]}
      - downwardAPI: {items: [{path: pod/name, fieldRef: {fieldPath: metadata.name}}]}
  containers:
  - name: app
    image: ` + image + `
    volumeMounts:
    - {name: cfg, mountPath: /etc/app}
    - {name: one, mountPath: /etc/app.conf, subPath: app.conf}
    - {name: creds, mountPath: /etc/creds}
    - {name: all, mountPath: /projected}
`
}

// mountLine is the line of /proc/mounts (inside the container) of a mount point.
func mountLine(mounts, point string) string {
	for _, l := range strings.Split(mounts, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == point {
			return l
		}
	}
	return ""
}

// Node-local ConfigMaps and Secrets with no API server: volumes read by a
// running container and updated in place atomically (a reader looping
// through the update sees no torn set, the container is the same, never
// restarted; a subPath keeps its file), a Secret on tmpfs with its modes, a
// projected volume, env and envFrom with a prefix (a change replaces the
// pod), a missing ConfigMap -> CreateContainerConfigError -> started when
// its file arrives, optional objects, an invalid file keeping its last good
// content, ballast get, the warning for a Secret file others may read, and
// the secret value absent from every output.
func TestConfigMapsAndSecrets(t *testing.T) {
	env := harness.Start(t)
	n := newNode(t, env)
	n.start()
	n.write("app-config.yaml", appConfig("v1"))
	n.writeMode("creds.yaml", credsYAML, 0o600)
	n.write("files.yaml", filesPod(env.HelloImage()))
	p := n.waitPod("files", "running", running)
	id := containerID(p)

	// What the container reads.
	for path, want := range map[string]string{
		"/etc/app/a": "v1", "/etc/app/app.conf": "conf v1", "/etc/app.conf": "conf v1",
		"/etc/creds/password": secretMarker, "/etc/creds/user": "admin",
		"/projected/config/a": "v1", "/projected/secret/user": "admin", "/projected/pod/name": p.Name,
	} {
		if got := podGet(t, p, 0, "/file?path="+path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]string{
		"/etc/app/a": "0644", "/etc/creds/password": "0400", "/etc/creds/user": "0444", "/projected/config/a": "0440",
	} {
		if got := podGet(t, p, 0, "/stat?path="+path); got != want {
			t.Errorf("mode of %s = %s, want %s", path, got, want)
		}
	}
	mounts := podGet(t, p, 0, "/file?path=/proc/mounts")
	for _, point := range []string{"/etc/creds", "/projected"} {
		if l := mountLine(mounts, point); !strings.HasPrefix(l, "tmpfs ") || !strings.Contains(l, " ro,") {
			t.Errorf("%s is not a read-only tmpfs in the container: %q", point, l)
		}
	}
	if l := mountLine(mounts, "/etc/app"); strings.HasPrefix(l, "tmpfs ") || !strings.Contains(l, " ro,") {
		t.Errorf("a ConfigMap volume is on disk, read-only: %q", l)
	}
	if got := podGet(t, p, 0, "/write?path=/etc/app/x&content=x"); !strings.Contains(got, "read-only file system") {
		t.Errorf("the ConfigMap volume is writable: %q", got)
	}

	// An edit, seen by the same running container, all at once.
	result := make(chan string, 1)
	go func() {
		c := http.Client{Timeout: 90 * time.Second}
		r, err := c.Get(fmt.Sprintf("http://%s:%d/readloop?dir=/etc/app&files=a,b,c&until=v2&timeout=60s", p.Status.PodIP, harness.HelloPort))
		if err != nil {
			result <- err.Error()
			return
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		result <- string(b)
	}()
	n.eventually("the reader loops", 30*time.Second, func() error {
		out, err := n.run("logs", "files")
		if err != nil || !strings.Contains(out, "hello: readloop started") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	n.write("app-config.yaml", appConfig("v2"))
	var got string
	select {
	case got = <-result:
	case <-time.After(90 * time.Second):
		t.Fatal("the reader did not return")
	}
	if !strings.Contains(got, " mixed=0 broken=0 seen=v1,v2\n") {
		t.Errorf("the update was not atomic: %s", got)
	}
	p = n.pod("files")
	if containerID(p) != id || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("the update restarted the container: %s -> %s, %d restarts", id, containerID(p), p.Status.ContainerStatuses[0].RestartCount)
	}
	if got := podGet(t, p, 0, "/file?path=/etc/app.conf"); got != "conf v1" {
		t.Errorf("a subPath mount is not updated (as in Kubernetes): %q", got)
	}
	if got := podGet(t, p, 0, "/file?path=/projected/config/a"); got != "v2" {
		t.Errorf("the projected volume after the update: %q", got)
	}

	// An invalid file keeps its last good content.
	n.write("app-config.yaml", appConfig("3"))
	n.eventually("the problem is reported", 30*time.Second, func() error {
		out, _ := n.run("pods")
		if !strings.Contains(out, "app-config.yaml") || !strings.Contains(out, "data[a]: Invalid type: must be a string") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
	if got := podGet(t, p, 0, "/file?path=/etc/app/a"); got != "v2" {
		t.Errorf("an invalid file changed the volume: %q", got)
	}
	out, err := n.run("get", "configmaps")
	if err != nil || !strings.Contains(out, "app-config") || !strings.Contains(out, "default/files-"+n.name) {
		t.Errorf("ballast get configmaps:\n%s %v", out, err)
	}
	out, err = n.run("get", "configmaps", "-o", "yaml")
	if err != nil || !strings.Contains(out, "a: v2") {
		t.Errorf("ballast get configmaps -o yaml keeps the last good data:\n%s %v", out, err)
	}
	n.write("app-config.yaml", appConfig("v3"))

	// env and envFrom (with a prefix), fixed at start: a change replaces the pod.
	n.write("env-config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: env-config}\ndata: {LEVEL: debug, port: \"8080\", 1bad: skipped}\n")
	n.write("envs.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: envs
spec:
  containers:
  - name: app
    image: `+env.HelloImage()+`
    envFrom:
    - {prefix: CFG_, configMapRef: {name: env-config}}
    - {secretRef: {name: absent, optional: true}}
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: USER_NAME, valueFrom: {secretKeyRef: {name: creds, key: username}}}
    - {name: MAYBE, valueFrom: {configMapKeyRef: {name: env-config, key: nope, optional: true}}}
    - {name: SAYS, value: "level $(CFG_LEVEL)"}
`)
	e := n.waitPod("envs", "running", running)
	envs := podGet(t, e, 0, "/env")
	for _, want := range []string{"CFG_LEVEL=debug\n", "CFG_port=8080\n", "CFG_1bad=skipped\n", "PASSWORD=" + secretMarker + "\n", "USER_NAME=admin\n", "SAYS=level debug\n"} {
		if !strings.Contains(envs, want) {
			t.Errorf("env lacks %q:\n%s", want, envs)
		}
	}
	if strings.Contains(envs, "MAYBE=") {
		t.Errorf("an optional missing key set a variable:\n%s", envs)
	}
	n.write("env-config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: env-config}\ndata: {LEVEL: info, port: \"8080\"}\n")
	e2 := n.waitPod("envs", "replaced by a new pod with the new value", func(p *corev1.Pod) error {
		if p.UID == e.UID {
			return fmt.Errorf("same pod")
		}
		return running(p)
	})
	if got := podGet(t, e2, 0, "/env"); !strings.Contains(got, "CFG_LEVEL=info\n") {
		t.Errorf("env after the change:\n%s", got)
	}
	n.eventually("the replacement is an event", 30*time.Second, func() error {
		out, _ := n.run("events")
		if !strings.Contains(out, "ConfigChanged") || !strings.Contains(out, "configmap default/env-config changed") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})

	// A missing ConfigMap: CreateContainerConfigError, then started as soon
	// as its file arrives; optional objects are not waited for.
	n.write("waiter.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: waiter
spec:
  volumes:
  - {name: late, configMap: {name: late}}
  - {name: maybe, configMap: {name: maybe, optional: true}}
  - {name: maybe-secret, secret: {secretName: maybe-secret, optional: true}}
  containers:
  - name: app
    image: `+env.HelloImage()+`
    volumeMounts:
    - {name: late, mountPath: /late}
    - {name: maybe, mountPath: /maybe}
    - {name: maybe-secret, mountPath: /maybe-secret}
`)
	n.waitPod("waiter", "waiting for its ConfigMap", waitingWith("CreateContainerConfigError", `configmap "late" not found`))
	n.write("late.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\ndata: {k: here}\n")
	w := n.waitPod("waiter", "running", running)
	if got := podGet(t, w, 0, "/file?path=/late/k"); got != "here" {
		t.Errorf("/late/k = %q", got)
	}
	n.write("optional.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: maybe}\ndata: {k: arrived}\n")
	n.eventually("an optional ConfigMap that arrives fills its volume", 30*time.Second, func() error {
		if got, _ := get(fmt.Sprintf("http://%s:%d/file?path=/maybe/k", w.Status.PodIP, harness.HelloPort)); got != "arrived" {
			return fmt.Errorf("%q", got)
		}
		return nil
	})

	// A Secret file others may read: a warning (and it still works).
	n.writeMode("creds.yaml", credsYAML, 0o644)
	n.eventually("the warning", 30*time.Second, func() error {
		out, _ := n.run("get", "secrets")
		if !strings.Contains(out, "warning: "+filepath.Join(n.manifests, "creds.yaml")+" holds Secrets and is readable by group or others (mode 0644); restrict it to its owner: chmod 600") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
	n.eventually("the warning event", 30*time.Second, func() error {
		out, _ := n.run("events")
		if !strings.Contains(out, "InsecureSecretFile") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
	out, err = n.run("get", "secrets")
	if err != nil || !strings.Contains(out, "creds") || !strings.Contains(out, "kubernetes.io/basic-auth") || !strings.Contains(out, "default/envs-"+n.name) {
		t.Errorf("ballast get secrets:\n%s %v", out, err)
	}

	// The marker is in no output of Ballast.
	var outputs []string
	for _, args := range [][]string{
		{"pods"}, {"pods", "-o", "yaml"}, {"pods", "-o", "json"}, {"events", "-o", "yaml"},
		{"get", "secrets"}, {"get", "secrets", "-o", "yaml"}, {"get", "secrets", "-o", "json"},
		{"get", "configmaps", "-o", "yaml"}, {"logs", "files"}, {"logs", "envs"},
	} {
		out, err := n.run(args...)
		if err != nil {
			t.Errorf("ballast %v: %v", args, err)
		}
		outputs = append(outputs, "ballast "+strings.Join(args, " ")+":\n"+out)
	}
	outputs = append(outputs, "the node's log:\n"+n.logText())
	noMarker(t, outputs)
	if t.Failed() {
		return
	}
	// Removed with its pod: the tmpfs goes with the pod's directory.
	podDir := filepath.Join(n.dataDir, "volumes", string(p.UID))
	if !mountedAt(filepath.Join(podDir, "secret", "creds")) {
		t.Errorf("the Secret volume is not a tmpfs on the host")
	}
	n.remove("files.yaml")
	n.eventually("the pod's volumes removed", 60*time.Second, func() error {
		if _, err := os.Stat(podDir); !os.IsNotExist(err) {
			return fmt.Errorf("%s still there: %v", podDir, err)
		}
		return nil
	})
}
