package packer_test

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/blendfile"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/packer"
	"github.com/renderfarm/renderfarm/internal/packer/packertest"
)

func needBlender(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("blender"); err != nil {
		t.Skip("blender is not on PATH: install it (apt-get install blender) to run the packer's tests")
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// outside is the zip path of a file packed from outside the project.
func outside(path string) string {
	return "_outside/root" + filepath.ToSlash(path)
}

// zipNames lists a zip's entries in order.
func zipNames(t *testing.T, path string) []string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	return names
}

// extract unpacks a zip the way the farm does, with the farm's checks.
func extract(t *testing.T, zipPath, dir string) string {
	t.Helper()
	p, err := blendfile.ExtractZip(zipPath, dir, blendfile.DefaultZipLimits())
	if err != nil {
		t.Fatalf("the farm refuses the zip: %v", err)
	}
	return filepath.Join(dir, p.Root, filepath.FromSlash(p.BlendPath))
}

// checkSelfContained has Blender inspect the packed .blend, extracted, with
// the artist's files moved out of the way, so that a path still pointing
// at them shows as missing: every path must be relative and found.
func checkSelfContained(t *testing.T, bin, root, zipPath, dir string) *farm.Inspection {
	t.Helper()
	blend := extract(t, zipPath, dir)
	away := root + ".away"
	if err := os.Rename(root, away); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(away, root)
	// Blender's run directory goes beside the extraction, which a Blender
	// in a container of its own can see.
	runs := filepath.Join(filepath.Dir(dir), "runs")
	if err := os.MkdirAll(runs, 0o755); err != nil {
		t.Fatal(err)
	}
	insp, err := (&blender.Runner{Binary: bin, TempDir: runs}).Inspect(testContext(t), blend)
	if err != nil {
		t.Fatalf("inspecting the packed shot: %v", err)
	}
	for _, f := range insp.ExternalFiles {
		if f.Missing || !strings.HasPrefix(f.Path, "//") {
			t.Errorf("packed shot: %s %q reads %q (missing: %v), want a relative path to a file in the zip", f.Type, f.Name, f.Path, f.Missing)
		}
	}
	return insp
}

func TestPackShot(t *testing.T) {
	needBlender(t)
	for _, version := range []string{"3.4", "4.3"} {
		t.Run(version, func(t *testing.T) {
			dir := t.TempDir()
			bin := "blender"
			if version == "4.3" {
				bin = packertest.Blender43(t, dir)
			}
			shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{})
			before := packertest.Checksums(t, shot.Root)
			out := filepath.Join(dir, "out", "shot.zip")
			if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
				t.Fatal(err)
			}

			var progress []string
			rep, err := packer.Pack(testContext(t), shot.Blend, out, packer.Options{
				Blender:    bin,
				OnProgress: func(line string) { progress = append(progress, line) },
			})
			if err != nil {
				t.Fatalf("Pack: %v", err)
			}
			packertest.SameChecksums(t, before, packertest.Checksums(t, shot.Root))

			// The shot's folder is the project: the sequence keeps its
			// place; the library, its texture and the image by absolute
			// path come from outside it.
			want := []string{
				"shot.blend",
				outside(shot.Outside), outside(shot.Library), outside(shot.LibraryTexture),
				"seq/blue_0001.png", "seq/blue_0002.png",
			}
			if got := zipNames(t, out); !slices.Equal(got, want) {
				t.Errorf("zip entries:\n got %q\nwant %q", got, want)
			}
			if !strings.HasPrefix(rep.BlenderVersion, version) {
				t.Errorf("packed with Blender %s, want %s", rep.BlenderVersion, version)
			}
			if len(rep.Missing) != 0 || len(rep.Refused) != 0 {
				t.Errorf("missing %+v, refused %+v; want none", rep.Missing, rep.Refused)
			}
			// Only the shot needed new paths: the library's own path to
			// its texture holds in the zip, so the library goes in as it is.
			if len(rep.Blends) != 2 || rep.Blends[0].RewrittenPaths != 2 || rep.Blends[1].RewrittenPaths != 0 {
				t.Errorf("blends = %+v, want the shot with 2 paths rewritten (library, outside image) and the library untouched", rep.Blends)
			}
			if len(rep.OutsideFiles()) != 3 || rep.OnlyTheBlend() {
				t.Errorf("outside files = %+v", rep.OutsideFiles())
			}
			if info, err := os.Stat(out); err != nil || rep.ZipBytes != info.Size() {
				t.Errorf("zipBytes = %d, the zip: %v %v", rep.ZipBytes, info, err)
			}
			if !slices.ContainsFunc(progress, func(l string) bool { return strings.HasPrefix(l, "zipping 6 files") }) {
				t.Errorf("progress = %q, want a line saying it zips 6 files", progress)
			}
			sameBytes(t, out, outside(shot.Library), shot.Library)

			insp := checkSelfContained(t, bin, shot.Root, out, filepath.Join(dir, "out", "extracted"))
			if len(insp.Libraries) != 1 || insp.Libraries[0].Missing || insp.Libraries[0].Path != "//"+outside(shot.Library) {
				t.Errorf("libraries of the packed shot = %+v", insp.Libraries)
			}
			// Nothing is left beside the output but the zip.
			entries, _ := os.ReadDir(filepath.Dir(out))
			if len(entries) != 3 {
				t.Errorf("the output folder holds %v, want the zip, and the test's extraction and Blender runs", entries)
			}
		})
	}
}

