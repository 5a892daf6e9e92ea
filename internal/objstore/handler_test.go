package objstore_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/objstore"
)

// closedUpload is what the farm's AcceptPut hook answers for an upload a
// job was made from.
var closedUpload = &objstore.PutRefusal{
	Status:  http.StatusConflict,
	Code:    "UPLOAD_USED",
	Message: "this upload was used to create a job; request a new upload URL",
}

// TestAcceptPutRefusesAClosedUpload: a PUT with a good signature to an
// upload the hook calls closed is answered with the hook's refusal, and
// nothing is stored.
func TestAcceptPutRefusesAClosedUpload(t *testing.T) {
	const key = "uploads/s1/scene.blend"
	var asked []string
	l, _, dir := newLocal(t, func(c *objstore.LocalConfig) {
		c.AcceptPut = func(_ context.Context, k string, _ int64, _ func() error) error {
			asked = append(asked, k)
			return closedUpload
		}
	})
	mustPut(t, l, key, "validated")
	u, _, _ := l.PresignPut(t.Context(), key, time.Minute)

	resp := mustDo(t, "PUT", u, strings.NewReader("something else"))
	e := decodeError(t, resp)
	if resp.StatusCode != http.StatusConflict || e.Error.Code != "UPLOAD_USED" || e.Error.Message != closedUpload.Message {
		t.Errorf("PUT to a closed upload = %d %+v, want the hook's 409 UPLOAD_USED", resp.StatusCode, e)
	}
	if len(asked) != 1 || asked[0] != key {
		t.Errorf("the hook was asked about %q, want once about %q", asked, key)
	}
	if got := readObject(t, l, key); got != "validated" {
		t.Errorf("the object became %q", got)
	}
	waitNoTempFiles(t, dir)
}

// TestAcceptPutIsAskedAgainBeforeStoring: an upload that is closed while
// its body streams in (a job was made from it meanwhile) stores nothing.
func TestAcceptPutIsAskedAgainBeforeStoring(t *testing.T) {
	const key = "uploads/s1/scene.blend"
	var closed atomic.Bool
	l, srv, dir := newLocal(t, func(c *objstore.LocalConfig) {
		c.AcceptPut = func(context.Context, string, int64, func() error) error {
			if closed.Load() {
				return closedUpload
			}
			return nil
		}
	})
	mustPut(t, l, key, "validated")
	u, _, _ := l.PresignPut(t.Context(), key, time.Minute)

	half := bytes.Repeat([]byte("h"), 64<<10)
	conn := dial(t, srv)
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", requestURI(t, u), 2*len(half), half)
	waitFor(t, "the first half in a temp file", func() bool { return tempBytes(t, dir) == int64(len(half)) })
	closed.Store(true)
	conn.Write(half)

	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := decodeError(t, resp); resp.StatusCode != http.StatusConflict || e.Error.Code != "UPLOAD_USED" {
		t.Errorf("PUT closed while it streamed = %d %+v, want 409 UPLOAD_USED", resp.StatusCode, e)
	}
	if got := readObject(t, l, key); got != "validated" {
		t.Errorf("the object became %d bytes of %q", len(got), got[:1])
	}
	waitNoTempFiles(t, dir)
}

// TestAcceptPutFailureIsUnavailable: when the hook cannot tell (its
// database is down), nothing is stored and the client is told to try
// again, without the hook's error.
func TestAcceptPutFailureIsUnavailable(t *testing.T) {
	const key = "uploads/s1/scene.blend"
	l, _, _ := newLocal(t, func(c *objstore.LocalConfig) {
		c.AcceptPut = func(context.Context, string, int64, func() error) error { return errors.New("database is locked") }
	})
	u, _, _ := l.PresignPut(t.Context(), key, time.Minute)
	resp := mustDo(t, "PUT", u, strings.NewReader("scene"))
	e := decodeError(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || e.Error.Code != "UNAVAILABLE" || strings.Contains(e.Error.Message, "database") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("PUT while the hook fails = %d %+v, Retry-After %q; want 503 UNAVAILABLE with Retry-After, without internals", resp.StatusCode, e, resp.Header.Get("Retry-After"))
	}
	if _, err := l.Stat(t.Context(), key); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Stat after the refused PUT: %v, want ErrNotFound", err)
	}
}

