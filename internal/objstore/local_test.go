package objstore_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/objstore/objstoretest"
)

var testSecret = bytes.Repeat([]byte{0x5e}, 32)

// testLimit is the size limit of Puts that are not about limits: far
// above anything the tests store.
const testLimit = 1 << 30

// newLocal starts a server that mounts the store's Handler the way the real
// server does, and a store whose BaseURL points at it.
func newLocal(t *testing.T, configure func(*objstore.LocalConfig)) (l *objstore.Local, srv *httptest.Server, dir string) {
	t.Helper()
	dir = t.TempDir() // first, so it is removed after the server stops
	mux := http.NewServeMux()
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := objstore.LocalConfig{Dir: dir, BaseURL: srv.URL, Secret: testSecret}
	if configure != nil {
		configure(&cfg)
	}
	l, err := objstore.NewLocal(cfg)
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	mux.Handle(objstore.ObjectsPath, l.Handler())
	return l, srv, dir
}

func TestLocalConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		l, _, _ := newLocal(t, nil)
		return l
	})
}

func TestNewLocalRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	good := objstore.LocalConfig{Dir: dir, BaseURL: "http://127.0.0.1:8080", Secret: testSecret}
	tests := []struct {
		name   string
		change func(*objstore.LocalConfig)
	}{
		{"no dir", func(c *objstore.LocalConfig) { c.Dir = "" }},
		{"no secret", func(c *objstore.LocalConfig) { c.Secret = nil }},
		{"short secret", func(c *objstore.LocalConfig) { c.Secret = testSecret[:16] }},
		{"no base URL", func(c *objstore.LocalConfig) { c.BaseURL = "" }},
		{"base URL without scheme", func(c *objstore.LocalConfig) { c.BaseURL = "127.0.0.1:8080" }},
		{"base URL without host", func(c *objstore.LocalConfig) { c.BaseURL = "http:///x" }},
		{"ftp base URL", func(c *objstore.LocalConfig) { c.BaseURL = "ftp://farm.example.com" }},
		{"base URL with query", func(c *objstore.LocalConfig) { c.BaseURL = "http://farm.example.com/?a=1" }},
		{"base URL with credentials", func(c *objstore.LocalConfig) { c.BaseURL = "http://u:p@farm.example.com" }},
		{"dir is a file", func(c *objstore.LocalConfig) {
			f := filepath.Join(dir, "file")
			os.WriteFile(f, nil, 0o600)
			c.Dir = f
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			if l, err := objstore.NewLocal(cfg); err == nil {
				l.Close()
				t.Errorf("NewLocal(%+v) succeeded, want an error", cfg)
			}
		})
	}
}

