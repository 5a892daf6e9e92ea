package enginetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"

	"github.com/renderfarm/renderfarm/internal/objstore"
)

// The contents of uploads in tests: the file validation checks, and one
// sent to its upload URL later.
const (
	ValidatedScene = "BLENDER-v402 the scene that was validated"
	OtherScene     = "BLENDER-v402 a scene sent later"
)

// Put stores a small object under key.
func (f *Farm) Put(key string) {
	f.T.Helper()
	f.PutContent(key, "bytes of "+key)
}

// PutContent stores content under key.
func (f *Farm) PutContent(key, content string) {
	f.T.Helper()
	if _, err := f.Objects.Put(f.Ctx, key, strings.NewReader(content), 1<<20); err != nil {
		f.T.Fatalf("Put %s: %v", key, err)
	}
}

// Content reads the object under key.
func (f *Farm) Content(key string) string {
	f.T.Helper()
	r, err := f.Objects.Get(f.Ctx, key)
	if err != nil {
		f.T.Fatalf("Get %s: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		f.T.Fatal(err)
	}
	return string(b)
}

// Exists reports whether an object is stored.
func (f *Farm) Exists(key string) bool {
	f.T.Helper()
	_, err := f.Objects.Stat(f.Ctx, key)
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		f.T.Fatalf("Stat %s: %v", key, err)
	}
	return err == nil
}

// SHA256Hex is the SHA-256 of s, as the farm records a file's.
func SHA256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
