// Package objstore stores the farm's files (uploaded scenes, rendered frames,
// zips, previews, logs) as objects addressed by key, and hands out presigned
// URLs so that clients move those bytes directly instead of through the API.
//
// The Store interface is deliberately the small subset that both a local
// directory and an S3-compatible bucket can honour with the same meaning, so
// that the embedded and the distributed shapes of renderfarm run the same
// code. The objstoretest package holds the conformance suite that every
// implementation must pass.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotFound is returned (wrapped) when an object does not exist, so callers
// can tell "gone" from "broken" with errors.Is whatever the backend.
var ErrNotFound = errors.New("object not found")

// ErrInvalidKey is returned (wrapped, with the reason) for a key or prefix
// that ValidateKey or ValidatePrefix refuses. Keys are built by our own code,
// so this usually means a bug or hostile input reached a key; the API should
// answer it as a 400, never as a 500.
var ErrInvalidKey = errors.New("invalid object key")

// ErrTooLarge is returned (wrapped) by Put when the body runs past the
// limit the caller stated, and by Copy when the source is over it. Nothing
// is stored either way: a previous object under the key stays as it was.
var ErrTooLarge = errors.New("object over its size limit")

// ErrChanged is returned (wrapped) by Copy when the source was replaced
// while it was being copied, so that what was checked of it (its size) may
// not hold for what would be copied: nothing is stored, and copying again
// copies the new source. A bucket's Open returns it from a read that
// comes after the object was replaced: the bytes would be another
// version's.
var ErrChanged = errors.New("object replaced while it was read")

// MaxKeyLen is the longest key in bytes. It is S3's own limit, so a key that
// works locally also works on a bucket.
const MaxKeyLen = 1024

// maxSegmentLen is the longest key segment in bytes: a segment becomes a file
// or directory name on the local store, and filesystems cap names at 255.
const maxSegmentLen = 255

// Info describes a stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
	// ETag tells this version of the object from any other, as an HTTP
	// entity tag would (without its quotes); only Open sets it, and ""
	// means none.
	ETag string
}

// Store holds objects by key. Keys are slash-separated paths that pass
// ValidateKey, such as "uploads/{slug}/scene.blend" or
// "jobs/{jobId}/frames/frame_0001.png". An object is written whole or not at
// all: readers never see a partial object.
//
// The methods mirror what an S3 bucket offers so that the local store and the
// S3 store are interchangeable; anything a bucket cannot do cheaply is left
// out on purpose.
type Store interface {
	// PresignPut returns a URL that accepts exactly one object body with a
	// plain PUT (for example `curl -T FILE URL`), without the API key, for
	// this key only, until expiresAt. It signs no header: a client that sends
	// nothing but the body must succeed.
	PresignPut(ctx context.Context, key string, ttl time.Duration) (url string, expiresAt time.Time, err error)

	// PresignGet returns a URL that downloads the object without the API key
	// until expiresAt. downloadName, when not empty, becomes the filename of
	// the Content-Disposition header, so browsers save frames under a
	// meaningful name rather than the key's last segment.
	PresignGet(ctx context.Context, key string, ttl time.Duration, downloadName string) (url string, expiresAt time.Time, err error)

	// Put stores the whole of r under key, replacing any previous object,
	// and returns the number of bytes stored. maxBytes is the most the
	// caller expects, and must be positive: a body that runs past it is
	// ErrTooLarge, found while streaming, so a runaway source (a frame
	// path that turned out to be /dev/zero) fills neither disk nor bucket.
	// If reading r fails, the limit trips or ctx ends, nothing is stored
	// and a previous object is left as it was.
	Put(ctx context.Context, key string, r io.Reader, maxBytes int64) (int64, error)

	// Copy stores a copy of the object at src under dst, replacing any
	// object there, and describes the copy. The bytes do not pass through
	// this process: the local store links the file, a bucket copies on its
	// server. The copy is an object of its own: writing or deleting src
	// afterwards leaves it as it was. A missing src is ErrNotFound; a src
	// over maxBytes (which must be positive) is ErrTooLarge, and nothing
	// is stored.
	Copy(ctx context.Context, src, dst string, maxBytes int64) (Info, error)

	// Get opens the object for reading; the caller closes it. A missing
	// object is ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// Stat describes the object; a missing object is ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)

	// Delete removes the object. Deleting a missing object is not an error,
	// so cleanup can be retried safely.
	Delete(ctx context.Context, key string) error

	// DeletePrefix removes every object whose key starts with prefix. The
	// prefix is a plain string prefix, as on S3: "jobs/1" also matches
	// "jobs/10/...", so pass "jobs/1/" to remove one folder. An empty prefix
	// is refused rather than deleting everything.
	DeletePrefix(ctx context.Context, prefix string) error

	// List returns the objects whose key starts with prefix (a plain string
	// prefix, as for DeletePrefix; "" lists everything), sorted by key in
	// byte order.
	List(ctx context.Context, prefix string) ([]Info, error)
}

