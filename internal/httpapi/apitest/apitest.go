// Package apitest checks HTTP traffic against the external API's OpenAPI
// document, so that any test that talks to the API, from a unit test of a
// handler to an end-to-end run with real Blender, also proves that the
// document tells the truth.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/renderfarm/renderfarm/internal/httpapi"
)

// ValidatingTransport returns a RoundTripper that sends requests through
// next (http.DefaultTransport when nil) and fails t when a request to the
// API under httpapi.BasePath, or the answer to it, does not match the
// OpenAPI document: every answer, errors included, must have a documented
// status, the described body and headers, and Content-Type
// application/json. Other URLs, such as presigned /objects/ URLs, pass
// unchecked. Failures are reported with t.Errorf, so the test goes on and
// shows everything that is wrong; the transport is safe to use from several
// goroutines.
func ValidatingTransport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	t.Helper()
	return newTransport(t, next, true)
}

// LenientTransport is ValidatingTransport for tests that send requests the
// document forbids on purpose: malformed bodies, missing fields or keys, bad
// parameters, unknown routes. Such a request does not fail the test by
// itself; instead the server must refuse it with a 4xx, which also keeps
// the document from being stricter than the server. Every answer must still
// match the document.
func LenientTransport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	t.Helper()
	return newTransport(t, next, false)
}

type transport struct {
	t       testing.TB
	next    http.RoundTripper
	router  routers.Router
	errors  *openapi3.Schema
	options *openapi3filter.Options
	strict  bool
}

func newTransport(t testing.TB, next http.RoundTripper, strict bool) *transport {
	t.Helper()
	if next == nil {
		next = http.DefaultTransport
	}
	doc, err := httpapi.LoadSpec()
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	// The legacy router needs nothing beyond kin-openapi itself; it matches
	// the document's relative server URL against path-only URLs, which is
	// what check gives it.
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("apitest: build router: %v", err)
	}
	errSchema := doc.Components.Schemas["Error"]
	if errSchema == nil || errSchema.Value == nil {
		t.Fatalf("apitest: the document has no Error schema")
	}
	return &transport{
		t:      t,
		next:   next,
		router: router,
		errors: errSchema.Value,
		strict: strict,
		options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			AuthenticationFunc:    checkBearer,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{
				// kin-openapi's own uuid pattern allows versions 1-5 only;
				// the API promises UUIDs, not a version, and v7 is common.
				openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(
					`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)),
			},
		},
	}
}

// checkBearer stands in for the document's bearer scheme: it cannot know
// which keys are valid, only that one was sent the way the document says.
func checkBearer(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme, key, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return errors.New(`no "Authorization: Bearer <api key>" header`)
	}
	return nil
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.Path, httpapi.BasePath+"/") {
		return tr.next.RoundTrip(req)
	}

	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	// A RoundTripper may consume the request's body but not change the
	// request, so what goes out is a copy with a fresh body.
	out := req.Clone(req.Context())
	setBody(out, body)

	what := req.Method + " " + req.URL.RequestURI()
	input, reqErr := tr.checkRequest(req, body)
	if reqErr != nil && tr.strict {
		tr.t.Errorf("apitest: request %s does not match the API document: %v", what, reqErr)
	}

	resp, err := tr.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))

	if reqErr != nil && !tr.strict && (resp.StatusCode < 400 || resp.StatusCode > 499) {
		tr.t.Errorf("apitest: request %s does not match the API document (%v), yet it was answered %d; the server must refuse it with a 4xx",
			what, reqErr, resp.StatusCode)
	}
	if err := tr.checkResponse(input, req.Method, resp, respBody); err != nil {
		tr.t.Errorf("apitest: answer %d to %s does not match the API document: %v\nbody: %s",
			resp.StatusCode, what, err, truncate(respBody, 2000))
	}
	return resp, nil
}

func setBody(r *http.Request, body []byte) {
	if body == nil {
		r.Body = http.NoBody
		r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		r.ContentLength = 0
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
}

// checkRequest finds the request's operation and validates the request
// against it. A nil input means the document has no such operation.
func (tr *transport) checkRequest(req *http.Request, body []byte) (*openapi3filter.RequestValidationInput, error) {
	// The document's server URL is relative, so route on the path alone.
	r := req.Clone(req.Context())
	r.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	r.Host = ""
	setBody(r, body)

	route, params, err := tr.router.FindRoute(r)
	if err != nil {
		return nil, fmt.Errorf("the document has no operation %s %s: %w", req.Method, req.URL.Path, err)
	}
	input := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: params,
		Route:      route,
		Options:    tr.options,
	}
	if err := openapi3filter.ValidateRequest(req.Context(), input); err != nil {
		return input, err
	}
	return input, nil
}

func (tr *transport) checkResponse(input *openapi3filter.RequestValidationInput, method string, resp *http.Response, body []byte) error {
	if ct := resp.Header.Get("Content-Type"); method != http.MethodHead {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return fmt.Errorf("Content-Type is %q, not application/json", ct)
		}
	}
	if input == nil {
		return tr.checkUnrouted(resp, body)
	}
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                tr.options,
	})
}

// checkUnrouted checks the answer to a request the document has no
// operation for: it can only be an error, in the document's error shape.
func (tr *transport) checkUnrouted(resp *http.Response, body []byte) error {
	switch resp.StatusCode {
	case http.StatusNotFound:
	case http.StatusMethodNotAllowed:
		if resp.Header.Get("Allow") == "" {
			return errors.New("a 405 answer without an Allow header")
		}
	default:
		return fmt.Errorf("the document has no such operation, so the answer should be 404 or 405, not %d", resp.StatusCode)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("the body is not JSON: %w", err)
	}
	return tr.errors.VisitJSON(v)
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
