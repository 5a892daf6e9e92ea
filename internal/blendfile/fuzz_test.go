package blendfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

var knownCodes = map[string]bool{
	CodeNotABlendFile: true, CodeTruncatedBlendFile: true, CodeCorruptBlendFile: true,
	CodeZipNoBlend: true, CodeZipMultipleBlends: true, CodeZipUnsafePath: true, CodeZipLink: true,
	CodeZipDuplicateEntry: true, CodeZipEncrypted: true, CodeZipUnsupportedMethod: true,
	CodeZipTooManyEntries: true, CodeZipTooLarge: true, CodeZipBomb: true, CodeCorruptZip: true,
}

// fileError fails unless err is an *Error with a known code: reading from
// memory or a fresh temporary file cannot fail on the farm's side, so every
// error is the input's.
func fileError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if !knownCodes[e.Code] || e.Message == "" {
		t.Fatalf("error %+v has an unknown code or no message", e)
	}
}

func FuzzReadHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHeader(bytes.NewReader(data))
		if err != nil {
			fileError(t, err)
			if h != (Header{}) {
				t.Fatalf("header %+v returned with error %v", h, err)
			}
			return
		}
		if h.PointerSize != 4 && h.PointerSize != 8 {
			t.Fatalf("pointer size %d", h.PointerSize)
		}
		if h.Version < 0 || h.Version > 9999 {
			t.Fatalf("version %d", h.Version)
		}
		switch h.Compression {
		case CompressionNone:
			if !bytes.HasPrefix(data, blenderMagic) {
				t.Fatalf("uncompressed header read from %q", data[:min(len(data), 20)])
			}
		case CompressionGzip, CompressionZstd:
		default:
			t.Fatalf("compression %q", h.Compression)
		}
		if h.VersionString() == "" {
			t.Fatal("empty version string")
		}
	})
}

// FuzzReadZipHeader reads the header of the .blend inside a project zip
// built around the fuzzed bytes, stored or deflated, and checks that it
// says what ReadHeader says of the same bytes outside a zip.
func FuzzReadZipHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, blend []byte, store bool) {
		path := writeZip(t, folder("shot/"), zipEntry{name: "shot/shot.blend", body: blend, store: store},
			file("shot/textures/wood.png", "png"))
		p, h, err := ReadZipHeader(path, ZipLimits{MaxEntries: 64, MaxTotalBytes: 8 << 20})
		if len(blend) > 8<<20 {
			return
		}
		want, wantErr := ReadHeader(bytes.NewReader(blend))
		if err != nil {
			fileError(t, err)
			if h != (Header{}) {
				t.Fatalf("header %+v returned with error %v", h, err)
			}
			if wantErr == nil && len(blend) < maxCompressedInput {
				t.Fatalf("ReadZipHeader failed (%v) where ReadHeader read %+v", err, want)
			}
			return
		}
		if wantErr != nil || h != want {
			t.Fatalf("ReadZipHeader = %+v, ReadHeader of the same bytes = %+v, %v", h, want, wantErr)
		}
		if p.Root != "shot" || p.BlendPath != "shot.blend" {
			t.Fatalf("project %+v", p)
		}
	})
}

func FuzzCheckZip(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		zipPath := filepath.Join(dir, "upload.zip")
		if err := os.WriteFile(zipPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		lim := ZipLimits{MaxEntries: 64, MaxTotalBytes: 8 << 20}
		p, err := CheckZip(zipPath, lim)
		if err != nil {
			fileError(t, err)
			return
		}
		if !strings.EqualFold(path.Ext(p.BlendPath), ".blend") || strings.Contains(p.BlendPath, "/") {
			t.Fatalf("blend path %q", p.BlendPath)
		}
		if p.Entries > lim.MaxEntries || p.TotalBytes > lim.MaxTotalBytes || p.TotalBytes < 0 {
			t.Fatalf("project %+v over the limits", p)
		}

		dest := filepath.Join(dir, "out", "project")
		x, err := ExtractZip(zipPath, dest, lim)
		if err != nil {
			fileError(t, err)
			if _, serr := os.Stat(filepath.Join(dir, "out")); !errors.Is(serr, fs.ErrNotExist) {
				t.Fatalf("extraction failed (%v) but left %s: %v", err, dest, serr)
			}
			return
		}
		// Extraction only succeeds when every entry held what it declared.
		if x != p {
			t.Fatalf("extracted %+v, checked %+v", x, p)
		}
		fi, err := os.Lstat(filepath.Join(dest, filepath.FromSlash(p.Root), p.BlendPath))
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("blend not extracted: %v", err)
		}
		var written int64
		err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case info.Mode().IsRegular():
				written += info.Size()
			case !info.IsDir():
				t.Fatalf("%s has mode %v", p, info.Mode())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if written != x.TotalBytes {
			t.Fatalf("wrote %d bytes, reported %d", written, x.TotalBytes)
		}
	})
}
