package podconfig

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The translation is pure: its code imports nothing that reaches the file
// system, the network, processes or the runtime, and never reads the clock.
// Whatever it needs comes in through Node and ContainerInput.
func TestNoIO(t *testing.T) {
	banned := map[string]bool{
		"os": true, "os/exec": true, "syscall": true, "golang.org/x/sys/unix": true,
		"net": true, "net/http": true, "io/ioutil": true, "google.golang.org/grpc": true,
		"github.com/ballast-dev/ballast/internal/hostinfo": true,
	}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if banned[p] {
				t.Errorf("%s imports %s: podconfig must stay free of I/O (take the fact as an input)", f, p)
			}
		}
		for _, call := range []string{"time.Now(", "time.Since(", "time.Until(", "time.After("} {
			if strings.Contains(string(src), call) {
				t.Errorf("%s calls %s: podconfig must not read the clock (take the time as an input)", f, call)
			}
		}
	}
}
