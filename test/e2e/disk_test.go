package e2e

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ballast-dev/ballast/test/e2e/harness"
)

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// fillDisk writes path until the file system holding it is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = io.Copy(f, zeros{})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", path, err)
	}
}

// A full disk (issue 12, point 10), on `ballast up` whose data dir (etcd,
// pod logs) is a small tmpfs filled to the last byte: every pod keeps
// running, container logs are truncated with a marker, the node says so
// (ballast pods, a DiskPressure condition, events), the server refuses
// writes with 507 and keeps serving reads; freeing space recovers all of it
// by itself, and etcd's data is intact.
func TestFullDisk(t *testing.T) {
	env := harness.Start(t)
	data := filepath.Join(env.Dir, "small")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=320m,mode=0700", "ballast-e2e-disk", data).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() { // after ballast up has stopped (cleanups run last first)
		env.RemoveAllPods(t) // their logs are open on it
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", data, err, out)
		}
	})
	u := startUpWith(t, env, func(n *node) { n.dataDir = data })
	u.write("steady.yaml", manifest{Name: "steady", Image: env.HelloImage()}.yaml())
	u.write("chatty.yaml", manifest{Name: "chatty", Image: env.HelloImage(), Env: map[string]string{"LOG_LINES": "100000"}}.yaml())
	ids := map[string]string{}
	for _, p := range []string{"steady", "chatty"} {
		ids[p] = containerID(u.waitPod(p, "running", running))
	}
	u.eventually("chatty's log written", 60*time.Second, func() error {
		out, err := u.run("logs", "chatty", "--tail", "1")
		if err != nil || !strings.Contains(out, "line 100000") {
			return fmt.Errorf("%v: %q", err, out)
		}
		return nil
	})
	u.eventually("the mirrors Running", 60*time.Second, func() error { return kubectlShowsRunning(u.k, "steady-"+u.name) })

	filler := filepath.Join(data, "filler")
	fillDisk(t, filler)
	dir := data
	u.eventually("ballast pods says the disk is nearly full", 90*time.Second, func() error {
		out, err := u.run("pods")
		if err != nil || !strings.Contains(out, "problem: the disk holding "+dir+" is nearly full") {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	u.eventually("chatty's log truncated with a marker", 60*time.Second, func() error {
		out, err := u.run("logs", "chatty")
		if err != nil || !strings.Contains(out, "ballast: log truncated at ") || strings.Contains(out, "line 5\n") {
			return fmt.Errorf("%v: %.300q", err, out)
		}
		return nil
	})
	u.eventually("the Node's DiskPressure condition", 60*time.Second, func() error {
		out, err := u.k("get", "node", u.name, "-o", `jsonpath={.status.conditions[?(@.type=="DiskPressure")].status}`)
		if err != nil || out != "True" {
			return fmt.Errorf("%v: %q", err, out)
		}
		return nil
	})
	out, err := u.k("create", "namespace", "while-full")
	if err == nil || !strings.Contains(out, "is nearly full") || !strings.Contains(out, "writes that add data are refused") {
		t.Errorf("a write on a full disk: %v\n%s", err, out)
	}
	if out, err := u.k("get", "pods"); err != nil || !strings.Contains(out, "steady-"+u.name) {
		t.Errorf("reads on a full disk: %v\n%s", err, out)
	}
	if out, err := u.run("events"); err != nil || !strings.Contains(out, "NodeHasDiskPressure") || !strings.Contains(out, "ContainerLogsTruncated") {
		t.Errorf("ballast events on a full disk: %v\n%s", err, out)
	}
	same := func(when string) {
		t.Helper()
		for name, id := range ids {
			p := u.pod(name)
			if p == nil || containerID(p) != id || running(p) != nil || p.Status.ContainerStatuses[0].RestartCount != 0 {
				t.Errorf("%s: %s did not keep running as it was: %v", when, name, p)
			}
		}
	}
	same("with the disk full")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	u.eventually("the pressure over", 90*time.Second, func() error {
		out, err := u.run("pods")
		if err != nil || strings.Contains(out, "nearly full") {
			return fmt.Errorf("%v\n%s", err, out)
		}
		out, err = u.k("get", "node", u.name, "-o", `jsonpath={.status.conditions[?(@.type=="DiskPressure")].status}`)
		if err != nil || out != "False" {
			return fmt.Errorf("DiskPressure %v: %q", err, out)
		}
		return nil
	})
	u.eventually("writes accepted again", 30*time.Second, func() error {
		out, err := u.k("create", "namespace", "after-full")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	u.eventually("the events of the full disk published", 60*time.Second, func() error {
		out, err := u.k("get", "events", "--field-selector", "involvedObject.kind=Node", "-o", "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}")
		for _, r := range []string{"NodeHasDiskPressure", "ContainerLogsTruncated", "NodeHasNoDiskPressure"} {
			if err != nil || !strings.Contains(out, r) {
				return fmt.Errorf("%v: %s", err, out)
			}
		}
		return nil
	})
	same("after the disk had space again")

	// Nothing corrupted: etcd's database checks out, and a new server on
	// the same data dir serves what was written.
	u.stop()
	db, err := bolt.Open(filepath.Join(data, "etcd", "member", "snap", "db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("opening etcd's database: %v", err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			return e
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Errorf("etcd's database check: %v", err)
	}
	again := startUpWith(t, env, func(n *node) { n.dataDir = data; n.manifests = u.manifests })
	if out, err := again.k("get", "namespace", "after-full"); err != nil {
		t.Errorf("after a restart: %v: %s", err, out)
	}
	again.eventually("the pods adopted", 60*time.Second, func() error {
		for name, id := range ids {
			p := again.pod(name)
			if p == nil || containerID(p) != id {
				return fmt.Errorf("%s: %v", name, p)
			}
		}
		return nil
	})
}

// `ballast node --kubeconfig <the server's admin kubeconfig>` (issue 12,
// point 9): the node says once that these are not a node's credentials and
// how to make them, the server's refusal says so too, and the refused
// mirror pod create is not a retry storm.
func TestNodeWithAdminCredentials(t *testing.T) {
	env := harness.Start(t)
	s := startAPIServer(t, env)
	n := newNode(t, env, "--kubeconfig", s.kubeconfig)
	n.start()
	n.write("web.yaml", manifest{Name: "web", Image: env.HelloImage()}.yaml())
	n.waitPod("web", "running", running)
	want := fmt.Sprintf(`make them with \"ballast server token create --node %s\"`, n.name)
	n.eventually("the refusal logged", 60*time.Second, func() error {
		if !strings.Contains(n.logText(), want) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	// Three more pods: the sync loop goes round again and again.
	for i := range 3 {
		n.write(fmt.Sprintf("more%d.yaml", i), manifest{Name: fmt.Sprintf("more%d", i), Image: env.HelloImage()}.yaml())
		n.waitPod(fmt.Sprintf("more%d", i), "running", running)
	}
	logs := n.logText()
	if c := strings.Count(logs, "the API credentials are not a node's"); c != 1 {
		t.Errorf("the identity said %d times, want once:\n%s", c, logs)
	}
	if !strings.Contains(logs, "ballast server token create --node "+n.name) {
		t.Errorf("the node does not say how to make node credentials:\n%s", logs)
	}
	if c := strings.Count(logs, `msg="creating mirror pod`); c > 4 {
		t.Errorf("the refusal logged %d times for 4 pods", c)
	}
	out, err := s.k("get", "--raw", "/metrics")
	if err != nil {
		t.Fatalf("server metrics: %v", err)
	}
	tries := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "apiserver_request_total{") && strings.Contains(l, `resource="pods"`) && strings.Contains(l, `verb="CREATE"`) && strings.Contains(l, `code="403"`) {
			var v float64
			fmt.Sscan(l[strings.LastIndex(l, " ")+1:], &v)
			tries += int(v)
		}
	}
	// Four pods, each tried at first and again at most every 0.5 s, 1 s,
	// 2 s...: a few tries each, where the storm was several a second.
	if tries == 0 || tries > 24 {
		t.Errorf("%d refused mirror pod creates for 4 pods", tries)
	}
}
