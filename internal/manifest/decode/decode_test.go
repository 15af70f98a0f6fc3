package decode

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Every field path of every document has its line; values keep their JSON
// types, numbers exact, nulls dropped; merge keys never override.
func TestFileGenericFormAndLines(t *testing.T) {
	data := `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app.kubernetes.io/name: web}
spec:
  base: &base {a: 1, b: 2}
  merged:
    <<: *base
    b: 3
  containers:
  - name: c
    big: 9007199254740993
    float: 1.5
    whole: 2.0
    gone: null
---
# a comment only document is skipped

---
kind: ConfigMap
`
	docs, err := File("/m/web.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Line != 1 || docs[1].Line != 21 {
		t.Fatalf("documents %d, lines %d", len(docs), docs[len(docs)-1].Line)
	}
	lines := map[string]int{
		"metadata":                               3,
		"metadata.labels":                        5,
		"metadata.labels.app.kubernetes.io/name": 5,
		"spec.merged.b":                          10,
		"spec.containers":                        11,
		"spec.containers[0]":                     12,
		"spec.containers[0].name":                12,
		"spec.containers[0].float":               14,
	}
	for path, want := range lines {
		if got := docs[0].Lines[path]; got != want {
			t.Errorf("line of %s: %d, want %d", path, got, want)
		}
	}
	spec := docs[0].Object["spec"].(map[string]any)
	if got, want := spec["merged"], map[string]any{"a": int64(1), "b": int64(3)}; !reflect.DeepEqual(got, want) {
		t.Errorf("merged %v, want %v", got, want)
	}
	c := spec["containers"].([]any)[0].(map[string]any)
	want := map[string]any{"name": "c", "big": int64(9007199254740993), "float": 1.5, "whole": float64(2)}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("container %#v, want %#v", c, want)
	}
	if got := docs[1].Object; !reflect.DeepEqual(got, map[string]any{"kind": "ConfigMap"}) {
		t.Errorf("second document %v", got)
	}

	// JSON: one object, its lines too.
	docs, err = File("/m/web.json", []byte("{\n  \"kind\": \"Pod\",\n  \"spec\": {\n    \"n\": 1\n  }\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := docs[0].Lines["spec.n"]; len(docs) != 1 || got != 4 {
		t.Errorf("JSON: %d documents, spec.n at line %d", len(docs), got)
	}
}

// What is wrong is said with its line (and field where there is one), and
// never with a value under data, stringData or binaryData.
func TestFileErrors(t *testing.T) {
	for _, tt := range []struct {
		name, file, data string
		want             Error
	}{
		{"empty", "a.yaml", " \n# only a comment\n", Error{Msg: errNoPod}},
		{"only null documents", "a.yaml", "---\n---\n", Error{Msg: errNoPod}},
		{"YAML syntax", "a.yaml", "a: b\n c: [\n", Error{Line: 2, Msg: "invalid YAML: mapping values are not allowed in this context; fix the syntax"}},
		{"key twice", "a.yaml", "spec:\n  a: 1\n  a: 2\n", Error{Line: 3, Field: "spec.a", Msg: `Duplicate value: "a" is set twice (first at line 2); keep only one`}},
		{"key twice in JSON", "a.json", "{\"a\": 1,\n \"a\": 2}", Error{Line: 2, Field: "a", Msg: `Duplicate value: "a" is set twice (first at line 1); keep only one`}},
		{"JSON syntax in a .json file", "a.json", "{\"a\": 1,\n}", Error{Line: 2, Msg: "invalid JSON: invalid character '}' looking for beginning of object key string; fix the syntax"}},
		{"not a mapping", "a.yaml", "- a\n", Error{Line: 1, Msg: "a document must hold a mapping (apiVersion: v1, kind: Pod, ...), not a list"}},
		{"bad boolean", "a.yaml", "spec:\n  x: !!bool maybe\n", Error{Line: 2, Field: "spec.x", Msg: `invalid boolean "maybe"`}},
		{"bad boolean of a Secret", "a.yaml", "data:\n  x: !!bool hunter2\n", Error{Line: 2, Field: "data.x", Msg: "invalid boolean (value not shown)"}},
		{"bad number in a List's Secret", "a.yaml", "items:\n- stringData:\n    x: !!int hunter2\n", Error{Line: 3, Field: "items[0].stringData.x", Msg: "invalid number (value not shown)"}},
		{"tag", "a.yaml", "a: !custom b\n", Error{Line: 1, Field: "a", Msg: "unsupported YAML tag !custom; remove the tag"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := File(tt.file, []byte(tt.data))
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("error %v (%T), want an *Error", err, err)
			}
			if *got != tt.want {
				t.Errorf("error %+v\nwant %+v", *got, tt.want)
			}
			if strings.Contains(got.Error(), "hunter2") {
				t.Errorf("the message shows a secret value: %s", got)
			}
		})
	}
}

func TestDescribeValue(t *testing.T) {
	for _, tt := range []struct {
		v          any
		path, want string
	}{
		{"x", "", `a string ("x")`},
		{int64(3), "spec.n", "a number (3)"},
		{true, "", "a boolean (true)"},
		{[]any{}, "", "a list"},
		{map[string]any{}, "", "a mapping"},
		{nil, "", "null"},
		{"hunter2", "data[k]", "a string"},
		{"hunter2", "items[3].binaryData.k", "a string"},
		{int64(3), "stringData", "a number"},
	} {
		if got := DescribeValue(tt.v, tt.path); got != tt.want {
			t.Errorf("DescribeValue(%v, %q) = %s, want %s", tt.v, tt.path, got, tt.want)
		}
	}
}
