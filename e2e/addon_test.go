package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/packer/packertest"
)

// submitFromBlender is what an artist's pipeline script does inside
// Blender: install the add-on's zip, enable it, and submit the open shot,
// waiting for the frames. The key comes from RENDERFARM_API_KEY and must
// not become a property of the scene, which would save it into the .blend.
const submitFromBlender = `
import sys
import bpy
addon_zip = sys.argv[sys.argv.index("--") + 1]
bpy.ops.preferences.addon_install(filepath=addon_zip)
bpy.ops.preferences.addon_enable(module="renderfarm")
settings = bpy.context.scene.renderfarm
names = [p.identifier for p in settings.bl_rna.properties]
assert not any("key" in n or "server" in n for n in names), names
# A key set in the preferences comes first; a wrong one fails the
# operator with the farm's reason, raised in the calling script.
prefs = bpy.context.preferences.addons["renderfarm"].preferences
prefs.api_key = "RF-not-a-key"
try:
    bpy.ops.renderfarm.submit(frames="1", wait=True)
    raise AssertionError("a submission with a wrong key went through")
except RuntimeError as err:
    assert "UNAUTHORIZED" in str(err), err
    print("renderfarm-test: refused: %s" % err, flush=True)
prefs.api_key = ""
result = bpy.ops.renderfarm.submit(wait=True, download=True)
assert result == {"FINISHED"}, result
print("renderfarm-test: submitted", flush=True)

# Background mode has no interface to draw into: the panel draws into a
# layout that records what it shows and checks every property and operator
# it names exists, as Blender would when drawing it.
class Layout:
    lines = []
    def __init__(self):
        self.enabled, self.scale_y = True, 1.0
    def row(self, **kw): return Layout()
    def column(self, **kw): return Layout()
    def box(self): return Layout()
    def label(self, text="", icon="NONE"): Layout.lines.append(text)
    def progress(self, factor=0, type="BAR", text=""): Layout.lines.append(text)
    def prop(self, data, name, text=None):
        assert name in data.bl_rna.properties, name
    def operator(self, idname, text="", icon="NONE"):
        group, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, group), name), idname
        return getattr(getattr(bpy.ops, group), name).get_rna_type() and type("Props", (), {})()
ui = sys.modules["renderfarm.ui"]
class Panel:
    layout = Layout()
    draw_submission = ui.RENDER_PT_renderfarm.draw_submission
    job_buttons = staticmethod(ui.RENDER_PT_renderfarm.job_buttons)
ui.RENDER_PT_renderfarm.draw(Panel(), bpy.context)
for line in Layout.lines:
    print("renderfarm-panel: " + line, flush=True)
`

// The add-on, headless in Blender 3.4 and 4.3, packs the shot, has the farm
// render it and puts the frames where the scene's output path says, named
// as Blender names them.
func TestAddonSubmitsFromBlender(t *testing.T) {
	for _, version := range []string{"3.4", "4.3"} {
		t.Run(version, func(t *testing.T) {
			requireTools(t)
			dir := t.TempDir()
			bin := "blender"
			var f *farm
			if version == "4.3" {
				// The artist's Blender 4.3 runs from its root file system
				// in a bubblewrap container of its own, which may use the
				// test's folder.
				bin = packertest.Blender43(t, dir)
				// A shot whose paths 4.3 rewrote needs a 4.3 farm: the same
				// root, which the farm's sandbox makes / for its Blender.
				f = startFarm(t, "--blender", packertest.Blender43Root)
			} else {
				f = startFarm(t)
			}
			shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{})
			before := packertest.Checksums(t, shot.Root)
			addonZip := filepath.Join(dir, "renderfarm-addon.zip")
			if out, err := exec.Command(binary(t), "addon", addonZip).CombinedOutput(); err != nil {
				t.Fatalf("renderfarm addon: %v\n%s", err, out)
			}

			home := filepath.Join(dir, "home")
			cmd := exec.Command(bin, "-b", shot.Blend, "--factory-startup", "-noaudio", "--python-exit-code", "1",
				"--python-expr", submitFromBlender, "--", addonZip)
			// A Blender home of the test's own: the add-on installs there.
			cmd.Env = append(os.Environ(), "HOME="+home, "TMPDIR="+dir,
				"BLENDER_USER_CONFIG="+filepath.Join(home, "config"), "BLENDER_USER_SCRIPTS="+filepath.Join(home, "scripts"),
				"RENDERFARM_SERVER="+f.URL, "RENDERFARM_API_KEY="+f.Key("artists"))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "renderfarm-test: submitted") {
				t.Fatalf("submitting from Blender %s: %v\n%s", version, err, out)
			}
			if !strings.Contains(string(out), "completed (packed 6 files") || !strings.Contains(string(out), "2 frames downloaded") {
				t.Errorf("the add-on does not say what it did:\n%s", out)
			}
			// The panel shows the farm, the pre-flight, the scene's settings
			// and the job as it ended.
			for _, want := range []string{
				"renderfarm-panel: Farm: " + f.URL,
				"renderfarm-panel: Engine Cycles, device CPU",
				"renderfarm-panel: Frames: 1-2 (scene)",
				"renderfarm-panel: Packed 6 files",
				": done",
				"renderfarm-panel: 2 frames in " + filepath.Join(filepath.Dir(shot.Blend), "render"),
			} {
				if !strings.Contains(string(out), want) {
					t.Errorf("the panel does not show %q:\n%s", want, out)
				}
			}

			// Where Blender would write them: //render/shot_ beside the shot.
			render := filepath.Join(filepath.Dir(shot.Blend), "render")
			after := packertest.Checksums(t, shot.Root)
			for _, frame := range packertest.Frames {
				path := filepath.Join(render, fmt.Sprintf("shot_%04d.png", frame))
				packertest.CheckFrame(t, path, frame)
				delete(after, path)
			}
			packertest.SameChecksums(t, before, after)
		})
	}
}

// The add-on's client, run with plain Python against a real farm: the
// whole submission as the add-on makes it (packed by Blender, uploaded,
// validated, rendered, downloaded under Blender's names), the farm's errors,
// and `python3 -m renderfarm_client` run from the add-on's zip.
func TestAddonClientAgainstAFarm(t *testing.T) {
	requireTools(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	f := startFarm(t)
	dir := t.TempDir()
	shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{})
	addonZip := filepath.Join(dir, "renderfarm-addon.zip")
	if out, err := exec.Command(binary(t), "addon", addonZip).CombinedOutput(); err != nil {
		t.Fatalf("renderfarm addon: %v\n%s", err, out)
	}
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command(python, "-m", "unittest", "-v", "tests.test_client_live")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "addon")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1",
		"RENDERFARM_TEST_SERVER="+f.URL, "RENDERFARM_TEST_API_KEY="+f.Key("pipeline"),
		"RENDERFARM_TEST_SHOT="+shot.Blend, "RENDERFARM_TEST_BLENDER=blender", "RENDERFARM_TEST_ADDON="+addonZip)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest tests.test_client_live: %v\n%s", err, out)
	}
	// Skipped tests would pass without proving anything.
	if strings.Contains(string(out), "skipped") || !strings.Contains(string(out), "Ran 5 tests") {
		t.Fatalf("the client's tests did not all run:\n%s", out)
	}
	t.Logf("%s", out)
}
