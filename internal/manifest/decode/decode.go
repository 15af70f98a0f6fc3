// Package decode turns the text of a manifest file into its generic form,
// strictly: YAML (one or more documents; anchors, aliases and merge keys,
// bounded against alias bombs and deep nesting) or JSON (one object), numbers
// kept exact, null values dropped, a key set twice refused, and the line of
// every field path recorded, so that every later message about a field can
// name its line. It checks no field: which fields an object may have is
// internal/manifest's job. No message of its shows a value under data,
// stringData or binaryData (a Secret's values).
//
// It is pure: it never reads files, clocks or the environment.
package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// The generic form of a manifest is what encoding/json would give with
// numbers kept exact: map[string]any, []any, string, int64, float64, bool.
// Null values are dropped while decoding (a null field is an unset field).
// Lines maps each field path present in the file to its 1-based line.

const (
	maxDepth = 64      // deeper nesting is never a valid pod
	maxNodes = 100_000 // bounds YAML alias expansion ("billion laughs")
)

var errNoPod = "file holds no pod, ConfigMap or Secret: it is empty or only comments; write a manifest in it (apiVersion: v1, kind: Pod) or remove the file"

// Document is one object of a file (a YAML document, or the JSON object)
// in generic form, with the line of each of its field paths and of its
// start.
type Document struct {
	Object map[string]any
	Lines  map[string]int
	Line   int
}

// Error is what is wrong with a file's text: where (the line, 0 when
// unknown, and the field path when known) and what, with how to fix it.
type Error struct {
	Line  int
	Field string
	Msg   string
}

// Error formats the error as "line: field: msg", leaving out what is unknown.
func (e *Error) Error() string {
	var parts []string
	if e.Line > 0 {
		parts = append(parts, strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		parts = append(parts, e.Field)
	}
	return strings.Join(append(parts, e.Msg), ": ")
}

// File turns a file's content into the generic form of each of its
// documents. It picks JSON when the content starts with '{' and parses as
// JSON (one object), YAML otherwise (one or more documents); a file named
// *.json that starts with '{' gets its JSON error. It returns at least one
// document, or an *Error.
func File(name string, data []byte) ([]Document, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, &Error{Msg: errNoPod}
	}
	if trimmed[0] == '{' {
		lines := map[string]int{}
		jd := &jsonDecoder{data: data, lines: lines}
		v, err := jd.decode()
		if err == nil {
			return []Document{{Object: v, Lines: lines, Line: 1}}, nil
		}
		if strings.HasSuffix(strings.ToLower(name), ".json") || !isSyntaxError(err) {
			return nil, jd.toError(err)
		}
		// Maybe a YAML flow mapping: try YAML below.
	}
	return decodeYAML(data)
}

// ---- YAML ----

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func decodeYAML(data []byte) ([]Document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			break
		}
		if err != nil {
			msg := err.Error()
			line := 0
			if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
				line, _ = strconv.Atoi(m[1])
				msg = m[2]
			} else {
				msg = strings.TrimPrefix(msg, "yaml: ")
			}
			return nil, &Error{Line: line, Msg: "invalid YAML: " + msg + "; fix the syntax"}
		}
		if isEmptyDoc(&n) {
			continue
		}
		docs = append(docs, &n)
	}
	if len(docs) == 0 {
		return nil, &Error{Msg: errNoPod}
	}
	out := make([]Document, 0, len(docs))
	y := &yamlWalker{} // one node count for the whole file
	for _, root := range docs {
		if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
			root = root.Content[0]
		}
		y.lines = map[string]int{}
		v, ok := y.value(root, "", 0)
		if !ok {
			return nil, y.err
		}
		m, isMap := v.(map[string]any)
		if !isMap {
			return nil, &Error{Line: root.Line, Msg: "a document must hold a mapping (apiVersion: v1, kind: Pod, ...), not " + DescribeValue(v, "")}
		}
		out = append(out, Document{Object: m, Lines: y.lines, Line: root.Line})
	}
	return out, nil
}

func isEmptyDoc(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return true
		}
		c := n.Content[0]
		return c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null"
	}
	return false
}

// yamlWalker turns YAML nodes into the generic form. The first error
// stops the walk.
type yamlWalker struct {
	lines map[string]int // the current document's
	nodes int
	err   *Error
}

func (y *yamlWalker) fail(n *yaml.Node, field, msg string) {
	if y.err != nil {
		return
	}
	y.err = &Error{Line: n.Line, Field: field, Msg: msg}
}

