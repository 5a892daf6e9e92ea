// Package objstoretest is the conformance suite for objstore.Store. Every
// implementation runs it, so that the local store and the S3 store mean the
// same thing by every method and every presigned URL, and code tested on one
// can be trusted on the other.
package objstoretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/objstore"
)

// Run runs the suite. newStore must return an empty store whose presigned
// URLs are reachable from this process (for the local store: a server that
// mounts its Handler, at the store's BaseURL). It is called once per
// subtest, and the subtests do not run in parallel.
//
// The expiry test waits a few seconds of real time, because a backend such
// as S3 has no clock to fake.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, objstore.Store)
	}{
		{"PutGetStat", testPutGetStat},
		{"EmptyObject", testEmptyObject},
		{"LargeStreamedObject", testLargeStreamedObject},
		{"NotFound", testNotFound},
		{"List", testList},
		{"ListEmptyStore", testListEmptyStore},
		{"Delete", testDelete},
		{"DeletePrefix", testDeletePrefix},
		{"InvalidKeys", testInvalidKeys},
		{"InvalidTTL", testInvalidTTL},
		{"FailedPutKeepsOldObject", testFailedPutKeepsOldObject},
		{"CanceledPut", testCanceledPut},
		{"PutSizeLimit", testPutSizeLimit},
		{"PutSizeLimitOfALargeStream", testPutSizeLimitOfALargeStream},
		{"Copy", testCopy},
		{"CopyRefusals", testCopyRefusals},
		{"PresignPut", testPresignPut},
		{"PresignGet", testPresignGet},
		{"PresignGetMissing", testPresignGetMissing},
		{"PresignedURLIsBoundToKey", testPresignedURLIsBoundToKey},
		{"PresignedURLIsBoundToMethod", testPresignedURLIsBoundToMethod},
		{"TamperedQuery", testTamperedQuery},
		{"Expired", testExpired},
		{"Open", testOpen},
		{"OpenOfAReplacedObject", testOpenOfAReplacedObject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// opener is the store as an objstore.Opener; a store that is not one
// skips the test.
func opener(t *testing.T, s objstore.Store) objstore.Opener {
	o, ok := s.(objstore.Opener)
	if !ok {
		t.Skipf("%T is not an objstore.Opener", s)
	}
	return o
}

// testOpen reads an object from the offsets a Range request asks for, in
// any order, as http.ServeContent does.
func testOpen(t *testing.T, s objstore.Store) {
	o := opener(t, s)
	key := "jobs/j1/preview.mp4"
	data := make([]byte, 300_000)
	for i := range data {
		data[i] = byte(i * 7 % 251)
	}
	mustPut(t, s, key, data)

	r, info, err := o.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	if info.Key != key || info.Size != int64(len(data)) {
		t.Errorf("Open described %+v, want key %q size %d", info, key, len(data))
	}
	if end, err := r.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
		t.Errorf("Seek to the end = %d, %v; want %d", end, err, len(data))
	}
	read := func(at int64, n int) []byte {
		t.Helper()
		if pos, err := r.Seek(at, io.SeekStart); err != nil || pos != at {
			t.Fatalf("Seek(%d) = %d, %v", at, pos, err)
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("read %d bytes at %d: %v", n, at, err)
		}
		return got
	}
	for _, c := range []struct {
		at int64
		n  int
	}{{250_000, 1000}, {10, 5}, {15, 100_000}, {int64(len(data)) - 3, 3}} {
		if got := read(c.at, c.n); !bytes.Equal(got, data[c.at:c.at+int64(c.n)]) {
			t.Errorf("%d bytes at %d differ from the object's", c.n, c.at)
		}
	}
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want 0, EOF", n, err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if all, err := io.ReadAll(r); err != nil || !bytes.Equal(all, data) {
		t.Errorf("ReadAll from the start: %d bytes, %v; want the object's %d", len(all), err, len(data))
	}

	if _, _, err := o.Open(t.Context(), "jobs/j1/missing.mp4"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Open of a missing object: %v, want ErrNotFound", err)
	}
	if _, _, err := o.Open(t.Context(), "../escape"); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Errorf("Open of an invalid key: %v, want ErrInvalidKey", err)
	}
}