// transferIdle is the idle timeout of the tests of stalled transfers:
// short, so they run quickly, and long enough that a loaded machine does
// not stall a steady transfer by accident.
const transferIdle = 500 * time.Millisecond

// TestStalledUploadIsCut: a PUT that sends part of its body and then
// nothing is cut once it has been silent for the idle timeout, and stores
// nothing.
func TestStalledUploadIsCut(t *testing.T) {
	const key = "uploads/s1/scene.blend"
	l, srv, dir := newLocal(t, func(c *objstore.LocalConfig) { c.TransferIdleTimeout = transferIdle })
	u, _, _ := l.PresignPut(t.Context(), key, time.Minute)

	conn := dial(t, srv)
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s", requestURI(t, u), strings.Repeat("x", 100))
	sent := time.Now()
	// The server answers (or just closes) once it gives up; the client's
	// own deadline (10 s, from dial) fails the test if it never does.
	_, err := io.ReadAll(conn)
	took := time.Since(sent)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the stalled upload was still open after %v", took)
	}
	if took < transferIdle-50*time.Millisecond {
		t.Errorf("the stalled upload was cut after %v, before the idle timeout of %v", took, transferIdle)
	}
	t.Logf("a PUT silent after 100 of 1000 bytes was cut after %v (idle timeout %v)", took, transferIdle)
	if _, err := l.Stat(t.Context(), key); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Stat after the cut upload: %v, want ErrNotFound", err)
	}
	waitNoTempFiles(t, dir)
}

// TestSlowSteadyUploadGoesThrough: a PUT that takes several times the idle
// timeout but never pauses that long is stored whole.
func TestSlowSteadyUploadGoesThrough(t *testing.T) {
	const key = "uploads/s1/scene.blend"
	l, srv, _ := newLocal(t, func(c *objstore.LocalConfig) { c.TransferIdleTimeout = transferIdle })
	u, _, _ := l.PresignPut(t.Context(), key, time.Minute)

	const pieces, piece = 8, 1000
	conn := dial(t, srv)
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", requestURI(t, u), pieces*piece)
	start := time.Now()
	for range pieces {
		// A slow client: a piece every 2/5 of the idle timeout.
		time.Sleep(transferIdle * 2 / 5)
		if _, err := conn.Write(bytes.Repeat([]byte("s"), piece)); err != nil {
			t.Fatalf("the server cut a steady upload after %v: %v", time.Since(start), err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("steady upload over %v: status %d", time.Since(start), resp.StatusCode)
	}
	if took := time.Since(start); took < 2*transferIdle {
		t.Fatalf("the upload took %v, not longer than the idle timeout as the test means it to", took)
	}
	if got := readObject(t, l, key); got != strings.Repeat("s", pieces*piece) {
		t.Errorf("stored %d bytes, want %d", len(got), pieces*piece)
	}
}

// TestStalledDownloadIsCut: a client that asks for a large object and then
// reads nothing is cut once the server could write nothing for the idle
// timeout, so it holds neither a connection nor an open file for ever.
func TestStalledDownloadIsCut(t *testing.T) {
	dir := t.TempDir()
	handlerDone := make(chan struct{}, 1)
	mux := http.NewServeMux()
	srv := httptestServer(t, mux)
	l, err := objstore.NewLocal(objstore.LocalConfig{Dir: dir, BaseURL: srv.URL, Secret: testSecret, TransferIdleTimeout: transferIdle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	mux.Handle(objstore.ObjectsPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.Handler().ServeHTTP(w, r)
		handlerDone <- struct{}{}
	}))
	// Far more than the socket buffers of both ends can hold.
	const key, size = "jobs/j1/frames.zip", 64 << 20
	if _, err := l.Put(t.Context(), key, io.LimitReader(zeros{}, size), size); err != nil {
		t.Fatal(err)
	}
	u, _, _ := l.PresignGet(t.Context(), key, time.Minute, "")

	conn := dial(t, srv)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", requestURI(t, u))
	asked := time.Now()
	select {
	case <-handlerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("a download whose client reads nothing was still being served after 10 s")
	}
	took := time.Since(asked)
	if took < transferIdle-50*time.Millisecond {
		t.Errorf("the download ended after %v, before the idle timeout of %v", took, transferIdle)
	}
	got, _ := io.Copy(io.Discard, conn)
	if got >= size {
		t.Errorf("the client received %d bytes, the whole object: the download was not cut", got)
	}
	t.Logf("a GET whose client read nothing was cut after %v, %d of %d bytes sent", took, got, size)
}

// TestObjectFilesAreReadOnlyAndPrivate: stored objects are mode 0400, and
// an objects folder that others could read is closed to them at start.
func TestObjectFilesAreReadOnlyAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "objects")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // whatever the umask
	l, err := objstore.NewLocal(objstore.LocalConfig{Dir: dir, BaseURL: "http://127.0.0.1:1", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("objects folder mode = %v (%v), want nothing for other users", fi.Mode().Perm(), err)
	}
	mustPut(t, l, "uploads/s1/scene.blend", "scene")
	if _, err := l.Copy(t.Context(), "uploads/s1/scene.blend", "jobs/j1/input/scene.blend", testLimit); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"uploads/s1/scene.blend", "jobs/j1/input/scene.blend"} {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key)))
		if err != nil || fi.Mode().Perm() != 0o400 {
			t.Errorf("%s has mode %v (%v), want 0400", key, fi.Mode().Perm(), err)
		}
	}
}

func httptestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func decodeError(t *testing.T, resp *http.Response) apiError {
	t.Helper()
	var e apiError
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("status %d: the body is not a JSON error: %v", resp.StatusCode, err)
	}
	return e
}

// TestAcceptPutIsToldTheSize: the hook is told the body's declared length
// before reading it (-1 for a body sent without one) and the bytes
// received before storing them, so a quota can refuse a file by its size
// either way; a refusal at the second call stores nothing.
func TestAcceptPutIsToldTheSize(t *testing.T) {
	const key = "uploads/s3/scene.blend"
	var sizes []int64
	tooBig := &objstore.PutRefusal{Status: http.StatusRequestEntityTooLarge, Code: "STORAGE_QUOTA_EXCEEDED", Message: "over the quota"}
	l, _, dir := newLocal(t, func(c *objstore.LocalConfig) {
		c.AcceptPut = func(_ context.Context, _ string, size int64, _ func() error) error {
			sizes = append(sizes, size)
			if size > 10 {
				return tooBig
			}
			return nil
		}
	})
	u, _, _ := l.PresignPut(t.Context(), key, time.Minute)

	resp := mustDo(t, "PUT", u, strings.NewReader("0123456789"))
	if resp.StatusCode != http.StatusOK || !slices.Equal(sizes, []int64{10, 10}) {
		t.Fatalf("PUT of 10 bytes = %d, the hook told %v; want 200 and [10 10]", resp.StatusCode, sizes)
	}

	sizes = nil
	resp = mustDo(t, "PUT", u, strings.NewReader("0123456789ABC"))
	if e := decodeError(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || e.Error.Code != "STORAGE_QUOTA_EXCEEDED" || !slices.Equal(sizes, []int64{13}) {
		t.Errorf("PUT of 13 bytes declared = %d %+v, the hook told %v; want the hook's 413 after [13]", resp.StatusCode, e, sizes)
	}

	// A body without a declared length: the hook hears -1, then the 13
	// bytes that arrived, and refuses them before they are stored.
	sizes = nil
	resp = mustDo(t, "PUT", u, io.MultiReader(strings.NewReader("0123456"), strings.NewReader("789ABC")))
	if e := decodeError(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || e.Error.Code != "STORAGE_QUOTA_EXCEEDED" || !slices.Equal(sizes, []int64{-1, 13}) {
		t.Errorf("chunked PUT of 13 bytes = %d %+v, the hook told %v; want the hook's 413 after [-1 13]", resp.StatusCode, e, sizes)
	}
	if got := readObject(t, l, key); got != "0123456789" {
		t.Errorf("the object became %q, want the 10 bytes accepted first", got)
	}
	waitNoTempFiles(t, dir)
}

// TestPutFailedIsToldOfAPutThatStoredNothing: a PUT the hook let begin
// whose body stops short stores nothing, and the PutFailed hook hears of
// it with what the key holds now (the file an earlier PUT stored), so
// that it can set right what it recorded as the PUT began. A PUT that
// stores its file is not reported.
func TestPutFailedIsToldOfAPutThatStoredNothing(t *testing.T) {
	const key = "uploads/s5/scene.blend"
	type failure struct {
		key  string
		size int64
	}
	failed := make(chan failure, 2)
	l, srv, dir := newLocal(t, func(c *objstore.LocalConfig) {
		c.TransferIdleTimeout = transferIdle
		c.PutFailed = func(_ context.Context, k string, stored func() (int64, error)) error {
			size, err := stored()
			failed <- failure{k, size}
			return err
		}
	})
	u, _, _ := l.PresignPut(t.Context(), key, time.Minute)
	if resp := mustDo(t, "PUT", u, strings.NewReader("0123456789")); resp.StatusCode != http.StatusOK {
		t.Fatalf("the first PUT: %d", resp.StatusCode)
	}
	select {
	case f := <-failed:
		t.Fatalf("a PUT that stored its file was reported failed: %+v", f)
	default:
	}

	conn := dial(t, srv)
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s", requestURI(t, u), strings.Repeat("x", 100))
	conn.Close()

	select {
	case f := <-failed:
		if f != (failure{key, 10}) {
			t.Errorf("PutFailed told %+v, want the key and the 10 bytes stored before", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PutFailed was not told of the PUT cut short")
	}
	if got := readObject(t, l, key); got != "0123456789" {
		t.Errorf("the object became %q, want the 10 bytes stored first", got)
	}
	waitNoTempFiles(t, dir)
}

// TestAcceptPutStoresTheFileItself: the hook's last call is handed the
// storing of the file, so that what it records of the file (in a
// transaction of its own) is written with it: the old object is there
// until the hook stores the new one, and the new one once it has.
func TestAcceptPutStoresTheFileItself(t *testing.T) {
	const key = "uploads/s4/scene.blend"
	var before, after string
	var local *objstore.Local // l, for the hook, which is made before it
	l, _, dir := newLocal(t, func(c *objstore.LocalConfig) {
		c.AcceptPut = func(_ context.Context, k string, _ int64, store func() error) error {
			if store == nil {
				return nil
			}
			before = readObject(t, local, k)
			if err := store(); err != nil {
				return err
			}
			after = readObject(t, local, k)
			return nil
		}
	})
	local = l
	mustPut(t, l, key, "first")
	u, _, _ := l.PresignPut(t.Context(), key, time.Minute)

	if resp := mustDo(t, "PUT", u, strings.NewReader("second")); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT = %d, want 200", resp.StatusCode)
	}
	if before != "first" || after != "second" {
		t.Errorf("within the hook, the object was %q before it stored the file and %q after; want %q, then %q", before, after, "first", "second")
	}
	if got := readObject(t, l, key); got != "second" {
		t.Errorf("the object is %q, want %q", got, "second")
	}
	waitNoTempFiles(t, dir)
}

// TestServedCountsTheBytesSent: the Served hook hears each GET's bytes
// (a Range request's part), and nothing of a HEAD.
func TestServedCountsTheBytesSent(t *testing.T) {
	const key = "jobs/j1/frames.zip"
	var served []int64
	l, _, _ := newLocal(t, func(c *objstore.LocalConfig) {
		c.Served = func(_ context.Context, k string, n int64) error {
			if k == key {
				served = append(served, n)
			}
			return nil
		}
	})
	mustPut(t, l, key, "0123456789")
	u, _, err := l.PresignGet(t.Context(), key, time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, "GET", u, nil)
	mustDo(t, "HEAD", u, nil)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", u, nil)
	req.Header.Set("Range", "bytes=2-5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !slices.Equal(served, []int64{10, 4}) {
		t.Errorf("Served heard %v, want [10 4]: the whole GET, nothing of the HEAD, the range's 4 bytes", served)
	}
}
