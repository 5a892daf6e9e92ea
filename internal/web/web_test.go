package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRoutes(t *testing.T) {
	h := Handler(Options{})
	tests := []struct {
		path        string
		status      int
		contentType string
		cache       string
	}{
		{"/", 200, "text/html; charset=utf-8", "no-cache"},
		{"/ui/app.js", 200, "text/javascript; charset=utf-8", "max-age=300"},
		{"/ui/views/job.js", 200, "text/javascript; charset=utf-8", "max-age=300"},
		{"/ui/app.css", 200, "text/css; charset=utf-8", "max-age=300"},
		{"/ui/favicon.svg", 200, "image/svg+xml", "max-age=300"},
		{"/ui/missing.js", 404, "", ""},
		{"/ui/", 404, "", ""},
		{"/ui/views/", 404, "", ""},
		{"/index.html", 404, "", ""},
		{"/static/ui/app.js", 404, "", ""},
		{"/ui/../web.go", 404, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, tc.path, nil)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d", rec.Code, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if got := rec.Header().Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
			if got := rec.Header().Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control = %q, want %q", got, tc.cache)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if rec.Header().Get("ETag") == "" {
				t.Errorf("no ETag")
			}
			if rec.Body.Len() == 0 {
				t.Errorf("empty body")
			}
		})
	}
}

func TestIndexHeaders(t *testing.T) {
	rec := get(t, Handler(Options{}), http.MethodGet, "/", nil)
	want := map[string]string{
		"Referrer-Policy": "no-referrer",
		"X-Frame-Options": "DENY",
	}
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(rec.Body.String(), `<script type="module" src="/ui/app.js">`) {
		t.Errorf("the page does not load /ui/app.js as a module")
	}
}

func TestMethods(t *testing.T) {
	h := Handler(Options{})
	rec := get(t, h, http.MethodHead, "/", nil)
	if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD / = %d with %d bytes, Content-Length %q; want 200, no body, a length",
			rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec := get(t, h, m, "/ui/app.js", nil)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s = %d, Allow %q; want 405 and GET, HEAD", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

func TestRevalidation(t *testing.T) {
	h := Handler(Options{})
	first := get(t, h, http.MethodGet, "/ui/app.css", nil)
	etag := first.Header().Get("ETag")
	again := get(t, h, http.MethodGet, "/ui/app.css", http.Header{"If-None-Match": {etag}})
	if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Errorf("If-None-Match %s = %d with %d bytes, want 304 and no body", etag, again.Code, again.Body.Len())
	}
	other := get(t, h, http.MethodGet, "/ui/app.js", nil).Header().Get("ETag")
	if other == etag {
		t.Errorf("two different files share the ETag %s", etag)
	}
}

// directives splits a policy into its directives by name.
func directives(policy string) map[string][]string {
	m := map[string][]string{}
	for d := range strings.SplitSeq(policy, ";") {
		fields := strings.Fields(d)
		if len(fields) > 0 {
			m[fields[0]] = fields[1:]
		}
	}
	return m
}

func TestContentSecurityPolicy(t *testing.T) {
	rec := get(t, Handler(Options{}), http.MethodGet, "/", nil)
	policy := rec.Header().Get("Content-Security-Policy")
	d := directives(policy)
	want := map[string][]string{
		"default-src":     {"'none'"},
		"script-src":      {"'self'"},
		"style-src":       {"'self'"},
		"img-src":         {"'self'"},
		"media-src":       {"'self'"},
		"connect-src":     {"'self'"},
		"base-uri":        {"'none'"},
		"form-action":     {"'none'"},
		"frame-ancestors": {"'none'"},
	}
	for name, values := range want {
		if !slices.Equal(d[name], values) {
			t.Errorf("%s = %q, want %q (policy %q)", name, d[name], values, policy)
		}
	}
	if len(d) != len(want) {
		t.Errorf("policy has %d directives, want %d: %q", len(d), len(want), policy)
	}
	if strings.Contains(policy, "unsafe") {
		t.Errorf("policy allows something unsafe: %q", policy)
	}

	// Assets are not documents; only the page carries the policy.
	if got := get(t, Handler(Options{}), http.MethodGet, "/ui/app.js", nil).Header().Get("Content-Security-Policy"); got != "" {
		t.Errorf("an asset carries a policy: %q", got)
	}
}