// testOpenOfAReplacedObject replaces an object between two reads of it:
// what is read is never a mix of two versions. The local store goes on
// reading the file it opened; a bucket answers ErrChanged.
func testOpenOfAReplacedObject(t *testing.T, s objstore.Store) {
	o := opener(t, s)
	key := "jobs/j1/frames.zip"
	old := bytes.Repeat([]byte("old-"), 10_000)
	mustPut(t, s, key, old)
	r, _, err := o.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	first := make([]byte, 100)
	if _, err := io.ReadFull(r, first); err != nil || !bytes.Equal(first, old[:100]) {
		t.Fatalf("first read: %q, %v", first, err)
	}
	mustPut(t, s, key, bytes.Repeat([]byte("NEW!"), 20_000))
	if _, err := r.Seek(30_000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	switch {
	case errors.Is(err, objstore.ErrChanged):
	case err != nil:
		t.Errorf("reading a replaced object: %v, want its old bytes or ErrChanged", err)
	case !bytes.Equal(rest, old[30_000:]):
		t.Errorf("reading a replaced object gave %d bytes starting %q, want the old object's %d", len(rest), short(string(rest)), len(old)-30_000)
	}
}

// testLimit is the size limit of the suite's Puts that are not about
// limits: far above anything they store.
const testLimit = 1 << 30

// httpClient bounds every request so a hung server fails the test instead
// of the whole run.
var httpClient = &http.Client{Timeout: time.Minute}

func testPutGetStat(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	key := "jobs/j1/frames/frame_0001.png"
	data := []byte("not really a png")

	before := time.Now()
	n, err := s.Put(ctx, key, bytes.NewReader(data), testLimit)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n != int64(len(data)) {
		t.Errorf("Put returned %d bytes, want %d", n, len(data))
	}
	if got := mustGet(t, s, key); !bytes.Equal(got, data) {
		t.Errorf("Get = %q, want %q", got, data)
	}
	info, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Key != key || info.Size != int64(len(data)) {
		t.Errorf("Stat = %+v, want key %q size %d", info, key, len(data))
	}
	// Backends round modification times (S3 to the second) and may run
	// on another clock, so only a gross error fails.
	if d := info.ModTime.Sub(before); d < -time.Minute || d > time.Minute {
		t.Errorf("Stat ModTime %v is %v away from the time of the Put", info.ModTime, d)
	}

	// Overwriting with a shorter body must not leave a tail of the old one.
	mustPut(t, s, key, []byte("short"))
	if got := mustGet(t, s, key); string(got) != "short" {
		t.Errorf("after overwrite Get = %q, want %q", got, "short")
	}
	if info, err := s.Stat(ctx, key); err != nil || info.Size != 5 {
		t.Errorf("after overwrite Stat = %+v, %v; want size 5", info, err)
	}
}

func testEmptyObject(t *testing.T, s objstore.Store) {
	key := "jobs/j1/logs/empty.txt"
	mustPut(t, s, key, nil)
	if got := mustGet(t, s, key); len(got) != 0 {
		t.Errorf("Get = %q, want empty", got)
	}
	info, err := s.Stat(t.Context(), key)
	if err != nil || info.Size != 0 {
		t.Errorf("Stat = %+v, %v; want size 0", info, err)
	}
}

func testLargeStreamedObject(t *testing.T, s objstore.Store) {
	const size = 5<<20 + 123 // not a multiple of any buffer size
	key := "jobs/j1/frames.zip"
	// A reader that is not an io.Seeker and has no known length, as a zip
	// being written through an io.Pipe would be.
	src := struct{ io.Reader }{io.LimitReader(rand.NewChaCha8([32]byte{1}), size)}
	n, err := s.Put(t.Context(), key, src, testLimit)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n != size {
		t.Errorf("Put returned %d, want %d", n, size)
	}
	want := sha256.New()
	io.Copy(want, io.LimitReader(rand.NewChaCha8([32]byte{1}), size))
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	got := sha256.New()
	if _, err := io.Copy(got, rc); err != nil {
		t.Fatalf("reading object: %v", err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Error("object read back differs from what was put")
	}
}

func testNotFound(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	mustPut(t, s, "jobs/j1/frames/frame_0001.png", []byte("x"))
	// Missing keys, including the folders of an existing object: a folder
	// is not an object on any backend.
	for _, key := range []string{"jobs/j2/frames/frame_0001.png", "missing", "jobs/j1", "jobs/j1/frames", "jobs/j1/frames/frame_0001.png/x"} {
		if _, err := s.Get(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want ErrNotFound", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Stat(%q) error = %v, want ErrNotFound", key, err)
		}
	}
	for _, key := range []string{"missing", "jobs/j2/frames/frame_0001.png"} {
		if err := s.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%q) of a missing object = %v, want nil", key, err)
		}
	}
	if got := mustGet(t, s, "jobs/j1/frames/frame_0001.png"); string(got) != "x" {
		t.Errorf("existing object changed to %q", got)
	}
}

