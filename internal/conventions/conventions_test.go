package conventions

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/ballast-dev/ballast"

// pkg is one directory's Go files, parsed for imports and comments.
type pkg struct {
	dir   string // relative to the module root, slash-separated
	name  string // the package clause of its non-test files
	files map[string]*ast.File
}

// imports lists what the package's files import, with the file that does.
// Test files count; so do files behind build tags (all are parsed).
func (p *pkg) imports(tests bool) map[string]string {
	out := map[string]string{}
	for name, f := range p.files {
		if !tests && strings.HasSuffix(name, "_test.go") {
			continue
		}
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			out[path] = filepath.Join(p.dir, name)
		}
	}
	return out
}

// root is the module root: the nearest directory above with go.mod.
func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = filepath.Dir(dir)
	}
}

// packages parses every package under the module root's top-level
// directories tops (testdata and hidden directories excluded).
func packages(t *testing.T, tops ...string) []*pkg {
	t.Helper()
	r := root(t)
	byDir := map[string]*pkg{}
	fset := token.NewFileSet()
	for _, top := range tops {
		err := filepath.WalkDir(filepath.Join(r, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if n := d.Name(); n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(r, filepath.Dir(path))
			rel = filepath.ToSlash(rel)
			p := byDir[rel]
			if p == nil {
				p = &pkg{dir: rel, files: map[string]*ast.File{}}
				byDir[rel] = p
			}
			p.files[filepath.Base(path)] = f
			if !strings.HasSuffix(path, "_test.go") {
				p.name = f.Name.Name
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var out []*pkg
	for _, p := range byDir {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dir < out[j].dir })
	if len(out) == 0 {
		t.Fatalf("no packages under %v in %s", tops, r)
	}
	return out
}

func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// No package under internal/, tests included, imports test/...: unit
// tests must not need the end-to-end harness (it needs root and
// containerd), and production code must not link test code.
func TestInternalDoesNotImportTest(t *testing.T) {
	for _, p := range packages(t, "internal") {
		for path, file := range p.imports(true) {
			if path == module+"/test" || strings.HasPrefix(path, module+"/test/") {
				t.Errorf("%s imports %s: internal packages may not use test/; move the test to test/integration", file, path)
			}
		}
	}
}

// cmd/ballast only wires: it imports internal/cli and the standard library.
func TestCmdImportsOnlyCLI(t *testing.T) {
	for _, p := range packages(t, "cmd") {
		for path, file := range p.imports(false) {
			if !isStd(path) && path != module+"/internal/cli" {
				t.Errorf("%s imports %s: cmd/ only wires flags to internal/cli; put the code in a package under internal/", file, path)
			}
		}
	}
}

// Every package under internal/ and cmd/ says what it owns in a doc
// comment ("Package x ..." for a library; a main package's may start as
// it likes).
func TestPackagesHaveDocComments(t *testing.T) {
	for _, p := range packages(t, "internal", "cmd") {
		if p.name == "" {
			continue // tests only
		}
		var doc string
		for name, f := range p.files {
			if !strings.HasSuffix(name, "_test.go") && f.Doc != nil {
				doc = f.Doc.Text()
				break
			}
		}
		switch {
		case doc == "":
			t.Errorf("%s (package %s) has no package doc comment: say what the package owns in a comment above `package %s` (in doc.go or its main file)", p.dir, p.name, p.name)
		case p.name != "main" && !strings.HasPrefix(doc, "Package "+p.name+" "):
			t.Errorf("%s: the package doc comment should start with %q, as go doc expects; it starts %q", p.dir, "Package "+p.name+" ", firstLine(doc))
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// The checks above must see the tree: a walk that found nothing would
// pass them all.
func TestPackagesSeesTheTree(t *testing.T) {
	var dirs []string
	for _, p := range packages(t, "internal", "cmd") {
		dirs = append(dirs, p.dir)
	}
	for _, want := range []string{"cmd/ballast", "internal/cli", "internal/conventions", "internal/apiserver/openapi"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("packages() missed %s; found %v", want, dirs)
		}
	}
}