// sameBytes checks that a zip entry is the file's bytes, unchanged.
func sameBytes(t *testing.T, zipPath, name, file string) {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	rc, err := zr.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s in the zip differs from %s", name, file)
	}
}

// With the project folder above the shot, the shot moves to the top of the
// zip, everything in the project keeps its layout, and the shot's paths,
// also to the library linked through the library, are rewritten to match.
func TestPackNestedLibrariesWithAProjectRoot(t *testing.T) {
	needBlender(t)
	dir := t.TempDir()
	shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{Nested: true})
	before := packertest.Checksums(t, shot.Root)
	out := filepath.Join(dir, "shot.zip")
	rep, err := packer.Pack(testContext(t), shot.Blend, out, packer.Options{ProjectRoot: shot.Project})
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	packertest.SameChecksums(t, before, packertest.Checksums(t, shot.Root))
	want := []string{
		"shot.blend",
		outside(shot.Outside),
		"assets/materials/red.blend", "assets/prop.blend", "assets/tex/red.png",
		"shots/seq/blue_0001.png", "shots/seq/blue_0002.png",
	}
	if got := zipNames(t, out); !slices.Equal(got, want) {
		t.Errorf("zip entries:\n got %q\nwant %q", got, want)
	}
	if rep.Blends[0].RewrittenPaths != 4 {
		t.Errorf("the shot had %d paths rewritten, want 4 (two libraries, the sequence, the outside image)", rep.Blends[0].RewrittenPaths)
	}
	for _, b := range rep.Blends[1:] {
		if b.RewrittenPaths != 0 {
			t.Errorf("library %s had %d paths rewritten, want none: its layout is kept", b.ZipPath, b.RewrittenPaths)
		}
	}
	insp := checkSelfContained(t, "blender", shot.Root, out, filepath.Join(dir, "extracted"))
	wantLibs := []farm.Library{
		{Name: "prop.blend", Path: "//assets/prop.blend"},
		{Name: "red.blend", Path: "//assets/materials/red.blend", Parent: "prop.blend"},
	}
	got := slices.Clone(insp.Libraries)
	slices.SortFunc(got, func(a, b farm.Library) int { return strings.Compare(a.Name, b.Name) })
	if !slices.Equal(got, wantLibs) {
		t.Errorf("libraries = %+v, want %+v", got, wantLibs)
	}
}

// A library beside the shot would be a second .blend at the top of the
// zip, which the farm refuses: it goes under _libraries/, and its own path
// to its texture is rewritten in a copy.
func TestPackMovesALibraryBesideTheShotIntoLibraries(t *testing.T) {
	needBlender(t)
	dir := t.TempDir()
	shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{LibraryBeside: true})
	before := packertest.Checksums(t, shot.Root)
	out := filepath.Join(dir, "shot.zip")
	rep, err := packer.Pack(testContext(t), shot.Blend, out, packer.Options{})
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	packertest.SameChecksums(t, before, packertest.Checksums(t, shot.Root))
	want := []string{
		"shot.blend",
		"_libraries/prop.blend",
		outside(shot.Outside), outside(shot.LibraryTexture),
		"seq/blue_0001.png", "seq/blue_0002.png",
	}
	if got := zipNames(t, out); !slices.Equal(got, want) {
		t.Errorf("zip entries:\n got %q\nwant %q", got, want)
	}
	if len(rep.Blends) != 2 || rep.Blends[1].RewrittenPaths != 1 || !rep.Files[slices.IndexFunc(rep.Files, func(f packer.File) bool { return f.ZipPath == "_libraries/prop.blend" })].Rewritten {
		t.Errorf("blends = %+v, want the library's texture path rewritten in its copy", rep.Blends)
	}
	checkSelfContained(t, "blender", shot.Root, out, filepath.Join(dir, "extracted"))
}

