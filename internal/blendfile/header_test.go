package blendfile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/zstd"
)

// body stands in for the block data after a header: enough that a reader
// which read the whole file would be noticed, and incompressible so that
// compressed variants span many blocks.
func body(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(t testing.TB, b []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(b, nil)
}

// wantCode checks that err is an *Error with code and a message holding
// every one of parts.
func wantCode(t *testing.T, err error, code string, parts ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("code = %s, want %s (message: %s)", e.Code, code, e.Message)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Errorf("message %q does not contain %q", e.Message, p)
		}
	}
}

func TestReadHeader(t *testing.T) {
	rest := body(4096)
	tests := []struct {
		name string
		data []byte
		want Header
	}{
		{"64-bit little endian", cat([]byte("BLENDER-v304"), rest), Header{CompressionNone, 8, false, 304}},
		{"32-bit little endian", cat([]byte("BLENDER_v279"), rest), Header{CompressionNone, 4, false, 279}},
		{"64-bit big endian", cat([]byte("BLENDER-V300"), rest), Header{CompressionNone, 8, true, 300}},
		{"32-bit big endian", []byte("BLENDER_V249"), Header{CompressionNone, 4, true, 249}},
		{"exactly a header", []byte("BLENDER-v401"), Header{CompressionNone, 8, false, 401}},
		{"large header format", cat([]byte("BLENDER17-01v0500"), rest), Header{CompressionNone, 8, false, 500}},
		{"large header format 4.5", []byte("BLENDER17-01v0405"), Header{CompressionNone, 8, false, 405}},
		{"large header, newer format version", cat([]byte("BLENDER17-02v0600"), rest), Header{CompressionNone, 8, false, 600}},
		{"large header, longer header", cat([]byte("BLENDER24-01v0510"), rest), Header{CompressionNone, 8, false, 510}},
		{"large header, big endian mark", []byte("BLENDER17-01V0500"), Header{CompressionNone, 8, true, 500}},
		{"gzip", gzipped(t, cat([]byte("BLENDER-v279"), rest)), Header{CompressionGzip, 8, false, 279}},
		{"gzip 32-bit", gzipped(t, []byte("BLENDER_V249")), Header{CompressionGzip, 4, true, 249}},
		{"zstd", zstded(t, cat([]byte("BLENDER-v304"), body(300<<10))), Header{CompressionZstd, 8, false, 304}},
		{"zstd large header", zstded(t, cat([]byte("BLENDER17-01v0500"), rest)), Header{CompressionZstd, 8, false, 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ReadHeader(bytes.NewReader(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if h != tt.want {
				t.Errorf("header = %+v, want %+v", h, tt.want)
			}
			// Readers that hand out bytes one or a few at a time must give
			// the same answer.
			for _, r := range []io.Reader{
				iotest.OneByteReader(bytes.NewReader(tt.data)),
				iotest.HalfReader(bytes.NewReader(tt.data)),
				iotest.DataErrReader(bytes.NewReader(tt.data)),
			} {
				if h, err := ReadHeader(r); err != nil || h != tt.want {
					t.Errorf("through %T: %+v, %v", r, h, err)
				}
			}
		})
	}
}

func TestReadHeaderErrors(t *testing.T) {
	big := body(200 << 10)
	gzBig := gzipped(t, cat([]byte("BLENDER-v304"), big))
	zstBig := zstded(t, cat([]byte("BLENDER-v304"), big))

	// A gzip member whose deflate data is a run of empty stored blocks
	// yields no output however long it goes on.
	var emptyBlocks bytes.Buffer
	emptyBlocks.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	for emptyBlocks.Len() < 2<<20 {
		emptyBlocks.Write([]byte{0x00, 0x00, 0x00, 0xff, 0xff})
	}

	tests := []struct {
		name  string
		data  []byte
		code  string
		parts []string
	}{
		{"empty", nil, CodeTruncatedBlendFile, []string{"empty"}},
		{"start of magic", []byte("BLEN"), CodeTruncatedBlendFile, []string{"4 bytes"}},
		{"magic only", []byte("BLENDER"), CodeTruncatedBlendFile, nil},
		{"cut in version", []byte("BLENDER-v3"), CodeTruncatedBlendFile, []string{"10 bytes"}},
		{"large header cut", []byte("BLENDER17-01v05"), CodeTruncatedBlendFile, nil},
		{"text", []byte("hello world, this is not a scene\n"), CodeNotABlendFile, []string{`found text: "hello world`, "upload a file saved by Blender"}},
		{"long text", []byte(strings.Repeat("lorem ipsum ", 100)), CodeNotABlendFile, []string{"found text", "…"}},
		{"utf-8 text cut in a character", []byte("a" + strings.Repeat("é", 300)), CodeNotABlendFile, []string{"found text: \"aéé"}},
		{"short file ending inside a character", []byte("abc\xc3"), CodeNotABlendFile, []string{"binary data"}},
		{"html", []byte("<!DOCTYPE html><html>"), CodeNotABlendFile, []string{"<!DOCTYPE html>"}},
		{"lower case", []byte("blender-v304"), CodeNotABlendFile, []string{"found text"}},
		{"zip", []byte("PK\x03\x04\x14\x00\x00\x00"), CodeNotABlendFile, []string{"zip archive"}},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00"), CodeNotABlendFile, []string{"binary data starting with 89 50 4e 47"}},
		{"wrong magic", []byte("BLENDEX-v304"), CodeNotABlendFile, nil},
		{"bad pointer byte", []byte("BLENDER+v304"), CodeCorruptBlendFile, []string{"newer"}},
		{"bad endian byte", []byte("BLENDER-x304"), CodeCorruptBlendFile, []string{"character 9", `"x"`}},
		{"bad version digit", []byte("BLENDER-v3a4"), CodeCorruptBlendFile, []string{"character 11", "digit"}},
		{"binary version", []byte("BLENDER-v\xff\x00\x01"), CodeCorruptBlendFile, []string{`"\xff"`}},
		{"bad digit before the end", []byte("BLENDER-vx"), CodeCorruptBlendFile, nil},
		{"large header too small", []byte("BLENDER12-01v0500"), CodeCorruptBlendFile, []string{"12 bytes"}},
		{"large header bad dash", []byte("BLENDER17+01v0500"), CodeCorruptBlendFile, nil},
		{"large header format 0", []byte("BLENDER17-00v0500"), CodeCorruptBlendFile, nil},
		{"large header bad size digit", []byte("BLENDER1x-01v0500"), CodeCorruptBlendFile, nil},
		{"large header bad version", []byte("BLENDER17-01v05a0"), CodeCorruptBlendFile, nil},
		{"large header bad endian", []byte("BLENDER17-01x0500"), CodeCorruptBlendFile, nil},

		{"gzip of text", gzipped(t, []byte("just some notes\n")), CodeNotABlendFile, []string{"gzip-compressed", "found text"}},
		{"gzip of nothing", gzipped(t, nil), CodeTruncatedBlendFile, []string{"0 bytes"}},
		{"gzip of a short header", gzipped(t, []byte("BLENDER-v3")), CodeTruncatedBlendFile, []string{"10 bytes"}},
		{"gzip magic only", []byte{0x1f, 0x8b}, CodeTruncatedBlendFile, nil},
		{"gzip cut in header", gzBig[:12], CodeTruncatedBlendFile, nil},
		{"gzip bad method", []byte{0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3}, CodeCorruptBlendFile, []string{"gzip"}},
		{"gzip bad deflate", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff}, CodeCorruptBlendFile, []string{"gzip stream is damaged"}},
		{"gzip endless empty blocks", emptyBlocks.Bytes(), CodeCorruptBlendFile, []string{"first 1 MiB"}},
		{"zstd of text", zstded(t, []byte("some text\n")), CodeNotABlendFile, []string{"zstd-compressed", "found text"}},
		{"zstd of a short header", zstded(t, []byte("BLENDER")), CodeTruncatedBlendFile, nil},
		{"zstd magic only", zstdMagic, CodeTruncatedBlendFile, nil},
		{"zstd cut", zstBig[:20], CodeTruncatedBlendFile, nil},
		{"zstd bad frame", cat(zstdMagic, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), CodeCorruptBlendFile, nil},
		// A window descriptor of 1 GiB: refused before anything that size
		// is allocated.
		{"zstd huge window", cat(zstdMagic, []byte{0x00, 20 << 3, 0x01, 0x00, 0x00}, body(64)), CodeCorruptBlendFile, []string{"window"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ReadHeader(bytes.NewReader(tt.data))
			if err == nil {
				t.Fatalf("no error, header %+v", h)
			}
			wantCode(t, err, tt.code, tt.parts...)
			if h != (Header{}) {
				t.Errorf("header %+v returned with the error", h)
			}
		})
	}
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// endless repeats its pattern forever.
type endless struct {
	head, pattern []byte
	pos           int
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(e.head) > 0 {
			k := copy(p[n:], e.head)
			e.head = e.head[k:]
			n += k
			continue
		}
		k := copy(p[n:], e.pattern[e.pos:])
		e.pos = (e.pos + k) % len(e.pattern)
		n += k
	}
	return n, nil
}

func TestReadHeaderBoundedInput(t *testing.T) {
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"endless gzip of empty blocks", &endless{
			head:    []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff},
			pattern: []byte{0x00, 0x00, 0x00, 0xff, 0xff},
		}},
		// Raw zstd blocks of zero length, never the last one.
		{"endless zstd of empty blocks", &endless{
			head:    cat(zstdMagic, []byte{0x00, 0x00}),
			pattern: []byte{0x00, 0x00, 0x00},
		}},
		{"endless plain bytes", &endless{pattern: []byte("BLENDER-v304")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &countingReader{r: tt.r}
			_, err := ReadHeader(c)
			t.Logf("read %d bytes: %v", c.n, err)
			if limit := int64(maxCompressedInput + 128<<10); c.n > limit {
				t.Errorf("read %d bytes, want at most %d", c.n, limit)
			}
		})
	}
}

