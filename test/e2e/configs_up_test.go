package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// `ballast up` with node-local ConfigMaps and Secrets: kubectl shows each
// as a read-only mirror ("<name>-<node>", annotated with node and file),
// Secrets without their values; a mirror deleted comes back; edits and
// creations through the API are refused with where to do them instead;
// the pod that uses them has its mirror pod; the secret value is in no
// output of kubectl or the server.
func TestUpConfigMirrors(t *testing.T) {
	env := harness.Start(t)
	u := startUp(t, env)
	u.write("app-config.yaml", appConfig("v1"))
	u.writeMode("creds.yaml", credsYAML, 0o600)
	u.write("files.yaml", filesPod(env.HelloImage()))
	cm, secret := "app-config-"+u.name, "creds-"+u.name
	u.eventually("the mirror pod Running", 60*time.Second, func() error { return kubectlShowsRunning(u.k, "files-"+u.name) })
	u.eventually("kubectl get cm lists the mirror ConfigMap", 60*time.Second, func() error {
		out, err := u.k("get", "cm")
		if err != nil || !strings.Contains(out, cm) || !strings.Contains(out, "DATA") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	out, err := u.k("get", "cm", cm, "-o", "yaml")
	for _, want := range []string{"a: v1", "ballast.dev/manifest: " + u.manifests + "/app-config.yaml", "ballast.dev/node: " + u.name, "kind: Node"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("kubectl get cm -o yaml lacks %q: %v\n%s", want, err, out)
		}
	}
	if out, err := u.k("describe", "cm", cm); err != nil || !strings.Contains(out, "app.conf") {
		t.Errorf("kubectl describe cm: %v\n%s", err, out)
	}
	out, err = u.k("get", "secret", secret, "-o", "yaml")
	if err != nil || !strings.Contains(out, `password: ""`) || !strings.Contains(out, "ballast.dev/secret-data: node-local") || !strings.Contains(out, "kubernetes.io/basic-auth") {
		t.Errorf("the mirror Secret, keys without values: %v\n%s", err, out)
	}
	if out, err := u.k("get", "secrets"); err != nil || !strings.Contains(out, secret) || !strings.Contains(out, "kubernetes.io/basic-auth   2") {
		t.Errorf("kubectl get secrets: %v\n%s", err, out)
	}

	// Edits are refused, naming node and file; so are creations.
	out, err = u.k("patch", "cm", cm, "--type", "merge", "-p", `{"data":{"a":"edited"}}`)
	if err == nil || !strings.Contains(out, u.name) || !strings.Contains(out, "app-config.yaml") {
		t.Errorf("kubectl patch of a mirror ConfigMap must fail naming the node and the file: %v\n%s", err, out)
	}
	out, err = u.k("create", "configmap", "made-by-hand", "--from-literal=a=b")
	if err == nil || !strings.Contains(out, "write it into the pod manifest directory") {
		t.Errorf("kubectl create configmap must fail naming the manifest directory: %v\n%s", err, out)
	}
	out, err = u.k("create", "secret", "generic", "by-hand", "--from-literal=k="+secretMarker)
	if err == nil || !strings.Contains(out, "Secrets") {
		t.Errorf("kubectl create secret must fail: %v\n%s", err, out)
	}

	// Deleted: back at once, with a new UID.
	uid, err := u.k("get", "cm", cm, "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(uid, err)
	}
	if out, err := u.k("delete", "cm", cm); err != nil {
		t.Fatalf("kubectl delete cm: %v %s", err, out)
	}
	u.eventually("the mirror ConfigMap comes back", 30*time.Second, func() error {
		got, err := u.k("get", "cm", cm, "-o", "jsonpath={.metadata.uid}")
		if err != nil || got == "" || got == uid {
			return fmt.Errorf("uid %q (was %q): %v", got, uid, err)
		}
		return nil
	})
	// The file changes: the mirror follows.
	u.write("app-config.yaml", appConfig("v2"))
	u.eventually("the mirror ConfigMap updated", 30*time.Second, func() error {
		out, err := u.k("get", "cm", cm, "-o", "jsonpath={.data.a}")
		if err != nil || out != "v2" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
	// The file removed: the mirror goes.
	u.remove("creds.yaml")
	u.eventually("the mirror Secret removed", 30*time.Second, func() error {
		out, err := u.k("get", "secrets", "-o", "name")
		if err != nil || strings.Contains(out, secret) {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	// The secret value is in no output.
	var outputs []string
	for _, args := range [][]string{
		{"get", "secrets", "-A", "-o", "yaml"}, {"get", "cm", "-A", "-o", "yaml"}, {"get", "pods", "-A", "-o", "yaml"},
		{"get", "events", "-A", "-o", "yaml"}, {"describe", "pod", "files-" + u.name},
	} {
		out, err := u.k(args...)
		if err != nil {
			t.Errorf("kubectl %v: %v %s", args, err, out)
		}
		outputs = append(outputs, "kubectl "+strings.Join(args, " ")+":\n"+out)
	}
	for _, args := range [][]string{{"pods", "-o", "yaml"}, {"events", "-o", "yaml"}, {"get", "secrets", "-o", "yaml"}} {
		out, err := u.run(args...)
		if err != nil {
			t.Errorf("ballast %v: %v", args, err)
		}
		outputs = append(outputs, "ballast "+strings.Join(args, " ")+":\n"+out)
	}
	outputs = append(outputs, "ballast up's log:\n"+u.logText())
	noMarker(t, outputs)
}