// TestPresignedURLFormat pins the URL and signature format: URLs handed out
// by one version must verify in the next.
func TestPresignedURLFormat(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l, _, _ := newLocal(t, func(c *objstore.LocalConfig) {
		c.BaseURL = "https://farm.example.com/"
		c.Now = func() time.Time { return now }
	})
	sig := func(msg string) string {
		m := hmac.New(sha256.New, testSecret)
		m.Write([]byte(msg))
		return hex.EncodeToString(m.Sum(nil))
	}
	const key = "uploads/s1/My Scene+1.blend"

	u, exp, err := l.PresignPut(t.Context(), key, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wantExp := now.Add(15 * time.Minute)
	e := strconv.FormatInt(wantExp.Unix(), 10)
	want := "https://farm.example.com/objects/uploads/s1/My%20Scene+1.blend?expires=" + e + "&sig=" + sig("PUT\n"+key+"\n"+e)
	if u != want {
		t.Errorf("PresignPut URL\n got %s\nwant %s", u, want)
	}
	if !exp.Equal(wantExp) || exp.Location() != time.UTC {
		t.Errorf("expiresAt = %v, want %v in UTC", exp, wantExp)
	}

	u, _, err = l.PresignGet(t.Context(), key, 15*time.Minute, "shot 1.blend")
	if err != nil {
		t.Fatal(err)
	}
	want = "https://farm.example.com/objects/uploads/s1/My%20Scene+1.blend?expires=" + e + "&name=shot+1.blend&sig=" + sig("GET\n"+key+"\n"+e+"\nshot 1.blend")
	if u != want {
		t.Errorf("PresignGet URL\n got %s\nwant %s", u, want)
	}
	u, _, err = l.PresignGet(t.Context(), key, 15*time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	want = "https://farm.example.com/objects/uploads/s1/My%20Scene+1.blend?expires=" + e + "&sig=" + sig("GET\n"+key+"\n"+e+"\n")
	if u != want {
		t.Errorf("PresignGet URL without name\n got %s\nwant %s", u, want)
	}

	// A URL carries whole seconds, rounded up so it lives at least ttl.
	now = now.Add(300 * time.Millisecond)
	if _, exp, _ := l.PresignPut(t.Context(), key, time.Minute); !exp.Equal(time.Unix(1_800_000_061, 0)) {
		t.Errorf("expiresAt with a fractional now = %v, want %v", exp, time.Unix(1_800_000_061, 0))
	}
}

func TestPresignRefusesBadDownloadName(t *testing.T) {
	l, _, _ := newLocal(t, nil)
	for _, name := range []string{"a\nb.png", "a\x00.png", "\xff.png", strings.Repeat("n", 256)} {
		if _, _, err := l.PresignGet(t.Context(), "jobs/j1/a.png", time.Minute, name); err == nil {
			t.Errorf("PresignGet with download name %q succeeded, want an error", name)
		}
	}
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestHandlerRefusals(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	now := base
	l, _, _ := newLocal(t, func(c *objstore.LocalConfig) {
		c.Now = func() time.Time { return now }
	})
	const key = "uploads/s1/scene.blend"
	mustPut(t, l, key, "stored")
	putURL, _, _ := l.PresignPut(t.Context(), key, 15*time.Minute)
	getURL, _, _ := l.PresignGet(t.Context(), key, 15*time.Minute, "scene.blend")
	otherPutURL, _, _ := l.PresignPut(t.Context(), "uploads/s2/scene.blend", 15*time.Minute)

	query := func(raw string, change func(url.Values)) string {
		u, _ := url.Parse(raw)
		q := u.Query()
		change(q)
		u.RawQuery = q.Encode()
		return u.String()
	}
	flip := func(s string) string { b := []byte(s); b[0] ^= 1; return string(b) }

	tests := []struct {
		name       string
		method     string
		url        string
		late       time.Duration
		wantStatus int
		wantCode   string
		wantInMsg  string
	}{
		{"valid PUT", "PUT", putURL, 0, 200, "", ""},
		{"valid GET", "GET", getURL, 0, 200, "", ""},
		{"valid HEAD", "HEAD", getURL, 0, 200, "", ""},
		{"valid one second before expiry", "PUT", putURL, 15*time.Minute - time.Second, 200, "", ""},
		{"no signature", "PUT", query(putURL, func(q url.Values) { q.Del("sig") }), 0, 403, "INVALID_SIGNATURE", "presigned"},
		{"no expiry", "PUT", query(putURL, func(q url.Values) { q.Del("expires") }), 0, 403, "INVALID_SIGNATURE", "presigned"},
		{"no query at all", "GET", strings.Split(getURL, "?")[0], 0, 403, "INVALID_SIGNATURE", "presigned"},
		{"flipped signature", "PUT", query(putURL, func(q url.Values) { q.Set("sig", flip(q.Get("sig"))) }), 0, 403, "INVALID_SIGNATURE", "exactly as"},
		{"signature not hex", "PUT", query(putURL, func(q url.Values) { q.Set("sig", "zz") }), 0, 403, "INVALID_SIGNATURE", ""},
		{"extended expiry", "PUT", query(putURL, func(q url.Values) { q.Set("expires", "9999999999") }), 0, 403, "INVALID_SIGNATURE", ""},
		{"expiry with a leading zero", "PUT", query(putURL, func(q url.Values) { q.Set("expires", "0"+q.Get("expires")) }), 0, 403, "INVALID_SIGNATURE", ""},
		{"URL of another key", "PUT", strings.Replace(otherPutURL, "/s2/", "/s1/", 1), 0, 403, "INVALID_SIGNATURE", ""},
		{"download URL used to upload", "PUT", getURL, 0, 403, "INVALID_SIGNATURE", ""},
		{"upload URL used to download", "GET", putURL, 0, 403, "INVALID_SIGNATURE", ""},
		{"download name changed", "GET", query(getURL, func(q url.Values) { q.Set("name", "evil.html") }), 0, 403, "INVALID_SIGNATURE", ""},
		{"download name dropped", "GET", query(getURL, func(q url.Values) { q.Del("name") }), 0, 403, "INVALID_SIGNATURE", ""},
		{"expired upload", "PUT", putURL, 15 * time.Minute, 403, "URL_EXPIRED", "request a new upload URL"},
		{"expired download", "GET", getURL, time.Hour, 403, "URL_EXPIRED", "download URL expired"},
		{"expired and forged", "PUT", query(putURL, func(q url.Values) { q.Set("sig", flip(q.Get("sig"))) }), time.Hour, 403, "INVALID_SIGNATURE", ""},
		{"DELETE", "DELETE", putURL, 0, 405, "METHOD_NOT_ALLOWED", "PUT"},
		{"POST", "POST", putURL, 0, 405, "METHOD_NOT_ALLOWED", ""},
		{"outside /objects/", "GET", strings.Replace(getURL, "/objects/", "/other/", 1), 0, 404, "NOT_FOUND", ""},
		{"empty segment", "GET", strings.Replace(getURL, "/s1/", "//", 1), 0, 400, "INVALID_KEY", ""},
		{"dot-dot", "PUT", strings.Replace(putURL, "/s1/", "/s1/%2E%2E/%2E%2E/%2E%2E/", 1), 0, 400, "INVALID_KEY", ""},
		{"temp folder", "PUT", strings.Replace(putURL, "/uploads/s1/", "/.tmp/", 1), 0, 400, "INVALID_KEY", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = base.Add(tc.late)
			var body io.Reader
			if tc.method == "PUT" {
				body = strings.NewReader("stored")
			}
			// httptest.NewRequest uses the host example.com, not the
			// store's BaseURL: the host is not part of the signature.
			rec := httptest.NewRecorder()
			l.Handler().ServeHTTP(rec, httptest.NewRequest(tc.method, tc.url, body))
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantCode == "" {
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("error body %q is not JSON: %v", rec.Body, err)
			}
			if e.Error.Code != tc.wantCode || !strings.Contains(e.Error.Message, tc.wantInMsg) {
				t.Errorf("error = %+v, want code %s and a message containing %q", e.Error, tc.wantCode, tc.wantInMsg)
			}
			if tc.wantStatus == 405 && rec.Header().Get("Allow") != "GET, HEAD, PUT" {
				t.Errorf("Allow = %q", rec.Header().Get("Allow"))
			}
		})
	}
	if got := readObject(t, l, key); got != "stored" {
		t.Errorf("object = %q after the refusals", got)
	}
}

func TestDownloadHeaders(t *testing.T) {
	l, _, _ := newLocal(t, nil)
	mustPut(t, l, "jobs/j1/frames/frame_0001.png", "png bytes")
	mustPut(t, l, "uploads/s1/page.html", "<script>alert(1)</script>")

	const name = "Plan 1 – é.png"
	u, _, _ := l.PresignGet(t.Context(), "jobs/j1/frames/frame_0001.png", time.Minute, name)
	resp := mustDo(t, "GET", u, nil)
	if ct := resp.Header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("Content-Type = %q, want image/png", ct)
	}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err != nil || params["filename"] != name {
		t.Errorf("Content-Disposition = %q, want filename %q", resp.Header.Get("Content-Disposition"), name)
	}

	// Uploaded HTML must never run in the farm's origin.
	u, _, _ = l.PresignGet(t.Context(), "uploads/s1/page.html", time.Minute, "")
	resp = mustDo(t, "GET", u, nil)
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
	if got := resp.Header.Get("Content-Security-Policy"); got != "sandbox" {
		t.Errorf("Content-Security-Policy = %q, want sandbox", got)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != "" {
		t.Errorf("Content-Disposition = %q without a download name, want none", cd)
	}

	// HEAD answers the size without the body.
	resp = mustDo(t, "HEAD", u, nil)
	if resp.StatusCode != 200 || resp.ContentLength != int64(len("<script>alert(1)</script>")) {
		t.Errorf("HEAD = %d with length %d", resp.StatusCode, resp.ContentLength)
	}
}

func TestUploadLimit(t *testing.T) {
	const limit = 1024
	l, srv, dir := newLocal(t, func(c *objstore.LocalConfig) { c.MaxUploadBytes = limit })
	const key = "uploads/s1/scene.blend"
	u, _, _ := l.PresignPut(t.Context(), key, time.Minute)

	tests := []struct {
		name       string
		size       int
		chunked    bool
		wantStatus int
	}{
		{"declared length at the limit", limit, false, 200},
		{"declared length over the limit", limit + 1, false, 413},
		{"chunked at the limit", limit, true, 200},
		{"chunked over the limit", limit + 1, true, 413},
		{"chunked far over the limit", 10 * limit, true, 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l.Delete(t.Context(), key)
			var body io.Reader = bytes.NewReader(make([]byte, tc.size))
			if tc.chunked {
				body = struct{ io.Reader }{body} // unknown length: sent chunked
			}
			resp := mustDo(t, "PUT", u, body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			_, err := l.Stat(t.Context(), key)
			if tc.wantStatus == 200 && err != nil {
				t.Errorf("Stat after upload: %v", err)
			}
			if tc.wantStatus == 413 {
				if !errors.Is(err, objstore.ErrNotFound) {
					t.Errorf("Stat after refused upload: %v, want ErrNotFound", err)
				}
				waitNoTempFiles(t, dir)
			}
		})
	}

	// A declared oversize body is refused from the headers alone: the
	// client here never sends a byte of it.
	for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
		conn := dial(t, srv)
		fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n", requestURI(t, u), 5<<30, expect)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading response: %v", err)
		}
		var e apiError
		json.NewDecoder(resp.Body).Decode(&e)
		if resp.StatusCode != 413 || e.Error.Code != "PAYLOAD_TOO_LARGE" || !strings.Contains(e.Error.Message, "1 KiB") {
			t.Errorf("oversize declared body (%q): %d %+v, want 413 PAYLOAD_TOO_LARGE naming the limit", expect, resp.StatusCode, e)
		}
		conn.Close()
	}
}