func (y *yamlWalker) value(n *yaml.Node, path string, depth int) (any, bool) {
	y.nodes++
	if y.nodes > maxNodes {
		y.fail(n, path, "the document is too large (too many YAML aliases or nodes)")
		return nil, false
	}
	if depth > maxDepth {
		y.fail(n, path, "nesting too deep")
		return nil, false
	}
	if path != "" {
		if _, seen := y.lines[path]; !seen {
			y.lines[path] = n.Line
		}
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			y.fail(n, path, "invalid YAML alias")
			return nil, false
		}
		return y.value(n.Alias, path, depth+1)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, true
		}
		return y.value(n.Content[0], path, depth+1)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			v, ok := y.value(c, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if !ok {
				return nil, false
			}
			out = append(out, v)
		}
		return out, true
	case yaml.MappingNode:
		out := map[string]any{}
		keyLine := map[string]int{}
		ok := y.mapping(n, path, depth, out, keyLine, false)
		return out, ok
	case yaml.ScalarNode:
		return y.scalar(n, path)
	}
	y.fail(n, path, "unexpected YAML node")
	return nil, false
}

// mapping fills out from a mapping node. Merge keys ("<<") are supported:
// merged keys never override keys set in the mapping itself.
func (y *yamlWalker) mapping(n *yaml.Node, path string, depth int, out map[string]any, keyLine map[string]int, merged bool) bool {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, vn := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, vn)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			y.fail(k, path, "a mapping key must be a plain string")
			return false
		}
		key := k.Value
		field := JoinField(path, key)
		if prev, dup := keyLine[key]; dup {
			if merged {
				continue
			}
			y.fail(k, field, fmt.Sprintf("Duplicate value: %q is set twice (first at line %d); keep only one", key, prev))
			return false
		}
		keyLine[key] = k.Line
		if !merged {
			y.lines[field] = k.Line
		}
		v, ok := y.value(vn, field, depth+1)
		if !ok {
			return false
		}
		if !merged {
			y.lines[field] = k.Line
		}
		if v != nil {
			out[key] = v
		}
	}
	for _, m := range merges {
		for m.Kind == yaml.AliasNode && m.Alias != nil {
			m = m.Alias
		}
		var srcs []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			srcs = []*yaml.Node{m}
		case yaml.SequenceNode:
			for _, c := range m.Content {
				for c.Kind == yaml.AliasNode && c.Alias != nil {
					c = c.Alias
				}
				srcs = append(srcs, c)
			}
		}
		for _, s := range srcs {
			if s.Kind != yaml.MappingNode {
				y.fail(m, path, "a YAML merge key (<<) must refer to a mapping")
				return false
			}
			y.nodes += len(s.Content)
			if y.nodes > maxNodes || depth > maxDepth {
				y.fail(m, path, "the document is too large (too many YAML aliases or nodes)")
				return false
			}
			if !y.mapping(s, path, depth+1, out, keyLine, true) {
				return false
			}
		}
	}
	return true
}

func (y *yamlWalker) scalar(n *yaml.Node, path string) (any, bool) {
	switch n.ShortTag() {
	case "!!null":
		return nil, true
	case "!!str", "!!timestamp", "!!binary":
		return n.Value, true
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			y.fail(n, path, "invalid boolean "+quoteValue(n.Value, path))
			return nil, false
		}
		return b, true
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, true
		}
		var f float64
		if err := n.Decode(&f); err == nil {
			return f, true
		}
		y.fail(n, path, "invalid number "+quoteValue(n.Value, path))
		return nil, false
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			y.fail(n, path, "invalid number "+quoteValue(n.Value, path))
			return nil, false
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 && !strings.ContainsAny(n.Value, ".eE") {
			return int64(f), true
		}
		return f, true
	}
	y.fail(n, path, fmt.Sprintf("unsupported YAML tag %s; remove the tag", n.Tag))
	return nil, false
}

// ---- JSON ----

type jsonDecoder struct {
	data  []byte
	dec   *json.Decoder
	lines map[string]int
	nl    []int // offsets of newlines
}

type jsonError struct {
	off  int64
	path string
	msg  string
}

func (e *jsonError) Error() string { return e.msg }

func isSyntaxError(err error) bool {
	var je *jsonError
	return errors.As(err, &je) && strings.HasPrefix(je.msg, "invalid JSON")
}

func (d *jsonDecoder) line(off int64) int {
	return sort.SearchInts(d.nl, int(off)) + 1
}

func (d *jsonDecoder) toError(err error) *Error {
	var je *jsonError
	if errors.As(err, &je) {
		return &Error{Line: d.line(je.off), Field: je.path, Msg: je.msg}
	}
	return &Error{Msg: "invalid JSON: " + err.Error()}
}