// listFixture is a layout where the byte order of keys differs from a
// folder-by-folder walk ("frames.zip" sorts before "frames/...", "a.txt"
// before "a/b"), and where "jobs/j1" is a string prefix of "jobs/j10".
var listFixture = []string{
	"a/b",
	"a.txt",
	"jobs/j1/frames/frame_0002.png",
	"jobs/j1/frames/frame_0001.png",
	"jobs/j1/frames.zip",
	"jobs/j1/logs/chunk_0001.txt",
	"jobs/j10/frames/frame_0001.png",
	"uploads/s1/scene.blend",
}

func putFixture(t *testing.T, s objstore.Store) {
	t.Helper()
	for _, key := range listFixture {
		// Each object holds its key, so sizes differ and can be checked.
		mustPut(t, s, key, []byte(key))
	}
}

func testList(t *testing.T, s objstore.Store) {
	putFixture(t, s)
	all := slices.Sorted(slices.Values(listFixture))
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"jobs/j1/", []string{"jobs/j1/frames.zip", "jobs/j1/frames/frame_0001.png", "jobs/j1/frames/frame_0002.png", "jobs/j1/logs/chunk_0001.txt"}},
		{"jobs/j1", []string{"jobs/j1/frames.zip", "jobs/j1/frames/frame_0001.png", "jobs/j1/frames/frame_0002.png", "jobs/j1/logs/chunk_0001.txt", "jobs/j10/frames/frame_0001.png"}},
		{"jobs/j1/frames/", []string{"jobs/j1/frames/frame_0001.png", "jobs/j1/frames/frame_0002.png"}},
		{"jobs/j1/frames", []string{"jobs/j1/frames.zip", "jobs/j1/frames/frame_0001.png", "jobs/j1/frames/frame_0002.png"}},
		{"jobs/j1/frames/frame_000", []string{"jobs/j1/frames/frame_0001.png", "jobs/j1/frames/frame_0002.png"}},
		{"jobs/j1/frames/frame_0002.png", []string{"jobs/j1/frames/frame_0002.png"}},
		{"a", []string{"a.txt", "a/b"}},
		{"a/", []string{"a/b"}},
		{"nothing/", nil},
		{"jobs/j2", nil},
	}
	for _, tc := range tests {
		infos, err := s.List(t.Context(), tc.prefix)
		if err != nil {
			t.Errorf("List(%q): %v", tc.prefix, err)
			continue
		}
		if got := keysOf(infos); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
		for _, info := range infos {
			if info.Size != int64(len(info.Key)) {
				t.Errorf("List(%q): %s has size %d, want %d", tc.prefix, info.Key, info.Size, len(info.Key))
			}
			if info.ModTime.IsZero() {
				t.Errorf("List(%q): %s has no ModTime", tc.prefix, info.Key)
			}
		}
	}
}

func testListEmptyStore(t *testing.T, s objstore.Store) {
	infos, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(infos) != 0 {
		t.Errorf("a new store lists %q, want nothing", keysOf(infos))
	}
}

func testDelete(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	mustPut(t, s, "uploads/s1/scene.blend", []byte("1"))
	mustPut(t, s, "uploads/s1/other.blend", []byte("2"))

	if err := s.Delete(ctx, "uploads/s1/scene.blend"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, "uploads/s1/scene.blend"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Get after Delete: error = %v, want ErrNotFound", err)
	}
	mustList(t, s, "", "uploads/s1/other.blend")

	// Deleting the last object of a folder, then writing there again.
	if err := s.Delete(ctx, "uploads/s1/other.blend"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, "uploads/s1/other.blend"); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
	mustList(t, s, "")
	mustPut(t, s, "uploads/s1/scene.blend", []byte("3"))
	mustList(t, s, "", "uploads/s1/scene.blend")
}

func testDeletePrefix(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	putFixture(t, s)

	if err := s.DeletePrefix(ctx, "jobs/j1/"); err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	mustList(t, s, "", "a.txt", "a/b", "jobs/j10/frames/frame_0001.png", "uploads/s1/scene.blend")

	if err := s.DeletePrefix(ctx, "nothing/"); err != nil {
		t.Errorf("DeletePrefix of nothing = %v, want nil", err)
	}
	if err := s.DeletePrefix(ctx, ""); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Errorf("DeletePrefix(\"\") = %v, want ErrInvalidKey (it must not delete everything)", err)
	}
	mustList(t, s, "", "a.txt", "a/b", "jobs/j10/frames/frame_0001.png", "uploads/s1/scene.blend")

	// A folder emptied by DeletePrefix can be written again.
	mustPut(t, s, "jobs/j1/frames/frame_0001.png", []byte("again"))
	if got := mustGet(t, s, "jobs/j1/frames/frame_0001.png"); string(got) != "again" {
		t.Errorf("Get = %q, want %q", got, "again")
	}

	// A prefix without a trailing slash is a plain string prefix.
	if err := s.DeletePrefix(ctx, "jobs/j1"); err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	mustList(t, s, "", "a.txt", "a/b", "uploads/s1/scene.blend")
}