// TestUploadInFlight drives an upload by hand so the test can look at the
// store while the body is half sent, then either finish it or drop the
// connection.
func TestUploadInFlight(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		for _, finish := range []bool{false, true} {
			name := map[bool]string{false: "length", true: "chunked"}[chunked] + "/" + map[bool]string{false: "disconnect", true: "complete"}[finish]
			t.Run(name, func(t *testing.T) {
				l, srv, dir := newLocal(t, nil)
				const key = "uploads/s1/scene.blend"
				mustPut(t, l, key, "old")
				u, _, _ := l.PresignPut(t.Context(), key, time.Minute)

				half := bytes.Repeat([]byte("h"), 256<<10)
				conn := dial(t, srv)
				w := bufio.NewWriter(conn)
				fmt.Fprintf(w, "PUT %s HTTP/1.1\r\nHost: x\r\n", requestURI(t, u))
				if chunked {
					fmt.Fprintf(w, "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(half), half)
				} else {
					fmt.Fprintf(w, "Content-Length: %d\r\n\r\n%s", 2*len(half), half)
				}
				w.Flush()

				// The body streams to a temp file, and meanwhile readers
				// still see the old object whole.
				waitFor(t, "a temp file holding the first half", func() bool {
					return tempBytes(t, dir) == int64(len(half))
				})
				if got := readObject(t, l, key); got != "old" {
					t.Errorf("during the upload Get = %q, want the old object", got)
				}
				if infos, _ := l.List(t.Context(), ""); len(infos) != 1 || infos[0].Size != 3 {
					t.Errorf("during the upload List = %+v, want only the old object", infos)
				}

				if !finish {
					conn.Close()
					waitNoTempFiles(t, dir)
					if got := readObject(t, l, key); got != "old" {
						t.Errorf("after a dropped upload Get = %q, want the old object", got)
					}
					return
				}
				if chunked {
					fmt.Fprintf(w, "%x\r\n%s\r\n0\r\n\r\n", len(half), half)
				} else {
					w.Write(half)
				}
				w.Flush()
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				if got := readObject(t, l, key); got != strings.Repeat("h", 2*len(half)) {
					t.Errorf("after the upload Get has %d bytes, want %d", len(got), 2*len(half))
				}
				waitNoTempFiles(t, dir)
			})
		}
	}
}

