package apitest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
)

// recorder stands in for the test a transport reports to, so that the
// failures it should report can be checked rather than suffered.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Helper() {}

func (r *recorder) reported() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.errors, "\n")
}

const (
	id   = "0192f5d6-3c1e-7a4b-9e2f-6b1d2c3e4f50"
	base = httpapi.BasePath
)

const jobJSON = `{"id":"` + id + `","status":"created","workspaceId":"ws","userId":"u",` +
	`"createdAt":"2025-06-01T10:00:00Z","updatedAt":"2025-06-01T10:00:00Z","rootFolderId":null,` +
	`"normalizedSeconds":0,"previewUrl":null,"failedReason":null,"requestedConfig":null,"finalConfig":null,` +
	`"output":{"isDeletedForClient":false},"isAnalysisSkipped":false,"analysisId":null,"analysis":null,` +
	`"sceneFile":null,"slug":"s","priority":50}`

const webhookJSON = `{"id":"` + id + `","url":"https://example.com/hook","events":["onRenderComplete"],"createdAt":"2025-06-01T10:00:00Z"}`

// canned is a server that gives one fixed answer to everything.
func canned(status int, contentType, body string, header ...string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
}

func send(t *testing.T, rt http.RoundTripper, method, url, body string, auth bool) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer RJ-x")
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return resp
}

