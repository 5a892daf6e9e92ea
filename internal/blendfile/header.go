package blendfile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// Compression values of Header.Compression.
const (
	CompressionNone = "none"
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// Header is what the first bytes of a .blend file say about it. It is enough
// to tell whether the workers' Blender can open the file, and to refuse a
// wrong upload before a Blender process is spent on it.
type Header struct {
	// Compression is CompressionNone, CompressionGzip (Blender before 3.0)
	// or CompressionZstd (Blender 3.0 and later).
	Compression string
	// PointerSize is 4 or 8, the pointer size of the machine that saved
	// the file.
	PointerSize int
	// BigEndian is true for files saved on a big-endian machine.
	BigEndian bool
	// Version is the version of the Blender that saved the file, as Blender
	// writes it: major*100 + minor, so 304 is 3.4 and 279 is 2.79.
	Version int
}

// VersionString formats Version the way Blender names its releases, so that
// a message can say which Blender saved a file: "3.4", "4.2", "2.79".
func (h Header) VersionString() string {
	major, minor := h.Version/100, h.Version%100
	// Blender 2.x numbered minor releases with two digits (2.79, 2.80);
	// from 3.0 on they are plain numbers (3.4, not 3.04).
	if major < 3 {
		return fmt.Sprintf("%d.%02d", major, minor)
	}
	return fmt.Sprintf("%d.%d", major, minor)
}

const (
	// sniffSize is how much of the (decompressed) start of a file is
	// examined: the longest header is 17 bytes, the rest is there to
	// recognise a text file and say so.
	sniffSize = 512
	// maxCompressedInput bounds the compressed bytes consumed to produce
	// sniffSize bytes. A real file yields them from its first block; a
	// hostile stream of empty blocks would otherwise be read to its end.
	maxCompressedInput = 1 << 20
	// maxZstdWindow bounds the history buffer a zstd frame may ask for,
	// since the decoder allocates it up front. Blender writes 1 MiB
	// frames, and the zstd command line stays within 8 MiB below level 20.
	maxZstdWindow = 32 << 20
)

var (
	blenderMagic = []byte("BLENDER")
	zstdMagic    = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic    = []byte{0x1f, 0x8b}

	errInputBudget = errors.New("compressed input budget exhausted")
)

// ReadHeaderFile is ReadHeader on the file at path.
func ReadHeaderFile(path string) (Header, error) {
	f, err := openRegular(path)
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	return ReadHeader(f)
}

// ReadHeader reads the .blend header at the start of r, decompressing a
// gzip or zstd file just far enough to see it. It reads at most about a
// mebibyte of r whatever r holds.
//
// A problem with the bytes themselves is an *Error with code
// CodeNotABlendFile, CodeTruncatedBlendFile or CodeCorruptBlendFile; an
// error from r itself is returned wrapped, as the farm's own failure.
func ReadHeader(r io.Reader) (Header, error) {
	src := &sourceReader{r: r}
	prefix, _ := readUpTo(src, sniffSize)
	if src.err != nil {
		return Header{}, fmt.Errorf("blendfile: reading header: %w", src.err)
	}
	switch {
	case bytes.HasPrefix(prefix, zstdMagic):
		return readCompressed(CompressionZstd, prefix, src)
	case bytes.HasPrefix(prefix, gzipMagic):
		return readCompressed(CompressionGzip, prefix, src)
	}
	return parseHeader(prefix, CompressionNone, false)
}

// readCompressed decompresses the start of a compressed .blend. The stream
// is read through a budget so that neither output nor input is unbounded.
func readCompressed(kind string, prefix []byte, src *sourceReader) (Header, error) {
	in := &budgetReader{r: io.MultiReader(bytes.NewReader(prefix), src), left: maxCompressedInput}
	var dec io.Reader
	var err error
	switch kind {
	case CompressionGzip:
		var zr *gzip.Reader
		zr, err = gzip.NewReader(in)
		if err == nil {
			defer zr.Close()
			dec = zr
		}
	default:
		var zd *zstd.Decoder
		zd, err = zstd.NewReader(in,
			zstd.WithDecoderConcurrency(1), // no goroutines for a few hundred bytes
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow),
		)
		if err != nil {
			return Header{}, fmt.Errorf("blendfile: starting zstd decoder: %w", err)
		}
		defer zd.Close()
		dec = zd
	}
	var content []byte
	if err == nil {
		content, err = readUpTo(dec, sniffSize)
	}
	if src.err != nil {
		return Header{}, fmt.Errorf("blendfile: reading header: %w", src.err)
	}
	switch {
	case err == nil:
		return parseHeader(content, kind, false)
	case in.exhausted:
		return Header{}, newError(CodeCorruptBlendFile,
			"the %s stream yields next to nothing from its first %d MiB, so it is damaged or was not written by Blender; save the file again in Blender and upload it",
			kind, maxCompressedInput>>20)
	case errors.Is(err, zstd.ErrWindowSizeExceeded):
		return Header{}, newError(CodeCorruptBlendFile,
			"the zstd stream asks for a decompression window over %d MiB, more than Blender ever uses; save the file again in Blender and upload it",
			maxZstdWindow>>20)
	case errors.Is(err, io.EOF):
		return parseHeader(content, kind, false)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return parseHeader(content, kind, true)
	}
	return Header{}, newError(CodeCorruptBlendFile,
		"the %s stream is damaged (%v); save the file again in Blender and upload it", kind, err)
}