func (d *jsonDecoder) decode() (map[string]any, error) {
	for i, c := range d.data {
		if c == '\n' {
			d.nl = append(d.nl, i)
		}
	}
	d.dec = json.NewDecoder(bytes.NewReader(d.data))
	d.dec.UseNumber()
	v, err := d.value("", 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return nil, &jsonError{off: d.dec.InputOffset(), msg: "invalid JSON: unexpected data after the end of the object; a file holds one object"}
	}
	m, _ := v.(map[string]any)
	return m, nil
}

func (d *jsonDecoder) token() (json.Token, error) {
	off := d.dec.InputOffset()
	t, err := d.dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = se.Offset
		}
		return nil, &jsonError{off: off, msg: "invalid JSON: " + err.Error() + "; fix the syntax"}
	}
	return t, nil
}

func (d *jsonDecoder) value(path string, depth int) (any, error) {
	if depth > maxDepth {
		return nil, &jsonError{off: d.dec.InputOffset(), path: path, msg: "nesting too deep"}
	}
	start := d.dec.InputOffset()
	t, err := d.token()
	if err != nil {
		return nil, err
	}
	if path != "" {
		if _, ok := d.lines[path]; !ok {
			d.lines[path] = d.line(start + int64(countSpace(d.data[start:])))
		}
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			out := map[string]any{}
			keyOff := map[string]int64{}
			for d.dec.More() {
				off := d.dec.InputOffset()
				kt, err := d.token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, &jsonError{off: off, path: path, msg: "invalid JSON: object key must be a string"}
				}
				off += int64(countSpace(d.data[off:]))
				field := JoinField(path, key)
				if prev, dup := keyOff[key]; dup {
					return nil, &jsonError{off: off, path: field,
						msg: fmt.Sprintf("Duplicate value: %q is set twice (first at line %d); keep only one", key, d.line(prev))}
				}
				keyOff[key] = off
				d.lines[field] = d.line(off)
				v, err := d.value(field, depth+1)
				if err != nil {
					return nil, err
				}
				d.lines[field] = d.line(off)
				if v != nil {
					out[key] = v
				}
			}
			if _, err := d.token(); err != nil { // '}'
				return nil, err
			}
			return out, nil
		case '[':
			out := []any{}
			for i := 0; d.dec.More(); i++ {
				v, err := d.value(fmt.Sprintf("%s[%d]", path, i), depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			if _, err := d.token(); err != nil { // ']'
				return nil, err
			}
			return out, nil
		}
		return nil, &jsonError{off: start, path: path, msg: "invalid JSON: unexpected " + t.String()}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, &jsonError{off: start, path: path, msg: "invalid number " + quoteValue(t.String(), path)}
		}
		return f, nil
	case string, bool, nil:
		return t, nil
	}
	return nil, &jsonError{off: start, path: path, msg: "invalid JSON"}
}

func countSpace(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == ' ' || b[n] == '\t' || b[n] == '\n' || b[n] == '\r' || b[n] == ',' || b[n] == ':') {
		n++
	}
	return n
}

// secretPath tells whether a field path is under a data bag ("data",
// "stringData", "binaryData", also of a List's items): its values may be a
// Secret's, and are never written into a message.
func secretPath(path string) bool {
	if strings.HasPrefix(path, "items[") {
		if i := strings.Index(path, "]."); i >= 0 {
			path = path[i+2:]
		}
	}
	top, _, _ := strings.Cut(path, ".")
	top, _, _ = strings.Cut(top, "[")
	return top == "data" || top == "stringData" || top == "binaryData"
}

// quoteValue quotes a scalar of the file for a message, unless it may be a
// secret's (see secretPath).
func quoteValue(v, path string) string {
	if secretPath(path) {
		return "(value not shown)"
	}
	return strconv.Quote(v)
}

// JoinField appends a key to a field path, as the paths of Document.Lines
// are written: "a" and "b" make "a.b".
func JoinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Describe names the JSON type of a generic value for messages, with the
// value itself when it is a scalar.
func Describe(v any) string { return DescribeValue(v, "") }

// DescribeValue names the JSON type of the value at field path for
// messages, with the value itself unless it may be a secret's.
func DescribeValue(v any, path string) string {
	if secretPath(path) {
		switch v.(type) {
		case string:
			return "a string"
		case int64, float64:
			return "a number"
		case bool:
			return "a boolean"
		}
	}
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string (" + strconv.Quote(v) + ")"
	case int64:
		return "a number (" + strconv.FormatInt(v, 10) + ")"
	case float64:
		return "a number (" + strconv.FormatFloat(v, 'g', -1, 64) + ")"
	case bool:
		return "a boolean (" + strconv.FormatBool(v) + ")"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}