func TestTransport(t *testing.T) {
	cases := []struct {
		name                string
		lenient             bool
		status              int
		contentType, answer string
		header              []string
		method, path, body  string
		noAuth              bool
		wantReport          string // "" when the exchange is fine
	}{
		{name: "good answer", status: 200, contentType: "application/json", answer: `{"data":` + jobJSON + `}`,
			method: "GET", path: "/jobs/" + id},
		{name: "wrapper missing", status: 200, contentType: "application/json", answer: jobJSON,
			method: "GET", path: "/jobs/" + id, wantReport: "does not match"},
		{name: "wrapper where none belongs", status: 200, contentType: "application/json", answer: `{"data":` + jobJSON + `}`,
			method: "POST", path: "/jobs/" + id + "/validate", wantReport: "does not match"},
		{name: "null where an array belongs", status: 200, contentType: "application/json", answer: `null`,
			method: "GET", path: "/jobs/progress", wantReport: "does not match"},
		{name: "undocumented status", status: 418, contentType: "application/json", answer: `{"error":{"code":"TEAPOT","message":"m"}}`,
			method: "GET", path: "/jobs/" + id, wantReport: "status is not supported"},
		{name: "text answer", status: 404, contentType: "text/plain", answer: "404 page not found",
			method: "GET", path: "/jobs/" + id, wantReport: "Content-Type"},
		{name: "bad error shape", status: 404, contentType: "application/json", answer: `{"message":"no"}`,
			method: "GET", path: "/jobs/" + id, wantReport: "does not match"},
		{name: "bad replay header", status: 200, contentType: "application/json", answer: jobJSON, header: []string{"X-Idempotent-Replay", "yes"},
			method: "POST", path: "/jobs/" + id + "/render", body: `{"requestedRenderConfig":{"colorManagementPreset":"default"}}`, wantReport: "X-Idempotent-Replay"},
		{name: "local time", status: 200, contentType: "application/json", answer: strings.ReplaceAll(jobJSON, "10:00:00Z", "12:00:00+02:00"),
			method: "POST", path: "/jobs/" + id + "/cancel", wantReport: "does not match"},
		{name: "bad request, strict", status: 400, contentType: "application/json", answer: `{"error":{"code":"INVALID_JSON","message":"m"}}`,
			method: "POST", path: "/jobs", body: `{"slg":"x"}`, wantReport: "request POST"},
		{name: "bad request refused", lenient: true, status: 400, contentType: "application/json", answer: `{"error":{"code":"INVALID_REQUEST","message":"m","field":"slug"}}`,
			method: "POST", path: "/jobs", body: `{"slg":"x"}`},
		{name: "bad request accepted", lenient: true, status: 201, contentType: "application/json", answer: jobJSON,
			method: "POST", path: "/jobs", body: `{"slg":"x"}`, wantReport: "must refuse it"},
		{name: "no key, strict", noAuth: true, status: 401, contentType: "application/json", answer: `{"error":{"code":"UNAUTHORIZED","message":"m"}}`,
			method: "GET", path: "/jobs/" + id, wantReport: "Authorization"},
		{name: "no key refused", lenient: true, noAuth: true, status: 401, contentType: "application/json", answer: `{"error":{"code":"UNAUTHORIZED","message":"m"}}`,
			method: "GET", path: "/jobs/" + id},
		{name: "unknown route", lenient: true, status: 404, contentType: "application/json", answer: `{"error":{"code":"NOT_FOUND","message":"m"}}`,
			method: "GET", path: "/nope"},
		{name: "unknown route answered 200", lenient: true, status: 200, contentType: "application/json", answer: `{}`,
			method: "GET", path: "/nope", wantReport: "404 or 405"},
		{name: "405 without Allow", lenient: true, status: 405, contentType: "application/json", answer: `{"error":{"code":"METHOD_NOT_ALLOWED","message":"m"}}`,
			method: "PUT", path: "/jobs/" + id, wantReport: "Allow"},
		{name: "no content", status: 204,
			method: "DELETE", path: "/webhooks/" + id},
		{name: "no content with a Content-Type", status: 204, contentType: "application/json",
			method: "DELETE", path: "/webhooks/" + id, wantReport: "204"},
		{name: "no content where the document promises a body", status: 204,
			method: "POST", path: "/jobs/" + id + "/cancel", wantReport: "status is not supported"},
		{name: "empty path parameter", lenient: true, status: 405, contentType: "application/json", answer: `{"error":{"code":"METHOD_NOT_ALLOWED","message":"m"}}`,
			header: []string{"Allow", "GET, HEAD, POST"}, method: "DELETE", path: "/webhooks"},
		{name: "secret missing where promised", status: 201, contentType: "application/json", answer: webhookJSON,
			method: "POST", path: "/webhooks", body: `{"url":"https://example.com/hook","events":["onRenderComplete"]}`, wantReport: "does not match"},
		{name: "secret where promised", status: 201, contentType: "application/json", answer: strings.Replace(webhookJSON, `"createdAt"`, `"secret":"whsec_x","createdAt"`, 1),
			method: "POST", path: "/webhooks", body: `{"url":"https://example.com/hook","events":["onRenderComplete"]}`},
		{name: "unknown event", status: 200, contentType: "application/json", answer: `{"webhooks":[` + strings.Replace(webhookJSON, "onRenderComplete", "onRenderStart", 1) + `]}`,
			method: "GET", path: "/webhooks", wantReport: "does not match"},
		{name: "null log", status: 200, contentType: "application/json", answer: `{"lines":null}`,
			method: "GET", path: "/jobs/" + id + "/log", wantReport: "does not match"},
		{name: "public document", noAuth: true, status: 200, contentType: "application/json", answer: `{"openapi":"3.0.3","info":{},"paths":{}}`,
			method: "GET", path: "/openapi.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := canned(tc.status, tc.contentType, tc.answer, tc.header...)
			defer srv.Close()
			rec := &recorder{TB: t}
			rt := apitest.ValidatingTransport(rec, srv.Client().Transport)
			if tc.lenient {
				rt = apitest.LenientTransport(rec, srv.Client().Transport)
			}
			resp := send(t, rt, tc.method, srv.URL+base+tc.path, tc.body, !tc.noAuth)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d passed through as %d", tc.status, resp.StatusCode)
			}
			got := rec.reported()
			switch {
			case tc.wantReport == "" && got != "":
				t.Errorf("reported a fine exchange:\n%s", got)
			case tc.wantReport != "" && !strings.Contains(got, tc.wantReport):
				t.Errorf("report %q does not mention %q", got, tc.wantReport)
			}
		})
	}
}

// Presigned object URLs are opaque to the document and must pass as they
// are, bodies included.
func TestTransportLeavesObjectsAlone(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = r.Method + " " + r.URL.RequestURI() + " " + string(b)
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.WriteString(w, "blend bytes")
	}))
	defer srv.Close()
	rec := &recorder{TB: t}
	rt := apitest.ValidatingTransport(rec, srv.Client().Transport)
	resp := send(t, rt, "PUT", srv.URL+"/objects/uploads/s/scene.blend?sig=ab", "BLENDER-v304", false)
	b, _ := io.ReadAll(resp.Body)
	if got != "PUT /objects/uploads/s/scene.blend?sig=ab BLENDER-v304" || string(b) != "blend bytes" {
		t.Errorf("server saw %q, client got %q", got, b)
	}
	if r := rec.reported(); r != "" {
		t.Errorf("reported: %s", r)
	}
}

