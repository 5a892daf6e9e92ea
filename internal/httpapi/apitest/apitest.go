// Package apitest checks HTTP traffic against the external API's OpenAPI
// document, so that any test that talks to the API, from a unit test of a
// handler to an end-to-end run with real Blender, also proves that the
// document tells the truth. That includes the webhook deliveries the farm
// sends, which the document describes as a callback.
package apitest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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
// application/json, except a 204, which has neither body nor Content-Type.
// Other URLs, such as presigned /objects/ URLs, pass
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
		t:       t,
		next:    next,
		router:  router,
		errors:  errSchema.Value,
		strict:  strict,
		options: validationOptions(),
	}
}

func validationOptions() *openapi3filter.Options {
	return &openapi3filter.Options{
		IncludeResponseStatus: true,
		AuthenticationFunc:    checkBearer,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			// kin-openapi's own uuid pattern allows versions 1-5 only;
			// the API promises UUIDs, not a version, and v7 is common.
			openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(
				`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)),
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
	// The router lets a path parameter match nothing, so that DELETE
	// /webhooks finds DELETE /webhooks/{id}; the server, rightly, does not.
	for name, v := range params {
		if v == "" {
			return nil, fmt.Errorf("the document has no operation %s %s: it leaves {%s} of %s empty", req.Method, req.URL.Path, name, route.Path)
		}
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
	ct := resp.Header.Get("Content-Type")
	switch {
	case resp.StatusCode == http.StatusNoContent:
		if ct != "" || len(body) != 0 {
			return fmt.Errorf("a 204 answer with Content-Type %q and %d bytes of body; it should have neither", ct, len(body))
		}
	case method != http.MethodHead:
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

// CheckDelivery fails t when a webhook delivery, as a receiver got it (r,
// whose body was read into body), does not match the document's callback
// of POST /webhooks: its headers, its body, and its signature, recomputed
// with secret the way the document tells receivers to. Failures are
// reported with t.Errorf; it is safe to call from a receiver's handler.
func CheckDelivery(t testing.TB, r *http.Request, body []byte, secret string) {
	t.Helper()
	doc, err := httpapi.LoadSpec()
	if err != nil {
		t.Errorf("apitest: %v", err)
		return
	}
	route, err := deliveryRoute(doc)
	if err != nil {
		t.Errorf("apitest: %v", err)
		return
	}
	req := r.Clone(r.Context())
	req.URL = &url.URL{Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	setBody(req, body)
	input := &openapi3filter.RequestValidationInput{Request: req, Route: route, Options: validationOptions()}
	if err := openapi3filter.ValidateRequest(r.Context(), input); err != nil {
		t.Errorf("apitest: webhook delivery does not match the API document: %v\nbody: %s", err, truncate(body, 2000))
	}

	ts := r.Header.Get("X-Renderjuice-Timestamp")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if got, want := r.Header.Get("X-Renderjuice-Signature"), hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(got), []byte(want)) {
		t.Errorf("apitest: webhook delivery signed %q, but the document's recipe gives %q for timestamp %q", got, want, ts)
	}
}

// deliveryRoute is the operation of the one callback of POST /webhooks,
// which describes what the farm sends to receivers.
func deliveryRoute(doc *openapi3.T) (*routers.Route, error) {
	item := doc.Paths.Value("/webhooks")
	if item == nil || item.Post == nil || len(item.Post.Callbacks) != 1 {
		return nil, errors.New("the document has no callback of POST /webhooks, or more than one")
	}
	var cb *openapi3.Callback
	for _, ref := range item.Post.Callbacks {
		cb = ref.Value
	}
	if cb == nil || cb.Len() != 1 {
		return nil, errors.New("the callback of POST /webhooks has no URL expression, or more than one")
	}
	expr := cb.Keys()[0]
	pi := cb.Value(expr)
	if pi == nil || pi.Post == nil {
		return nil, errors.New("the callback of POST /webhooks has no POST")
	}
	return &routers.Route{Spec: doc, Path: expr, PathItem: pi, Method: http.MethodPost, Operation: pi.Post}, nil
}