// Missing files are listed and left out, files from hidden folders outside
// the project are refused, and the rest is packed.
func TestPackListsMissingFilesAndRefusesHiddenOnes(t *testing.T) {
	needBlender(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "files", "outside", ".ssh", "id_ed25519.png")
	packertest.WritePNG(t, secret, packertest.Red)
	gone := filepath.Join(dir, "nowhere", "gone.png")
	shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{
		OffCamera: []string{"//tex/missing.png", gone, secret},
	})
	out := filepath.Join(dir, "shot.zip")
	rep, err := packer.Pack(testContext(t), shot.Blend, out, packer.Options{})
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	var missing []string
	for _, m := range rep.Missing {
		missing = append(missing, m.Path+": "+m.Reason)
	}
	wantMissing := []string{"//tex/missing.png: no such file", gone + ": no such file"}
	if !slices.Equal(missing, wantMissing) {
		t.Errorf("missing = %q, want %q", missing, wantMissing)
	}
	if len(rep.Refused) != 1 || rep.Refused[0].Path != secret || !strings.Contains(rep.Refused[0].Reason, "hidden") {
		t.Errorf("refused = %+v, want %s, for being hidden", rep.Refused, secret)
	}
	names := zipNames(t, out)
	if len(names) != 6 || slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, ".ssh") }) {
		t.Errorf("zip entries = %q, want the shot's 6 files and not the refused one", names)
	}
}

// A .blend can name a secret by a path that does not look like one:
// through a plain folder that is a link into /proc or into a hidden folder,
// or through a link inside the project itself (as /var/run is a link to
// /run, /etc/mtab one to /proc/self/mounts). The packer judges the file a
// path leads to: those are refused, saying where they lead, and a link to
// an ordinary file is packed like any other file.
func TestPackRefusesSecretsReachedThroughLinks(t *testing.T) {
	needBlender(t)
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	secret := filepath.Join(files, "outside", ".ssh", "id_ed25519.png")
	packertest.WritePNG(t, secret, packertest.Red)
	link := func(target, name string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
		return name
	}
	// Beside the project.
	environ := filepath.Join(link("/proc/self", filepath.Join(files, "outside", "process")), "environ")
	keys := filepath.Join(link(filepath.Dir(secret), filepath.Join(files, "outside", "keys")), "id_ed25519.png")
	// In the project, the shot's folder.
	tex := filepath.Join(files, "project", "shots", "tex")
	key := link(secret, filepath.Join(tex, "key.png"))
	env := link("/proc/self/environ", filepath.Join(tex, "env.png"))
	link(filepath.Join(files, "outside", "green.png"), filepath.Join(tex, "grass.png"))

	// The report names the secret where it really is.
	realSecret, err := filepath.EvalSymlinks(secret)
	if err != nil {
		t.Fatal(err)
	}

	shot := packertest.MakeShot(t, files, packertest.Options{
		OffCamera: []string{environ, keys, "//tex/key.png", "//tex/env.png", "//tex/grass.png"},
	})
	out := filepath.Join(dir, "shot.zip")
	rep, err := packer.Pack(testContext(t), shot.Blend, out, packer.Options{})
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	want := []string{
		"shot.blend",
		outside(shot.Outside), outside(shot.Library), outside(shot.LibraryTexture),
		"seq/blue_0001.png", "seq/blue_0002.png", "tex/grass.png",
	}
	if got := zipNames(t, out); !slices.Equal(got, want) {
		t.Errorf("zip entries:\n got %q\nwant %q", got, want)
	}
	reasons := map[string]string{}
	for _, r := range rep.Refused {
		reasons[r.Path] = r.Reason
	}
	for path, why := range map[string]string{
		environ: "it is a link to a system file (/proc/",
		keys:    "it is a link to a hidden file or one in a hidden folder (" + realSecret + ")",
		key:     "it is a link to a hidden file or one in a hidden folder (" + realSecret + ")",
		env:     "it is a link to a system file (/proc/",
	} {
		if !strings.HasPrefix(reasons[path], why) {
			t.Errorf("%s: refused for %q, want a reason starting %q", path, reasons[path], why)
		}
	}
	if len(rep.Refused) != 4 || len(rep.Missing) != 0 {
		t.Errorf("refused %+v, missing %+v; want the 4 links to secrets refused, nothing missing", rep.Refused, rep.Missing)
	}
}

