package addon

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestWriteZip(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteZip(&a); err != nil {
		t.Fatal(err)
	}
	if err := WriteZip(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two zips of one build differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(a.Bytes()), int64(a.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	// Blender installs the folder; its __init__.py makes it an add-on.
	for _, want := range []string{"renderfarm/__init__.py", "renderfarm/packer.py", "renderfarm/renderfarm_client.py", "renderfarm/ui.py"} {
		if !slices.Contains(names, want) {
			t.Errorf("the zip holds %q, want %s among them", names, want)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, Dir+"/") || strings.Contains(n, "__pycache__") {
			t.Errorf("unexpected entry %s", n)
		}
	}
	if !bytes.Contains(PackerScript(), []byte("def pack(job, bpy)")) {
		t.Error("PackerScript is not packer.py")
	}
}

// TestPythonUnitTests runs the add-on's Python tests that need neither
// Blender nor a farm: the packer's layout decisions and the client's
// parsing (the e2e tests run the rest against a real farm).
func TestPythonUnitTests(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	cmd := exec.Command(python, "-m", "unittest", "discover", "-s", "tests", "-p", "test_*.py")
	// The package is imported from here; no bytecode is left in the tree.
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// stereoFrames renders frame 1 of a stereo scene whose views are written
// apart with Blender, then asks the add-on where the farm's two images of
// the frame go (ui.frame_paths, submission.frame_destination), as its
// Download button and submit-with-download do.
const stereoFrames = `
import os, sys
import bpy
addon, out = sys.argv[sys.argv.index("--") + 1:]
sys.dont_write_bytecode = True
sys.path.insert(0, addon)
from renderfarm import submission, ui
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.render.resolution_x, scene.render.resolution_y = 16, 8
scene.render.resolution_percentage = 100
scene.render.use_multiview = True  # stereo 3D: the views left and right
scene.render.image_settings.views_format = "INDIVIDUAL"
scene.render.filepath = os.path.join(out, "render", "shot_####")
scene.frame_start = scene.frame_end = 1
bpy.ops.render.render(animation=True)
written = sorted(os.path.join(out, "render", name) for name in os.listdir(os.path.join(out, "render")))
# What GET /jobs/{id}/downloads lists for the frame.
outputs = [{"frame": 1, "fileName": "frame_0001_L.png", "view": "left"},
           {"frame": 1, "fileName": "frame_0001_R.png", "view": "right"}]
paths = ui.frame_paths(scene, [1])
destinations = [submission.frame_destination(o, paths, out) for o in outputs]
print("renderfarm-test: Blender wrote %s, the add-on downloads to %s" % (written, destinations), flush=True)
assert destinations == written, (destinations, written)
`

// TestStereoViewsDownloadWhereBlenderWritesThem: the two views of a
// stereo frame download to two files, named as Blender names them
// (shot_0001_L.png, shot_0001_R.png), not both to the frame's one path.
func TestStereoViewsDownloadWhereBlenderWritesThem(t *testing.T) {
	blender, err := exec.LookPath("blender")
	if err != nil {
		t.Skip("blender is not installed")
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(blender, "-b", "--factory-startup", "--disable-autoexec", "-noaudio", "--python-exit-code", "1",
		"--python-expr", stereoFrames, "--", dir, t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "renderfarm-test: Blender wrote") {
		t.Fatalf("blender: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
