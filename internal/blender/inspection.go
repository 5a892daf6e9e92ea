package blender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// decodeInspection reads what scripts/inspect.py (and the session
// script's inspect command) writes into the domain's farm.Inspection. The
// script's keys are the domain's JSON names, and they must stay so: a key
// the script writes that the domain does not know, or one the domain
// expects and the script left out (both what renaming a key on one side
// only does), is an error, never a field silently lost from the job's
// analysis and the API.
func decodeInspection(body []byte) (*farm.Inspection, error) {
	var in farm.Inspection
	if err := decodeExactly("the inspection", body, &in); err != nil {
		return nil, err
	}
	return &in, nil
}

// decodeExactly decodes body into v, a pointer to a struct, refusing an
// object anywhere in it (nested objects and lists of objects too) whose
// keys are not exactly the JSON names of its type's fields.
func decodeExactly(what string, body []byte, v any) error {
	if err := checkTree(what, body, reflect.TypeOf(v).Elem()); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// checkTree checks the keys of the JSON value body against t, and of
// every object within it against the type of its field.
func checkTree(what string, body json.RawMessage, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if string(bytes.TrimSpace(body)) == "null" {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		var object map[string]json.RawMessage
		if err := json.Unmarshal(body, &object); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := checkKeys(what, object, t); err != nil {
			return err
		}
		for field := range t.Fields() {
			name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
			if value, ok := object[name]; ok && name != "-" {
				if err := checkTree(what+"."+name, value, field.Type); err != nil {
					return err
				}
			}
		}
	case reflect.Slice:
		var items []json.RawMessage
		if err := json.Unmarshal(body, &items); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		for i, item := range items {
			if err := checkTree(fmt.Sprintf("%s[%d]", what, i), item, t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkKeys refuses an object whose keys are not exactly the JSON names of
// t's fields.
func checkKeys(what string, object map[string]json.RawMessage, t reflect.Type) error {
	want := jsonNames(t)
	for key := range object {
		if !slices.Contains(want, key) {
			return fmt.Errorf("%s has the key %q, which the farm does not know", what, key)
		}
	}
	for _, key := range want {
		if _, ok := object[key]; !ok {
			return fmt.Errorf("%s has no %q", what, key)
		}
	}
	return nil
}

// jsonNames are the JSON names of a struct's fields.
func jsonNames(t reflect.Type) []string {
	var names []string
	for field := range t.Fields() {
		name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}