var invalidKeys = []string{
	"",
	"/abs/key",
	"a//b",
	"a/",
	"./a",
	"a/./b",
	"../a",
	"a/../../b",
	"..",
	`a\b`,
	`..\..\etc\passwd`,
	"a\x00b",
	"a\nb",
	"a\rb",
	"\xff\xfe",
	strings.Repeat("k", objstore.MaxKeyLen+1),
	"a/" + strings.Repeat("s", 256),
}

func testInvalidKeys(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	for _, key := range invalidKeys {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("%s(%q) error = %v, want ErrInvalidKey", op, short(key), err)
			}
		}
		_, err := s.Put(ctx, key, strings.NewReader("x"), testLimit)
		check("Put", err)
		_, err = s.Copy(ctx, key, "jobs/j1/copy", testLimit)
		check("Copy from", err)
		_, err = s.Copy(ctx, "jobs/j1/copy", key, testLimit)
		check("Copy to", err)
		_, err = s.Get(ctx, key)
		check("Get", err)
		_, err = s.Stat(ctx, key)
		check("Stat", err)
		check("Delete", s.Delete(ctx, key))
		_, _, err = s.PresignPut(ctx, key, time.Minute)
		check("PresignPut", err)
		_, _, err = s.PresignGet(ctx, key, time.Minute, "")
		check("PresignGet", err)
	}
	for _, prefix := range []string{"/", "/a", "a//", "../", "a/../", "a\\", "a\x00"} {
		if _, err := s.List(ctx, prefix); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("List(%q) error = %v, want ErrInvalidKey", prefix, err)
		}
		if err := s.DeletePrefix(ctx, prefix); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("DeletePrefix(%q) error = %v, want ErrInvalidKey", prefix, err)
		}
	}
	mustList(t, s, "")
}

func testInvalidTTL(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	for _, ttl := range []time.Duration{0, -time.Second, objstore.MaxPresignTTL + time.Second} {
		if _, _, err := s.PresignPut(ctx, "uploads/s1/scene.blend", ttl); err == nil {
			t.Errorf("PresignPut with ttl %v succeeded, want an error", ttl)
		}
		if _, _, err := s.PresignGet(ctx, "uploads/s1/scene.blend", ttl, ""); err == nil {
			t.Errorf("PresignGet with ttl %v succeeded, want an error", ttl)
		}
	}
}

// failingReader yields some bytes, then fails, like a client that vanishes
// halfway through.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("source broke")
	}
	n := min(len(p), f.n)
	clear(p[:n])
	f.n -= n
	return n, nil
}

func testFailedPutKeepsOldObject(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	mustPut(t, s, "uploads/s1/scene.blend", []byte("old"))

	if _, err := s.Put(ctx, "uploads/s1/scene.blend", &failingReader{n: 100 << 10}, testLimit); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	if got := mustGet(t, s, "uploads/s1/scene.blend"); string(got) != "old" {
		t.Errorf("after a failed overwrite Get = %q, want the old object", short(string(got)))
	}
	if _, err := s.Put(ctx, "uploads/s1/new.blend", &failingReader{n: 100 << 10}, testLimit); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	if _, err := s.Stat(ctx, "uploads/s1/new.blend"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("after a failed Put, Stat error = %v, want ErrNotFound", err)
	}
	mustList(t, s, "", "uploads/s1/scene.blend")
}

// cancelingReader cancels its context once it has been read from, so a Put
// is interrupted in the middle of its stream.
type cancelingReader struct {
	cancel context.CancelFunc
	n      int
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.EOF
	}
	c.cancel()
	n := min(len(p), c.n, 1024)
	clear(p[:n])
	c.n -= n
	return n, nil
}

