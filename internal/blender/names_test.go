package blender

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// The download names the farm gives a scene's files follow Blender's own
// rules (farm.BlenderPath); these tests hold them to what Blender itself
// makes, on every Blender of this machine.

// trixieRoot is Debian 13's root with Blender 4.3, where this machine has
// one (see blender-notes.md).
const trixieRoot = "/opt/renderfarm/blender/debian-trixie"

// testBlender is a Blender to compare with: a command that runs it with
// args, with dir readable and writable.
type testBlender struct {
	name    string
	command func(dir string, args ...string) *exec.Cmd
}

// blendersHere lists the Blenders of this machine: Debian's on PATH, and
// 4.3 from Debian 13's root through bubblewrap when both are there.
func blendersHere(t *testing.T) []testBlender {
	t.Helper()
	if _, err := exec.LookPath("blender"); err != nil {
		t.Skip("blender is not on PATH: install it (apt-get install blender) to run the tests that render")
	}
	found := []testBlender{{name: "PATH", command: func(_ string, args ...string) *exec.Cmd {
		return exec.Command("blender", args...)
	}}}
	bwrap, err := exec.LookPath("bwrap")
	if _, serr := os.Stat(filepath.Join(trixieRoot, "usr/bin/blender")); err == nil && serr == nil {
		found = append(found, testBlender{name: "4.3", command: func(dir string, args ...string) *exec.Cmd {
			return exec.Command(bwrap, append([]string{"--bind", trixieRoot, "/", "--proc", "/proc", "--dev", "/dev",
				"--bind", dir, dir, "--chdir", dir, "/usr/bin/blender"}, args...)...)
		}})
	} else {
		t.Logf("no Blender 4.3 at %s (or no bwrap): checking Debian's Blender only", trixieRoot)
	}
	return found
}

// runnersHere lists a Runner for each Blender of this machine, unconfined:
// Debian's on PATH, and 4.3 from Debian 13's root, run through bubblewrap
// with /tmp (where the tests' files and the runs' directories are) bound.
func runnersHere(t *testing.T) []struct {
	name string
	r    *Runner
} {
	t.Helper()
	var runners []struct {
		name string
		r    *Runner
	}
	for _, b := range blendersHere(t) {
		r := &Runner{TempDir: os.TempDir()}
		if b.name != "PATH" {
			tmp := os.TempDir()
			r.Wrap = func(argv []string) []string {
				return b.command(tmp, argv[1:]...).Args
			}
		}
		runners = append(runners, struct {
			name string
			r    *Runner
		}{b.name, r})
	}
	return runners
}

// runNameScript runs a Python script of the test's in b, with JSON input, and
// returns the lines it printed starting with "RESULT ", without it.
func runNameScript(t *testing.T, b testBlender, dir, script string, input any) (version string, results []string) {
	t.Helper()
	body, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "script.py")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := b.command(dir, "-b", "--factory-startup", "--disable-autoexec", "-noaudio", "--python-exit-code", "1",
		"--python", path, "--", string(body))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Blender %s: %v\n%s", b.name, err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			results = append(results, rest)
		}
		if rest, ok := strings.CutPrefix(sc.Text(), "VERSION "); ok {
			version = rest
		}
	}
	return version, results
}

// framePathScript prints scene.render.frame_path for each template,
// frame, format, extension rule and view (a stereo scene whose left view's
// suffix is "_lft"), one JSON object a line.
const framePathScript = `
import bpy, json, sys
spec = json.loads(sys.argv[sys.argv.index("--") + 1])
print("VERSION " + bpy.app.version_string)
r = bpy.context.scene.render
r.use_multiview = True
r.views_format = "STEREO_3D"
r.views["left"].file_suffix = "_lft"
for use_ext in (True, False):
    r.use_file_extension = use_ext
    for fmt in spec["formats"]:
        r.image_settings.file_format = fmt
        for template in spec["templates"]:
            r.filepath = template
            for frame in spec["frames"]:
                for view in ("", "left", "right"):
                    print("RESULT " + json.dumps({"useExt": use_ext, "format": fmt, "template": template,
                        "frame": frame, "view": view, "path": r.frame_path(frame=frame, view=view)}))
`

// nameTemplates are output paths as artists write them, and the odd ones.
var nameTemplates = []string{
	"//render/shot010_####", "//render/shot010_", "//render/shot010", "//r/img_####.png", "//r/img_####.jpg",
	"//r/img_####.PNG", "//r/img.png", "//r/img.exr", "//r/x.tif", "//r/a.b", "//r/v.", "//r/", "//",
	"//r/####", "//r/#_#", "//r/a####b", "//a#b/c", "/abs/x/y_##_z", "relative/dir/f_###", "//r/x.0001",
}

