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
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, err
	}
	if err := checkKeys("the inspection", raw, reflect.TypeFor[farm.Inspection]()); err != nil {
		return nil, err
	}
	for _, list := range []struct {
		key  string
		item reflect.Type
	}{{"scenes", reflect.TypeFor[farm.Scene]()}, {"externalFiles", reflect.TypeFor[farm.ExternalFile]()}, {"libraries", reflect.TypeFor[farm.Library]()}} {
		var items []map[string]json.RawMessage
		if err := json.Unmarshal(raw[list.key], &items); err != nil {
			return nil, fmt.Errorf("%s: %w", list.key, err)
		}
		for i, item := range items {
			if err := checkKeys(fmt.Sprintf("%s[%d]", list.key, i), item, list.item); err != nil {
				return nil, err
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var in farm.Inspection
	if err := dec.Decode(&in); err != nil {
		return nil, err
	}
	return &in, nil
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
