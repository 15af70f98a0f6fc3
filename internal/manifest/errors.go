package manifest

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ballast-dev/ballast/internal/validation"
)

// Error is what Parse returns for bad input: it names the file, the line
// when known, the field path, what is wrong and how to fix it.
type Error struct {
	File  string // path of the manifest file
	Line  int    // 1-based line in the file, 0 when unknown
	Field string // field path such as "spec.containers[0].image", "" for the whole file
	Msg   string // what is wrong and how to fix it
}

// Error formats the error as "file:line: field: msg", leaving out what is unknown.
func (e *Error) Error() string {
	var parts []string
	if e.File != "" {
		where := e.File
		if e.Line > 0 {
			where += fmt.Sprintf(":%d", e.Line)
		}
		parts = append(parts, where)
	}
	if e.Field != "" {
		parts = append(parts, e.Field)
	}
	return strings.Join(append(parts, e.Msg), ": ")
}

// Errors returns every *Error in err, which may be a single *Error or a
// tree of errors joined with errors.Join. It returns nil if err holds none.
func Errors(err error) []*Error {
	if err == nil {
		return nil
	}
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if inner := u.Unwrap(); inner != nil {
				walk(inner)
			}
		}
	}
	walk(err)
	return out
}

// errList collects errors for one file, with the line of each field path.
type errList struct {
	file  string
	lines map[string]int
	errs  []*Error
}

func (l *errList) add(field, msg string) {
	l.errs = append(l.errs, &Error{File: l.file, Line: l.lineOf(field), Field: field, Msg: msg})
}

func (l *errList) addf(field, format string, args ...any) {
	l.add(field, fmt.Sprintf(format, args...))
}

// addAll adds what a validation found, each error at the line of its field.
func (l *errList) addAll(errs validation.ErrorList) {
	for _, e := range errs {
		l.add(e.Field, e.Msg)
	}
}

// lineOf returns the line of field, or of its nearest ancestor present in the file.
func (l *errList) lineOf(field string) int {
	for p := field; p != ""; p = parentPath(p) {
		if n, ok := l.lines[p]; ok {
			return n
		}
	}
	return 0
}

// err returns nil, the single error, or all errors joined, sorted by line.
func (l *errList) err() error {
	switch len(l.errs) {
	case 0:
		return nil
	case 1:
		return l.errs[0]
	}
	sort.SliceStable(l.errs, func(i, j int) bool { return l.errs[i].Line < l.errs[j].Line })
	errs := make([]error, len(l.errs))
	for i, e := range l.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// parentPath strips the last element of a field path:
// "a.b[0]" -> "a.b", "a.b" -> "a", "a" -> "".
func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		case ']':
			// skip to the matching '[' (map keys may contain dots)
			for j := i - 1; j >= 0; j-- {
				if p[j] == '[' {
					return p[:j]
				}
			}
			return ""
		}
	}
	return ""
}
