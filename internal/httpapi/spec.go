package httpapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

// The spec is written in YAML because people edit it, and served as JSON
// because that is what clients and generators fetch.
//
//go:embed openapi.yaml
var specYAML []byte

var specJSON = sync.OnceValues(func() ([]byte, error) {
	doc, err := LoadSpec()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode OpenAPI document: %w", err)
	}
	return b, nil
})

// OpenAPIJSON returns the API's OpenAPI document as JSON, as served at
// /api/external/v1/openapi.json, so that tools and tests outside this
// package use exactly what clients see. The caller may keep and change the
// slice. It panics if the embedded document is broken, which the package's
// tests rule out.
func OpenAPIJSON() []byte {
	b, err := specJSON()
	if err != nil {
		panic(err)
	}
	return append([]byte(nil), b...)
}

// LoadSpec parses and validates the embedded OpenAPI document. Each call
// returns a fresh document, so a caller may build routers on it or change
// it without affecting anyone else.
func LoadSpec() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(specYAML)
	if err != nil {
		return nil, fmt.Errorf("load OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("OpenAPI document is invalid: %w", err)
	}
	return doc, nil
}