func testCanceledPut(t *testing.T, s objstore.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Put(ctx, "jobs/j1/a.png", strings.NewReader("x"), testLimit); err == nil {
		t.Error("Put with a canceled context succeeded")
	}

	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	if _, err := s.Put(ctx, "jobs/j1/b.png", &cancelingReader{cancel: cancel, n: 1 << 20}, testLimit); err == nil {
		t.Error("Put whose context was canceled midway succeeded")
	}
	mustList(t, s, "")
}

// testPutSizeLimit: a body of exactly the limit is stored; one byte more is
// ErrTooLarge, whether its length is known or not, and stores nothing,
// leaving a previous object as it was. A Put that states no limit is
// refused.
func testPutSizeLimit(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	const limit = 1000
	key := "jobs/j1/frames/frame_0001.png"
	if n, err := s.Put(ctx, key, bytes.NewReader(make([]byte, limit)), limit); err != nil || n != limit {
		t.Fatalf("Put of exactly the limit = %d, %v; want %d stored", n, err, limit)
	}
	mustPut(t, s, key, []byte("old"))
	bodies := map[string]func() io.Reader{
		"known length":   func() io.Reader { return bytes.NewReader(make([]byte, limit+1)) },
		"unknown length": func() io.Reader { return struct{ io.Reader }{io.LimitReader(rand.NewChaCha8([32]byte{2}), 10*limit)} },
	}
	for name, body := range bodies {
		if n, err := s.Put(ctx, key, body(), limit); !errors.Is(err, objstore.ErrTooLarge) {
			t.Errorf("Put over the limit (%s) = %d, %v; want ErrTooLarge", name, n, err)
		}
		if got := mustGet(t, s, key); string(got) != "old" {
			t.Errorf("after a Put over the limit (%s) Get = %q, want the old object", name, short(string(got)))
		}
		if n, err := s.Put(ctx, "jobs/j1/frames/new.png", body(), limit); !errors.Is(err, objstore.ErrTooLarge) {
			t.Errorf("Put of a new object over the limit (%s) = %d, %v; want ErrTooLarge", name, n, err)
		}
	}
	for _, limit := range []int64{0, -1} {
		if _, err := s.Put(ctx, "jobs/j1/a.png", strings.NewReader("x"), limit); err == nil {
			t.Errorf("Put with a limit of %d succeeded, want an error: every Put states its limit", limit)
		}
	}
	mustList(t, s, "", key)
}

// testPutSizeLimitOfALargeStream: a stream far over the limit, and larger
// than a part of a multipart upload, stops at the limit and leaves nothing,
// not even hidden parts (which the S3 tests look for).
func testPutSizeLimitOfALargeStream(t *testing.T, s objstore.Store) {
	const limit = 6<<20 + 1 // past one part at S3's smallest part size
	src := struct{ io.Reader }{io.LimitReader(rand.NewChaCha8([32]byte{3}), 64<<20)}
	counted := &countingReader{r: src}
	_, err := s.Put(t.Context(), "jobs/j1/frames.zip", counted, limit)
	if !errors.Is(err, objstore.ErrTooLarge) {
		t.Fatalf("Put of 64 MiB with a limit of %d bytes: %v, want ErrTooLarge", limit, err)
	}
	// The store stops reading at the limit, give or take one buffer: it
	// does not drain a runaway source to its end.
	if counted.n > 2*limit {
		t.Errorf("Put read %d bytes of the source, want it to stop near the limit of %d", counted.n, limit)
	}
	mustList(t, s, "")
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// testCopy: a copy is an object of its own. Overwriting or deleting the
// source afterwards leaves it as it was, and a presigned PUT to the
// source's key reaches only the source.
func testCopy(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	src, dst := "uploads/s1/scene.blend", "jobs/j1/input/scene.blend"
	data := []byte("BLENDER-v304 the validated scene")
	mustPut(t, s, src, data)
	mustPut(t, s, dst, []byte("an older object at the destination"))

	info, err := s.Copy(ctx, src, dst, int64(len(data)))
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if info.Key != dst || info.Size != int64(len(data)) {
		t.Errorf("Copy = %+v, want key %q size %d", info, dst, len(data))
	}
	if got := mustGet(t, s, dst); !bytes.Equal(got, data) {
		t.Errorf("copy holds %q, want %q", got, data)
	}

	putURL, _, err := s.PresignPut(ctx, src, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := do(t, http.MethodPut, putURL, []byte("a different scene"), nil); status < 200 || status > 299 {
		t.Fatalf("PUT to the source's URL: status %d: %s", status, body)
	}
	mustPut(t, s, src, []byte("and another"))
	if got := mustGet(t, s, dst); !bytes.Equal(got, data) {
		t.Errorf("after the source was overwritten the copy holds %q, want %q", got, data)
	}
	if err := s.Delete(ctx, src); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, dst); !bytes.Equal(got, data) {
		t.Errorf("after the source was deleted the copy holds %q, want %q", got, data)
	}
	mustList(t, s, "", dst)

	// An empty object copies too.
	mustPut(t, s, "uploads/s2/empty.blend", nil)
	if info, err := s.Copy(ctx, "uploads/s2/empty.blend", "jobs/j2/input/empty.blend", 1); err != nil || info.Size != 0 {
		t.Errorf("Copy of an empty object = %+v, %v", info, err)
	}
}

// testCopyRefusals: a missing source, a source over the limit and a copy
// without a limit store nothing.
func testCopyRefusals(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	dst := "jobs/j1/input/scene.blend"
	if _, err := s.Copy(ctx, "uploads/missing/scene.blend", dst, testLimit); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Copy of a missing object: %v, want ErrNotFound", err)
	}
	mustPut(t, s, "uploads/s1/scene.blend", make([]byte, 101))
	if _, err := s.Copy(ctx, "uploads/s1/scene.blend", dst, 100); !errors.Is(err, objstore.ErrTooLarge) {
		t.Errorf("Copy of 101 bytes with a limit of 100: %v, want ErrTooLarge", err)
	}
	if _, err := s.Copy(ctx, "uploads/s1/scene.blend", dst, 0); err == nil {
		t.Error("Copy with a limit of 0 succeeded, want an error: every Copy states its limit")
	}
	// A folder is not an object, so it cannot be copied either.
	mustPut(t, s, "uploads/s2/inner/scene.blend", []byte("x"))
	if _, err := s.Copy(ctx, "uploads/s2/inner", dst, testLimit); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Copy of a folder: %v, want ErrNotFound", err)
	}
	mustList(t, s, "", "uploads/s1/scene.blend", "uploads/s2/inner/scene.blend")
}

