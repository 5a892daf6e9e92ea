// Package packertest makes the projects that the packer's and the add-on's
// tests pack and render: real .blend files, made by Blender from a script of
// the test's own (make_shot.py), that link a library and read textures from
// inside and outside their project folder, and checks the frames rendered
// from them by their pixels.
package packertest

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

//go:embed make_shot.py
var makeShotScript []byte

// The colours of the shot's three planes, from left to right, as they
// render (emission shaders under the Standard view transform give the
// texture's colour back): the library's texture, the image outside the
// project, and the image sequence, whose frame 2 is yellow.
var (
	Red    = color.RGBA{255, 0, 0, 255}
	Green  = color.RGBA{0, 255, 0, 255}
	Blue   = color.RGBA{0, 0, 255, 255}
	Yellow = color.RGBA{255, 255, 0, 255}
)

// Options vary the shot.
type Options struct {
	// Blender makes the files; "" is "blender" from PATH (3.4 on these
	// machines, whose files every newer Blender opens).
	Blender string
	// Nested gives the library's plane a material linked from a second
	// library, project/assets/materials/red.blend, deeper in the folders.
	Nested bool
	// LibraryBeside puts the library beside the shot, in project/shots/,
	// rather than in project/assets/.
	LibraryBeside bool
	// OffCamera are more paths images of the shot store, on planes the
	// camera does not see: missing files, hidden ones.
	OffCamera []string
}

// Shot is a project made by MakeShot. All paths are absolute.
type Shot struct {
	Root    string // the folder holding project/ and outside/
	Project string // Root/project
	Blend   string // project/shots/shot.blend: the shot to pack
	Library string // project/assets/prop.blend (project/shots/prop.blend with LibraryBeside)
	// MaterialLibrary is project/assets/materials/red.blend with Nested.
	MaterialLibrary string
	LibraryTexture  string   // project/assets/tex/red.png
	Outside         string   // Root/outside/green.png, named by its absolute path
	Sequence        []string // project/shots/seq/blue_0001.png and blue_0002.png
}

// Frames are the frames the shot renders.
var Frames = []int{1, 2}

// MakeShot writes the shot's images and has Blender make its .blend files
// in dir.
func MakeShot(t testing.TB, dir string, opt Options) Shot {
	t.Helper()
	s := Shot{
		Root:           dir,
		Project:        filepath.Join(dir, "project"),
		Blend:          filepath.Join(dir, "project", "shots", "shot.blend"),
		Library:        filepath.Join(dir, "project", "assets", "prop.blend"),
		LibraryTexture: filepath.Join(dir, "project", "assets", "tex", "red.png"),
		Outside:        filepath.Join(dir, "outside", "green.png"),
		Sequence: []string{
			filepath.Join(dir, "project", "shots", "seq", "blue_0001.png"),
			filepath.Join(dir, "project", "shots", "seq", "blue_0002.png"),
		},
	}
	if opt.LibraryBeside {
		s.Library = filepath.Join(dir, "project", "shots", "prop.blend")
	}
	if opt.Nested {
		s.MaterialLibrary = filepath.Join(dir, "project", "assets", "materials", "red.blend")
	}
	WritePNG(t, s.LibraryTexture, Red)
	WritePNG(t, s.Outside, Green)
	WritePNG(t, s.Sequence[0], Blue)
	WritePNG(t, s.Sequence[1], Yellow)

	spec, err := json.Marshal(map[string]any{
		"shot": s.Blend, "library": s.Library, "libraryTexture": s.LibraryTexture,
		"outside": s.Outside, "sequence": s.Sequence,
		"nested": opt.Nested, "materialLibrary": s.MaterialLibrary,
		"offCamera": opt.OffCamera,
	})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	specPath := filepath.Join(work, "spec.json")
	scriptPath := filepath.Join(work, "make_shot.py")
	writeFile(t, specPath, spec)
	writeFile(t, scriptPath, makeShotScript)
	bin := opt.Blender
	if bin == "" {
		bin = "blender"
	}
	cmd := exec.Command(bin, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1",
		"--python", scriptPath, "--", specPath)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "make_shot: done") {
		t.Fatalf("making the shot with %s: %v\n%s", bin, err, out)
	}
	return s
}

// WritePNG writes a 4x4 PNG of one colour, making its folder.
func WritePNG(t testing.TB, path string, c color.RGBA) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for y := 0; y < 4; y++ {
		for x := 0; x < 4; x++ {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, buf.Bytes())
}

func writeFile(t testing.TB, path string, body []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

// CheckFrame checks that a rendered frame of the shot shows the library's
// texture, the outside image and the sequence's image for that frame: a
// file that did not reach the farm renders pink (or black, for a library).
func CheckFrame(t testing.TB, path string, frame int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != 96 || b.Dy() != 32 {
		t.Fatalf("%s is %dx%d, want 96x32", path, b.Dx(), b.Dy())
	}
	seq := Blue
	if frame == 2 {
		seq = Yellow
	}
	for _, want := range []struct {
		x    int
		what string
		c    color.RGBA
	}{{16, "the library's texture", Red}, {48, "the image outside the project", Green}, {80, "the image sequence", seq}} {
		got := color.RGBAModel.Convert(img.At(want.x, 16)).(color.RGBA)
		if !near(got, want.c) {
			t.Errorf("%s, frame %d: pixel (%d, 16) is %v, want %v (%s)", filepath.Base(path), frame, want.x, got, want.c, want.what)
		}
	}
}

// near allows for the rounding of colour management: 255 may come back 254.
func near(a, b color.RGBA) bool {
	d := func(x, y uint8) int {
		if x > y {
			return int(x - y)
		}
		return int(y - x)
	}
	return d(a.R, b.R) <= 3 && d(a.G, b.G) <= 3 && d(a.B, b.B) <= 3
}

// Checksums are the SHA-256 of every file below dir, by path: taken before
// and after packing, they show the packer changed none of the artist's
// files (and made none beside them).
func Checksums(t testing.TB, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		sums[path] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

// SameChecksums fails the test when two sets of checksums differ, naming
// each file that changed, appeared or went.
func SameChecksums(t testing.TB, before, after map[string]string) {
	t.Helper()
	for path, sum := range before {
		switch got, ok := after[path]; {
		case !ok:
			t.Errorf("%s was removed", path)
		case got != sum:
			t.Errorf("%s changed", path)
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			t.Errorf("%s appeared", path)
		}
	}
}

// Blender43Root is where Blender 4.3 is installed, as a root file system of
// its own (Debian 13's); tests of 4.3 skip where it is not.
const Blender43Root = "/opt/renderfarm/blender/debian-trixie"

// Blender43 writes, in dir, a script that runs Blender 4.3 from its root
// file system with bubblewrap, able to use the folders given (and dir), and
// answers its path; it skips the test where 4.3 or bubblewrap is missing.
func Blender43(t testing.TB, dir string, binds ...string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(Blender43Root, "usr/bin/blender")); err != nil {
		t.Skipf("Blender 4.3 is not installed at %s", Blender43Root)
	}
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Skip("bubblewrap is not installed; it runs Blender 4.3 from its own root")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\nexec %s --bind %s / --proc /proc --dev /dev", shellQuote(bwrap), shellQuote(Blender43Root))
	for _, d := range append([]string{dir}, binds...) {
		fmt.Fprintf(&b, " --bind %s %s", shellQuote(d), shellQuote(d))
	}
	b.WriteString(" /usr/bin/blender \"$@\"\n")
	path := filepath.Join(dir, "blender-4.3")
	if err := os.WriteFile(path, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
