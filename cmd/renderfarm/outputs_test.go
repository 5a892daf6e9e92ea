package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// makePassesScene has Blender make a scene of three tiny frames whose
// output path is //render/shot010_#### and whose compositor writes the AO
// pass as PNG and the depth pass as OpenEXR through two File Output nodes.
const makePassesScene = `
import bpy, sys
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.render.resolution_x, scene.render.resolution_y = 32, 18
scene.render.resolution_percentage = 100
scene.frame_start, scene.frame_end = 1, 3
scene.render.filepath = "//render/shot010_####"
layer = scene.view_layers[0]
layer.use_pass_z = True
layer.use_pass_ambient_occlusion = True
scene.use_nodes = True
tree = scene.node_tree
layers = tree.nodes["Render Layers"]
for name, fmt, output, path in (("Depth Out", "OPEN_EXR", "Depth", "depth_####"), ("AO", "PNG", "AO", "ao_")):
    node = tree.nodes.new("CompositorNodeOutputFile")
    node.name = name
    node.base_path = "//passes/"
    node.format.file_format = fmt
    node.file_slots[0].path = path
    tree.links.new(layers.outputs[output], node.inputs[0])
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index("--") + 1])
`

// TestDownloadKeepsTheScenesNamesAndTheCompositorsImages: submit --naming
// scene --download puts the frames in DIR under the names the scene gives
// them, and each File Output node's images in DIR/compositeNodes/NODE/;
// downloading again fetches nothing.
func TestDownloadKeepsTheScenesNamesAndTheCompositorsImages(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)
	blend := filepath.Join(t.TempDir(), "shot010.blend")
	if out, err := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio", "--python-exit-code", "1",
		"--python-expr", makePassesScene, "--", blend).CombinedOutput(); err != nil {
		t.Fatalf("making the scene: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "out")
	r := renderfarm(t, f.env(), "submit", blend, "--no-pack", "--frames", "1-2", "--naming", "scene", "--wait", "--download", dir)
	if r.code != 0 {
		t.Fatalf("submit: want exit 0, got\n%s", r)
	}
	for _, name := range []string{"shot010_0001.png", "shot010_0002.png"} {
		requirePNG(t, filepath.Join(dir, name), 32, 18)
	}
	for _, name := range []string{"AO/ao_0001.png", "AO/ao_0002.png"} {
		requirePNG(t, filepath.Join(dir, "compositeNodes", name), 32, 18)
	}
	for _, name := range []string{"Depth_Out/depth_0001.exr", "Depth_Out/depth_0002.exr"} {
		b, err := os.ReadFile(filepath.Join(dir, "compositeNodes", name))
		if err != nil || !bytes.HasPrefix(b, []byte{0x76, 0x2f, 0x31, 0x01}) {
			t.Errorf("compositeNodes/%s: %v; want an OpenEXR file", name, err)
		}
	}
	requireZipOf(t, filepath.Join(dir, "frames.zip"), 2)
	requireZipOf(t, filepath.Join(dir, "compositeNodes.zip"), 4)
	if !strings.Contains(r.stderr, "downloaded compositeNodes/AO/ao_0001.png") {
		t.Errorf("stderr does not name the compositor's images:\n%s", r)
	}

	id := jobID(t, r)
	again := renderfarm(t, f.env(), "download", id, dir)
	// Two frames, two zips, the preview video and four node images.
	if again.code != 0 || !strings.Contains(again.stdout, "0 downloaded (0 B), 9 already there") {
		t.Errorf("download again: want 9 files skipped, got\n%s", again)
	}
}