func testPresignPut(t *testing.T, s objstore.Store) {
	const ttl = 10 * time.Minute
	for _, key := range []string{
		"uploads/s1/scene.blend",
		// Characters that need escaping in a URL path, or that S3
		// signing treats specially.
		"uploads/s2/My Scene (v2)+final 100% é~'.blend",
	} {
		before := time.Now()
		u, exp, err := s.PresignPut(t.Context(), key, ttl)
		if err != nil {
			t.Fatalf("PresignPut(%q): %v", key, err)
		}
		if lo, hi := before.Add(ttl-5*time.Second), time.Now().Add(ttl+5*time.Second); exp.Before(lo) || exp.After(hi) {
			t.Errorf("PresignPut expiresAt = %v, want about %v from now", exp, ttl)
		}
		body := []byte("BLENDER-v405 " + key)
		// Nothing but the body: no Content-Type, no auth.
		if status, resp := do(t, http.MethodPut, u, body, nil); status < 200 || status > 299 {
			t.Fatalf("PUT to presigned URL for %q: status %d: %s", key, status, resp)
		}
		if got := mustGet(t, s, key); !bytes.Equal(got, body) {
			t.Errorf("Get(%q) after presigned PUT = %q, want %q", key, got, body)
		}

		// A client that does send a Content-Type must not be refused
		// either: none is signed.
		body2 := []byte("second upload")
		hdr := http.Header{"Content-Type": {"application/octet-stream"}}
		if status, resp := do(t, http.MethodPut, u, body2, hdr); status < 200 || status > 299 {
			t.Fatalf("PUT with a Content-Type to presigned URL for %q: status %d: %s", key, status, resp)
		}
		if got := mustGet(t, s, key); !bytes.Equal(got, body2) {
			t.Errorf("Get(%q) after second presigned PUT = %q, want %q", key, got, body2)
		}
	}
	mustList(t, s, "", "uploads/s1/scene.blend", "uploads/s2/My Scene (v2)+final 100% é~'.blend")
}

