package apitest

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// Side is which end of the API a Go type is on, which decides what it
// must agree with in the document.
type Side int

const (
	// Server is a type the server writes (an answer, an event): every
	// property it writes is described, and it writes every described one;
	// fields it always writes are required, fields it may write as null
	// (pointers) nullable, and nothing else is, and the schema allows no
	// other property.
	Server Side = iota
	// ServerReads is a type the server reads (a request body): its
	// properties are the described ones; which are required is the API's
	// rule.
	ServerReads
	// Client is a type of the Go client, which reads answers and writes
	// requests: its properties are the described ones, and a property the
	// document says may be null is one it can tell from a zero value
	// (a pointer, a slice or a map).
	Client
)

// jsonField is one field of a Go type as encoding/json writes it.
type jsonField struct {
	name string
	// omitempty is true when encoding/json may leave the field out: its
	// tag says omitempty, or omitzero.
	omitempty bool
	kind      reflect.Kind
}

func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		omitted := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		out = append(out, jsonField{name, omitted, f.Type.Kind()})
	}
	return out
}

// CheckSchema fails t where the Go type of value and the document's schema
// named schemaName disagree, as side says they must agree. A field added
// on either side fails here until the other says what it is.
func CheckSchema(t testing.TB, doc *openapi3.T, value any, schemaName string, side Side) {
	t.Helper()
	typ := reflect.TypeOf(value)
	ref := doc.Components.Schemas[schemaName]
	if ref == nil {
		t.Errorf("%s: the document has no schema %s", typ, schemaName)
		return
	}
	s := ref.Value
	var goNames []string
	for _, f := range jsonFields(typ) {
		goNames = append(goNames, f.name)
		prop := s.Properties[f.name]
		if prop == nil {
			t.Errorf("%s: %s.%s is not described in schema %s", typ, typ.Name(), f.name, schemaName)
			continue
		}
		switch side {
		case Server:
			if req := slices.Contains(s.Required, f.name); req == f.omitempty {
				t.Errorf("%s: field %s is required=%v in the schema but omitempty=%v in Go", schemaName, f.name, req, f.omitempty)
			}
			nullable := f.kind == reflect.Pointer && !f.omitempty
			if prop.Value.Nullable != nullable {
				t.Errorf("%s: field %s is nullable=%v in the schema but may be null=%v in Go", schemaName, f.name, prop.Value.Nullable, nullable)
			}
		case Client:
			if prop.Value.Nullable && f.kind != reflect.Pointer && f.kind != reflect.Slice && f.kind != reflect.Map {
				t.Errorf("%s: field %s may be null, but %s.%s cannot tell null from its zero value", schemaName, f.name, typ.Name(), f.name)
			}
		}
	}
	var specNames []string
	for name := range s.Properties {
		specNames = append(specNames, name)
	}
	sort.Strings(specNames)
	for _, name := range specNames {
		if !slices.Contains(goNames, name) {
			t.Errorf("schema %s describes %q, which %s does not have", schemaName, name, typ)
		}
	}
	if side == Server && (s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has) {
		t.Errorf("schema %s allows fields it does not describe; answers should be described exactly", schemaName)
	}
}
