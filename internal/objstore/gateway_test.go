package objstore_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/objstore/objstoretest"
)

// newGateway puts bucket behind a server that mounts the gateway's Handler
// the way the real server does.
func newGateway(t *testing.T, bucket objstore.Opener, configure func(*objstore.GatewayConfig)) (*objstore.Gateway, *httptest.Server) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := objstore.GatewayConfig{Bucket: bucket, BaseURL: srv.URL, Secret: testSecret}
	if configure != nil {
		configure(&cfg)
	}
	g, err := objstore.NewGateway(cfg)
	if err != nil {
		t.Fatalf("NewGateway: %v", err)
	}
	mux.Handle(objstore.ObjectsPath, g.Handler())
	return g, srv
}

// TestGatewayConformance runs the suite on a bucket behind a gateway: its
// download URLs are the gateway's, everything else the bucket's, and the
// store means the same as any other.
func TestGatewayConformance(t *testing.T) {
	s3TestEndpoint(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		g, _ := newGateway(t, newTestS3(t, nil), nil)
		return g
	})
}

// download is one count the gateway reported.
type download struct {
	key   string
	bytes int64
}

// TestGatewayServesAndCountsDownloads: a download URL is the farm's; the
// bytes it sends, whole or a range, are counted once the answer is sent;
// uploads still go to the bucket, and the gateway takes none.
func TestGatewayServesAndCountsDownloads(t *testing.T) {
	bucket, bucketSrv, _ := newLocal(t, nil) // any Opener will do as the bucket
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	var counted []download
	g, srv := newGateway(t, bucket, func(c *objstore.GatewayConfig) {
		c.Now = func() time.Time { return now }
		c.Served = func(_ context.Context, key string, bytes int64) error {
			mu.Lock()
			defer mu.Unlock()
			counted = append(counted, download{key, bytes})
			return nil
		}
	})
	takeCounts := func() []download {
		mu.Lock()
		defer mu.Unlock()
		c := counted
		counted = nil
		return c
	}
	const key = "jobs/j1/frames/frame_0001.png"
	mustPut(t, bucket, key, "0123456789abcdefghij")

	u, expires, err := g.PresignGet(t.Context(), key, time.Hour, "shot 010.png")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, srv.URL+objstore.ObjectsPath+key+"?") || !expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("download URL %s (expires %v) is not the gateway's", u, expires)
	}
	if up, _, err := g.PresignPut(t.Context(), "uploads/s1/scene.blend", time.Hour); err != nil || !strings.HasPrefix(up, bucketSrv.URL) {
		t.Errorf("upload URL %s, %v: want the bucket's own", up, err)
	}

	get := func(method, url string, header http.Header) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get("GET", u, nil); status != 200 || body != "0123456789abcdefghij" {
		t.Errorf("GET = %d %q", status, body)
	}
	if status, body := get("GET", u, http.Header{"Range": {"bytes=10-14"}}); status != 206 || body != "abcde" {
		t.Errorf("ranged GET = %d %q, want 206 abcde", status, body)
	}
	if status, _ := get("HEAD", u, nil); status != 200 {
		t.Errorf("HEAD = %d", status)
	}
	// The counts are told after each answer, which the client may have
	// read whole a moment before.
	var got []download
	for deadline := time.Now().Add(5 * time.Second); len(got) < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = append(got, takeCounts()...)
	}
	want := []download{{key, 20}, {key, 5}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("counted %v, want %v (a HEAD sends no bytes)", got, want)
	}

	errorOf := func(method, url string) (int, string, string) {
		t.Helper()
		rec := httptest.NewRecorder()
		g.Handler().ServeHTTP(rec, httptest.NewRequest(method, url, strings.NewReader("x")))
		var e apiError
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		return rec.Code, e.Error.Code, e.Error.Message
	}
	if status, code, msg := errorOf("PUT", u); status != 403 || code != "INVALID_SIGNATURE" || !strings.Contains(msg, "PUT for an upload URL") {
		t.Errorf("PUT to a download URL = %d %s %q, want 403 INVALID_SIGNATURE", status, code, msg)
	}
	if status, code, msg := errorOf("DELETE", u); status != 405 || code != "METHOD_NOT_ALLOWED" || !strings.Contains(msg, "upload URL") {
		t.Errorf("DELETE = %d %s %q, want 405 METHOD_NOT_ALLOWED", status, code, msg)
	}
	// A URL signed with another secret, or with its name changed, is
	// refused.
	other, _ := objstore.NewGateway(objstore.GatewayConfig{Bucket: bucket, BaseURL: srv.URL, Secret: []byte(strings.Repeat("other secret!", 3)), Now: func() time.Time { return now }})
	forged, _, _ := other.PresignGet(t.Context(), key, time.Hour, "")
	if status, code, _ := errorOf("GET", forged); status != 403 || code != "INVALID_SIGNATURE" {
		t.Errorf("a URL signed with another secret = %d %s, want 403 INVALID_SIGNATURE", status, code)
	}
	if status, code, _ := errorOf("GET", strings.Replace(u, "shot", "evil", 1)); status != 403 || code != "INVALID_SIGNATURE" {
		t.Errorf("a URL with its name changed = %d %s, want 403 INVALID_SIGNATURE", status, code)
	}
	now = now.Add(2 * time.Hour)
	if status, code, msg := errorOf("GET", u); status != 403 || code != "URL_EXPIRED" || !strings.Contains(msg, "download URL expired") {
		t.Errorf("an expired URL = %d %s %q, want 403 URL_EXPIRED", status, code, msg)
	}
	now = now.Add(-2 * time.Hour)
	if err := bucket.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if status, code, _ := errorOf("GET", u); status != 404 || code != "NOT_FOUND" {
		t.Errorf("the URL of a deleted object = %d %s, want 404 NOT_FOUND", status, code)
	}
	if got := takeCounts(); len(got) != 0 {
		t.Errorf("refused requests counted %v", got)
	}
}