// The request body must reach the server whole even though the transport
// read it to check it.
func TestTransportForwardsBody(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		_, _ = io.WriteString(w, jobJSON)
	}))
	defer srv.Close()
	rec := &recorder{TB: t}
	body := `{"slug": "abc"}`
	send(t, apitest.ValidatingTransport(rec, nil), "POST", srv.URL+base+"/jobs", body, true)
	if got != body {
		t.Errorf("server got %q, want %q", got, body)
	}
	if r := rec.reported(); r != "" {
		t.Errorf("reported: %s", r)
	}
}

func TestCheckDelivery(t *testing.T) {
	const (
		secret   = "whsec_test"
		ts       = "1748772000"
		delivery = "a7e1c0de-2b3c-4d5e-8f90-1a2b3c4d5e6f"
		complete = `{"event":"onRenderComplete","status":"completed","jobId":"` + id + `","workspaceId":"ws","completedAt":"2025-06-01T10:00:00Z","outputs":{"frames":["https://farm.example/objects/f/0001.png?sig=ab"]}}`
	)
	sign := func(ts, body string) string {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts + "." + body))
		return hex.EncodeToString(mac.Sum(nil))
	}
	cases := []struct {
		name, event, body, signature string
		drop                         string // a header to leave out
		wantReport                   string
	}{
		{name: "render complete", event: "onRenderComplete", body: complete},
		{name: "render complete without outputs", event: "onRenderComplete",
			body: `{"event":"onRenderComplete","status":"completed","jobId":"` + id + `","workspaceId":"ws","completedAt":"2025-06-01T10:00:00Z"}`},
		{name: "render fail", event: "onRenderFail",
			body: `{"event":"onRenderFail","status":"failed","jobId":"` + id + `","workspaceId":"ws","failedAt":"2025-06-01T10:00:00Z","failedReason":{"name":"Render failed","type":"render","message":"m"}}`},
		{name: "status change", event: "onStatusChange",
			body: `{"event":"onStatusChange","status":"rendering","previousStatus":"booting","jobId":"` + id + `","workspaceId":"ws","changedAt":"2025-06-01T10:00:00Z"}`},
		{name: "wrong signature", event: "onRenderComplete", body: complete, signature: strings.Repeat("0", 64), wantReport: "recipe"},
		{name: "no delivery id", event: "onRenderComplete", body: complete, drop: "X-Renderfarm-Delivery", wantReport: "X-Renderfarm-Delivery"},
		{name: "no timestamp", event: "onRenderComplete", body: complete, drop: "X-Renderjuice-Timestamp", wantReport: "X-Renderjuice-Timestamp"},
		{name: "unknown event header", event: "onRenderStart", body: complete, wantReport: "X-Renderfarm-Event"},
		{name: "unknown event", event: "onRenderComplete", body: strings.Replace(complete, "onRenderComplete", "onRenderStart", 1), wantReport: "does not match"},
		{name: "local time", event: "onRenderComplete", body: strings.Replace(complete, "10:00:00Z", "12:00:00+02:00", 1), wantReport: "does not match"},
		{name: "empty outputs", event: "onRenderComplete", body: strings.Replace(complete, `["https://farm.example/objects/f/0001.png?sig=ab"]`, `[]`, 1), wantReport: "does not match"},
		{name: "status of another event", event: "onRenderComplete", body: strings.Replace(complete, `"completed"`, `"failed"`, 1), wantReport: "does not match"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "https://receiver.example/hook", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-Renderjuice-Timestamp", ts)
			sig := tc.signature
			if sig == "" {
				sig = sign(ts, tc.body)
			}
			r.Header.Set("X-Renderjuice-Signature", sig)
			r.Header.Set("X-Renderfarm-Delivery", delivery)
			r.Header.Set("X-Renderfarm-Event", tc.event)
			r.Header.Del(tc.drop)
			rec := &recorder{TB: t}
			apitest.CheckDelivery(rec, r, []byte(tc.body), secret)
			got := rec.reported()
			switch {
			case tc.wantReport == "" && got != "":
				t.Errorf("reported a fine delivery:\n%s", got)
			case tc.wantReport != "" && !strings.Contains(got, tc.wantReport):
				t.Errorf("report %q does not mention %q", got, tc.wantReport)
			}
		})
	}
}
