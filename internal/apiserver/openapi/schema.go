package openapi

import (
	"encoding/json"
	"reflect"
	"strings"
)

// A schema is one JSON object of an OpenAPI document. Maps keep the code
// short; encoding/json sorts their keys, so documents are deterministic.
type schema = map[string]any

// Interfaces the apimachinery types implement for kube-openapi.
type (
	modelNamer      interface{ OpenAPIModelName() string }
	swaggerDocer    interface{ SwaggerDoc() map[string]string }
	schemaTyper     interface{ OpenAPISchemaType() []string }
	schemaFormatter interface{ OpenAPISchemaFormat() string }
	v3OneOfTyper    interface{ OpenAPIV3OneOfTypes() []string }
)

// descriptions of the types whose Go doc comment has no SwaggerDoc.
var specialDocs = map[string]string{
	"io.k8s.apimachinery.pkg.apis.meta.v1.Time":       "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON. Wrappers are provided for many of the factory methods that the time package offers.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime":  "MicroTime is version of Time with microsecond level precision.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.Duration":   "Duration is a wrapper around time.Duration which supports correct marshaling to YAML and JSON. In particular, it marshals into strings, which can be used as map keys in json.",
	"io.k8s.apimachinery.pkg.api.resource.Quantity":   "Quantity is a fixed-point representation of a number. It provides convenient marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.\n\nThe serialization format is:\n\n<quantity> ::= <signedNumber><suffix>\n\n(Note that <suffix> may be empty, from the \"\" case in <decimalSI>.)\n\n<suffix> ::= <binarySI> | <decimalExponent> | <decimalSI>\n\n<binarySI> ::= Ki | Mi | Gi | Ti | Pi | Ei\n\n<decimalSI> ::= m | \"\" | k | M | G | T | P | E\n\n<decimalExponent> ::= \"e\" <signedNumber> | \"E\" <signedNumber>",
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, for example, a JSON field that can accept a name or number.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1":   "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format.\n\nEach key is either a '.' representing the field itself, and will always map to an empty set, or a string representing a sub-field or item. The string will follow one of these four formats: 'f:<name>', where <name> is the name of a field in a struct, or key in a map 'v:<value>', where <value> is the exact json formatted value of a list item 'i:<index>', where <index> is position of a item in a list 'k:<keys>', where <keys> is a map of  a list item's key fields to their unique values If a key maps to an empty Fields value, the field that key represents is part of the set.\n\nThe exact format is defined in sigs.k8s.io/structured-merge-diff",
	"io.k8s.apimachinery.pkg.runtime.RawExtension":    "RawExtension is used to hold extensions in external versions: an embedded object of any kind, serialized as JSON.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent": "Event represents a single event to a watched resource.",
}

// ModelName is the name kube-apiserver gives a Go type in its OpenAPI
// documents: io.k8s.api.core.v1.Pod for k8s.io/api/core/v1.Pod.
func ModelName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(reflect.TypeFor[modelNamer]()) {
		return reflect.Zero(t).Interface().(modelNamer).OpenAPIModelName()
	}
	pkg := t.PkgPath()
	host, rest, _ := strings.Cut(pkg, "/")
	labels := strings.Split(host, ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	name := strings.Join(labels, ".")
	if rest != "" {
		name += "." + strings.ReplaceAll(rest, "/", ".")
	}
	return name + "." + t.Name()
}

// builder turns Go types into OpenAPI schemas by reflection, collecting
// the named definitions it meets.
type builder struct {
	v3        bool
	refPrefix string
	defs      map[string]schema
	building  map[string]bool
}

func newBuilder(v3 bool) *builder {
	b := &builder{v3: v3, defs: map[string]schema{}, building: map[string]bool{}}
	if v3 {
		b.refPrefix = "#/components/schemas/"
	} else {
		b.refPrefix = "#/definitions/"
	}
	return b
}

func implements[T any](t reflect.Type) bool {
	it := reflect.TypeFor[T]()
	return t.Implements(it) || reflect.PointerTo(t).Implements(it)
}

func zeroAs[T any](t reflect.Type) T {
	if t.Implements(reflect.TypeFor[T]()) {
		return reflect.Zero(t).Interface().(T)
	}
	return reflect.New(t).Interface().(T)
}

// define builds the definition of a named struct type (or a type with its
// own JSON form) and returns its name.
func (b *builder) define(t reflect.Type) string {
	name := ModelName(t)
	if _, ok := b.defs[name]; ok || b.building[name] {
		return name
	}
	b.building[name] = true
	defer delete(b.building, name)

	var s schema
	switch {
	case implements[schemaTyper](t):
		s = b.customType(t)
	case implements[json.Marshaler](t):
		// FieldsV1, RawExtension: free-form JSON.
		s = schema{"type": "object"}
	default:
		s = b.structSchema(t)
	}
	if _, ok := s["description"]; !ok {
		if d := specialDocs[name]; d != "" {
			s["description"] = d
		}
	}
	b.defs[name] = s
	return name
}