// parseHeader decodes the header at the start of b, the (decompressed)
// first bytes of a file. cut says that a compressed stream broke off after
// b, which only matters when b is too short.
//
// Two layouts exist. The classic one, 12 bytes: "BLENDER", '_' or '-' for
// 4- or 8-byte pointers, 'v' or 'V' for little or big endian, three version
// digits. The one recent Blender writes for its large block headers, 17 bytes:
// "BLENDER", two digits of header size (17), '-', two digits of file format
// version (01), 'v', four version digits, always 8-byte pointers. The second
// layout is also accepted with a larger header size or format version, so
// that a file from a newer Blender is reported by its version rather than
// as damaged.
func parseHeader(b []byte, compression string, cut bool) (Header, error) {
	n := min(len(b), len(blenderMagic))
	if !bytes.Equal(b[:n], blenderMagic[:n]) {
		return Header{}, notBlendError(b, compression)
	}
	p := headerBytes{b: b, compression: compression, cut: cut}
	h := Header{Compression: compression}
	c, err := p.at(7)
	if err != nil {
		return Header{}, err
	}
	switch {
	case c == '_' || c == '-':
		h.PointerSize = 8
		if c == '_' {
			h.PointerSize = 4
		}
		if h.BigEndian, err = p.endian(8, `"v" or "V"`); err != nil {
			return Header{}, err
		}
		if h.Version, err = p.number(9, 12); err != nil {
			return Header{}, err
		}
		return h, nil

	case isDigit(c):
		size, err := p.number(7, 9)
		if err != nil {
			return Header{}, err
		}
		if size < 17 {
			return Header{}, newError(CodeCorruptBlendFile,
				"the .blend header declares a size of %d bytes, less than any Blender writes; save the file again in Blender and upload it", size)
		}
		if c, err := p.at(9); err != nil {
			return Header{}, err
		} else if c != '-' {
			return Header{}, p.wrong(9, `"-"`)
		}
		format, err := p.number(10, 12)
		if err != nil {
			return Header{}, err
		}
		if format < 1 {
			return Header{}, p.wrong(11, "a file format version of 01 or more")
		}
		// Blender writes this layout little endian only, but the byte
		// means the same as in the old layout, so it is read the same way.
		if h.BigEndian, err = p.endian(12, `"v"`); err != nil {
			return Header{}, err
		}
		if h.Version, err = p.number(13, 17); err != nil {
			return Header{}, err
		}
		h.PointerSize = 8
		return h, nil
	}
	return Header{}, newError(CodeCorruptBlendFile,
		"the file starts with BLENDER but the rest of its header (%s) has a layout the farm does not know; it may come from a Blender newer than the farm supports, or be damaged; save it with a released Blender version and upload it again",
		strconv.QuoteToASCII(string(b[7:min(len(b), 17)])))
}

// headerBytes reads a header byte by byte, so that a file which is too
// short is reported as truncated and not as damaged, but a wrong byte
// before the end is reported as damaged.
type headerBytes struct {
	b           []byte
	compression string
	cut         bool
}

func (p headerBytes) at(i int) (byte, error) {
	if i >= len(p.b) {
		return 0, truncatedError(len(p.b), p.compression, p.cut)
	}
	return p.b[i], nil
}

func (p headerBytes) wrong(i int, want string) error {
	return newError(CodeCorruptBlendFile,
		"the .blend header is damaged: character %d is %s where %s belongs; save the file again in Blender and upload it",
		i+1, strconv.QuoteToASCII(string(p.b[i:i+1])), want)
}

// number decodes the decimal digits in b[from:to].
func (p headerBytes) number(from, to int) (int, error) {
	v := 0
	for i := from; i < to; i++ {
		c, err := p.at(i)
		if err != nil {
			return 0, err
		}
		if !isDigit(c) {
			return 0, p.wrong(i, "a digit")
		}
		v = v*10 + int(c-'0')
	}
	return v, nil
}

