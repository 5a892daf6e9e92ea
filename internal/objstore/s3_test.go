package objstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/objstore/objstoretest"
)

// s3TestEndpoint is the S3-compatible server the tests use (Versity
// Gateway, which checks signatures and expiry for real). scripts/test.sh
// starts it and sets the variable, with the credentials in the standard
// AWS variables.
func s3TestEndpoint(t *testing.T) string {
	t.Helper()
	endpoint := os.Getenv("RENDERFARM_TEST_S3_ENDPOINT")
	if endpoint == "" {
		t.Skip("RENDERFARM_TEST_S3_ENDPOINT is not set: run scripts/test.sh, which starts an S3-compatible server (Versity Gateway) and sets it")
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" || os.Getenv("AWS_SECRET_ACCESS_KEY") == "" {
		t.Fatal("RENDERFARM_TEST_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not; run scripts/test.sh, which sets all three")
	}
	return endpoint
}

// testS3Config returns the config of a bucket of its own on the test server,
// created now and removed, with everything in it, when the test ends.
func testS3Config(t *testing.T) objstore.S3Config {
	t.Helper()
	endpoint := s3TestEndpoint(t)
	bucket := "renderfarm-test-" + strings.ToLower(rand.Text()[:16])
	cfg, err := objstore.ParseS3URL("s3://" + bucket + "?endpoint=" + url.QueryEscape(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	admin := s3Admin(t, cfg)
	if err := admin.MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
		t.Fatalf("creating bucket %s: %v", bucket, err)
	}
	t.Cleanup(func() { removeBucket(t, admin, bucket) })
	return cfg
}

// s3Admin is a client of the test server that sees the bucket as it is, to
// check what the store did and to clean up after it.
func s3Admin(t *testing.T, cfg objstore.S3Config) *minio.Core {
	t.Helper()
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.NewCore(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
		Secure:       u.Scheme == "https",
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func removeBucket(t *testing.T, admin *minio.Core, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for u := range admin.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err == nil {
			admin.AbortMultipartUpload(ctx, bucket, u.Key, u.UploadID)
		}
	}
	for o := range admin.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err == nil {
			admin.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{})
		}
	}
	if err := admin.RemoveBucket(ctx, bucket); err != nil {
		t.Errorf("removing test bucket %s: %v", bucket, err)
	}
}

func newTestS3(t *testing.T, configure func(*objstore.S3Config)) *objstore.S3 {
	t.Helper()
	cfg := testS3Config(t)
	if configure != nil {
		configure(&cfg)
	}
	s, err := objstore.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

func TestS3Conformance(t *testing.T) {
	s3TestEndpoint(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return newTestS3(t, nil)
	})
}

// TestS3ConformanceSmallParts runs the suite with S3's smallest part size,
// so that its large object goes up as a multipart upload.
func TestS3ConformanceSmallParts(t *testing.T) {
	s3TestEndpoint(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return newTestS3(t, func(c *objstore.S3Config) { c.PartSize = 5 << 20 })
	})
}

func TestNewS3MissingBucket(t *testing.T) {
	cfg := testS3Config(t)
	cfg.Bucket = "renderfarm-missing-" + strings.ToLower(rand.Text()[:16])
	_, err := objstore.NewS3(t.Context(), cfg)
	want := `bucket "` + cfg.Bucket + `" does not exist at ` + cfg.Endpoint + "; create it with `aws s3 mb s3://" + cfg.Bucket + " --endpoint-url " + cfg.Endpoint
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("NewS3 with a missing bucket: %v\nwant an error containing %q", err, want)
	}
}

func TestNewS3WrongCredentials(t *testing.T) {
	cfg := testS3Config(t)
	for name, change := range map[string]func(*objstore.S3Config){
		"wrong secret":     func(c *objstore.S3Config) { c.SecretAccessKey += "-wrong" },
		"unknown key id":   func(c *objstore.S3Config) { c.AccessKeyID = "renderfarm-nobody" },
		"wrong everything": func(c *objstore.S3Config) { c.AccessKeyID, c.SecretAccessKey = "AKIAWRONG", "wrong" },
	} {
		t.Run(name, func(t *testing.T) {
			c := cfg
			change(&c)
			_, err := objstore.NewS3(t.Context(), c)
			want := "the credentials were refused by " + cfg.Endpoint
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") {
				t.Errorf("NewS3: %v\nwant an error containing %q and naming the variables", err, want)
			}
			if err != nil && strings.Contains(err.Error(), c.SecretAccessKey) {
				t.Errorf("the error shows the secret key: %v", err)
			}
		})
	}
}