// customType is the schema of Time, Quantity, IntOrString and the like.
func (b *builder) customType(t reflect.Type) schema {
	types := zeroAs[schemaTyper](t).OpenAPISchemaType()
	s := schema{}
	if implements[schemaFormatter](t) {
		if f := zeroAs[schemaFormatter](t).OpenAPISchemaFormat(); f != "" {
			s["format"] = f
		}
	}
	if b.v3 && implements[v3OneOfTyper](t) {
		var oneOf []schema
		for _, ty := range zeroAs[v3OneOfTyper](t).OpenAPIV3OneOfTypes() {
			oneOf = append(oneOf, schema{"type": ty})
		}
		s["oneOf"] = oneOf
	} else if len(types) == 1 {
		s["type"] = types[0]
	}
	if s["format"] == "int-or-string" {
		s["x-kubernetes-int-or-string"] = true
	}
	return s
}

func (b *builder) refTo(name string) schema { return schema{"$ref": b.refPrefix + name} }

// typeSchema is the schema of a field's type: inline for scalars, arrays
// and maps, a $ref for named structs.
func (b *builder) typeSchema(t reflect.Type) schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Name() != "" && t.PkgPath() != "" && (t.Kind() == reflect.Struct || implements[schemaTyper](t)) {
		return b.refTo(b.define(t))
	}
	switch t.Kind() {
	case reflect.String:
		return schema{"type": "string"}
	case reflect.Bool:
		return schema{"type": "boolean"}
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16:
		return schema{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return schema{"type": "integer", "format": "int64"}
	case reflect.Float32, reflect.Float64:
		return schema{"type": "number", "format": "double"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return schema{"type": "string", "format": "byte"}
		}
		return schema{"type": "array", "items": b.itemSchema(t.Elem())}
	case reflect.Map:
		return schema{"type": "object", "additionalProperties": b.itemSchema(t.Elem())}
	case reflect.Struct:
		return b.structSchema(t)
	}
	return schema{"type": "object"}
}

// itemSchema is the schema of array items and map values; kube-apiserver
// marks struct-valued ones with an empty default in v3.
func (b *builder) itemSchema(t reflect.Type) schema {
	s := b.typeSchema(t)
	if ref, ok := s["$ref"]; ok && b.v3 && t.Kind() == reflect.Struct && !implements[schemaTyper](t) {
		return schema{"default": map[string]any{}, "allOf": []schema{{"$ref": ref}}}
	}
	return s
}

type field struct {
	name     string
	t        reflect.Type
	optional bool
	tag      reflect.StructTag
	docs     map[string]string
}

// fields lists a struct's JSON fields, inlined embedded structs included.
func fields(t reflect.Type) []field {
	var docs map[string]string
	if implements[swaggerDocer](t) {
		docs = zeroAs[swaggerDocer](t).SwaggerDoc()
	}
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) && ft.Kind() == reflect.Struct {
			out = append(out, fields(ft)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, field{
			name:     name,
			t:        f.Type,
			optional: strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,"),
			tag:      f.Tag,
			docs:     docs,
		})
	}
	return out
}

func (b *builder) structSchema(t reflect.Type) schema {
	s := schema{"type": "object"}
	if implements[swaggerDocer](t) {
		if d := zeroAs[swaggerDocer](t).SwaggerDoc()[""]; d != "" {
			s["description"] = d
		}
	}
	props := schema{}
	var required []string
	for _, f := range fields(t) {
		p := b.typeSchema(f.t)
		desc := f.docs[f.name]
		if ref, ok := p["$ref"]; ok && (desc != "" || b.v3) {
			if b.v3 {
				// OpenAPI 3.0 ignores siblings of $ref: wrap it, as kube-apiserver does.
				p = schema{"allOf": []schema{{"$ref": ref}}}
				ft := f.t
				if ft.Kind() == reflect.Struct && !implements[schemaTyper](ft) && !implements[json.Marshaler](ft) {
					p["default"] = map[string]any{}
				}
			}
		}
		if desc != "" {
			p["description"] = desc
		}
		if ps := f.tag.Get("patchStrategy"); ps != "" {
			p["x-kubernetes-patch-strategy"] = ps
		}
		if mk := f.tag.Get("patchMergeKey"); mk != "" {
			p["x-kubernetes-patch-merge-key"] = mk
		}
		props[f.name] = p
		if !f.optional {
			required = append(required, f.name)
		}
	}
	if len(props) > 0 {
		s["properties"] = props
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}