// endian decodes the byte order mark at b[i]: true for big endian.
func (p headerBytes) endian(i int, want string) (bool, error) {
	c, err := p.at(i)
	if err != nil {
		return false, err
	}
	switch c {
	case 'v':
		return false, nil
	case 'V':
		return true, nil
	}
	return false, p.wrong(i, want)
}

func truncatedError(n int, compression string, cut bool) *Error {
	if compression == CompressionNone {
		if n == 0 {
			return newError(CodeTruncatedBlendFile, "the file is empty; upload the .blend file again")
		}
		return newError(CodeTruncatedBlendFile,
			"the file is only %d bytes long and ends inside the .blend header; the upload was probably cut short, upload the file again", n)
	}
	if cut {
		return newError(CodeTruncatedBlendFile,
			"the %s-compressed file breaks off after %d bytes of content, inside the .blend header; the upload was probably cut short, upload the file again",
			compression, n)
	}
	return newError(CodeTruncatedBlendFile,
		"the %s-compressed file holds only %d bytes, fewer than a .blend header; upload the complete .blend file",
		compression, n)
}

func notBlendError(b []byte, compression string) *Error {
	if compression == CompressionNone {
		return newError(CodeNotABlendFile,
			"the file does not start like a .blend file (found %s); upload a file saved by Blender", describe(b))
	}
	return newError(CodeNotABlendFile,
		"the file is %s-compressed but does not hold a .blend file (found %s); upload a file saved by Blender",
		compression, describe(b))
}

// describe names what b, the start of a file that is not a .blend, looks
// like, so that the uploader recognises their mistake.
func describe(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")):
		return "a zip archive, which is uploaded with fileType zip"
	case looksLikeText(b):
		return "text: " + snippet(b)
	}
	return fmt.Sprintf("binary data starting with % x", b[:min(len(b), 8)])
}

// looksLikeText reports whether b is UTF-8 text without control characters
// other than layout ones. A partial character at the end is allowed when b
// is a full sniffSize prefix, which may have cut it.
func looksLikeText(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	if len(b) < sniffSize {
		return utf8.Valid(b) && !hasControl(b)
	}
	start := len(b) - 1
	for start > 0 && len(b)-start < utf8.UTFMax && !utf8.RuneStart(b[start]) {
		start--
	}
	if !utf8.FullRune(b[start:]) {
		b = b[:start]
	}
	return utf8.Valid(b) && !hasControl(b)
}

func hasControl(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f {
			return true
		}
	}
	return false
}

// snippet quotes the first few characters of text b for a message.
func snippet(b []byte) string {
	const maxRunes = 40
	s := string(b)
	count := 0
	for i := range s {
		if count == maxRunes {
			return strconv.Quote(s[:i]) + "…"
		}
		count++
	}
	return strconv.Quote(s)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// readUpTo reads until buf holds n bytes or r fails. The error is nil when n
// bytes were read and io.EOF when r ended cleanly before.
func readUpTo(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, n)
	got, empty := 0, 0
	for got < n {
		k, err := r.Read(buf[got:])
		got += k
		if err != nil {
			return buf[:got], err
		}
		if k > 0 {
			empty = 0
			continue
		}
		// A decompressor that keeps returning nothing must not hang the
		// caller.
		if empty++; empty >= 100 {
			return buf[:got], io.ErrNoProgress
		}
	}
	return buf, nil
}

// sourceReader remembers a failure of the underlying reader, so that it is
// not mistaken for damage in the data the way a decompressor reports it.
type sourceReader struct {
	r     io.Reader
	err   error
	empty int // consecutive reads that returned nothing
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	switch {
	case err != nil && err != io.EOF:
		s.err = err
	case n == 0 && err == nil && len(p) > 0:
		// A reader that keeps returning nothing must not hang the caller,
		// nor look like damage inside a compressed stream.
		if s.empty++; s.empty >= 100 {
			s.err = io.ErrNoProgress
			return 0, s.err
		}
	default:
		s.empty = 0
	}
	return n, err
}

// budgetReader fails once left bytes have been read, and remembers it did.
type budgetReader struct {
	r         io.Reader
	left      int64
	exhausted bool
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.exhausted = true
		return 0, errInputBudget
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// openRegular opens path for reading, refusing anything but a regular file
// so that a stray FIFO or device cannot block or feed endless bytes.
func openRegular(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("blendfile: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("blendfile: %s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("blendfile: %w", err)
	}
	return f, nil
}
