package blendfile

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zipEntry describes one entry of a zip built by a test.
type zipEntry struct {
	name  string
	body  []byte
	mode  fs.FileMode // set with SetMode when not 0
	store bool        // store instead of deflate
	// raw, when set, is written with CreateRaw: body is then the entry's
	// data as stored, and the header may say anything.
	raw *zip.FileHeader
}

func file(name, body string) zipEntry { return zipEntry{name: name, body: []byte(body)} }

func folder(name string) zipEntry { return zipEntry{name: name} }

var blendBody = "BLENDER-v304 and then the blocks"

func blend(name string) zipEntry { return file(name, blendBody) }

func zipBytes(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, e := range entries {
		if e.raw != nil {
			fw, err := w.CreateRaw(e.raw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fw.Write(e.body); err != nil {
				t.Fatal(err)
			}
			continue
		}
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.store {
			h.Method = zip.Store
		}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		fw, err := w.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "upload.zip")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeZip(t testing.TB, entries ...zipEntry) string {
	t.Helper()
	return writeFile(t, zipBytes(t, entries...))
}

func deflated(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawDeflate is an entry whose header declares size and crc for data, the
// deflated form of content: a header that may lie.
func rawDeflate(t testing.TB, name string, content []byte, size uint64, crc uint32) zipEntry {
	data := deflated(t, content)
	return zipEntry{body: data, raw: &zip.FileHeader{
		Name:               name,
		Method:             zip.Deflate,
		CRC32:              crc,
		CompressedSize64:   uint64(len(data)),
		UncompressedSize64: size,
	}}
}

// honest is rawDeflate with a header that tells the truth.
func honest(t testing.TB, name string, content []byte) zipEntry {
	return rawDeflate(t, name, content, uint64(len(content)), crc32.ChecksumIEEE(content))
}

func TestCheckZip(t *testing.T) {
	zeros := make([]byte, 3<<20)
	tests := []struct {
		name    string
		entries []zipEntry
		lim     ZipLimits
		want    Project // when code is ""
		code    string
		parts   []string
	}{
		{
			name:    "blend at the root",
			entries: []zipEntry{blend("scene.blend"), folder("textures/"), file("textures/wood.png", "png")},
			want:    Project{BlendPath: "scene.blend", Entries: 3, TotalBytes: int64(len(blendBody) + 3)},
		},
		{
			name:    "single top-level folder",
			entries: []zipEntry{folder("shot/"), blend("shot/scene.blend"), folder("shot/tex/"), file("shot/tex/a.png", "a")},
			want:    Project{BlendPath: "scene.blend", Root: "shot", Entries: 4, TotalBytes: int64(len(blendBody) + 1)},
		},
		{
			name:    "single top-level folder without folder entries",
			entries: []zipEntry{blend("shot/scene.blend"), file("shot/tex/a.png", "a")},
			want:    Project{BlendPath: "scene.blend", Root: "shot", Entries: 2, TotalBytes: int64(len(blendBody) + 1)},
		},
		{
			name:    "backups are ignored",
			entries: []zipEntry{blend("scene.blend"), blend("scene.blend1"), blend("scene.blend2"), blend("scene.blend@")},
			want:    Project{BlendPath: "scene.blend", Entries: 4, TotalBytes: int64(4 * len(blendBody))},
		},
		{
			name:    "upper-case extension",
			entries: []zipEntry{blend("Scene.BLEND")},
			want:    Project{BlendPath: "Scene.BLEND", Entries: 1, TotalBytes: int64(len(blendBody))},
		},
		{
			name:    "blends in folders beside the root one",
			entries: []zipEntry{blend("main.blend"), blend("libs/chars.blend")},
			want:    Project{BlendPath: "main.blend", Entries: 2, TotalBytes: int64(2 * len(blendBody))},
		},
		{
			name: "macOS Finder zip",
			entries: []zipEntry{
				folder("shot/"), blend("shot/scene.blend"), file("shot/.DS_Store", "x"),
				folder("__MACOSX/"), folder("__MACOSX/shot/"), file("__MACOSX/shot/._scene.blend", "x"),
			},
			want: Project{BlendPath: "scene.blend", Root: "shot", Entries: 6, TotalBytes: int64(len(blendBody) + 2)},
		},
		{
			name:    "AppleDouble beside the blend",
			entries: []zipEntry{blend("scene.blend"), file("._scene.blend", "x")},
			want:    Project{BlendPath: "scene.blend", Entries: 2, TotalBytes: int64(len(blendBody) + 1)},
		},
		{
			name:    "Windows separators",
			entries: []zipEntry{blend(`shot\scene.blend`), file(`shot\tex\a.png`, "a")},
			want:    Project{BlendPath: "scene.blend", Root: "shot", Entries: 2, TotalBytes: int64(len(blendBody) + 1)},
		},
		{
			name:    "Windows folder entries",
			entries: []zipEntry{folder(`shot\`), blend(`shot\scene.blend`), folder(`shot\tex\`), file(`shot\tex\a.png`, "a")},
			want:    Project{BlendPath: "scene.blend", Root: "shot", Entries: 4, TotalBytes: int64(len(blendBody) + 1)},
		},
		{
			name:    "dot folder entries",
			entries: []zipEntry{folder("./"), blend("./scene.blend")},
			want:    Project{BlendPath: "scene.blend", Entries: 2, TotalBytes: int64(len(blendBody))},
		},
		{
			name:    "stored and small compressible files pass",
			entries: []zipEntry{blend("scene.blend"), {name: "big.bin", body: body(2 << 20), store: true}, file("zeros.bin", string(make([]byte, 900<<10)))},
			want:    Project{BlendPath: "scene.blend", Entries: 3, TotalBytes: int64(len(blendBody) + 2<<20 + 900<<10)},
		},
		{
			name:    "exactly the limits",
			entries: []zipEntry{blend("scene.blend"), file("a", "12345")},
			lim:     ZipLimits{MaxEntries: 2, MaxTotalBytes: int64(len(blendBody) + 5)},
			want:    Project{BlendPath: "scene.blend", Entries: 2, TotalBytes: int64(len(blendBody) + 5)},
		},

		{name: "no blend", entries: []zipEntry{file("a.txt", "x"), file("textures/b.png", "x"), file("textures/c.png", "x")},
			code: CodeZipNoBlend, parts: []string{"at its root", "found: a.txt, textures/…"}},
		{name: "no blend in folder", entries: []zipEntry{file("shot/a.txt", "x"), folder("shot/tex/")},
			code: CodeZipNoBlend, parts: []string{`folder "shot"`, "shot/a.txt, shot/tex/…"}},
		{name: "many names listed", entries: []zipEntry{file("1", ""), file("2", ""), file("3", ""), file("4", ""), file("5", ""), file("6", ""), file("7", "")},
			code: CodeZipNoBlend, parts: []string{"1, 2, 3, 4, 5 and 2 more"}},
		{name: "only backups", entries: []zipEntry{blend("scene.blend1")}, code: CodeZipNoBlend, parts: []string{"scene.blend1"}},
		{name: "only deeper", entries: []zipEntry{blend("shot/scenes/a.blend"), file("shot/tex/a.png", "x")},
			code: CodeZipNoBlend, parts: []string{"only deeper", "shot/scenes/a.blend"}},
		{name: "two folders", entries: []zipEntry{blend("a/scene.blend"), file("b/x", "x")},
			code: CodeZipNoBlend, parts: []string{"a/scene.blend"}},
		{name: "empty", entries: nil, code: CodeZipNoBlend, parts: []string{"empty"}},
		{name: "only macOS metadata", entries: []zipEntry{file("__MACOSX/._a.blend", "x")}, code: CodeZipNoBlend, parts: []string{"empty"}},
		{name: "two blends", entries: []zipEntry{blend("a.blend"), blend("b.blend"), file("c.txt", "")},
			code: CodeZipMultipleBlends, parts: []string{"2 .blend files", "a.blend, b.blend"}},
		{name: "two blends in the folder", entries: []zipEntry{blend("shot/a.blend"), blend("shot/b.blend")},
			code: CodeZipMultipleBlends, parts: []string{"shot/a.blend, shot/b.blend"}},

		{name: "parent path", entries: []zipEntry{blend("scene.blend"), file("../x", "x")}, code: CodeZipUnsafePath, parts: []string{`"../x"`, ".."}},
		{name: "parent inside", entries: []zipEntry{blend("scene.blend"), file("a/../../x", "x")}, code: CodeZipUnsafePath, parts: []string{`"a/../../x"`}},
		{name: "harmless parent is still refused", entries: []zipEntry{blend("scene.blend"), file("a/../x", "x")}, code: CodeZipUnsafePath},
		{name: "absolute", entries: []zipEntry{blend("scene.blend"), file("/etc/x", "x")}, code: CodeZipUnsafePath, parts: []string{`"/etc/x"`, "absolute"}},
		{name: "backslash parent", entries: []zipEntry{blend("scene.blend"), file(`..\x`, "x")}, code: CodeZipUnsafePath, parts: []string{`"..\\x"`}},
		{name: "backslash dot dot inside", entries: []zipEntry{blend("scene.blend"), file(`a\.\..\..\x`, "x")}, code: CodeZipUnsafePath},
		{name: "backslash absolute", entries: []zipEntry{blend("scene.blend"), file(`\windows\x`, "x")}, code: CodeZipUnsafePath, parts: []string{"absolute"}},
		{name: "UNC path", entries: []zipEntry{blend("scene.blend"), file(`\\server\share\x`, "x")}, code: CodeZipUnsafePath},
		{name: "drive letter", entries: []zipEntry{blend("scene.blend"), file(`C:\x`, "x")}, code: CodeZipUnsafePath, parts: []string{"drive letter"}},
		{name: "drive relative", entries: []zipEntry{blend("scene.blend"), file("c:x", "x")}, code: CodeZipUnsafePath, parts: []string{"drive letter"}},
		{name: "control character", entries: []zipEntry{blend("scene.blend"), file("a\nb", "x")}, code: CodeZipUnsafePath, parts: []string{`"a\nb"`}},
		{name: "NUL", entries: []zipEntry{blend("scene.blend"), file("a\x00b", "x")}, code: CodeZipUnsafePath},
		{name: "long element", entries: []zipEntry{blend("scene.blend"), file(strings.Repeat("a", 256), "x")}, code: CodeZipUnsafePath, parts: []string{"255"}},
		{name: "long path", entries: []zipEntry{blend("scene.blend"), file(strings.Repeat("abcdefgh/", 120)+"x", "x")}, code: CodeZipUnsafePath, parts: []string{"1024"}},
		{name: "file named dot", entries: []zipEntry{blend("scene.blend"), file("./", "")}, want: Project{BlendPath: "scene.blend", Entries: 2, TotalBytes: int64(len(blendBody))}},
		{name: "file without name", entries: []zipEntry{blend("scene.blend"), file(".", "x")}, code: CodeZipUnsafePath, parts: []string{"without a name"}},

		{name: "symlink", entries: []zipEntry{blend("scene.blend"), {name: "tex", body: []byte("/etc"), mode: fs.ModeSymlink | 0o777}},
			code: CodeZipLink, parts: []string{`"tex"`, "symbolic link"}},
		{name: "symlink named like a folder", entries: []zipEntry{blend("scene.blend"), {name: "tex/", mode: fs.ModeSymlink | 0o777}},
			code: CodeZipLink},
		{name: "named pipe", entries: []zipEntry{blend("scene.blend"), {name: "fifo", mode: fs.ModeNamedPipe | 0o644}}, code: CodeZipLink, parts: []string{"named pipe"}},
		{name: "device", entries: []zipEntry{blend("scene.blend"), {name: "sda", mode: fs.ModeDevice | 0o644}}, code: CodeZipLink, parts: []string{"device"}},
		{name: "socket", entries: []zipEntry{blend("scene.blend"), {name: "sock", mode: fs.ModeSocket | 0o644}}, code: CodeZipLink},

		{name: "duplicate", entries: []zipEntry{blend("scene.blend"), file("a.txt", "1"), file("a.txt", "2")}, code: CodeZipDuplicateEntry, parts: []string{`"a.txt"`}},
		{name: "duplicate after cleaning", entries: []zipEntry{blend("scene.blend"), file("tex/a.png", "1"), file("./tex//a.png", "2")}, code: CodeZipDuplicateEntry},
		{name: "duplicate blend", entries: []zipEntry{blend("scene.blend"), blend("scene.blend")}, code: CodeZipDuplicateEntry},
		{name: "file and folder", entries: []zipEntry{blend("scene.blend"), file("tex", "x"), file("tex/a.png", "x")}, code: CodeZipDuplicateEntry, parts: []string{`"tex"`, "both"}},
		{name: "folder then file", entries: []zipEntry{blend("scene.blend"), file("a/b/c", "x"), file("a/b", "x")}, code: CodeZipDuplicateEntry, parts: []string{`"a/b"`}},

		{name: "encrypted", entries: []zipEntry{blend("scene.blend"), {body: []byte("secret"), raw: &zip.FileHeader{Name: "s.txt", Method: zip.Store, Flags: 0x1, CompressedSize64: 6, UncompressedSize64: 6}}},
			code: CodeZipEncrypted, parts: []string{"password"}},
		{name: "bzip2", entries: []zipEntry{blend("scene.blend"), {body: []byte("BZh9..."), raw: &zip.FileHeader{Name: "b.bin", Method: 12, CompressedSize64: 7, UncompressedSize64: 100}}},
			code: CodeZipUnsupportedMethod, parts: []string{"bzip2"}},

		{name: "too many entries", entries: []zipEntry{blend("scene.blend"), file("a", ""), file("b", ""), file("c", ""), file("d", "")},
			lim: ZipLimits{MaxEntries: 3}, code: CodeZipTooManyEntries, parts: []string{"5 entries", "3 allowed"}},
		{name: "too large", entries: []zipEntry{blend("scene.blend"), file("a", strings.Repeat("x", 600)), file("b", strings.Repeat("y", 600))},
			lim: ZipLimits{MaxTotalBytes: 1000}, code: CodeZipTooLarge, parts: []string{`"b"`}},
		{name: "one entry too large", entries: []zipEntry{blend("scene.blend"), {body: []byte("x"), raw: &zip.FileHeader{Name: "huge", Method: zip.Store, CompressedSize64: 1, UncompressedSize64: 1 << 62}}},
			code: CodeZipTooLarge, parts: []string{"20.0 GiB"}},
		{name: "bomb", entries: []zipEntry{blend("scene.blend"), {name: "zeros.bin", body: zeros}},
			code: CodeZipBomb, parts: []string{`"zeros.bin"`, "3.0 MiB", "over the limit of 200 times"}},
		{name: "bomb with a lower ratio", entries: []zipEntry{blend("scene.blend"), {name: "text.txt", body: []byte(strings.Repeat("all work and no play ", 10000))}},
			lim: ZipLimits{BombRatio: 10, BombMinBytes: 1000}, code: CodeZipBomb},
		{name: "bomb with nothing compressed", entries: []zipEntry{blend("scene.blend"), {raw: &zip.FileHeader{Name: "void", Method: zip.Deflate, UncompressedSize64: 2 << 20}}},
			code: CodeZipBomb, parts: []string{"without limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CheckZip(writeZip(t, tt.entries...), tt.lim)
			if tt.code != "" {
				if err == nil {
					t.Fatalf("no error, project %+v", p)
				}
				wantCode(t, err, tt.code, tt.parts...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p != tt.want {
				t.Errorf("project = %+v, want %+v", p, tt.want)
			}
		})
	}
}

func TestCheckZipCorrupt(t *testing.T) {
	good := zipBytes(t, blend("scene.blend"), file("a.txt", strings.Repeat("a", 1000)))
	tests := []struct {
		name  string
		data  []byte
		parts []string
	}{
		{"empty file", nil, []string{"empty"}},
		{"text", []byte("this is not a zip\n"), []string{"found text"}},
		{"a blend", []byte("BLENDER-v304........"), []string{"fileType blend"}},
		{"a compressed blend", zstded(t, []byte("BLENDER-v304")), []string{"fileType blend"}},
		{"random", body(5000), []string{"binary data"}},
		{"cut short", good[:len(good)/2], []string{"cut short"}},
		{"end record cut", good[:len(good)-5], nil},
		{"directory damaged", func() []byte {
			b := bytes.Clone(good)
			i := bytes.LastIndex(b, []byte("PK\x01\x02"))
			copy(b[i:], "XXXX")
			return b
		}(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CheckZip(writeFile(t, tt.data), ZipLimits{})
			wantCode(t, err, CodeCorruptZip, tt.parts...)
		})
	}
}

// A central directory far larger than the entry limit can need is refused
// before archive/zip has read all of it.
func TestCheckZipDirectoryBudget(t *testing.T) {
	entries := []zipEntry{blend("scene.blend")}
	long := strings.Repeat("n", 250)
	for i := range 5000 {
		entries = append(entries, file(fmt.Sprintf("%s%05d", long, i), ""))
	}
	path := writeZip(t, entries...)
	_, err := CheckZip(path, ZipLimits{MaxEntries: 10})
	wantCode(t, err, CodeZipTooManyEntries, "table of contents")

	// With a limit that fits, the same zip passes.
	p, err := CheckZip(path, ZipLimits{MaxEntries: 6000})
	if err != nil {
		t.Fatal(err)
	}
	if p.Entries != 5001 {
		t.Errorf("entries = %d, want 5001", p.Entries)
	}
}

func TestCheckZipNotAFile(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{dir, filepath.Join(dir, "missing.zip")} {
		_, err := CheckZip(p, ZipLimits{})
		var e *Error
		if err == nil || errors.As(err, &e) {
			t.Errorf("CheckZip(%s) = %v, want a plain error", p, err)
		}
	}
}

func TestDefaultZipLimits(t *testing.T) {
	want := ZipLimits{MaxEntries: 10_000, MaxTotalBytes: 20 << 30, BombRatio: 200, BombMinBytes: 1 << 20, BombMinTotalBytes: 256 << 20}
	if got := DefaultZipLimits(); got != want {
		t.Errorf("DefaultZipLimits() = %+v, want %+v", got, want)
	}
	if got := (ZipLimits{MaxEntries: 5, BombRatio: -1}).orDefaults(); got != (ZipLimits{5, 20 << 30, 200, 1 << 20, 256 << 20}) {
		t.Errorf("orDefaults = %+v", got)
	}
}

// tree lists what lies below dir: paths with a trailing "/" for folders, and
// file contents.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case info.IsDir():
			if perm := info.Mode().Perm(); perm&^0o755 != 0 {
				t.Errorf("folder %s has mode %v, want at most 0755", rel, perm)
			}
			got[rel+"/"] = ""
		case info.Mode().IsRegular():
			if perm := info.Mode().Perm(); perm&^0o644 != 0 {
				t.Errorf("file %s has mode %v, want at most 0644", rel, perm)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got[rel] = string(b)
		default:
			t.Errorf("%s has mode %v", rel, info.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func equalTrees(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("missing %s", k)
		} else if g != v {
			t.Errorf("%s holds %q, want %q", k, g, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s", k)
		}
	}
}

func TestExtractZip(t *testing.T) {
	big := body(1 << 20)
	path := writeZip(t,
		folder("shot/"),
		blend("shot/scene.blend"),
		file("shot/tex/wood.png", "wood"),
		file(`shot\tex\metal.png`, "metal"),
		zipEntry{name: "shot/cache/big.bin", body: big, store: true},
		honest(t, "shot/cache/raw.bin", []byte("deflated by hand")),
		file("shot/empty", ""),
		folder("shot/renders/"),
		folder("./"),
		file("__MACOSX/shot/._scene.blend", "mac"),
	)
	dest := filepath.Join(t.TempDir(), "jobs", "j1", "project")
	p, err := ExtractZip(path, dest, ZipLimits{})
	if err != nil {
		t.Fatal(err)
	}
	want := Project{BlendPath: "scene.blend", Root: "shot", Entries: 10,
		TotalBytes: int64(len(blendBody) + 4 + 5 + len(big) + 16 + 3)}
	if p != want {
		t.Errorf("project = %+v, want %+v", p, want)
	}
	equalTrees(t, tree(t, dest), map[string]string{
		"shot/":                       "",
		"shot/scene.blend":            blendBody,
		"shot/tex/":                   "",
		"shot/tex/wood.png":           "wood",
		"shot/tex/metal.png":          "metal",
		"shot/cache/":                 "",
		"shot/cache/big.bin":          string(big),
		"shot/cache/raw.bin":          "deflated by hand",
		"shot/empty":                  "",
		"shot/renders/":               "",
		"__MACOSX/":                   "",
		"__MACOSX/shot/":              "",
		"__MACOSX/shot/._scene.blend": "mac",
	})
	if _, err := os.Stat(filepath.Join(dest, p.Root, p.BlendPath)); err != nil {
		t.Errorf("the .blend is not where Project says: %v", err)
	}
}

func TestExtractZipIntoEmptyFolder(t *testing.T) {
	dest := t.TempDir()
	p, err := ExtractZip(writeZip(t, blend("scene.blend")), dest, ZipLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if p.BlendPath != "scene.blend" || p.Root != "" {
		t.Errorf("project = %+v", p)
	}
	equalTrees(t, tree(t, dest), map[string]string{"scene.blend": blendBody})
}

// Zips that pass CheckZip, since their headers look fine, but fail while
// their data is written.
func TestExtractZipFailsWhileWriting(t *testing.T) {
	zeros := make([]byte, 3<<20)
	zerosCRC := crc32.ChecksumIEEE(zeros)
	text := []byte(strings.Repeat("some project notes\n", 100))
	good := []zipEntry{blend("shot/scene.blend"), file("shot/tex/a.png", "a"), folder("shot/renders/")}
	tests := []struct {
		name  string
		entry zipEntry
		lim   ZipLimits
		code  string
		parts []string
	}{
		// The header claims 10 KiB, a modest ratio; the data inflates to
		// 3 MiB. Writing stops at the declared size.
		{"size lie", rawDeflate(t, "shot/lie.bin", zeros, 10<<10, zerosCRC), ZipLimits{}, CodeZipBomb, []string{`"shot/lie.bin"`, "more than the 10.0 KiB its header declares"}},
		{"size lie under the total limit", rawDeflate(t, "shot/lie.bin", zeros, 100, zerosCRC), ZipLimits{MaxTotalBytes: 1 << 20}, CodeZipBomb, nil},
		{"shorter than declared", rawDeflate(t, "shot/short.txt", text, uint64(len(text)+10), crc32.ChecksumIEEE(text)), ZipLimits{}, CodeCorruptZip, []string{"declares"}},
		{"checksum", rawDeflate(t, "shot/bad.txt", text, uint64(len(text)), 12345), ZipLimits{}, CodeCorruptZip, []string{"checksum"}},
		{"damaged deflate", zipEntry{body: []byte{0xff, 0xff, 0xff, 0xff}, raw: &zip.FileHeader{Name: "shot/x", Method: zip.Deflate, CompressedSize64: 4, UncompressedSize64: 10}}, ZipLimits{}, CodeCorruptZip, []string{"cannot be unpacked"}},
		{"stored data shorter than declared", zipEntry{body: []byte("abc"), raw: &zip.FileHeader{Name: "shot/x", Method: zip.Store, CompressedSize64: 3, UncompressedSize64: 5}}, ZipLimits{}, CodeCorruptZip, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeZip(t, append(good, tt.entry, file("shot/after.txt", "after"))...)
			if _, err := CheckZip(path, tt.lim); err != nil {
				t.Fatalf("CheckZip: %v", err)
			}

			// A destination ExtractZip creates is removed again, with the
			// parents it created.
			base := t.TempDir()
			dest := filepath.Join(base, "jobs", "j1")
			_, err := ExtractZip(path, dest, tt.lim)
			wantCode(t, err, tt.code, tt.parts...)
			if _, err := os.Stat(filepath.Join(base, "jobs")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("created folders left behind: %v", err)
			}

			// An existing empty destination is left empty.
			dest = t.TempDir()
			_, err = ExtractZip(path, dest, tt.lim)
			wantCode(t, err, tt.code)
			equalTrees(t, tree(t, dest), map[string]string{})
		})
	}
}

// A zip refused by the checks is refused before anything is written.
func TestExtractZipChecksFirst(t *testing.T) {
	path := writeZip(t, blend("scene.blend"), file("a.txt", "a"), file("../evil", "x"))
	dest := filepath.Join(t.TempDir(), "project")
	_, err := ExtractZip(path, dest, ZipLimits{})
	wantCode(t, err, CodeZipUnsafePath, "../evil")
	if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("destination created for a refused zip: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dest), "..", "evil")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("entry written outside: %v", err)
	}
}

func TestExtractZipDestination(t *testing.T) {
	path := writeZip(t, blend("scene.blend"))
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{full, notDir} {
		_, err := ExtractZip(path, dest, ZipLimits{})
		var e *Error
		if err == nil || errors.As(err, &e) {
			t.Errorf("ExtractZip into %s = %v, want a plain error", dest, err)
		}
	}
	equalTrees(t, tree(t, full), map[string]string{"keep.txt": "mine"})
}

// The table of contents of a zip made by zipBytes: its records, in order,
// and the end record after them. Go's writer adds no comment, so the end
// record is the file's last 22 bytes.
func tableOfContents(t testing.TB, z []byte) (start int, records [][]byte) {
	t.Helper()
	end := z[len(z)-22:]
	if binary.LittleEndian.Uint32(end) != 0x06054b50 {
		t.Fatal("no end record at the end of the zip")
	}
	start = int(binary.LittleEndian.Uint32(end[16:]))
	dir := z[start : start+int(binary.LittleEndian.Uint32(end[12:]))]
	for len(dir) > 0 {
		n := 46 + int(binary.LittleEndian.Uint16(dir[28:])) + int(binary.LittleEndian.Uint16(dir[30:])) + int(binary.LittleEndian.Uint16(dir[32:]))
		records = append(records, bytes.Clone(dir[:n]))
		dir = dir[n:]
	}
	return start, records
}

// record returns a copy of the table-of-contents record of entry name in z.
func record(t testing.TB, z []byte, name string) []byte {
	t.Helper()
	_, records := tableOfContents(t, z)
	for _, r := range records {
		if string(r[46:46+binary.LittleEndian.Uint16(r[28:])]) == name {
			return r
		}
	}
	t.Fatalf("no record of %q in the zip", name)
	return nil
}

// renamed returns a copy of record rec naming another entry: one more
// entry whose data is the very bytes of the first.
func renamed(rec []byte, name string) []byte {
	n := int(binary.LittleEndian.Uint16(rec[28:]))
	out := append(bytes.Clone(rec[:46]), name...)
	out = append(out, rec[46+n:]...)
	binary.LittleEndian.PutUint16(out[28:], uint16(len(name)))
	return out
}

// at returns a copy of record rec whose entry's local header is at offset.
func at(rec []byte, offset int) []byte {
	out := bytes.Clone(rec)
	binary.LittleEndian.PutUint32(out[42:], uint32(offset))
	return out
}

// withRecords returns z, a zip made by zipBytes, with recs added to its
// table of contents, which is all a reader goes by to find entries.
func withRecords(t testing.TB, z []byte, recs ...[]byte) []byte {
	t.Helper()
	start, records := tableOfContents(t, z)
	records = append(records, recs...)
	out := bytes.Clone(z[:start])
	for _, r := range records {
		out = append(out, r...)
	}
	end := bytes.Clone(z[len(z)-22:])
	binary.LittleEndian.PutUint16(end[8:], uint16(len(records)))
	binary.LittleEndian.PutUint16(end[10:], uint16(len(records)))
	binary.LittleEndian.PutUint32(end[12:], uint32(len(out)-start))
	return append(out, end...)
}

// sharedZeros is a zip bomb that passes every check on a single entry: a
// project whose table of contents lists one deflated MiB of zeros, about a
// KiB in the zip and so under the ratio's minimum, under copies more names.
func sharedZeros(t testing.TB, copies int) []byte {
	t.Helper()
	z := zipBytes(t, zipEntry{name: "scene.blend", body: []byte(blendBody), store: true},
		honest(t, "tex/00000.bin", make([]byte, 1<<20)))
	rec := record(t, z, "tex/00000.bin")
	var recs [][]byte
	for i := 1; i <= copies; i++ {
		recs = append(recs, renamed(rec, fmt.Sprintf("tex/%05d.bin", i)))
	}
	return withRecords(t, z, recs...)
}

// wantRefusedEverywhere checks that the zip at path is refused with code
// by CheckZip, ReadZipHeader and ExtractZip, and that ExtractZip wrote
// nothing, neither into a destination it would create nor into an empty
// one that exists.
func wantRefusedEverywhere(t *testing.T, path string, lim ZipLimits, code string, parts ...string) {
	t.Helper()
	_, err := CheckZip(path, lim)
	wantCode(t, err, code, parts...)
	_, _, err = ReadZipHeader(path, lim)
	wantCode(t, err, code, parts...)

	base := t.TempDir()
	_, err = ExtractZip(path, filepath.Join(base, "jobs", "j1"), lim)
	wantCode(t, err, code, parts...)
	equalTrees(t, tree(t, base), map[string]string{})
	dest := t.TempDir()
	_, err = ExtractZip(path, dest, lim)
	wantCode(t, err, code, parts...)
	equalTrees(t, tree(t, dest), map[string]string{})
}

// Entries stored in the same bytes of the zip are refused: zip tools never
// write them, and a bomb uses them to unpack one small stream many times,
// each copy small enough to pass the ratio on its own.
func TestZipEntriesSharingBytesAreRefused(t *testing.T) {
	t.Run("two thousand names for one MiB of zeros", func(t *testing.T) {
		z := sharedZeros(t, 1999)
		if len(z) > 200<<10 {
			t.Fatalf("the bomb is %d bytes, meant to be about 120 KiB", len(z))
		}
		wantRefusedEverywhere(t, writeFile(t, z), ZipLimits{}, CodeZipBomb,
			`"tex/00000.bin"`, `"tex/00001.bin"`, "same bytes", "zip the project folder again")
	})

	t.Run("a small file under two names", func(t *testing.T) {
		// Nothing to unpack is large here: the layout alone is refused.
		z := zipBytes(t, blend("scene.blend"), file("notes.txt", "shot 10, take 2"))
		z = withRecords(t, z, renamed(record(t, z, "notes.txt"), "copy.txt"))
		wantRefusedEverywhere(t, writeFile(t, z), ZipLimits{}, CodeZipBomb, `"notes.txt"`, `"copy.txt"`)
	})

	t.Run("an entry inside another's data", func(t *testing.T) {
		// A stored entry whose data is a whole other entry, local header
		// and all, and a record for that inner entry: the inner bytes are
		// unpacked twice, once in each.
		text := []byte(strings.Repeat("quoted ", 100))
		inner := zipBytes(t, zipEntry{name: "inner.txt", body: text, store: true})
		start, _ := tableOfContents(t, inner)
		local := inner[:start]
		z := zipBytes(t, blend("scene.blend"), zipEntry{name: "outer.bin", body: local, store: true})
		z = withRecords(t, z, at(record(t, inner, "inner.txt"), bytes.Index(z, local)))
		wantRefusedEverywhere(t, writeFile(t, z), ZipLimits{}, CodeZipBomb, `"outer.bin"`, `"inner.txt"`)
	})

	t.Run("a folder under two names", func(t *testing.T) {
		z := zipBytes(t, blend("scene.blend"), folder("tex/"))
		z = withRecords(t, z, renamed(record(t, z, "tex/"), "img/"))
		wantRefusedEverywhere(t, writeFile(t, z), ZipLimits{}, CodeZipBomb, `"tex/"`, `"img/"`)
	})
}

// An entry whose data, as its record declares it, runs into the table of
// contents or past the end of the file is damaged: it is refused before
// anything is unpacked.
func TestZipEntryDataOutsideItsPlaceIsRefused(t *testing.T) {
	for _, tt := range []struct {
		name     string
		declared uint64
		parts    []string
	}{
		{"into the table of contents", 3 + 50, []string{`"last.bin"`, "table of contents"}},
		{"past the end of the file", 3 + 1<<20, []string{`"last.bin"`, "end of the file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeZip(t, blend("scene.blend"), zipEntry{body: []byte("abc"), raw: &zip.FileHeader{
				Name: "last.bin", Method: zip.Store, CompressedSize64: tt.declared, UncompressedSize64: tt.declared,
			}})
			wantRefusedEverywhere(t, path, ZipLimits{}, CodeCorruptZip, tt.parts...)
		})
	}
}

// Every entry in bytes of its own, however many: a zip at the entry limit
// is accepted. (ExtractZip runs the same checks; TestExtractZip unpacks
// stored, deflated and empty entries past them.)
func TestZipWithManySmallEntriesIsAccepted(t *testing.T) {
	entries := []zipEntry{blend("shot/scene.blend"), file("shot/empty.txt", ""), folder("shot/tex/")}
	for i := range 9_997 {
		// Stored, as zip tools store images that are compressed already.
		entries = append(entries, zipEntry{name: fmt.Sprintf("shot/tex/%04d.png", i), body: []byte(fmt.Sprint("pixels ", i)), store: true})
	}
	path := writeZip(t, entries...)
	p, err := CheckZip(path, ZipLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Entries != 10_000 || p.Root != "shot" || p.BlendPath != "scene.blend" {
		t.Errorf("project = %+v", p)
	}
	if _, h, err := ReadZipHeader(path, ZipLimits{}); err != nil || h.Version != 304 {
		t.Fatalf("header %+v, %v", h, err)
	}
}

// zeroFiles is n entries tex/00000.bin, tex/00001.bin, …, each a MiB of
// zeros deflated to about a KiB, in bytes of its own: small enough one by
// one to be exempt from the ratio.
func zeroFiles(t testing.TB, n int) []zipEntry {
	t.Helper()
	zeros := make([]byte, 1<<20)
	data, crc := deflated(t, zeros), crc32.ChecksumIEEE(zeros)
	var entries []zipEntry
	for i := range n {
		entries = append(entries, zipEntry{body: data, raw: &zip.FileHeader{
			Name: fmt.Sprintf("tex/%05d.bin", i), Method: zip.Deflate, CRC32: crc,
			CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(zeros)),
		}})
	}
	return entries
}

// Small files of zeros each pass, but the ratio holds for the whole zip
// too once it unpacks to more than 256 MiB.
func TestZipOfSmallFilesAddingUpToABombIsRefused(t *testing.T) {
	path := writeZip(t, append([]zipEntry{blend("scene.blend")}, zeroFiles(t, 300)...)...)
	wantRefusedEverywhere(t, path, ZipLimits{}, CodeZipBomb,
		"the zip's files unpack to 300.0 MiB from a zip of", "over the limit of 200 times", "zip -0")

	// Up to 256 MiB, however well it compresses, a zip harms no one.
	p, err := CheckZip(writeZip(t, append([]zipEntry{blend("scene.blend")}, zeroFiles(t, 250)...)...), ZipLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(blendBody) + 250<<20); p.TotalBytes != want {
		t.Errorf("total = %d, want %d", p.TotalBytes, want)
	}

	// The ratio and the size under which it does not count are the limits'.
	path = writeZip(t, append([]zipEntry{blend("scene.blend")}, zeroFiles(t, 3)...)...)
	wantRefusedEverywhere(t, path, ZipLimits{BombMinTotalBytes: 2 << 20}, CodeZipBomb, "3.0 MiB")
	if _, err := CheckZip(path, ZipLimits{BombMinTotalBytes: 2 << 20, BombRatio: 10_000}); err != nil {
		t.Errorf("with a ratio of 10,000: %v", err)
	}
}
