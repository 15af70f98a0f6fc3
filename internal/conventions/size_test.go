package conventions

import (
	"go/scanner"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxCodeLines bounds the non-test code of one package under internal/:
// issue 8 asks that no package be over "~1,500 lines"; the 5% margin (75
// lines) lets a package near the limit take a fix without a cut first.
const maxCodeLines = 1575

// No package under internal/ is over maxCodeLines lines of non-test code
// (non-blank lines that hold more than comments): a package that big does
// more than one job, and is hard to read as a newcomer.
func TestPackageSize(t *testing.T) {
	sizes := packageSizes(t, "internal")
	for _, dir := range sortedKeys(sizes) {
		if n := sizes[dir]; n > maxCodeLines {
			t.Errorf("%s has %d lines of non-test code (non-blank, not only comments), over the limit of %d (issue 8's ~1,500 and a 5%% margin): "+
				"cut it along its responsibilities into packages that each own one job and say so in their doc comment, "+
				"moving shared types into the lowest of them (internal/apiserver's sub-packages show how)", dir, n, maxCodeLines)
		}
	}
	// The walk must see the tree and count code: one that found nothing
	// would pass (the tree has some 65 packages and 32,000 code lines).
	total := 0
	for _, n := range sizes {
		total += n
	}
	if len(sizes) < 10 || total < 5000 {
		t.Errorf("counted %d lines of code in %d packages under internal/: the walk or the count is broken (sizes: %v)", total, len(sizes), sizes)
	}
}

// packageSizes counts the code lines of the non-test .go files of each
// package under the module root's top-level directory top, by directory.
func packageSizes(t *testing.T, top string) map[string]int {
	t.Helper()
	r := root(t)
	sizes := map[string]int{}
	for _, p := range packages(t, top) {
		for name := range p.files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			path := filepath.Join(r, filepath.FromSlash(p.dir), name)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			n, err := codeLines(path, src)
			if err != nil {
				t.Fatal(err)
			}
			sizes[p.dir] += n
		}
	}
	return sizes
}

// codeLines counts the lines of Go source src that hold a token other than
// a comment (line or block), blank lines inside multi-line tokens (raw
// strings) excepted.
func codeLines(name string, src []byte) (int, error) {
	fset := token.NewFileSet()
	file := fset.AddFile(name, -1, len(src))
	var errs scanner.ErrorList
	var s scanner.Scanner
	s.Init(file, src, func(pos token.Position, msg string) { errs.Add(pos, msg) }, scanner.ScanComments)
	lines := strings.Split(string(src), "\n")
	code := map[int]bool{}
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.COMMENT || (tok == token.SEMICOLON && lit == "\n") {
			continue
		}
		first := fset.Position(pos).Line
		for l := first; l <= first+strings.Count(lit, "\n"); l++ {
			if strings.TrimSpace(lines[l-1]) != "" {
				code[l] = true
			}
		}
	}
	if len(errs) > 0 {
		return 0, errs.Err()
	}
	return len(code), nil
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// codeLines counts what the size limit means by code.
func TestCodeLines(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      int
	}{
		{"package clause", "package p\n", 1},
		{"blank lines and line comments", "// Package p.\npackage p\n\n// f does.\n  // indented\nfunc f() {}\n\n", 2},
		{"block comments", "package p\n/*\nnot code\n\n*/\nvar x = 1 /* trailing */\n  /* one line */\n", 2},
		{"code after a block comment", "package p\n/* a\nb */ var x = 1\n", 2},
		{"comment markers in strings", "package p\nvar s = \"/* not a comment\"\nvar u = `\n// in a raw string\n\n*/`\n", 5},
	} {
		got, err := codeLines(tc.name+".go", []byte(tc.src))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: %d code lines, want %d", tc.name, got, tc.want)
		}
	}
}
