package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// decode reads a JSON object from the request body into dst. Unknown fields
// are ignored, because clients written for Renderjuice may send fields this
// farm does not know. example is a valid body, quoted in the message for an
// empty one.
func (a *api) decode(w http.ResponseWriter, r *http.Request, dst any, example string) error {
	if r.ContentLength > a.maxBody {
		return tooLarge(a.maxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge(a.maxBody)
		}
		return farm.Invalid(farm.CodeInvalidRequest, "could not read the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return farm.Invalid(farm.CodeInvalidJSON, "the request body is empty; send a JSON object such as %s", example)
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, len(body), reflect.TypeOf(dst))
	}
	if off := dec.InputOffset(); len(bytes.TrimSpace(body[off:])) > 0 {
		return farm.Invalid(farm.CodeInvalidJSON,
			"the request body has more after its JSON object, at byte offset %d; send exactly one object", off+firstNonSpace(body[off:]))
	}
	return nil
}

func firstNonSpace(b []byte) int64 {
	return int64(len(b) - len(bytes.TrimLeft(b, " \t\r\n")))
}

func tooLarge(limit int64) *farm.Error {
	return &farm.Error{
		Kind:    farm.KindTooLarge,
		Code:    farm.CodeTooLarge,
		Message: "the request body is larger than the limit of " + byteSize(limit) + "; files are uploaded to the URL that POST /uploads answers, not sent to the API",
	}
}

// byteSize writes a limit the way a person would configure it.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " bytes"
	}
}

// jsonError turns a decoding error into a message that says where the body
// went wrong and, for a value of the wrong type, which field and what it
// should have been. dst is the type decoded into, which tells a wrong item
// of an array from a wrong array.
func jsonError(err error, size int, dst reflect.Type) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return farm.Invalid(farm.CodeInvalidJSON, "the request body is not valid JSON: %s (at byte offset %d)", se.Error(), se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return farm.Invalid(farm.CodeInvalidJSON, "the request body is not valid JSON: it ends in the middle of a value (at byte offset %d)", size)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		sent := jsonKind(te.Value)
		if te.Field == "" {
			return farm.Invalid(farm.CodeInvalidJSON, "the request body must be a JSON object, not %s", sent)
		}
		subject := te.Field
		if ft := fieldType(dst, te.Field); ft != nil && (ft.Kind() == reflect.Slice || ft.Kind() == reflect.Array) && ft != te.Type {
			subject = "every item of " + te.Field
		}
		return &farm.Error{
			Kind:    farm.KindInvalid,
			Code:    farm.CodeInvalidRequest,
			Field:   te.Field,
			Message: subject + " " + expectation(te.Type, te.Value) + ", not " + sent,
		}
	}
	// Anything else (a dst that cannot be decoded into) is our mistake.
	return fmt.Errorf("decode request body: %w", err)
}

// fieldType follows a dotted path of JSON names, as encoding/json reports
// it, through the structs of t, and returns the type of the field it ends
// at without pointers; nil when the path leaves the structs.
func fieldType(t reflect.Type, path string) reflect.Type {
	for name := range strings.SplitSeq(path, ".") {
		t = deref(t)
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := structField(t, name)
		if !ok {
			return nil
		}
		t = f.Type
	}
	return deref(t)
}

// structField finds the field encoding/json writes under name, looking
// into embedded structs as it does.
func structField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" {
			if et := deref(f.Type); et.Kind() == reflect.Struct {
				if sf, ok := structField(et, name); ok {
					return sf, true
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// jsonKind names what a client sent, from encoding/json's description of
// it ("string", "number 2.5", "bool", …), with an article for a sentence.
func jsonKind(value string) string {
	switch {
	case value == "bool":
		return "true or false"
	case value == "array", value == "object":
		return "an " + value
	case value == "number", value == "string":
		return "a " + value
	case strings.HasPrefix(value, "number "):
		return strings.TrimPrefix(value, "number ")
	default:
		return value
	}
}

// expectation says what a Go type needs from JSON. A number sent for an
// integer field gets its own words, since the type was almost right.
func expectation(t reflect.Type, sent string) string {
	switch deref(t).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n, ok := strings.CutPrefix(sent, "number "); ok {
			if f, err := strconv.ParseFloat(n, 64); err == nil && f == math.Trunc(f) {
				return "must be a whole number that fits in 64 bits"
			}
			return "must be a whole number"
		}
		return "must be a number"
	case reflect.Float32, reflect.Float64:
		return "must be a number"
	case reflect.String:
		return "must be a string"
	case reflect.Bool:
		return "must be true or false"
	case reflect.Slice, reflect.Array:
		return "must be an array"
	case reflect.Struct, reflect.Map:
		return "must be an object"
	default:
		return "has the wrong type"
	}
}