func TestNewS3Unreachable(t *testing.T) {
	// A port that was free a moment ago: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close()
	cfg := objstore.S3Config{Bucket: "renderfarm", Endpoint: endpoint, AccessKeyID: "ak", SecretAccessKey: "sk"}
	start := time.Now()
	_, err = objstore.NewS3(t.Context(), cfg)
	want := endpoint + " is unreachable: "
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("NewS3: %v\nwant an error containing %q", err, want)
	}
	t.Logf("gave up after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestNewS3RefusesBadConfig(t *testing.T) {
	good := objstore.S3Config{Bucket: "renderfarm", Endpoint: "http://127.0.0.1:9000", AccessKeyID: "ak", SecretAccessKey: "sk"}
	tests := []struct {
		name   string
		change func(*objstore.S3Config)
		want   string
	}{
		{"no bucket", func(c *objstore.S3Config) { c.Bucket = "" }, "no bucket"},
		{"no key id", func(c *objstore.S3Config) { c.AccessKeyID = "" }, "set AWS_ACCESS_KEY_ID in the environment"},
		{"no secret", func(c *objstore.S3Config) { c.SecretAccessKey = "" }, "set AWS_SECRET_ACCESS_KEY in the environment"},
		{"no credentials", func(c *objstore.S3Config) { c.AccessKeyID, c.SecretAccessKey = "", "" }, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{"endpoint without scheme", func(c *objstore.S3Config) { c.Endpoint = "127.0.0.1:9000" }, "must be an http or https URL"},
		{"endpoint with path", func(c *objstore.S3Config) { c.Endpoint = "http://127.0.0.1:9000/renderfarm" }, "only the server's scheme, host and port"},
		{"part too small", func(c *objstore.S3Config) { c.PartSize = 1 << 20 }, "5 MiB to 5 GiB"},
		{"bad prefix", func(c *objstore.S3Config) { c.Prefix = "../farm" }, `"." or ".."`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			_, err := objstore.NewS3(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewS3(%v) = %v, want an error containing %q", cfg, err, tc.want)
			}
		})
	}
}

// lazyReader produces size bytes of a fixed pattern without holding them,
// and samples the live heap as it goes, so a test can see how much of the
// stream the consumer keeps in memory.
type lazyReader struct {
	size, off   int64
	nextSample  int64
	baseline    uint64
	maxLiveGrow uint64
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.off >= l.size {
		return 0, io.EOF
	}
	if l.off >= l.nextSample {
		l.sample()
		l.nextSample += 2 << 20
	}
	n := int(min(int64(len(p)), l.size-l.off))
	for i := range p[:n] {
		p[i] = byte((l.off + int64(i)) % 251)
	}
	l.off += int64(n)
	return n, nil
}

// sample collects garbage first, so it measures what is still referenced
// rather than what the collector has not reached yet.
func (l *lazyReader) sample() {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	if m.HeapInuse > l.baseline {
		l.maxLiveGrow = max(l.maxLiveGrow, m.HeapInuse-l.baseline)
	}
}

// TestS3PutStreams puts 40 MiB from a reader that has no length and is not
// a Seeker, and checks that the live heap never grew by anything near the
// body's size: Put holds one part (16 MiB by default), not the object.
func TestS3PutStreams(t *testing.T) {
	s := newTestS3(t, nil)
	const size = 40 << 20
	src := &lazyReader{size: size}
	// Twice: part buffers pooled by earlier stores are only freed by the
	// second collection, and must not count in the baseline.
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	src.baseline = m.HeapInuse

	n, err := s.Put(t.Context(), "jobs/j1/frames.zip", struct{ io.Reader }{src}, testLimit)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n != size {
		t.Errorf("Put returned %d, want %d", n, size)
	}
	t.Logf("live heap grew by at most %.1f MiB while putting %d MiB", float64(src.maxLiveGrow)/(1<<20), size>>20)
	if limit := uint64(objstore.DefaultS3PartSize + 8<<20); src.maxLiveGrow > limit {
		t.Errorf("live heap grew by %d MiB during Put, want at most %d MiB (one part and some slack)", src.maxLiveGrow>>20, limit>>20)
	}

	want := sha256.New()
	io.Copy(want, &lazyReader{size: size, nextSample: size})
	rc, err := s.Get(t.Context(), "jobs/j1/frames.zip")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	got := sha256.New()
	if n, err := io.Copy(got, rc); err != nil || n != size {
		t.Fatalf("reading back: %d bytes, %v", n, err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Error("object read back differs from what was put")
	}
}

// brokenAfter yields n bytes of noise, then fails.
type brokenAfter struct{ n int }

func (b *brokenAfter) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errors.New("source broke")
	}
	n := min(len(p), b.n)
	for i := range p[:n] {
		p[i] = byte(mrand.Uint32())
	}
	b.n -= n
	return n, nil
}

