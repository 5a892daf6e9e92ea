package objstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
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

// bucketTraffic counts what a bucket sent a store: the GETs of objects,
// and the bytes of their bodies. It sits between them as a proxy.
type bucketTraffic struct {
	gets, bytes atomic.Int64
}

func (b *bucketTraffic) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet || r.URL.RawQuery != "" {
		return resp, err
	}
	b.gets.Add(1)
	resp.Body = countedBody{resp.Body, &b.bytes}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countedBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// newWatchedS3 is a test bucket whose traffic to the store is counted.
func newWatchedS3(t *testing.T) (*objstore.S3, *bucketTraffic) {
	t.Helper()
	cfg := testS3Config(t)
	target, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	traffic := &bucketTraffic{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = traffic
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	cfg.Endpoint = srv.URL
	s, err := objstore.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, traffic
}

// TestGatewayAsksTheBucketForWhatItSends: a download through the gateway
// costs the bucket about what the client gets, however the client asks.
// One range is one GET of that range; a header of many ranges is answered
// whole, with one GET; a range outside the object costs nothing and
// counts nothing; and a download resumed after the object was replaced
// starts over with the new version instead of splicing two.
func TestGatewayAsksTheBucketForWhatItSends(t *testing.T) {
	s3TestEndpoint(t)
	bucket, traffic := newWatchedS3(t)
	var mu sync.Mutex
	counted := int64(0)
	g, _ := newGateway(t, bucket, func(c *objstore.GatewayConfig) {
		c.Served = func(_ context.Context, _ string, n int64) error {
			mu.Lock()
			defer mu.Unlock()
			counted += n
			return nil
		}
	})
	countedNow := func() int64 {
		time.Sleep(50 * time.Millisecond) // counted just after the answer
		mu.Lock()
		defer mu.Unlock()
		n := counted
		counted = 0
		return n
	}
	const key = "jobs/j1/frames/frame_0001.exr"
	const size = 4 << 20
	data := strings.Repeat("0123456789abcdef", size/16)
	if _, err := bucket.Put(t.Context(), key, strings.NewReader(data), testLimit); err != nil {
		t.Fatal(err)
	}
	u, _, err := g.PresignGet(t.Context(), key, time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	get := func(header http.Header) (*http.Response, string) {
		t.Helper()
		traffic.gets.Store(0)
		traffic.bytes.Store(0)
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	resp, body := get(http.Header{"Range": {"bytes=100-109"}})
	if resp.StatusCode != http.StatusPartialContent || body != data[100:110] {
		t.Errorf("one range = %d %q", resp.StatusCode, body)
	}
	if gets, bytes := traffic.gets.Load(), traffic.bytes.Load(); gets != 1 || bytes != 10 {
		t.Errorf("one range of 10 bytes cost the bucket %d GETs and %d bytes; want 1 and 10", gets, bytes)
	}
	if n := countedNow(); n != 10 {
		t.Errorf("counted %d bytes for a range of 10", n)
	}

	many := "bytes=" + strings.TrimSuffix(strings.Repeat("0-0,", 300), ",")
	resp, body = get(http.Header{"Range": {many}})
	if resp.StatusCode != http.StatusOK || len(body) != size {
		t.Errorf("300 ranges = %d, %d bytes; want the whole object, 200", resp.StatusCode, len(body))
	}
	if gets, bytes := traffic.gets.Load(), traffic.bytes.Load(); gets != 1 || bytes != size {
		t.Errorf("300 ranges cost the bucket %d GETs and %d bytes; want 1 GET of the object", gets, bytes)
	}
	if n := countedNow(); n != size {
		t.Errorf("counted %d bytes for the whole object of %d", n, size)
	}

	resp, _ = get(http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", size, size+10)}})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || traffic.gets.Load() != 0 {
		t.Errorf("a range past the end = %d, %d GETs; want 416 and none", resp.StatusCode, traffic.gets.Load())
	}
	if n := countedNow(); n != 0 {
		t.Errorf("counted %d bytes for a refused range", n)
	}

	// A client that has the first half resumes with If-Range, after the
	// object was replaced within the same second.
	resp, _ = get(http.Header{"Range": {"bytes=0-9"}})
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("a download has no ETag to resume with")
	}
	replaced := strings.Repeat("NEW!", size/4)
	if _, err := bucket.Put(t.Context(), key, strings.NewReader(replaced), testLimit); err != nil {
		t.Fatal(err)
	}
	resp, body = get(http.Header{"Range": {"bytes=10-"}, "If-Range": {etag}})
	if resp.StatusCode != http.StatusOK || body != replaced {
		t.Errorf("a download resumed after the object was replaced = %d, %d bytes starting %q; want 200 and the new object whole", resp.StatusCode, len(body), body[:min(len(body), 8)])
	}
}
