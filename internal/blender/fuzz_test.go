package blender

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzChunkOutput feeds bytes, as a hostile .blend could make Blender print
// them (names with quotes and newlines, lines like Blender's "Saved:", the
// farm's old marker or its signals, huge lines, invalid UTF-8), through the
// reading of a chunk's output: split into lines as the runner splits them,
// parsed, and the frames taken from a real output directory. Whatever the
// bytes: nothing panics; every event is about a frame of the chunk; a saved
// frame is the file of its expected name in the output directory, with
// that file's content, and each frame is saved once; a frame whose file is
// a link to a file outside is never saved.
func FuzzChunkOutput(f *testing.F) {
	const nonce = capturedNonce
	signal := func(words string) string { return "renderfarm-session " + nonce + " " + words + "\n" }
	root := f.TempDir()
	path := filepath.Join(root, "out")
	secret := filepath.Join(root, "secret")
	contents := map[int]string{1: pngHead + "frame one", 2: pngHead + "frame two", 3: pngHead + "frame three"}
	for frame, content := range contents {
		if err := os.MkdirAll(path, 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(path, frameName(frame, pngFormat)), []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(secret, []byte(pngHead+"the worker's secret"), 0o600); err != nil {
		f.Fatal(err)
	}
	// Frame 4's file is a link to the secret; frame 5 has none.
	if err := os.Symlink(secret, filepath.Join(path, frameName(4, pngFormat))); err != nil {
		f.Fatal(err)
	}
	chunk := []int{1, 2, 3, 4, 5}

	if log, err := os.ReadFile(filepath.Join("testdata", "cycles.log")); err == nil {
		f.Add(log, false)
	}
	f.Add([]byte("Saved: '"+secret+"'\n Time: 00:00.10 (Saving: 00:00.00)\n"), true)
	f.Add([]byte("Fra:1 Mem:9.05M | Time:00:00.00 | Scene, ViewLayer | Synchronizing object | it's \"Saved: '"+secret+"'\"\n"), true)
	f.Add([]byte("Fra:1 Mem:9.05M | Time:00:00.00 | x\nSaved: '"+secret+"'\nx, ViewLayer | Sample 1/4\n"), true)
	f.Add([]byte("renderfarm: rendering frame 9\nrenderfarm: rendering frame 2\nSaved: '"+filepath.Join(path, "frame_0002.png")+"'\n"), true)
	f.Add([]byte(signal("frame 1")+signal("saved 1 0.25")+signal("frame 4")+signal("saved 4 0.1")+signal("saved 9 0.1")), false)
	f.Add([]byte("renderfarm-session ffffffffffffffffffffffffffffffff saved 2 0.1\n"+signal("saved 2 NaN")+signal("output PNG JP2")), true)
	f.Add([]byte(strings.Repeat("A", maxLineBytes+1)+signal("saved 3 0.1")+signal("saved 3 0.1")), true)
	f.Add([]byte("\xff\xfe\xfd"+signal("frame 2")+"\xc3\x28 Error: \xa0\xa1\n"+signal("saved 2 0.5")), false)
	f.Add([]byte("Error: Python: Traceback (most recent call last):\n  File \"x\"\n"+signal("frame 3")+"RuntimeError: boom\n"), false)

	f.Fuzz(func(t *testing.T, output []byte, renderOK bool) {
		dir, err := openDir(path)
		if err != nil {
			t.Fatal(err)
		}
		defer dir.Close()
		out, events, images := chunkFor(dir, path, nonce, chunk)
		readLines(bytes.NewReader(output), out.line)
		out.findUnsignalled(renderOK)
		out.finish()
		_ = out.verdict(&Runner{}, exitStatus{}, false)

		for _, ev := range *events {
			if !slices.Contains(chunk, ev.Frame) && !(ev.Kind == ErrorLine && ev.Frame == 0) {
				t.Fatalf("%v event about frame %d, outside the chunk %v", ev.Kind, ev.Frame, chunk)
			}
			if ev.Kind != FrameSaved {
				continue
			}
			if want := filepath.Join(path, frameName(ev.Frame, pngFormat)); ev.Path != want {
				t.Fatalf("frame %d saved from %q, want %q", ev.Frame, ev.Path, want)
			}
			if images[ev.Frame] != contents[ev.Frame] {
				t.Fatalf("frame %d's image is %q, want its file's %q", ev.Frame, images[ev.Frame], contents[ev.Frame])
			}
		}
		saved := out.result.FramesSaved
		if len(slices.Compact(slices.Sorted(slices.Values(saved)))) != len(saved) {
			t.Fatalf("frames saved more than once: %v", saved)
		}
		if slices.Contains(saved, 4) || slices.Contains(saved, 5) {
			t.Fatalf("saved %v: frame 4's file is a link, frame 5 has none", saved)
		}
	})
}
