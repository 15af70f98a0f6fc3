package conventions

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pure are the packages that decide or translate without I/O: they import
// nothing that reaches the file system, the network, processes or the
// runtime, and read no clock (time comes in with their input). Those marked
// noGRPC do not even depend on gRPC below them: they are the node's logic,
// not its client of the runtime.
var pure = []struct {
	dir    string
	noGRPC bool
}{
	{"internal/planner", true},
	{"internal/podplan", true},
	{"internal/podruntime", true},
	{"internal/podconfig", false}, // builds CRI messages, whose package carries the gRPC stubs
	{"internal/manifest", false},
	{"internal/manifest/decode", true},
	{"internal/validation", true},
}

// impure are the imports that do I/O. (net and io/fs stay allowed: their
// types and parsers, net.ParseIP or fs.FileMode, are what pure code uses.)
var impure = map[string]bool{
	"os": true, "os/exec": true, "syscall": true, "golang.org/x/sys/unix": true, "io/ioutil": true,
	"net/http": true, "log/slog": true, "google.golang.org/grpc": true,
	"github.com/ballast-dev/ballast/internal/hostinfo": true,
}

var clock = map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true}

func TestPurePackages(t *testing.T) {
	r := root(t)
	for _, p := range pure {
		files, err := filepath.Glob(filepath.Join(r, p.dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", p.dir, err)
		}
		fset := token.NewFileSet()
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(r, f)
			for _, im := range file.Imports {
				path, _ := strconv.Unquote(im.Path.Value)
				if impure[path] {
					t.Errorf("%s imports %s: %s does no I/O (take the fact as an input)", rel, path, p.dir)
				}
			}
			ast.Inspect(file, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "time" && clock[sel.Sel.Name] {
						t.Errorf("%s: time.%s: %s reads no clock (time comes in with its input)", fset.Position(sel.Pos()), sel.Sel.Name, p.dir)
					}
				}
				return true
			})
		}
		if !p.noGRPC {
			continue
		}
		cmd := exec.Command("go", "list", "-deps", "./"+p.dir)
		cmd.Dir = r
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", p.dir, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "google.golang.org/grpc") {
				t.Errorf("%s depends on %s: runtime types belong in internal/podruntime, not behind the gRPC client", p.dir, dep)
				break
			}
		}
	}
}