// TestBlenderPathIsBlendersFramePath: for every template, frame (four
// digits, more, fewer), format (extensions that vary: .jpg and .jpeg,
// .tif and .tiff) and view, farm.BlenderPath gives the path Blender's
// own frame_path gives.
func TestBlenderPathIsBlendersFramePath(t *testing.T) {
	formats := []string{"PNG", "JPEG", "TIFF", "OPEN_EXR"}
	for _, b := range blendersHere(t) {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			version, lines := runNameScript(t, b, dir, framePathScript, map[string]any{
				"templates": nameTemplates, "frames": []int{7, 12345, 0}, "formats": formats})
			if want := len(nameTemplates) * 3 * len(formats) * 2 * 3; len(lines) != want {
				t.Fatalf("Blender %s printed %d paths, want %d", version, len(lines), want)
			}
			suffixes := map[string]string{"": "", "left": "_lft", "right": "_R"}
			for _, line := range lines {
				var c struct {
					UseExt                 bool
					Format, Template, View string
					Frame                  int
					Path                   string
				}
				if err := json.Unmarshal([]byte(line), &c); err != nil {
					t.Fatal(err)
				}
				got := strings.TrimPrefix(farm.BlenderPath(c.Template, c.Frame, farm.ExtensionsOf(c.Format, ""), c.UseExt, suffixes[c.View]), "//")
				// Blender makes "//" paths absolute against the .blend's
				// folder, which a factory scene has none of.
				if got != c.Path {
					t.Errorf("Blender %s: %q, frame %d, %s, extension %v, view %q: farm %q, Blender %q",
						version, c.Template, c.Frame, c.Format, c.UseExt, c.View, got, c.Path)
				}
			}
		})
	}
}

// nodeNamesScript renders frame 7 of a tiny stereo scene whose File Output
// node has a slot per template, each fed the image, into spec["dir"].
const nodeNamesScript = `
import bpy, json, sys
spec = json.loads(sys.argv[sys.argv.index("--") + 1])
print("VERSION " + bpy.app.version_string)
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.render.resolution_x, scene.render.resolution_y = 8, 8
scene.render.use_multiview = True
scene.render.views_format = "STEREO_3D"
scene.render.views["left"].file_suffix = "_lft"
scene.use_nodes = True
tree = scene.node_tree
layers = tree.nodes["Render Layers"]
node = tree.nodes.new("CompositorNodeOutputFile")
node.base_path = spec["dir"] + "/nodes"
node.format.file_format = spec["format"]
node.file_slots[0].path = spec["templates"][0]
for template in spec["templates"][1:]:
    node.file_slots.new(template)
for socket in node.inputs:
    tree.links.new(layers.outputs["Image"], socket)
scene.frame_set(7)
scene.render.filepath = spec["dir"] + "/frame_0007"
bpy.ops.render.render(write_still=True)
`

// TestNodeFileNamesAreBlenders: the files a File Output node's slots
// write, for each view, are named as farm.SceneNaming.NodeFileName names
// them. When a slot's path has a dot in its name, Blender 4.3 puts a view's
// suffix after the frame number ("a.b" gives a.b0007_L.png) where 3.4, and
// the scene's frame_path in both, put it before the dot (a_L.b0007.png);
// the farm names such files as 3.4 does, so those slots are compared on
// Blender 3 only.
func TestNodeFileNamesAreBlenders(t *testing.T) {
	// (An empty slot path is left out: 3.4 then names the files after the
	// base path's last folder, 4.3 by the frame alone, as the farm does.)
	plain := []string{"depth_", "mist_###", "sub/ao_##", "#dir/z", "x_##.jpg"}
	dotted := []string{"img.png", "a.b", "w.PNG", "v."}
	naming := farm.SceneNaming{Naming: farm.NamingFarm}
	for _, b := range blendersHere(t) {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			version, _ := runNameScript(t, b, dir, "print('VERSION ' + __import__('bpy').app.version_string)", nil)
			templates := plain
			if strings.HasPrefix(version, "3.") {
				templates = append(slices.Clone(plain), dotted...)
			}
			runNameScript(t, b, dir, nodeNamesScript, map[string]any{"dir": dir, "format": "PNG", "templates": templates})
			var want []string
			for _, template := range templates {
				for _, suffix := range []string{"_lft", "_R"} {
					want = append(want, naming.NodeFileName(template, 7, farm.ExtensionsOf("PNG", ""), suffix))
				}
			}
			var got []string
			root := filepath.Join(dir, "nodes")
			err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(root, path)
					got = append(got, filepath.ToSlash(rel))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			// The farm's names are safe names: '#' is not among their
			// characters.
			for i, name := range got {
				got[i] = farm.RelativeName("//" + name)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("Blender %s wrote\n%q\nthe farm names them\n%q", version, got, want)
			}
		})
	}
}
