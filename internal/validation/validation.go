// Package validation owns Kubernetes' rules for the objects a node runs,
// for the fields this version of Ballast supports: validating a v1 Pod
// (ValidatePod, ValidatePodContent), a ConfigMap and a Secret
// (ValidateConfigMap, ValidateSecret) as Kubernetes validates them, with
// Ballast's own annotations, and applying Kubernetes' defaults (SetDefaults,
// MergeStringData). internal/manifest applies them to what a file defines
// and internal/apiserver to what the API is sent, so that an object is
// defaulted, accepted and refused alike from a file and through the API.
//
// What is wrong comes back as field errors (an ErrorList): the field path
// and a message that starts as Kubernetes words the kind of error
// ("Required value: ", "Invalid value: ", ...) and says how to fix it.
// internal/manifest adds each field's file and line; the API server turns
// them into a 422 Status. No message holds a value of a Secret's data.
//
// It is pure: it never reads files, clocks or the environment.
package validation

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Error is one thing wrong with an object.
type Error struct {
	Field string // field path, such as "spec.containers[0].image"
	Msg   string // what is wrong and how to fix it
}

// Error formats the error as "field: msg".
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// ErrorList is what a validation found, in the order found; nil when
// nothing is wrong.
type ErrorList []*Error

// Add adds an error about field.
func (l *ErrorList) Add(field, msg string) {
	*l = append(*l, &Error{Field: field, Msg: msg})
}

// Addf adds an error about field, formatted.
func (l *ErrorList) Addf(field, format string, args ...any) {
	l.Add(field, fmt.Sprintf(format, args...))
}

// Invalid adds an "Invalid value" error about field for each of msgs (what
// a k8s.io/apimachinery validation function says of v), with hint after it.
func (l *ErrorList) Invalid(field string, v any, msgs []string, hint string) {
	for _, m := range msgs {
		l.Addf(field, "Invalid value: %s: %s%s", JSONText(v), m, hint)
	}
}

// JSONText writes a value as a message shows it: as JSON ("web", 80,
// true).
func JSONText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// fieldsIn returns the function that writes a field path of an object
// whose own field path is path ("" for none, "items[2]" in a List).
func fieldsIn(path string) func(string) string {
	if path == "" {
		return func(p string) string { return p }
	}
	return func(p string) string { return path + "." + p }
}

// invalidFunc returns a function that adds an "Invalid value" error to el
// for each of msgs about field p (f maps p to its full path).
func invalidFunc(f func(string) string, el *ErrorList) func(p string, v any, msgs []string, hint string) {
	return func(p string, v any, msgs []string, hint string) {
		el.Invalid(f(p), v, msgs, hint)
	}
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}