// TestS3FailedMultipartLeavesNothing checks that a multipart upload that
// fails, runs past its size limit, or whose context ends, after some parts
// went up is aborted: the
// old object stays, and no invisible parts are left in the bucket.
func TestS3FailedMultipartLeavesNothing(t *testing.T) {
	cfg := testS3Config(t)
	cfg.PartSize = 5 << 20
	s, err := objstore.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := s3Admin(t, cfg)
	const key = "jobs/j1/frames.zip"
	if _, err := s.Put(t.Context(), key, strings.NewReader("old"), testLimit); err != nil {
		t.Fatal(err)
	}

	if _, err := s.Put(t.Context(), key, &brokenAfter{n: 12 << 20}, testLimit); err == nil || !strings.Contains(err.Error(), "source broke") {
		t.Errorf("Put from a reader that breaks after 12 MiB = %v, want the reader's error", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	r := io.MultiReader(io.LimitReader(&brokenAfter{n: 12 << 20}, 11<<20), readerFunc(func([]byte) (int, error) {
		cancel()
		return 0, io.EOF
	}))
	if _, err := s.Put(ctx, key, r, testLimit); !errors.Is(err, context.Canceled) {
		t.Errorf("Put canceled after two parts = %v, want context.Canceled", err)
	}

	// A stream that runs past its limit after two parts went up.
	if _, err := s.Put(t.Context(), key, &brokenAfter{n: 64 << 20}, 12<<20); !errors.Is(err, objstore.ErrTooLarge) {
		t.Errorf("Put of 64 MiB with a limit of 12 MiB = %v, want ErrTooLarge", err)
	}

	if got := readAll(t, s, key); got != "old" {
		t.Errorf("after failed Puts the object holds %d bytes, want the old object", len(got))
	}
	for u := range admin.ListIncompleteUploads(t.Context(), cfg.Bucket, "", true) {
		t.Errorf("an incomplete upload was left behind: %+v", u)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestS3Prefix checks that a store with a prefix keeps inside it: keys are
// stored under it, listed and deleted without it, and objects outside are
// neither seen nor touched.
func TestS3Prefix(t *testing.T) {
	cfg := testS3Config(t)
	admin := s3Admin(t, cfg)
	outside := []string{"farm10/jobs/j1/a.png", "other.txt"}
	for _, k := range outside {
		if _, err := admin.PutObject(t.Context(), cfg.Bucket, k, strings.NewReader(k), int64(len(k)), "", "", minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Prefix = "farm1" // the trailing "/" is added
	s, err := objstore.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := s.Put(t.Context(), "jobs/j1/a.png", strings.NewReader("A"), testLimit); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.StatObject(t.Context(), cfg.Bucket, "farm1/jobs/j1/a.png", minio.StatObjectOptions{}); err != nil {
		t.Errorf("the object is not stored under the prefix: %v", err)
	}
	infos, err := s.List(t.Context(), "")
	if err != nil || len(infos) != 1 || infos[0].Key != "jobs/j1/a.png" {
		t.Errorf("List = %+v, %v; want only jobs/j1/a.png", infos, err)
	}
	u, _, err := s.PresignGet(t.Context(), "jobs/j1/a.png", time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := httpDo(t, http.MethodGet, u, nil); status != http.StatusOK || body != "A" {
		t.Errorf("GET presigned URL = %d %q, want 200 %q", status, body, "A")
	}
	if err := s.DeletePrefix(t.Context(), "jobs/"); err != nil {
		t.Fatal(err)
	}
	for _, k := range outside {
		if _, err := admin.StatObject(t.Context(), cfg.Bucket, k, minio.StatObjectOptions{}); err != nil {
			t.Errorf("%s, outside the prefix, is gone: %v", k, err)
		}
	}
	if _, err := s.Stat(t.Context(), "jobs/j1/a.png"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Stat after DeletePrefix = %v, want ErrNotFound", err)
	}

	// The limit on key length counts the prefix, which S3 stores too.
	long := strings.Repeat("k/", objstore.MaxKeyLen/2-1) + "kk"
	if _, err := s.Put(t.Context(), long, strings.NewReader("x"), testLimit); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Errorf("Put of a key that is too long with the prefix = %v, want ErrInvalidKey", err)
	}
}

// TestS3PresignedURLs pins what makes the URLs work for any client:
// path-style on the endpoint, only the host signed, the download name and
// type as signed response overrides, and expiresAt as S3 enforces it.
func TestS3PresignedURLs(t *testing.T) {
	cfg := testS3Config(t)
	s, err := objstore.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	const key = "jobs/j1/frames/frame_0001.png"
	before := time.Now()
	putURL, putExp, err := s.PresignPut(t.Context(), key, objstore.MaxPresignTTL)
	if err != nil {
		t.Fatal(err)
	}
	getURL, _, err := s.PresignGet(t.Context(), key, time.Minute, "shot 1 é.png")
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{putURL, getURL} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := u.Scheme+"://"+u.Host+u.Path, cfg.Endpoint+"/"+cfg.Bucket+"/"+key; got != want {
			t.Errorf("URL %s addresses %s, want %s (path-style on the endpoint)", raw, got, want)
		}
		if got := u.Query().Get("X-Amz-SignedHeaders"); got != "host" {
			t.Errorf("URL %s signs headers %q, want only host", raw, got)
		}
	}
	q := mustQuery(t, putURL)
	if got := q.Get("X-Amz-Expires"); got != "604800" {
		t.Errorf("upload URL for MaxPresignTTL has X-Amz-Expires %s, want 604800 (S3's limit)", got)
	}
	signed, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		t.Fatal(err)
	}
	if !putExp.Equal(signed.Add(objstore.MaxPresignTTL)) {
		t.Errorf("expiresAt %v, want X-Amz-Date + X-Amz-Expires = %v", putExp, signed.Add(objstore.MaxPresignTTL))
	}
	if putExp.Before(before.Add(objstore.MaxPresignTTL - time.Second)) {
		t.Errorf("expiresAt %v is more than a second short of the ttl", putExp)
	}

	q = mustQuery(t, getURL)
	if _, params, err := mime.ParseMediaType(q.Get("response-content-disposition")); err != nil || params["filename"] != "shot 1 é.png" {
		t.Errorf("response-content-disposition = %q (%v), want the download name", q.Get("response-content-disposition"), err)
	}
	if got := q.Get("response-content-type"); got != "image/png" {
		t.Errorf("response-content-type = %q, want image/png", got)
	}

	// An upload that declares another type is still served as the key's
	// type: the uploader does not choose what browsers get.
	if status, body := httpDo(t, http.MethodPut, putURL, http.Header{"Content-Type": {"text/html"}}); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, body)
	}
	resp := httpResponse(t, getURL)
	if got := resp.Header.Get("Content-Type"); got != "image/png" {
		t.Errorf("GET Content-Type = %q, want image/png", got)
	}
}

// TestS3Curl checks that a bare `curl -T FILE URL` uploads and a bare curl
// downloads under the download name, with no other flags, straight from the
// bucket.
func TestS3Curl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	s := newTestS3(t, nil)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "scene.blend")
	data := bytes.Repeat([]byte("BLENDER"), 300_000) // about 2 MiB
	os.WriteFile(src, data, 0o600)

	const key = "uploads/s1/scene.blend"
	putURL, _, err := s.PresignPut(t.Context(), key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(curl, "-sS", "--fail-with-body", "-T", src, putURL).CombinedOutput(); err != nil {
		t.Fatalf("curl -T: %v: %s", err, out)
	}
	if got := readAll(t, s, key); got != string(data) {
		t.Fatalf("after curl -T the object has %d bytes, want %d", len(got), len(data))
	}

	getURL, _, err := s.PresignGet(t.Context(), key, time.Minute, "shot 1.blend")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(curl, "-sS", "--fail-with-body", "-O", "-J", getURL)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl -O -J: %v: %s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(tmp, "shot 1.blend")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("curl saved %d bytes under the download name (%v), want %d", len(got), err, len(data))
	}
}