// Opener is a Store that can also open an object to read any part of it,
// which serving a download through this server needs: Range requests,
// and resumed downloads, read from an offset. Both stores are Openers.
type Opener interface {
	Store

	// Open describes the object and returns its bytes, from which the
	// caller may read any part, seeking; the caller closes it. A missing
	// object is ErrNotFound. What is read is the object Open described,
	// never a mix of two versions: if it is replaced meanwhile, the local
	// store goes on reading the file it opened, and a bucket's next read
	// fails with ErrChanged.
	Open(ctx context.Context, key string) (io.ReadSeekCloser, Info, error)
}

// probeKey names an object nobody stores: asking for it costs the store
// one lookup and changes nothing.
const probeKey = "renderfarm-probe/answer"

// Probe checks that s answers a request now: a Stat of an object that is
// not there, answered "not found", is an answer. Readiness checks, and a
// render node waiting for its bucket to come back, use it.
func Probe(ctx context.Context, s Store) error {
	_, err := s.Stat(ctx, probeKey)
	if err == nil || errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// checkMaxBytes refuses a limit that states none: every write names the
// most it expects.
func checkMaxBytes(maxBytes int64) error {
	if maxBytes <= 0 {
		return fmt.Errorf("objstore: a size limit of %d bytes: every Put and Copy must state a positive limit", maxBytes)
	}
	return nil
}

// limitReader reads r and fails with ErrTooLarge as soon as more than max
// bytes came out of it. Unlike io.LimitReader, which ends quietly at the
// limit, it tells an object of exactly max bytes (which is stored) from a
// longer one (which is not).
type limitReader struct {
	r    io.Reader
	max  int64
	read int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	// One byte more than the limit is asked for, so that a body of
	// exactly max bytes ends with EOF and a longer one is noticed.
	if room := l.max + 1 - l.read; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.read > l.max {
		return n, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, l.max)
	}
	return n, err
}

// ValidateKey reports why key cannot name an object, or nil if it can. A
// valid key is relative, clean (no "." or ".." segment, no empty segment, so
// no leading, trailing or doubled "/"), valid UTF-8 without control
// characters or backslashes, at most MaxKeyLen bytes, with segments of at
// most 255 bytes. These rules make a key safe to join under a directory and
// to put in a URL, and they mean the same thing on every backend.
func ValidateKey(key string) error {
	if reason := keyProblem(key); reason != "" {
		if len(key) > 80 {
			return fmt.Errorf("%w (%d bytes): %s", ErrInvalidKey, len(key), reason)
		}
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, reason)
	}
	return nil
}

// ValidatePrefix reports why prefix cannot select objects for List or
// DeletePrefix. The empty prefix is valid (it selects everything); otherwise
// the prefix with at most one trailing "/" removed must be a valid key, which
// allows both folder prefixes ("jobs/42/frames/") and partial names
// ("jobs/42/frames/frame_00").
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if reason := keyProblem(strings.TrimSuffix(prefix, "/")); reason != "" {
		return fmt.Errorf("%w: prefix %q: %s", ErrInvalidKey, prefix, reason)
	}
	return nil
}

// keyProblem returns why key is invalid, or "" when it is valid.
func keyProblem(key string) string {
	switch {
	case key == "":
		return "it is empty"
	case len(key) > MaxKeyLen:
		return fmt.Sprintf("it is longer than %d bytes", MaxKeyLen)
	case !utf8.ValidString(key):
		return "it is not valid UTF-8"
	case strings.HasPrefix(key, "/"):
		return `it must be relative (no leading "/")`
	}
	for _, c := range key {
		switch {
		case c == 0:
			return "it contains a NUL byte"
		case c < 0x20 || c == 0x7f:
			return "it contains a control character"
		case c == '\\':
			return `it contains a backslash; separate segments with "/"`
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return `it has an empty segment (a doubled or trailing "/")`
		case seg == "." || seg == "..":
			return `it has a "." or ".." segment`
		case len(seg) > maxSegmentLen:
			return fmt.Sprintf("it has a segment longer than %d bytes", maxSegmentLen)
		}
	}
	return ""
}
