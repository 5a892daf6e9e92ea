package blender

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// pngHead is the start of every PNG.
const pngHead = "\x89PNG\r\n\x1a\n"

var pngFormat = mustFormat("PNG", "")

func mustFormat(requested, reported string) imageFormat {
	f, err := outputFormat(requested, reported)
	if err != nil {
		panic(err)
	}
	return f
}

// outputDirWith makes a directory holding files (name to content) and
// answers a handle on it.
func outputDirWith(t *testing.T, files map[string]string) (*os.File, string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, dir
}

func readImage(t *testing.T, im *FrameImage) string {
	t.Helper()
	body, err := io.ReadAll(im.Reader())
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// A frame is taken from the file of exactly the name the farm gave it, in
// the format's extension, and from nowhere else.
func TestOpenFrameTakesTheExpectedNameOnly(t *testing.T) {
	frame1 := pngHead + "frame one"
	dir, _ := outputDirWith(t, map[string]string{
		"frame_0001.png":   frame1,
		"frame_1.png":      pngHead + "not four digits",
		"frame_0002.jpg":   pngHead + "another extension",
		"frame_0003.PNG":   pngHead + "another case",
		"frame_0004_L.png": pngHead + "a view of its own",
		"render_0005.png":  pngHead + "another prefix",
	})
	im, err := openFrame(dir, 1, pngFormat)
	if err != nil {
		t.Fatal(err)
	}
	defer im.close()
	if im.Name != "frame_0001.png" || im.Size != int64(len(frame1)) || readImage(t, im) != frame1 {
		t.Errorf("frame 1 = %s (%d bytes) %q", im.Name, im.Size, readImage(t, im))
	}
	for _, frame := range []int{2, 3, 4, 5} {
		if im, err := openFrame(dir, frame, pngFormat); !errors.Is(err, fs.ErrNotExist) {
			if im != nil {
				im.close()
			}
			t.Errorf("frame %d: %v, want none found", frame, err)
		}
	}
	if _, err := openFrame(dir, 2, pngFormat); err == nil || !strings.Contains(err.Error(), "frame_0002.png") {
		t.Errorf("a missing frame's error %v does not name the file the farm looked for", err)
	}
}

// Whatever Blender leaves under a frame's name other than a file it wrote
// is refused, with a message that says what it is.
func TestOpenFrameRefusesWhatIsNotAFileBlenderWrote(t *testing.T) {
	dir, path := outputDirWith(t, nil)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(pngHead+"a secret of the worker's"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Frame 1: a link to a file outside. Frame 2: a link to a directory.
	must(os.Symlink(secret, filepath.Join(path, "frame_0001.png")))
	must(os.Symlink("/", filepath.Join(path, "frame_0002.png")))
	// Frame 3: a named pipe, which would block a plain open for ever.
	must(syscall.Mkfifo(filepath.Join(path, "frame_0003.png"), 0o644))
	// Frame 4: a directory.
	must(os.Mkdir(filepath.Join(path, "frame_0004.png"), 0o755))
	// Frame 5: a hard link to a file of another name.
	must(os.WriteFile(filepath.Join(path, "other.png"), []byte(pngHead+"another file"), 0o644))
	must(os.Link(filepath.Join(path, "other.png"), filepath.Join(path, "frame_0005.png")))
	// Frame 6: a PNG's start, then far more than a frame may be (sparse:
	// it takes no room).
	must(os.WriteFile(filepath.Join(path, "frame_0006.png"), []byte(pngHead), 0o644))
	must(os.Truncate(filepath.Join(path, "frame_0006.png"), maxFrameBytes+1))
	// Frame 7: not a PNG. Frame 8: empty.
	must(os.WriteFile(filepath.Join(path, "frame_0007.png"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644))
	must(os.WriteFile(filepath.Join(path, "frame_0008.png"), nil, 0o644))

	for frame, want := range map[int]string{
		1: "frame_0001.png is a symbolic link",
		2: "frame_0002.png is a symbolic link",
		3: "frame_0003.png is not a regular file (a named pipe)",
		4: "frame_0004.png is not a regular file (a directory)",
		5: "frame_0005.png has other names (hard links)",
		6: "frame_0006.png is 4311744513 bytes, more than the 4311744512",
		7: "frame_0007.png is not a PNG image (it starts with 72 6f 6f 74 3a 78 3a 30)",
		8: "frame_0008.png is empty (0 bytes)",
	} {
		im, err := openFrame(dir, frame, pngFormat)
		if im != nil {
			im.close()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("frame %d: %v; want an error containing %q", frame, err, want)
		}
	}
}

// A file of exactly maxFrameBytes is taken (the limit's derivation is
// checked against the farm's in farmlimits_test.go).
func TestMaxFrameBytes(t *testing.T) {
	dir, path := outputDirWith(t, map[string]string{"frame_0001.png": pngHead})
	if err := os.Truncate(filepath.Join(path, "frame_0001.png"), maxFrameBytes); err != nil {
		t.Fatal(err)
	}
	im, err := openFrame(dir, 1, pngFormat)
	if err != nil {
		t.Fatalf("a frame of exactly maxFrameBytes: %v", err)
	}
	im.close()
}

// Exported for farmlimits_test.go, which is outside the package: package
// farm imports this one.
var (
	MaxFrameSide  = maxFrameSide
	MaxFrameBytes = maxFrameBytes
	StillFormats  = slices.Sorted(maps.Keys(stillFormats))
)

// tgaHeader is a TARGA header of an uncompressed 4x2 RGB image.
func tgaHeader(imageType byte) string {
	h := make([]byte, 18)
	h[2] = imageType
	binary.LittleEndian.PutUint16(h[12:], 4)
	binary.LittleEndian.PutUint16(h[14:], 2)
	h[16] = 24
	return string(h)
}

// Each format's check takes the start of a file of that format and refuses
// the start of every other.
func TestFormatChecks(t *testing.T) {
	starts := map[string]string{
		"PNG":                 pngHead + "\x00\x00\x00\rIHDR",
		"JPEG":                "\xff\xd8\xff\xe0\x00\x10JFIF",
		"JPEG2000":            "\x00\x00\x00\x0cjP  \r\n\x87\n\x00\x00\x00\x14ftypjp2 ",
		"JPEG2000 J2K":        "\xff\x4f\xff\x51\x00\x2f\x00\x00",
		"BMP":                 "BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00",
		"TARGA":               tgaHeader(10),
		"TARGA_RAW":           tgaHeader(2),
		"TIFF":                "II*\x00\x08\x00\x00\x00",
		"OPEN_EXR":            "\x76\x2f\x31\x01\x02\x00\x00\x00",
		"OPEN_EXR_MULTILAYER": "\x76\x2f\x31\x01\x02\x08\x00\x00",
		"HDR":                 "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n",
		"CINEON":              "\x80\x2a\x5f\xd7\x00\x00\x08\x00",
		"DPX":                 "SDPX\x00\x00\x08\x00V2.0",
		"IRIS":                "\x01\xda\x01\x01\x00\x03\x00\x04",
		"WEBP":                "RIFF\x24\x00\x00\x00WEBPVP8 ",
	}
	sameMagic := map[string]string{"OPEN_EXR": "OPEN_EXR_MULTILAYER", "OPEN_EXR_MULTILAYER": "OPEN_EXR",
		"TARGA": "TARGA_RAW", "TARGA_RAW": "TARGA"}
	for name := range starts {
		requested, codec, _ := strings.Cut(name, " ")
		format := mustFormat(requested, requested+" "+codec)
		for other, otherStart := range starts {
			want := other == name || sameMagic[name] == other
			if got := format.looksRight([]byte(otherStart)); got != want {
				t.Errorf("%s's check on the start of a %s: %v, want %v", name, other, got, want)
			}
		}
	}
}

func TestOutputFormat(t *testing.T) {
	tests := []struct {
		requested, reported string
		ext                 string // "" for an error
	}{
		{"PNG", "PNG JP2", ".png"},
		{"PNG", "", ".png"},
		{"", "OPEN_EXR JP2", ".exr"},
		{"", "JPEG2000 J2K", ".j2c"},
		{"JPEG2000", "JPEG2000 JP2", ".jp2"},
		{"", "TARGA_RAW JP2", ".tga"},
		{"", "", ""},
		{"PNG", "JPEG JP2", ""},
		{"", "FFMPEG JP2", ""},
		{"AVI_JPEG", "AVI_JPEG JP2", ""},
	}
	for _, tt := range tests {
		f, err := outputFormat(tt.requested, tt.reported)
		if tt.ext == "" {
			if err == nil {
				t.Errorf("outputFormat(%q, %q) = %+v, want an error", tt.requested, tt.reported, f)
			}
			continue
		}
		if err != nil || f.ext != tt.ext {
			t.Errorf("outputFormat(%q, %q) = %q, %v; want %s", tt.requested, tt.reported, f.ext, err, tt.ext)
		}
	}
}

// openSubdir walks to a chunk's directory below the output root without
// following a link Blender may have put in the way.
func TestOpenSubdirFollowsNoLink(t *testing.T) {
	rootPath := t.TempDir()
	root, err := openDir(rootPath)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	dir, err := openSubdir(root, filepath.Join("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	dir.Close()
	if info, err := os.Stat(filepath.Join(rootPath, "a", "b")); err != nil || !info.IsDir() {
		t.Fatalf("a/b was not made: %v", err)
	}
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(rootPath, "link")); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"link", filepath.Join("link", "b"), "..", filepath.Join("a", "..", "..")} {
		if dir, err := openSubdir(root, rel); err == nil {
			dir.Close()
			t.Errorf("openSubdir(%q) followed a link or left the root", rel)
		}
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) > 0 {
		t.Errorf("openSubdir made %v in a link's target", entries)
	}
	dot, err := openSubdir(root, ".")
	if err != nil {
		t.Fatal(err)
	}
	dot.Close()
}

// chunkFor is a chunk's output for frames, reading the signals of nonce,
// taking PNG frames from dir; it collects the events it passes on, with the
// content of each saved frame's image.
func chunkFor(dir *os.File, path, nonce string, frames []int) (*chunkOutput, *[]Event, map[int]string) {
	var events []Event
	images := map[int]string{}
	out := newChunkOutput(RenderJob{Frames: frames}, func(ev Event) {
		if ev.Image != nil {
			body, _ := io.ReadAll(ev.Image.Reader())
			images[ev.Frame] = string(body)
		}
		events = append(events, ev)
	}, nil)
	out.dir, out.outputDir, out.files = dir, path, newFrameFiles(&outputLayout{Format: "PNG"}, pngFormat, "")
	out.parser.Nonce = nonce
	return out, &events, images
}

// A chunk takes a frame when the script's signal says it is written, from
// the expected file; Blender's own Saved: lines, and a name that prints
// them, take nothing. A frame whose signal never came is found at the end,
// unless Blender may have been cut off while writing it.
func TestChunkTakesFramesOnTheSignalOnly(t *testing.T) {
	const nonce = capturedNonce
	dir, path := outputDirWith(t, map[string]string{
		"frame_0001.png": pngHead + "one",
		"frame_0002.png": pngHead + "two",
		"frame_0003.png": pngHead + "three",
		"secret":         pngHead + "secret",
	})
	out, events, images := chunkFor(dir, path, nonce, []int{1, 2, 3})
	for _, line := range []string{
		"renderfarm-session " + nonce + " frame 1",
		"Fra:1 Mem:9.05M | Time:00:00.00 | Scene, ViewLayer | Synchronizing object | Saved: '" + filepath.Join(path, "secret") + "'",
		"Saved: '" + filepath.Join(path, "frame_0002.png") + "'",
		"renderfarm-session " + nonce + " saved 1 0.5",
		"renderfarm-session " + nonce + " saved 1 0.5",
		"renderfarm-session " + nonce + " frame 2",
	} {
		out.line(line)
	}
	if !slices.Equal(out.result.FramesSaved, []int{1}) || images[1] != pngHead+"one" {
		t.Fatalf("saved %v with images %v; want frame 1 alone, from frame_0001.png", out.result.FramesSaved, images)
	}
	saved := slices.IndexFunc(*events, func(ev Event) bool { return ev.Kind == FrameSaved })
	if ev := (*events)[saved]; ev.Path != filepath.Join(path, "frame_0001.png") || ev.RenderSeconds != 0.5 {
		t.Errorf("FrameSaved = %+v", ev)
	}
	// Blender was on frame 2 when it failed: its file may be cut short.
	out.findUnsignalled(false)
	if !slices.Equal(out.result.FramesSaved, []int{1}) {
		t.Errorf("after a failed render, saved %v; want frame 1 alone", out.result.FramesSaved)
	}
	// A render that ended well wrote every file in full.
	out.findUnsignalled(true)
	if !slices.Equal(out.result.FramesSaved, []int{1, 2, 3}) || images[2] != pngHead+"two" || images[3] != pngHead+"three" {
		t.Errorf("after a render that ended well, saved %v with images %v", out.result.FramesSaved, images)
	}
	if err := out.verdict(&Runner{}, exitStatus{}, false); err != nil {
		t.Errorf("verdict: %v", err)
	}
}

// A frame whose file is refused fails the chunk, naming the frame and why.
func TestChunkFailsAFrameWhoseFileIsRefused(t *testing.T) {
	dir, path := outputDirWith(t, map[string]string{"frame_0001.png": "GIF89a"})
	out, events, _ := chunkFor(dir, path, capturedNonce, []int{1})
	out.line("renderfarm-session " + capturedNonce + " saved 1 0.5")
	out.findUnsignalled(true)
	out.finish()
	if len(out.result.FramesSaved) != 0 || slices.ContainsFunc(*events, func(ev Event) bool { return ev.Kind == FrameSaved }) {
		t.Fatalf("the refused frame was saved: %v", *events)
	}
	var re *RenderError
	if err := out.verdict(&Runner{}, exitStatus{}, false); !errors.As(err, &re) || re.Frame != 1 || !strings.Contains(re.Line, "frame_0001.png is not a PNG image") {
		t.Errorf("verdict = %v; want frame 1 failed, naming its file", err)
	}
}

// Blender writes each format the farm accepts under the name the farm
// expects for it, and the format's check takes the file: the render result
// of cube.blend saved in every format, as a render saves it.
func TestFormatChecksTakeWhatBlenderWrites(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	dir := t.TempDir()
	const saveEveryFormat = `
import bpy, sys
out, formats = sys.argv[sys.argv.index("--") + 1], sys.argv[sys.argv.index("--") + 2:]
scene = bpy.context.scene
scene.render.engine = "BLENDER_WORKBENCH"
scene.render.resolution_x, scene.render.resolution_y = 64, 64
bpy.ops.render.render()
for name in formats:
    fmt, codec = (name.split(" ") + ["JP2"])[:2]
    scene.render.image_settings.file_format = fmt
    if fmt == "JPEG2000":
        scene.render.image_settings.jpeg2k_codec = codec
    scene.render.filepath = out + "/" + name.replace(" ", "-") + "/frame_####"
    path = scene.render.frame_path(frame=1)
    bpy.data.images["Render Result"].save_render(path, scene=scene)
`
	names := append(slices.Collect(maps.Keys(stillFormats)), "JPEG2000 J2K")
	argv := slices.Concat(r.argv(scene(t, "cube.blend"), "--python-expr", saveEveryFormat, "--", dir), names)
	var log []string
	status, err := r.run(context.Background(), command{argv: argv, env: r.env(""),
		paths: sandbox.Paths{ReadOnly: []string{filepath.Dir(scene(t, "cube.blend"))}, Writable: []string{dir}}},
		func(line string) { log = append(log, line) })
	if err != nil || status.failed() {
		t.Fatalf("saving every format: %v, %s\n%s", err, status.describe(), strings.Join(log, "\n"))
	}
	for _, name := range names {
		requested, codec, _ := strings.Cut(name, " ")
		format := mustFormat(requested, requested+" "+codec)
		sub, err := openDir(filepath.Join(dir, strings.ReplaceAll(name, " ", "-")))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		im, err := openFrame(sub, 1, format)
		if err != nil {
			entries, _ := os.ReadDir(sub.Name())
			t.Errorf("%s: %v (Blender wrote %v)", name, err, entries)
		} else {
			im.close()
		}
		sub.Close()
	}
}

// The farm's settings turn off the stamp metadata that names the .blend's
// path (and the machine, where Blender has it): a rendered PNG's text
// names no directory of the farm.
func TestRenderedFrameNamesNoPathOfTheFarm(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	dir := t.TempDir()
	blend := filepath.Join(dir, "input", "scene.blend")
	copyFile(t, scene(t, "cube.blend"), blend)
	out := filepath.Join(dir, "out")
	res, err := r.Render(context.Background(), RenderJob{BlendPath: blend, Frames: []int{1}, OutputDir: out,
		Settings: Settings{Denoising: ptr(false)}}, nil)
	if err != nil {
		t.Fatalf("Render: %v\n%s", err, strings.Join(res.LogTail, "\n"))
	}
	body, err := os.ReadFile(filepath.Join(out, "frame_0001.png"))
	if err != nil {
		t.Fatal(err)
	}
	text := pngTextChunks(t, body)
	if len(text) == 0 {
		t.Fatal("no text in the PNG: the test cannot tell")
	}
	for key, value := range text {
		if strings.Contains(value, dir) || strings.HasPrefix(value, "/") {
			t.Errorf("the PNG's %q text is a path of the farm: %q", key, value)
		}
	}
	if _, ok := text["File"]; ok {
		t.Errorf("the PNG has a File text: %q", text["File"])
	}
}

// pngTextChunks answers a PNG's tEXt chunks by keyword.
func pngTextChunks(t *testing.T, body []byte) map[string]string {
	t.Helper()
	if !bytes.HasPrefix(body, []byte(pngHead)) {
		t.Fatal("not a PNG")
	}
	text := map[string]string{}
	for rest := body[len(pngHead):]; len(rest) >= 12; {
		n := int(binary.BigEndian.Uint32(rest))
		if n > len(rest)-12 {
			t.Fatal("a PNG chunk runs past the end")
		}
		if string(rest[4:8]) == "tEXt" {
			key, value, _ := bytes.Cut(rest[8:8+n], []byte{0})
			text[string(key)] = string(value)
		}
		rest = rest[12+n:]
	}
	return text
}