func TestReadHeaderReaderFailure(t *testing.T) {
	boom := errors.New("disk on fire")
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"at once", iotest.ErrReader(boom)},
		{"after a little", io.MultiReader(bytes.NewReader([]byte("BLEN")), iotest.ErrReader(boom))},
		{"inside gzip", io.MultiReader(bytes.NewReader(gzipped(t, body(10000))[:600]), iotest.ErrReader(boom))},
		{"inside zstd", io.MultiReader(bytes.NewReader(zstded(t, body(300000))[:1000]), iotest.ErrReader(boom))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadHeader(tt.r)
			if !errors.Is(err, boom) {
				t.Fatalf("error = %v, want one wrapping the reader's", err)
			}
			var e *Error
			if errors.As(err, &e) {
				t.Errorf("a reader failure is blamed on the file: %v", err)
			}
		})
	}
}

// stalled never returns anything.
type stalled struct{}

func (stalled) Read([]byte) (int, error) { return 0, nil }

func TestReadHeaderStalledReader(t *testing.T) {
	for _, r := range []io.Reader{stalled{}, io.MultiReader(bytes.NewReader(gzipped(t, body(10000))[:600]), stalled{})} {
		_, err := ReadHeader(r)
		if !errors.Is(err, io.ErrNoProgress) {
			t.Errorf("error = %v, want io.ErrNoProgress", err)
		}
	}
}

func TestReadHeaderFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "scene.blend")
	if err := os.WriteFile(good, zstded(t, cat([]byte("BLENDER-v304"), body(1000))), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeaderFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Header{CompressionZstd, 8, false, 304}); h != want {
		t.Errorf("header = %+v, want %+v", h, want)
	}

	notes := filepath.Join(dir, "notes.blend")
	if err := os.WriteFile(notes, []byte("TODO: render\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadHeaderFile(notes)
	wantCode(t, err, CodeNotABlendFile, "found text")

	for _, p := range []string{dir, filepath.Join(dir, "missing.blend")} {
		_, err := ReadHeaderFile(p)
		var e *Error
		if err == nil || errors.As(err, &e) {
			t.Errorf("ReadHeaderFile(%s) = %v, want a plain error", p, err)
		}
	}
}

func TestVersionString(t *testing.T) {
	tests := []struct {
		v    int
		want string
	}{
		{304, "3.4"}, {300, "3.0"}, {306, "3.6"}, {279, "2.79"}, {280, "2.80"},
		{249, "2.49"}, {403, "4.3"}, {405, "4.5"}, {500, "5.0"}, {1000, "10.0"}, {0, "0.00"},
	}
	for _, tt := range tests {
		if got := (Header{Version: tt.v}).VersionString(); got != tt.want {
			t.Errorf("VersionString(%d) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestErrorString(t *testing.T) {
	err := error(&Error{Code: CodeNotABlendFile, Message: "found text"})
	if got, want := err.Error(), "NOT_A_BLEND_FILE: found text"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