// The packer refuses what the farm would refuse after a long upload: more
// files than a project zip may hold, or more bytes than it may unpack to.
func TestPackLimits(t *testing.T) {
	needBlender(t)
	t.Run("10000 files", func(t *testing.T) {
		dir := t.TempDir()
		shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{})
		png, err := os.ReadFile(shot.Sequence[0])
		if err != nil {
			t.Fatal(err)
		}
		// The shot's 6 files and 9,995 more frames of its sequence: 10,001.
		seq := filepath.Dir(shot.Sequence[0])
		for i := 3; i <= 9997; i++ {
			if err := os.WriteFile(filepath.Join(seq, fmt.Sprintf("blue_%04d.png", i)), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		checkRefused(t, shot, filepath.Join(dir, "shot.zip"), "more than 10000 files")
	})
	t.Run("20 GiB", func(t *testing.T) {
		dir := t.TempDir()
		shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{})
		// A sparse file: 20 GiB to stat(), nothing on disk.
		if err := os.Truncate(shot.Outside, 20<<30); err != nil {
			t.Fatal(err)
		}
		checkRefused(t, shot, filepath.Join(dir, "shot.zip"), "more than 20.0 GiB")
	})
}

func checkRefused(t *testing.T, shot packertest.Shot, out, want string) {
	t.Helper()
	_, err := packer.Pack(testContext(t), shot.Blend, out, packer.Options{})
	var perr *packer.Error
	if !errors.As(err, &perr) || !strings.Contains(perr.Message, want) {
		t.Fatalf("Pack = %v, want an error saying %q", err, want)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the output exists after a refused pack: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("left beside the output: %v", entries)
	}
}

func TestPackRefusesWhatIsNotABlend(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.blend")
	if err := os.WriteFile(text, []byte("not a blend file at all, just text"), 0o644); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "image.png")
	packertest.WritePNG(t, png, packertest.Red)
	for _, tc := range []struct{ path, out, want string }{
		{text, filepath.Join(dir, "out.zip"), "notes.blend"},
		{png, filepath.Join(dir, "out.zip"), "not a .blend file"},
		{filepath.Join(dir, "absent.blend"), filepath.Join(dir, "out.zip"), "no such file"},
	} {
		_, err := packer.Pack(context.Background(), tc.path, tc.out, packer.Options{Blender: "/nonexistent/blender"})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Pack(%s) = %v, want an error saying %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

func TestPackWithoutBlender(t *testing.T) {
	needBlender(t)
	dir := t.TempDir()
	shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{})
	_, err := packer.Pack(context.Background(), shot.Blend, filepath.Join(dir, "shot.zip"), packer.Options{Blender: filepath.Join(dir, "no-blender-here")})
	if !errors.Is(err, packer.ErrNoBlender) {
		t.Fatalf("Pack with no Blender = %v, want ErrNoBlender", err)
	}
}

// bakeCloth makes dir/proj/cloth.blend: the default cube with a cloth
// simulation baked to disk for frames 1-3, which Blender keeps in
// blendcache_cloth/ beside the .blend without storing that path.
const bakeCloth = `
import sys
import bpy
path = sys.argv[sys.argv.index("--") + 1]
bpy.ops.wm.read_factory_settings(use_empty=False)
bpy.ops.wm.save_as_mainfile(filepath=path)
cloth = bpy.data.objects["Cube"].modifiers.new("Cloth", "CLOTH")
cache = cloth.point_cache
cache.use_disk_cache = True
cache.frame_start, cache.frame_end = 1, 3
with bpy.context.temp_override(scene=bpy.context.scene, point_cache=cache):
    bpy.ops.ptcache.bake(bake=True)
assert cache.is_baked
bpy.ops.wm.save_as_mainfile(filepath=path)
`