func TestParseS3URL(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-k3y")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	creds := func(c objstore.S3Config) objstore.S3Config {
		c.AccessKeyID, c.SecretAccessKey = "AKIDEXAMPLE", "s3cr3t-k3y"
		c.PartSize = objstore.DefaultS3PartSize
		return c
	}
	tests := []struct {
		raw  string
		env  map[string]string
		want objstore.S3Config
	}{
		{raw: "s3://renderfarm?endpoint=http://127.0.0.1:9000&region=eu-central-1",
			want: creds(objstore.S3Config{Bucket: "renderfarm", Endpoint: "http://127.0.0.1:9000", Region: "eu-central-1"})},
		{raw: "s3://renderfarm/?endpoint=https%3A%2F%2Fminio.example.com%2F",
			want: creds(objstore.S3Config{Bucket: "renderfarm", Endpoint: "https://minio.example.com", Region: "us-east-1"})},
		{raw: "s3://my-farm-bucket",
			want: creds(objstore.S3Config{Bucket: "my-farm-bucket", Region: "us-east-1"})},
		{raw: "s3://my-farm-bucket", env: map[string]string{"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"},
			want: creds(objstore.S3Config{Bucket: "my-farm-bucket", Region: "eu-west-1"})},
		{raw: "s3://my-farm-bucket", env: map[string]string{"AWS_DEFAULT_REGION": "ap-south-1"},
			want: creds(objstore.S3Config{Bucket: "my-farm-bucket", Region: "ap-south-1"})},
		{raw: "s3://my-farm-bucket?region=us-west-2", env: map[string]string{"AWS_REGION": "eu-west-1"},
			want: creds(objstore.S3Config{Bucket: "my-farm-bucket", Region: "us-west-2"})},
		{raw: "s3://my.farm.bucket?prefix=studio/farm1",
			want: creds(objstore.S3Config{Bucket: "my.farm.bucket", Region: "us-east-1", Prefix: "studio/farm1/"})},
		{raw: "s3://renderfarm?endpoint=http://[::1]:9000&prefix=farm1/",
			want: creds(objstore.S3Config{Bucket: "renderfarm", Endpoint: "http://[::1]:9000", Region: "us-east-1", Prefix: "farm1/"})},
		{raw: "s3://Render_Farm?endpoint=http://127.0.0.1:9000",
			want: creds(objstore.S3Config{Bucket: "Render_Farm", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1"})},
		{raw: "s3://renderfarm", env: map[string]string{"AWS_SESSION_TOKEN": "tok"},
			want: func() objstore.S3Config {
				c := creds(objstore.S3Config{Bucket: "renderfarm", Region: "us-east-1"})
				c.SessionToken = "tok"
				return c
			}()},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := objstore.ParseS3URL(tc.raw)
			if err != nil {
				t.Fatalf("ParseS3URL: %v", err)
			}
			if got != tc.want {
				t.Errorf("ParseS3URL = %#v\nwant          %#v", got, tc.want)
			}
			if str := got.String() + got.GoString(); strings.Contains(str, "s3cr3t") || strings.Contains(str, "AKIDEXAMPLE") {
				t.Errorf("String shows credentials: %s", str)
			}
		})
	}

	bad := []struct {
		raw, want string
	}{
		{"", "must start with s3://"},
		{"renderfarm", "must start with s3://"},
		{"http://renderfarm", "must start with s3://"},
		{"s3:renderfarm", "must start with s3://"},
		{"s3://", "names no bucket"},
		{"s3://?endpoint=http://127.0.0.1:9000", "names no bucket"},
		{"s3://key:hunter2@renderfarm", "credentials do not belong in the URL"},
		{"s3://renderfarm:9000", "give the server's address as endpoint="},
		{"s3://renderfarm/studio/farm1", "prefix=studio/farm1"},
		{"s3://renderfarm#x", "fragment"},
		{"s3://renderfarm?endpoint=127.0.0.1:9000", "must be an http or https URL"},
		{"s3://renderfarm?endpoint=minio:9000", "must be an http or https URL"},
		{"s3://renderfarm?endpoint=ftp://127.0.0.1", "must be an http or https URL"},
		{"s3://renderfarm?endpoint=http://127.0.0.1:9000/renderfarm", "only the server's scheme, host and port"},
		{"s3://renderfarm?endpiont=http://127.0.0.1:9000", `unknown parameter "endpiont"`},
		{"s3://renderfarm?region=a&region=b", "gives region more than once"},
		{"s3://renderfarm?endpoint=&region=us-east-1", "gives endpoint with no value"},
		{"s3://renderfarm?region=%zz", "query is malformed"},
		{"s3://Render_Farm", "not a valid AWS S3 bucket name"},
		{"s3://rf?endpoint=http://127.0.0.1:9000", "not a valid bucket name"},
		{"s3://renderfarm?prefix=/farm1", "relative"},
		{"s3://renderfarm?prefix=farm1//", "empty segment"},
		{"s3://renderfarm?prefix=../farm1", `"." or ".."`},
		{"s3://renderfarm\x7f", "not a URL"},
	}
	for _, tc := range bad {
		_, err := objstore.ParseS3URL(tc.raw)
		if err == nil {
			t.Errorf("ParseS3URL(%q) succeeded, want an error", tc.raw)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || !strings.Contains(msg, "for example s3://") {
			t.Errorf("ParseS3URL(%q) = %v\nwant an error containing %q and an example", tc.raw, err, tc.want)
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("ParseS3URL(%q) shows the password: %v", tc.raw, err)
		}
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// readAll returns the object's content, failing the test if it cannot.
func readAll(t *testing.T, s objstore.Store, key string) string {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): reading: %v", key, err)
	}
	return string(b)
}

// httpDo sends a request with no headers but hdr and an empty body for PUT,
// and returns the status and body.
func httpDo(t *testing.T, method, u string, hdr http.Header) (int, string) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPut {
		body = strings.NewReader("not really a png " + strconv.Itoa(mrand.Int()))
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func httpResponse(t *testing.T, u string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", u, resp.StatusCode)
	}
	return resp
}

// TestS3AbortStaleUploadsTakesThoseAKilledProcessLeft: a process killed
// during a multipart Put never aborts its upload, whose parts stay in the
// bucket, invisible to List. AbortStaleUploads aborts the uploads under
// its prefix begun before the time it is given, and leaves those begun
// since, which a live process may still be sending, and those elsewhere.
func TestS3AbortStaleUploadsTakesThoseAKilledProcessLeft(t *testing.T) {
	cfg := testS3Config(t)
	s, err := objstore.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := s3Admin(t, cfg)
	// What a Put killed after its first part leaves behind.
	begin := func(key string) string {
		t.Helper()
		id, err := admin.NewMultipartUpload(t.Context(), cfg.Bucket, key, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		part := strings.Repeat("x", 5<<20)
		if _, err := admin.PutObjectPart(t.Context(), cfg.Bucket, key, id, 1, strings.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	begin("jobs/j1/frames/t1.1/frame_0001.exr")
	elsewhere := begin("elsewhere/backup.tar")
	t.Cleanup(func() {
		admin.AbortMultipartUpload(context.Background(), cfg.Bucket, "elsewhere/backup.tar", elsewhere)
	})
	unfinished := func() []string {
		var keys []string
		for u := range admin.ListIncompleteUploads(t.Context(), cfg.Bucket, "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			keys = append(keys, u.Key)
		}
		slices.Sort(keys)
		return keys
	}

	if n, err := s.AbortStaleUploads(t.Context(), "jobs/", time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("AbortStaleUploads of those begun an hour ago = %d, %v; want none aborted", n, err)
	}
	if got := unfinished(); len(got) != 2 {
		t.Fatalf("unfinished uploads = %q, want both still there", got)
	}

	if n, err := s.AbortStaleUploads(t.Context(), "jobs/", time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Errorf("AbortStaleUploads = %d, %v; want the one under jobs/ aborted", n, err)
	}
	if got := unfinished(); !slices.Equal(got, []string{"elsewhere/backup.tar"}) {
		t.Errorf("unfinished uploads = %q, want only the one outside jobs/", got)
	}
}