func testPresignGet(t *testing.T, s objstore.Store) {
	key := "jobs/j1/frames/frame_0001.png"
	data := []byte("0123456789 pixels")
	mustPut(t, s, key, data)

	const name = "shot010 frame 0001.png"
	u, _, err := s.PresignGet(t.Context(), key, 10*time.Minute, name)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	resp := request(t, http.MethodGet, u, nil, nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET presigned URL: status %d: %s", resp.StatusCode, body)
	}
	if !bytes.Equal(body, data) {
		t.Errorf("GET presigned URL body = %q, want %q", body, data)
	}
	disp, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" || params["filename"] != name {
		t.Errorf("Content-Disposition = %q, want attachment with filename %q", resp.Header.Get("Content-Disposition"), name)
	}

	// Range requests let a browser seek in a preview video and a client
	// resume a download.
	status, part := do(t, http.MethodGet, u, nil, http.Header{"Range": {"bytes=2-5"}})
	if status != http.StatusPartialContent || string(part) != "2345" {
		t.Errorf("ranged GET = %d %q, want 206 %q", status, part, "2345")
	}

	// Without a download name the URL works just the same.
	u2, _, err := s.PresignGet(t.Context(), key, 10*time.Minute, "")
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if status, got := do(t, http.MethodGet, u2, nil, nil); status != http.StatusOK || !bytes.Equal(got, data) {
		t.Errorf("GET presigned URL without name = %d %q, want 200 %q", status, got, data)
	}

	// Once the object is deleted, its URL answers 404.
	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if status, _ := do(t, http.MethodGet, u, nil, nil); status != http.StatusNotFound {
		t.Errorf("GET presigned URL of a deleted object: status %d, want 404", status)
	}
}

func testPresignGetMissing(t *testing.T, s objstore.Store) {
	u, _, err := s.PresignGet(t.Context(), "jobs/j1/frames.zip", time.Minute, "frames.zip")
	if err != nil {
		t.Fatalf("PresignGet of a missing object: %v (presigning must not need the object)", err)
	}
	if status, _ := do(t, http.MethodGet, u, nil, nil); status != http.StatusNotFound {
		t.Errorf("GET presigned URL of a missing object: status %d, want 404", status)
	}
}