// A baked disk cache has no path of its own: it lives beside the .blend,
// so in the zip it goes beside the .blend's new place.
func TestPackBakedDiskCacheGoesBesideTheBlend(t *testing.T) {
	needBlender(t)
	dir := t.TempDir()
	blend := filepath.Join(dir, "proj", "cloth.blend")
	if err := os.MkdirAll(filepath.Dir(blend), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python-expr", bakeCloth, "--", blend).CombinedOutput()
	if err != nil {
		t.Fatalf("baking: %v\n%s", err, out)
	}
	zipPath := filepath.Join(t.TempDir(), "cloth.zip")
	rep, err := packer.Pack(testContext(t), blend, zipPath, packer.Options{ProjectRoot: dir})
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	var caches []string
	for _, name := range zipNames(t, zipPath) {
		if strings.HasSuffix(name, ".bphys") {
			caches = append(caches, name)
		}
	}
	if len(caches) != 3 || slices.ContainsFunc(caches, func(n string) bool { return !strings.HasPrefix(n, "blendcache_cloth/") }) {
		t.Errorf("cache files in the zip = %q, want 3 under blendcache_cloth/ at the top, beside cloth.blend", caches)
	}
	if rep.Blends[0].RewrittenPaths != 0 {
		t.Errorf("%d paths rewritten, want none: the cache's folder is not a stored path", rep.Blends[0].RewrittenPaths)
	}
	insp := checkSelfContained(t, "blender", dir, zipPath, filepath.Join(filepath.Dir(zipPath), "extracted"))
	if len(insp.ExternalFiles) != 1 || insp.ExternalFiles[0].Type != "cache" {
		t.Errorf("external files of the packed file = %+v, want its cache, found", insp.ExternalFiles)
	}
}

// udimSoundFont makes a .blend reading UDIM tiles //tiles/wood.<UDIM>.png
// (Blender takes the tiles it finds on disk: 1001, 1002 and 1003), a sound
// and a font by their absolute paths, each kept by a fake user.
const udimSoundFont = `
import json, sys
import bpy
spec = json.loads(sys.argv[sys.argv.index("--") + 1])
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.wm.save_as_mainfile(filepath=spec["blend"])
wood = bpy.data.images.new("wood", 4, 4, tiled=True)
wood.tiles.new(1002)
wood.tiles.new(1003)
wood.source = "TILED"
wood.filepath = "//tiles/wood.<UDIM>.png"
wood.use_fake_user = True
sound = bpy.data.sounds.load(spec["sound"], check_existing=False)
sound.use_fake_user = True
font = bpy.data.fonts.load(spec["font"], check_existing=False)
font.use_fake_user = True
bpy.ops.wm.save_as_mainfile(filepath=spec["blend"])
`

func TestPackUDIMTilesSoundsAndFonts(t *testing.T) {
	needBlender(t)
	fonts, _ := filepath.Glob("/usr/share/fonts/truetype/*/*.ttf")
	if len(fonts) == 0 {
		t.Skip("no TrueType font to copy into the test's files")
	}
	dir := t.TempDir()
	blend := filepath.Join(dir, "proj", "wood.blend")
	tiles := filepath.Join(dir, "proj", "tiles")
	packertest.WritePNG(t, filepath.Join(tiles, "wood.1001.png"), packertest.Red)
	packertest.WritePNG(t, filepath.Join(tiles, "wood.1002.png"), packertest.Green)
	packertest.WritePNG(t, filepath.Join(tiles, "wood.1003.png"), packertest.Blue)
	sound := filepath.Join(dir, "sounds", "door.wav")
	font := filepath.Join(dir, "fonts", "title.ttf")
	for src, dst := range map[string]string{fonts[0]: font} {
		body, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(sound), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sound, []byte("RIFF\x24\x00\x00\x00WAVE"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`{"blend": %q, "sound": %q, "font": %q}`, blend, sound, font)
	out, err := exec.Command("blender", "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", "--python-expr", udimSoundFont, "--", spec).CombinedOutput()
	if err != nil {
		t.Fatalf("making the file: %v\n%s", err, out)
	}
	// A tile the file names goes missing.
	if err := os.Remove(filepath.Join(tiles, "wood.1003.png")); err != nil {
		t.Fatal(err)
	}
	zipPath := filepath.Join(t.TempDir(), "wood.zip")
	rep, err := packer.Pack(testContext(t), blend, zipPath, packer.Options{})
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	want := []string{"wood.blend", outside(font), outside(sound), "tiles/wood.1001.png", "tiles/wood.1002.png"}
	if got := zipNames(t, zipPath); !slices.Equal(got, want) {
		t.Errorf("zip entries:\n got %q\nwant %q", got, want)
	}
	if len(rep.Missing) != 1 || !strings.Contains(rep.Missing[0].Reason, "tile 1003") {
		t.Errorf("missing = %+v, want tile 1003", rep.Missing)
	}
	if rep.Blends[0].RewrittenPaths != 2 {
		t.Errorf("%d paths rewritten, want 2: the sound's and the font's", rep.Blends[0].RewrittenPaths)
	}
}

// Stopped while Blender reads the shot, Pack ends Blender and leaves
// nothing behind.
func TestPackInterrupted(t *testing.T) {
	needBlender(t)
	dir := t.TempDir()
	shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{})
	outDir := t.TempDir()
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	_, err := packer.Pack(ctx, shot.Blend, filepath.Join(outDir, "shot.zip"), packer.Options{
		OnProgress: func(line string) {
			if strings.HasPrefix(line, "reading") {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Pack = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("left in the output folder: %v", entries)
	}
}
