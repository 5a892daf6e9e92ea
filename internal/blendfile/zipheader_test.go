package blendfile

import (
	"archive/zip"
	"bytes"
	"testing"
)

// TestReadZipHeader: the version of the .blend inside a project zip, for
// every compression of the .blend and both of the zip's entries, read
// without extracting.
func TestReadZipHeader(t *testing.T) {
	rest := body(4096)
	blend43 := cat([]byte("BLENDER-v403"), rest)
	tests := []struct {
		name  string
		entry zipEntry
		want  Header
	}{
		{"plain, deflated", zipEntry{name: "shot/shot.blend", body: blend43}, Header{CompressionNone, 8, false, 403}},
		{"plain, stored", zipEntry{name: "shot/shot.blend", body: blend43, store: true}, Header{CompressionNone, 8, false, 403}},
		{"gzip, deflated", zipEntry{name: "shot/shot.blend", body: gzipped(t, cat([]byte("BLENDER-v279"), rest))}, Header{CompressionGzip, 8, false, 279}},
		{"gzip, stored", zipEntry{name: "shot/shot.blend", body: gzipped(t, []byte("BLENDER_V249")), store: true}, Header{CompressionGzip, 4, true, 249}},
		{"zstd, deflated", zipEntry{name: "shot/shot.blend", body: zstded(t, cat([]byte("BLENDER-v304"), body(300<<10)))}, Header{CompressionZstd, 8, false, 304}},
		{"zstd, stored", zipEntry{name: "shot/shot.blend", body: zstded(t, blend43), store: true}, Header{CompressionZstd, 8, false, 403}},
		{"large header format", zipEntry{name: "shot/shot.blend", body: cat([]byte("BLENDER17-01v0405"), rest)}, Header{CompressionNone, 8, false, 405}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeZip(t, folder("shot/"), tt.entry, file("shot/textures/wood.png", "png"),
				zipEntry{name: "shot/libs/props.blend", body: []byte("BLENDER-v500")})
			p, h, err := ReadZipHeader(path, ZipLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if h != tt.want {
				t.Errorf("header = %+v, want %+v", h, tt.want)
			}
			if want, _ := CheckZip(path, ZipLimits{}); p != want {
				t.Errorf("project = %+v, want CheckZip's %+v", p, want)
			}
		})
	}
}

func TestReadZipHeaderRefusals(t *testing.T) {
	huge := bytes.Repeat([]byte{0}, 2<<20)
	tests := []struct {
		name    string
		entries []zipEntry
		code    string
		parts   []string
	}{
		{"a .blend that is text", []zipEntry{file("shot.blend", "hello, this is not a scene\n")},
			CodeNotABlendFile, []string{`the project's .blend "shot.blend": `}},
		{"a .blend cut short", []zipEntry{file("shot.blend", "BLEND")}, CodeTruncatedBlendFile, []string{`"shot.blend"`}},
		{"a deflated entry that is damaged", []zipEntry{{body: []byte{0xff, 0xff, 0xff, 0xff}, raw: rawHeader("shot.blend", 4)}},
			CodeCorruptZip, []string{`entry "shot.blend" cannot be unpacked`}},
		// Nothing but zeros for two MiB: the header is looked for in the
		// first of them only.
		{"a .blend of zeros", []zipEntry{{name: "shot.blend", body: huge, store: true}}, CodeNotABlendFile, nil},
		{"the zip's own refusals first", []zipEntry{file("a.blend", "BLENDER-v304"), file("b.blend", "BLENDER-v304")}, CodeZipMultipleBlends, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, h, err := ReadZipHeader(writeZip(t, tt.entries...), ZipLimits{})
			wantCode(t, err, tt.code, tt.parts...)
			if h != (Header{}) {
				t.Errorf("header %+v with the error", h)
			}
		})
	}
}

// rawHeader is the header of a deflated entry of size bytes whose data the
// test writes as it is.
func rawHeader(name string, size uint64) *zip.FileHeader {
	return &zip.FileHeader{Name: name, Method: zip.Deflate, CompressedSize64: size, UncompressedSize64: size}
}