func testPresignedURLIsBoundToKey(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	mustPut(t, s, "jobs/ja/frames/frame_0001.png", []byte("A"))
	mustPut(t, s, "jobs/jb/frames/frame_0001.png", []byte("B"))

	getURL, _, err := s.PresignGet(ctx, "jobs/ja/frames/frame_0001.png", time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	status, body := do(t, http.MethodGet, rewritePath(t, getURL, "/jobs/ja/", "/jobs/jb/"), nil, nil)
	if status != http.StatusForbidden {
		t.Errorf("GET with the path rewritten to another key: status %d (%q), want 403", status, body)
	}

	putURL, _, err := s.PresignPut(ctx, "uploads/s1/scene.blend", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		rewritePath(t, putURL, "/uploads/s1/", "/uploads/s2/"),
		rewritePath(t, putURL, "/scene.blend", "/other.blend"),
		rewritePath(t, putURL, "/uploads/s1/scene.blend", "/jobs/ja/frames/frame_0001.png"),
	} {
		if status, body := do(t, http.MethodPut, u, []byte("evil"), nil); status != http.StatusForbidden {
			t.Errorf("PUT to %s: status %d (%q), want 403", u, status, body)
		}
	}
	mustList(t, s, "", "jobs/ja/frames/frame_0001.png", "jobs/jb/frames/frame_0001.png")
	if got := mustGet(t, s, "jobs/ja/frames/frame_0001.png"); string(got) != "A" {
		t.Errorf("object overwritten through a rewritten URL: %q", got)
	}
}

func testPresignedURLIsBoundToMethod(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	key := "uploads/s1/scene.blend"
	mustPut(t, s, key, []byte("original"))

	getURL, _, err := s.PresignGet(ctx, key, time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := do(t, http.MethodPut, getURL, []byte("evil"), nil); status != http.StatusForbidden {
		t.Errorf("PUT to a download URL: status %d (%q), want 403", status, body)
	}
	putURL, _, err := s.PresignPut(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := do(t, http.MethodGet, putURL, nil, nil); status != http.StatusForbidden {
		t.Errorf("GET from an upload URL: status %d (%q), want 403", status, body)
	}
	if got := mustGet(t, s, key); string(got) != "original" {
		t.Errorf("object changed to %q", got)
	}
}

// hexSignature matches an HMAC-SHA256 signature in hex, which is what both
// the local store and S3 SigV4 put in their URLs.
var hexSignature = regexp.MustCompile(`^[0-9a-f]{64}$`)

func testTamperedQuery(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	key := "uploads/s1/scene.blend"
	mustPut(t, s, key, []byte("original"))

	getURL, _, err := s.PresignGet(ctx, key, time.Minute, "scene.blend")
	if err != nil {
		t.Fatal(err)
	}
	putURL, _, err := s.PresignPut(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, url string
	}{{http.MethodGet, getURL}, {http.MethodPut, putURL}} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		sawSignature := false
		for param := range q {
			value := q.Get(param)
			variants := map[string]url.Values{
				"changed": withParam(q, param, value+"0"),
				"removed": withParam(q, param, ""),
			}
			if hexSignature.MatchString(value) {
				// One flipped bit of the signature must be a plain 403.
				sawSignature = true
				flipped := []byte(value)
				flipped[len(flipped)-1] ^= 1
				variants["flipped"] = withParam(q, param, string(flipped))
			}
			for how, tq := range variants {
				tu := *u
				tu.RawQuery = tq.Encode()
				var payload []byte
				if tc.method == http.MethodPut {
					payload = []byte("evil")
				}
				status, body := do(t, tc.method, tu.String(), payload, nil)
				if status < 400 || status > 499 || (how == "flipped" && status != http.StatusForbidden) {
					t.Errorf("%s with query parameter %q %s: status %d (%q), want 403 (or at least a 4xx)", tc.method, param, how, status, body)
				}
			}
		}
		if !sawSignature {
			t.Errorf("%s URL %s has no hex HMAC-SHA256 signature parameter", tc.method, tc.url)
		}
	}
	if got := mustGet(t, s, key); string(got) != "original" {
		t.Errorf("object changed through a tampered URL: %q", got)
	}
}

func testExpired(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	key := "uploads/s1/scene.blend"
	// Two seconds, not one: S3 counts from the start of the signing
	// second, so a one-second URL may have almost no life left when used.
	const ttl = 2 * time.Second
	putURL, putExp, err := s.PresignPut(ctx, key, ttl)
	if err != nil {
		t.Fatal(err)
	}
	getURL, getExp, err := s.PresignGet(ctx, key, ttl, "")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := do(t, http.MethodPut, putURL, []byte("first"), nil); status < 200 || status > 299 {
		t.Fatalf("PUT before expiry: status %d: %s", status, body)
	}
	if status, body := do(t, http.MethodGet, getURL, nil, nil); status != http.StatusOK {
		t.Fatalf("GET before expiry: status %d: %s", status, body)
	}

	latest := putExp
	if getExp.After(latest) {
		latest = getExp
	}
	time.Sleep(time.Until(latest) + time.Second)

	if status, body := do(t, http.MethodPut, putURL, []byte("second"), nil); status != http.StatusForbidden {
		t.Errorf("PUT after expiry: status %d (%q), want 403", status, body)
	}
	if status, body := do(t, http.MethodGet, getURL, nil, nil); status != http.StatusForbidden {
		t.Errorf("GET after expiry: status %d (%q), want 403", status, body)
	}
	if got := mustGet(t, s, key); string(got) != "first" {
		t.Errorf("object = %q after an expired PUT, want %q", got, "first")
	}
}

// withParam returns a copy of q with param set to value, or removed when
// value is empty.
func withParam(q url.Values, param, value string) url.Values {
	c := url.Values{}
	for k, v := range q {
		c[k] = slices.Clone(v)
	}
	if value == "" {
		c.Del(param)
	} else {
		c.Set(param, value)
	}
	return c
}

// rewritePath swaps part of the URL's path, keeping its signed query, as an
// attacker holding one URL would to reach another object.
func rewritePath(t *testing.T, raw, old, new string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u.Path, old) {
		t.Fatalf("URL path %q does not contain %q", u.Path, old)
	}
	u.Path = strings.Replace(u.Path, old, new, 1)
	u.RawPath = ""
	return u.String()
}

func request(t *testing.T, method, u string, body []byte, hdr http.Header) *http.Response {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp
}

// do sends a request and returns the status and body.
func do(t *testing.T, method, u string, body []byte, hdr http.Header) (int, []byte) {
	t.Helper()
	resp := request(t, method, u, body, hdr)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return resp.StatusCode, b
}

func mustPut(t *testing.T, s objstore.Store, key string, data []byte) {
	t.Helper()
	if _, err := s.Put(t.Context(), key, bytes.NewReader(data), testLimit); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, s objstore.Store, key string) []byte {
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
	return b
}

func mustList(t *testing.T, s objstore.Store, prefix string, want ...string) {
	t.Helper()
	infos, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	if got := keysOf(infos); !slices.Equal(got, want) {
		t.Errorf("List(%q) = %q, want %q", prefix, got, want)
	}
}

func keysOf(infos []objstore.Info) []string {
	var keys []string
	for _, i := range infos {
		keys = append(keys, i.Key)
	}
	return keys
}

// short keeps test messages readable for the over-long keys.
func short(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s…(%d bytes)", s[:40], len(s))
	}
	return s
}