func TestObjectOrigins(t *testing.T) {
	h := Handler(Options{ObjectOrigins: []string{
		"http://Farm.Local:8080/objects/ignored?sig=x",
		"https://s3.example.com",
		"https://s3.example.com/bucket", // the same origin again
		"  http://10.0.0.5:9000  ",
		"javascript:alert(1)",
		"*",
		"'unsafe-inline'",
		"data:text/html,x",
		"http://user:pass@host.example",
		"ftp://files.example.com",
		"not a url",
		"",
	}})
	d := directives(get(t, h, http.MethodGet, "/", nil).Header().Get("Content-Security-Policy"))
	want := []string{"'self'", "http://farm.local:8080", "https://s3.example.com", "http://10.0.0.5:9000"}
	for _, name := range []string{"img-src", "media-src", "connect-src"} {
		if !slices.Equal(d[name], want) {
			t.Errorf("%s = %q, want %q", name, d[name], want)
		}
	}
	for _, name := range []string{"script-src", "style-src", "default-src"} {
		if len(d[name]) != 1 {
			t.Errorf("%s = %q; object origins must not reach it", name, d[name])
		}
	}
}

// TestEmbeddedFiles checks that every file the page names is embedded and
// served, that nothing is fetched from elsewhere, and that the page needs
// no inline script or style, which the policy would refuse.
func TestEmbeddedFiles(t *testing.T) {
	h := Handler(Options{})
	index := get(t, h, http.MethodGet, "/", nil).Body.String()

	refs := regexp.MustCompile(`(?:src|href)="([^"#][^"]*)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 3 {
		t.Fatalf("found only %d references in index.html", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		if !strings.HasPrefix(ref, "/ui/") {
			t.Errorf("index.html refers to %q, outside /ui/", ref)
			continue
		}
		if rec := get(t, h, http.MethodGet, ref, nil); rec.Code != 200 {
			t.Errorf("index.html refers to %s, which answers %d", ref, rec.Code)
		}
	}
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(index) || strings.Contains(index, "<style") || strings.Contains(index, " style=") {
		t.Errorf("index.html has inline script or style")
	}

	imports := regexp.MustCompile(`(?m)(?:^import\s[^;]*?from\s+|^import\s+|import\()'([^']+)'`)
	err := fs.WalkDir(static, "static/ui", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(static, name)
		if err != nil {
			return err
		}
		text := string(body)
		urlPath := "/" + strings.TrimPrefix(name, "static/")
		if rec := get(t, h, http.MethodGet, urlPath, nil); rec.Code != 200 {
			t.Errorf("%s is embedded but %s answers %d", name, urlPath, rec.Code)
		}
		// The SVG namespace is a name, not an address that is fetched.
		for _, u := range regexp.MustCompile(`https?://[^\s'"<>)]+`).FindAllString(text, -1) {
			if u != "http://www.w3.org/2000/svg" {
				t.Errorf("%s refers to %s: the dashboard must work without internet access", name, u)
			}
		}
		if !strings.HasSuffix(name, ".js") {
			return nil
		}
		for _, m := range imports.FindAllStringSubmatch(text, -1) {
			target := path.Join(path.Dir(urlPath), m[1])
			if !strings.HasPrefix(m[1], ".") {
				t.Errorf("%s imports %q: only relative imports of embedded modules work", name, m[1])
				continue
			}
			if rec := get(t, h, http.MethodGet, target, nil); rec.Code != 200 {
				t.Errorf("%s imports %s, which answers %d", name, target, rec.Code)
			}
		}
		// Text from the farm must never become markup, and style
		// attributes would break the policy.
		for _, banned := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'"} {
			if strings.Contains(text, banned) {
				t.Errorf("%s uses %s", name, banned)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOriginOf(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"HTTPS://Example.COM/x/y?z", "https://example.com", true},
		{"http://[::1]:8080/", "http://[::1]:8080", true},
		{"http://", "", false},
		{"/objects/", "", false},
		{"blob:http://x", "", false},
	}
	for _, tc := range tests {
		got, ok := originOf(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("originOf(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
