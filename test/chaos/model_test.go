package chaos

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/manifest"
)

// model is what the manifest directory asks of the node, by Ballast's
// rules: the pods of every file's last good content, the first file by name
// winning a pod name; a broken file keeps its last good pod; after an agent
// restart a broken file's pod runs on from the runtime's record until
// another file defines its name.
type model struct {
	node, dir string
	files     map[string]*mfile
}

type mfile struct {
	content string // on disk
	valid   bool
	// good is the last valid content the running agent has read ("" none).
	good string
	// kept is the content of the pod the runtime runs for this broken file
	// though the running agent never read it valid ("" none).
	kept string
}

// want is one pod the node must run.
type want struct {
	file    string // file name in the directory
	content string
	name    string // the pod's name, <metadata.name>-<node>
	uid     types.UID
}

func newModel(node, dir string) *model {
	return &model{node: node, dir: dir, files: map[string]*mfile{}}
}

func (m *model) sorted() []string {
	names := make([]string, 0, len(m.files))
	for n := range m.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// parse is the pod a content defines (nil if it is not valid).
func (m *model) parse(file, content string) *want {
	pods, err := manifest.Parse(filepath.Join(m.dir, file), []byte(content), m.node)
	if err != nil || len(pods) != 1 {
		return nil
	}
	return &want{file: file, content: content, name: pods[0].Name, uid: pods[0].UID}
}

// write records a file written with content.
func (m *model) write(file, content string) {
	f := m.files[file]
	if f == nil {
		f = &mfile{}
		m.files[file] = f
	}
	f.content = content
	f.valid = m.parse(file, content) != nil
	if f.valid {
		f.good, f.kept = content, ""
	}
	m.settle()
}

func (m *model) remove(file string) {
	delete(m.files, file)
	m.settle()
}

// agentRestarted: a new agent reads every file afresh; a broken file's
// running pod is kept from the runtime's record.
func (m *model) agentRestarted() {
	running := m.want()
	for name, f := range m.files {
		if f.valid {
			f.good, f.kept = f.content, ""
			continue
		}
		f.good, f.kept = "", ""
		for _, w := range running {
			if w.file == name {
				f.kept = w.content
			}
		}
	}
	m.settle()
}

// settle drops the kept pods that gave way to another file's pod of their name.
func (m *model) settle() {
	m.want()
}

// want computes the pods the node must run, by name.
func (m *model) want() map[string]*want {
	out := map[string]*want{}
	names := m.sorted()
	for _, n := range names {
		f := m.files[n]
		if f.good == "" {
			continue
		}
		if w := m.parse(n, f.good); w != nil && out[w.name] == nil {
			out[w.name] = w
		}
	}
	for _, n := range names {
		f := m.files[n]
		if f.good != "" || f.kept == "" {
			continue
		}
		w := m.parse(n, f.kept)
		if w == nil || out[w.name] != nil {
			f.kept = "" // gave way: stopped, gone from the runtime
			continue
		}
		out[w.name] = w
	}
	return out
}

func (m *model) String() string {
	var b strings.Builder
	for _, n := range m.sorted() {
		f := m.files[n]
		fmt.Fprintf(&b, "%s valid=%v good=%v kept=%v; ", n, f.valid, f.good != "", f.kept != "")
	}
	return b.String()
}

// podYAML is a pod of the hello image with containers containers (on
// ports 8080 and up); with a memory volume when containers is odd (a tmpfs
// the node mounts).
func podYAML(name, version string, containers int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  labels:\n    chaos: \"true\"\nspec:\n  terminationGracePeriodSeconds: 3\n", name)
	volume := containers%2 == 1
	if volume {
		b.WriteString("  volumes:\n  - name: cache\n    emptyDir:\n      medium: Memory\n      sizeLimit: 1Mi\n")
	}
	b.WriteString("  containers:\n")
	for i := range containers {
		fmt.Fprintf(&b, "  - name: c%d\n    image: ballast.local/hello:v1\n    imagePullPolicy: Never\n    env:\n    - name: PORT\n      value: \"%d\"\n    - name: VERSION\n      value: %q\n", i, 8080+i, version)
		if volume {
			b.WriteString("    volumeMounts:\n    - name: cache\n      mountPath: /cache\n")
		}
	}
	return b.String()
}

// The model's rules, as tables.
func TestModel(t *testing.T) {
	m := newModel("n", "/m")
	names := func() string {
		var out []string
		for _, w := range m.want() {
			out = append(out, w.name+"<"+w.file)
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	step := func(what, got, wantNames string) {
		t.Helper()
		if got != wantNames {
			t.Fatalf("%s: want %q, got %q (%s)", what, wantNames, got, m)
		}
	}
	m.write("p1.yaml", podYAML("a", "1", 1))
	m.write("p2.yaml", podYAML("b", "1", 1))
	step("two files", names(), "a-n<p1.yaml b-n<p2.yaml")
	m.write("a0.yaml", podYAML("b", "2", 1))
	step("a file sorted first takes b", names(), "a-n<p1.yaml b-n<a0.yaml")
	m.write("a0.yaml", "not: [valid")
	step("broken, it keeps its last good pod (source)", names(), "a-n<p1.yaml b-n<a0.yaml")
	m.agentRestarted()
	step("after a restart its kept pod gives way", names(), "a-n<p1.yaml b-n<p2.yaml")
	m.remove("p2.yaml")
	step("the kept pod is gone for good", names(), "a-n<p1.yaml")
	m.write("p1.yaml", "spec: {bogus: 1}")
	m.agentRestarted()
	step("a broken file's running pod kept after a restart", names(), "a-n<p1.yaml")
	m.write("p1.yaml", podYAML("a", "1", 1))
	step("fixed with the same content", names(), "a-n<p1.yaml")
	m.write("p1.yaml", podYAML("c", "1", 1))
	step("renamed", names(), "c-n<p1.yaml")
}