// TestConcurrentWritesToOneKey checks that writers racing on one key leave
// exactly one of their bodies, and that a reader meanwhile only ever sees
// whole objects.
func TestConcurrentWritesToOneKey(t *testing.T) {
	l, _, dir := newLocal(t, nil)
	const key = "jobs/j1/frames.zip"
	const size = 256 << 10
	mustPut(t, l, key, strings.Repeat("0", size))
	u, _, _ := l.PresignPut(t.Context(), key, time.Minute)

	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got := readObject(t, l, key)
			if len(got) != size || strings.Count(got, got[:1]) != size {
				t.Errorf("a reader saw a mixed or partial object of %d bytes", len(got))
				return
			}
		}
	})

	var writers sync.WaitGroup
	for i := range 8 {
		writers.Go(func() {
			body := bytes.Repeat([]byte{byte('a' + i)}, size)
			if i%2 == 0 {
				if _, err := l.Put(context.Background(), key, bytes.NewReader(body), testLimit); err != nil {
					t.Errorf("Put: %v", err)
				}
				return
			}
			req, _ := http.NewRequest("PUT", u, bytes.NewReader(body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("PUT: %v", err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("PUT: status %d", resp.StatusCode)
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()

	got := readObject(t, l, key)
	if len(got) != size || strings.Count(got, got[:1]) != size || got[0] < 'a' || got[0] > 'h' {
		t.Errorf("final object is not one writer's body whole")
	}
	waitNoTempFiles(t, dir)
}

// TestConcurrentWritesAndDeletesInOneFolder races writes against the
// folder pruning done by Delete and DeletePrefix: a write must never fail
// because its folder vanished between creating it and renaming into it.
func TestConcurrentWritesAndDeletesInOneFolder(t *testing.T) {
	l, _, _ := newLocal(t, nil)
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			key := fmt.Sprintf("jobs/j1/frames/frame_%04d.png", i)
			for range 200 {
				if _, err := l.Put(ctx, key, strings.NewReader("x"), testLimit); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				if err := l.Delete(ctx, key); err != nil {
					t.Errorf("Delete: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			if _, err := l.Put(ctx, fmt.Sprintf("jobs/j2/frames/f%d", i%3), strings.NewReader("x"), testLimit); err != nil {
				t.Errorf("Put: %v", err)
				return
			}
		}
	})
	wg.Go(func() {
		for range 200 {
			if err := l.DeletePrefix(ctx, "jobs/j2/"); err != nil {
				t.Errorf("DeletePrefix: %v", err)
				return
			}
		}
	})
	wg.Wait()
}

func TestPath(t *testing.T) {
	l, _, dir := newLocal(t, nil)
	const key = "uploads/s1/scene.blend"
	mustPut(t, l, key, "blend")

	p, err := l.Path(key)
	if err != nil {
		t.Fatalf("Path: %v", err)
	}
	if want := filepath.Join(dir, "uploads", "s1", "scene.blend"); p != want {
		t.Errorf("Path = %q, want %q", p, want)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "blend" {
		t.Errorf("reading Path: %q, %v", b, err)
	}
	for _, key := range []string{"uploads/s1/missing.blend", "uploads/s1", "uploads/s1/scene.blend/x"} {
		if _, err := l.Path(key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Path(%q) error = %v, want ErrNotFound", key, err)
		}
	}
	for _, key := range []string{"../outside", "/etc/passwd", "uploads//x"} {
		if _, err := l.Path(key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Path(%q) error = %v, want ErrInvalidKey", key, err)
		}
	}
}

func TestTempFolderIsReservedAndHidden(t *testing.T) {
	l, _, dir := newLocal(t, nil)
	ctx := t.Context()
	for _, key := range []string{".tmp", ".tmp/put-x"} {
		if _, err := l.Put(ctx, key, strings.NewReader("x"), testLimit); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Put(%q) error = %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := l.PresignPut(ctx, key, time.Minute); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("PresignPut(%q) error = %v, want ErrInvalidKey", key, err)
		}
	}
	// Only the top-level name is reserved.
	mustPut(t, l, "jobs/.tmp/x", "ok")

	// A write in progress and a stray symlink are not objects.
	os.WriteFile(filepath.Join(dir, ".tmp", "put-inflight"), []byte("partial"), 0o600)
	os.Symlink("jobs/.tmp/x", filepath.Join(dir, "link"))
	infos, err := l.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Key != "jobs/.tmp/x" {
		t.Errorf("List = %+v, want only jobs/.tmp/x", infos)
	}
}

func TestDeleteRemovesEmptyFolders(t *testing.T) {
	l, _, dir := newLocal(t, nil)
	ctx := t.Context()
	for _, key := range []string{"jobs/j1/frames/f1.png", "jobs/j1/logs/l1.txt", "jobs/j2/x", "uploads/s1/scene.blend"} {
		mustPut(t, l, key, "x")
	}
	exists := func(rel string) bool {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
		return err == nil
	}

	if err := l.DeletePrefix(ctx, "jobs/j1/"); err != nil {
		t.Fatal(err)
	}
	if exists("jobs/j1") || !exists("jobs/j2/x") {
		t.Errorf("after DeletePrefix(jobs/j1/): jobs/j1 exists %v, jobs/j2/x exists %v", exists("jobs/j1"), exists("jobs/j2/x"))
	}
	if err := l.DeletePrefix(ctx, "jobs/"); err != nil {
		t.Fatal(err)
	}
	if exists("jobs") {
		t.Error("jobs/ remains after DeletePrefix(jobs/)")
	}
	if err := l.Delete(ctx, "uploads/s1/scene.blend"); err != nil {
		t.Fatal(err)
	}
	if exists("uploads") {
		t.Error("uploads/ remains after deleting its only object")
	}
	if !exists(".tmp") {
		t.Error("the temp folder was removed")
	}
}

// TestSymlinkCannotEscape plants a link inside the store that points out of
// it: no operation may follow it outside.
func TestSymlinkCannotEscape(t *testing.T) {
	l, _, dir := newLocal(t, nil)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600)
	if err := os.Symlink(outside, filepath.Join(dir, "jobs")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	ctx := t.Context()
	if _, err := l.Get(ctx, "jobs/secret"); err == nil {
		t.Error("Get through an escaping symlink succeeded")
	}
	if _, err := l.Put(ctx, "jobs/planted", strings.NewReader("x"), testLimit); err == nil {
		t.Error("Put through an escaping symlink succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Error("a file was written outside the store")
	}
	u, _, _ := l.PresignGet(ctx, "jobs/secret", time.Minute, "")
	resp := mustDo(t, "GET", u, nil)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode == 200 || string(b) == "secret" {
		t.Errorf("presigned GET through an escaping symlink: %d %q", resp.StatusCode, b)
	}
}

func TestNewLocalRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".tmp")
	os.MkdirAll(tmp, 0o700)
	for _, name := range []string{"put-crashed", "put-live"} {
		os.WriteFile(filepath.Join(tmp, name), []byte("x"), 0o600)
	}
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(tmp, "put-crashed"), old, old)

	l, err := objstore.NewLocal(objstore.LocalConfig{Dir: dir, BaseURL: "http://127.0.0.1:1", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := os.Stat(filepath.Join(tmp, "put-crashed")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp file survived: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "put-live")); err != nil {
		t.Errorf("recent temp file removed: %v", err)
	}
}

// TestAbandonedWritesAreRemovedOnceUntouchedForLong: a Put's temp file
// left by a killed process goes once it has not been written to since the
// time given; a Put's that is being written, and a Copy's hard link
// (which has the times of the file it copies), stay.
func TestAbandonedWritesAreRemovedOnceUntouchedForLong(t *testing.T) {
	dir := t.TempDir()
	l, err := objstore.NewLocal(objstore.LocalConfig{Dir: dir, BaseURL: "http://127.0.0.1:1", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tmp := filepath.Join(dir, ".tmp")
	hourAgo := time.Now().Add(-time.Hour)
	for name, touched := range map[string]time.Time{
		"put-killed": hourAgo.Add(-time.Minute),
		"put-live":   time.Now(),
		"copy-link":  hourAgo.Add(-48 * time.Hour),
	} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(tmp, name), touched, touched); err != nil {
			t.Fatal(err)
		}
	}

	n, err := l.RemoveAbandonedWrites(hourAgo)

	if err != nil || n != 1 {
		t.Errorf("RemoveAbandonedWrites = %d, %v; want the killed Put's file alone", n, err)
	}
	for name, want := range map[string]bool{"put-killed": false, "put-live": true, "copy-link": true} {
		if _, err := os.Stat(filepath.Join(tmp, name)); (err == nil) != want {
			t.Errorf("%s: kept %v, want %v", name, err == nil, want)
		}
	}
}

// TestURLsSurviveRestartAndNewHost checks that a URL keeps working when the
// server restarts with the same secret file, even under another public URL.
func TestURLsSurviveRestartAndNewHost(t *testing.T) {
	dir := t.TempDir()
	secretPath := filepath.Join(t.TempDir(), "url-secret")
	secret, err := objstore.LoadOrCreateSecret(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	first, err := objstore.NewLocal(objstore.LocalConfig{Dir: dir, BaseURL: "http://127.0.0.1:1", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, first, "jobs/j1/frames.zip", "zip")
	u, _, _ := first.PresignGet(t.Context(), "jobs/j1/frames.zip", time.Hour, "frames.zip")
	first.Close()

	_, srv, _ := newLocal(t, func(c *objstore.LocalConfig) {
		c.Dir = dir
		c.Secret, err = objstore.LoadOrCreateSecret(secretPath)
		if err != nil {
			t.Fatal(err)
		}
	})
	moved := srv.URL + requestURI(t, u)
	resp := mustDo(t, "GET", moved, nil)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "zip" {
		t.Errorf("URL after restart under a new host: %d %q", resp.StatusCode, b)
	}
}

// TestCurl checks the contract's promise literally: `curl -T FILE URL`
// uploads and a bare curl downloads, with no other flags. curl sends
// "Expect: 100-continue" for a body this large, which the handler must
// handle too.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	l, _, _ := newLocal(t, func(c *objstore.LocalConfig) { c.MaxUploadBytes = 4 << 20 })
	tmp := t.TempDir()
	src := filepath.Join(tmp, "scene.blend")
	data := bytes.Repeat([]byte("BLENDER"), 300_000) // about 2 MiB
	os.WriteFile(src, data, 0o600)

	const key = "uploads/s1/scene.blend"
	putURL, _, _ := l.PresignPut(t.Context(), key, time.Minute)
	if out, err := exec.Command(curl, "-sS", "--fail-with-body", "-T", src, putURL).CombinedOutput(); err != nil {
		t.Fatalf("curl -T: %v: %s", err, out)
	}
	if got := readObject(t, l, key); got != string(data) {
		t.Fatalf("after curl -T the object has %d bytes, want %d", len(got), len(data))
	}

	getURL, _, _ := l.PresignGet(t.Context(), key, time.Minute, "shot 1.blend")
	cmd := exec.Command(curl, "-sS", "--fail-with-body", "-O", "-J", getURL)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl -O -J: %v: %s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(tmp, "shot 1.blend")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("curl saved %d bytes under the download name (%v), want %d", len(got), err, len(data))
	}

	// Over the limit, curl gets the JSON error, not a hang or a reset.
	big := filepath.Join(tmp, "big.blend")
	os.WriteFile(big, make([]byte, 5<<20), 0o600)
	out, err := exec.Command(curl, "-sS", "-w", "\n%{http_code}", "-T", big, putURL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PAYLOAD_TOO_LARGE") || !strings.HasSuffix(string(out), "413") {
		t.Errorf("curl -T of an oversize file: %v: %s", err, out)
	}
}

func mustPut(t *testing.T, l *objstore.Local, key, data string) {
	t.Helper()
	if _, err := l.Put(t.Context(), key, strings.NewReader(data), testLimit); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// readObject returns the object's content; it reports failures with
// t.Errorf so that it can run in a goroutine.
func readObject(t *testing.T, l *objstore.Local, key string) string {
	t.Helper()
	rc, err := l.Get(context.Background(), key)
	if err != nil {
		t.Errorf("Get(%q): %v", key, err)
		return ""
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Errorf("Get(%q): %v", key, err)
	}
	return string(b)
}

// mustDo sends a request with no headers, as a bare client would, and
// returns the response with its body read into memory.
func mustDo(t *testing.T, method, u string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func requestURI(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

func dial(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn
}

// tempBytes is the total size of the files in the store's temp folder.
func tempBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, f := range tempFiles(t, dir) {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, ".tmp", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// waitNoTempFiles waits for the handler to clean up: it runs on the server's
// goroutine, which may finish after the client has its answer.
func waitNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	waitFor(t, "no temp files", func() bool { return len(tempFiles(t, dir)) == 0 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
