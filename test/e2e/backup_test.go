package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// objectsJSONPath lists what the API holds, one kind/namespace/name/uid a line.
const objectsJSONPath = `{range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name}/{.metadata.uid}{"\n"}{end}`

// TestBackupRestore: `ballast server backup` of a running `ballast up`
// (its embedded etcd, through the data dir's socket), restored with
// `ballast server restore` into a new data dir with the old PKI, serves
// every object the old server held, with the same UIDs.
func TestBackupRestore(t *testing.T) {
	env := harness.Start(t)
	u := startUp(t, env)
	for _, name := range []string{"web", "api"} {
		u.write(name+".yaml", manifest{Name: name, Image: env.HelloImage()}.yaml())
	}
	u.eventually("both mirror pods Running", 60*time.Second, func() error {
		for _, name := range []string{"web", "api"} {
			if err := kubectlShowsRunning(u.k, name+"-"+u.name); err != nil {
				return err
			}
		}
		return nil
	})
	before, err := u.k("get", "namespaces,nodes,pods,leases,events", "-A", "-o", "jsonpath="+objectsJSONPath)
	if err != nil {
		t.Fatalf("%v: %s", err, before)
	}
	snap := filepath.Join(t.TempDir(), "backup.db")
	if out, err := u.run("server", "backup", "-o", snap); err != nil || !strings.Contains(out, "wrote "+snap) {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if fi, err := os.Stat(snap); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the snapshot: %v %v", fi, err)
	}

	// Never over existing data (the running server's here).
	if out, err := exec.Command(u.bin, "server", "restore", snap, "--data-dir", u.dataDir, "--config-file=").CombinedOutput(); err == nil || !strings.Contains(string(out), "not empty") {
		t.Fatalf("restore over the running server's data: %v\n%s", err, out)
	}
	restored := filepath.Join(env.Dir, "restored")
	out, err := exec.Command(u.bin, "server", "restore", snap, "--data-dir", restored, "--config-file=").CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	// The cluster's identity comes from the backup of the PKI.
	if out, err := exec.Command("cp", "-a", filepath.Join(u.dataDir, "pki"), filepath.Join(restored, "pki")).CombinedOutput(); err != nil {
		t.Fatalf("copying the PKI: %v\n%s", err, out)
	}
	s := newSrv(t, restored)
	s.start()
	k := newKubectl(t, "--kubeconfig", s.Kubeconfig)
	after, err := k.run("get", "namespaces,nodes,pods,leases,events", "-A", "-o", "jsonpath="+objectsJSONPath)
	if err != nil {
		t.Fatalf("%v: %s", err, after)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(after, "\n") {
		have[l] = true
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(before), "\n") {
		n++
		if !have[l] {
			t.Errorf("not restored: %s", l)
		}
	}
	if n < 6 || !strings.Contains(before, "Pod/default/web-"+u.name) {
		t.Fatalf("too little to compare (%d objects):\n%s", n, before)
	}
	if ca, _ := os.ReadFile(filepath.Join(restored, "pki", "ca.crt")); !strings.Contains(string(ca), "BEGIN CERTIFICATE") {
		t.Error("the restored server has no CA")
	}
}
