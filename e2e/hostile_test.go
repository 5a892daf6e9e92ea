package e2e

import (
	"bytes"
	"context"
	binenc "encoding/binary"
	"encoding/json"
	"image/png"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// The tests in this file upload .blend files made to attack the farm, made
// by Blender in each test's own set-up, and check the farm does what it
// would do for a harmless file, and nothing more.

// makeHostileScenes is run by Blender with a JSON list of scenes to make.
// Each is the factory scene (a cube, a camera, a light) made tiny and fast
// in Cycles, two frames long, with the names the entry asks for. An entry
// with "glow" also carries Python that would run if Blender trusted the
// file: the cube glows pure green, and a text block registered to run on
// load, and drivers of the glow's colour whose expressions only Python can
// evaluate, turn it red (or, the driver alone, yellow).
const makeHostileScenes = `
import bpy, json, sys

PAINT_RED = """import bpy
bpy.data.materials["Glow"].node_tree.nodes["Emission"].inputs["Color"].default_value = (1, 0, 0, 1)
"""

def glow(scene):
    scene.world.use_nodes = True
    scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0
    material = bpy.data.materials.new("Glow")
    material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.name = "Emission"
    output = nodes.new("ShaderNodeOutputMaterial")
    material.node_tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    color = emission.inputs["Color"]
    # Only the red channel is driven: a driver Blender may not run counts 0,
    # which leaves the green alone.
    driver = color.driver_add("default_value", 0).driver
    driver.type = "SCRIPTED"
    driver.expression = "(lambda: 1.0)()"
    color.default_value = (0, 1, 0, 1)
    cube = bpy.data.objects["Cube"]
    cube.data.materials.clear()
    cube.data.materials.append(material)
    text = bpy.data.texts.new("paint_red.py")
    text.write(PAINT_RED)
    text.use_module = True

for spec in json.loads(sys.argv[sys.argv.index("--") + 1]):
    bpy.ops.wm.read_factory_settings(use_empty=False)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 32, 18
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, 2
    scene.view_settings.view_transform = "Standard"
    if spec.get("glow"):
        glow(scene)
    if "object" in spec:
        bpy.data.objects["Cube"].name = spec["object"]
    if "viewLayer" in spec:
        scene.view_layers[0].name = spec["viewLayer"]
    if "scene" in spec:
        scene.name = spec["scene"]
    bpy.ops.wm.save_as_mainfile(filepath=spec["out"])
`

// hostileScene is one .blend for makeHostileScenes to make.
type hostileScene struct {
	Out       string `json:"out"`
	Object    string `json:"object,omitempty"`
	ViewLayer string `json:"viewLayer,omitempty"`
	Scene     string `json:"scene,omitempty"`
	Glow      bool   `json:"glow,omitempty"`
}

// makeScenes has Blender, run by the test and trusting nothing, make the
// scenes.
func makeScenes(t *testing.T, scenes []hostileScene) {
	t.Helper()
	body, err := json.Marshal(scenes)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio",
		"--python-exit-code", "1", "--python-expr", makeHostileScenes, "--", string(body)).CombinedOutput()
	if err != nil {
		t.Fatalf("making the scenes: %v\n%s", err, out)
	}
}

// shortTempDir is a directory with a short path, for paths that must fit in
// a Blender name (63 bytes).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestBlenderOutputCannotMakeTheWorkerReadFiles renders files whose names
// print lines that look like Blender saying it saved a frame somewhere else
// (a secret file of the test's, the farm's URL-signing key), or like the
// farm's own frame markers, in Cycles' status lines. Each job completes with
// its two real frames and nothing else: the frames are PNGs of the scene's
// size, their metadata names no path of the farm, and no stored object holds
// the secret or the key.
func TestBlenderOutputCannotMakeTheWorkerReadFiles(t *testing.T) {
	requireTools(t)
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	short := shortTempDir(t)
	secret := []byte("the test's secret, which no frame may hold: 6f1c0e4b9d")
	secretPath := filepath.Join(short, "s")
	writeFile(t, secretPath, secret)
	key, err := os.ReadFile(filepath.Join(f.DataDir, "url-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	// The data directory's path is too long for a name; a link to the key is not.
	keyPath := filepath.Join(short, "k")
	if err := os.Symlink(filepath.Join(f.DataDir, "url-signing.key"), keyPath); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cases := []struct {
		name  string
		scene hostileScene
	}{
		{"object named like a saved frame", hostileScene{Object: "Saved: '" + secretPath + "'"}},
		{"object name with newlines around a saved frame", hostileScene{Object: "x\nSaved: '" + keyPath + "'\nx"}},
		{"view layer name with newlines", hostileScene{ViewLayer: "V\nSaved: '" + secretPath + "'\n"}},
		{"scene name with a newline", hostileScene{Scene: "S\nSaved: '" + keyPath + "'\n"}},
		{"object named like the farm's frame marker", hostileScene{Object: "x\nrenderfarm: rendering frame 7\nx"}},
	}
	var scenes []hostileScene
	for i := range cases {
		cases[i].scene.Out = filepath.Join(dir, "hostile"+string(rune('a'+i))+".blend")
		scenes = append(scenes, cases[i].scene)
	}
	makeScenes(t, scenes)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := validate(ctx, t, c, submit(ctx, t, c, tc.scene.Out).ID)
			if job.Status != client.StatusValidated {
				t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
			}
			done := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{
				ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-2"}})
			if done.Status != client.StatusCompleted {
				t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
			}
			for i, path := range downloadFrames(ctx, t, c, job.ID, 2) {
				checkPNG(t, path, 32, 18)
				body, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				for key, value := range pngText(t, body) {
					if strings.Contains(value, f.DataDir) || strings.Contains(value, dir) {
						t.Errorf("frame %d: its %q metadata names a path of the farm: %q", i+1, key, value)
					}
				}
			}
		})
	}
	storedHolding(t, f, secret, key)
}

// storedHolding fails the test if an object the farm stored holds any of
// the secrets.
func storedHolding(t *testing.T, f *farm, secrets ...[]byte) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(f.DataDir, "objects"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, secret := range secrets {
			if bytes.Contains(body, secret) {
				t.Errorf("the stored object %s holds a secret of the test or the farm", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// downloadFrames downloads a completed job's n frames and answers their
// paths, in frame order.
func downloadFrames(ctx context.Context, t *testing.T, c *client.Client, id string, n int) []string {
	t.Helper()
	d, err := c.Downloads(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FrameOutputs) != n {
		t.Fatalf("%d frames to download, want %d", len(d.FrameOutputs), n)
	}
	dir := t.TempDir()
	var paths []string
	for _, out := range d.FrameOutputs {
		path := filepath.Join(dir, out.FileName)
		if _, err := c.DownloadFile(ctx, out.URL, path); err != nil {
			t.Fatalf("download %s: %v", out.FileName, err)
		}
		paths = append(paths, path)
	}
	return paths
}

// pngText answers the text chunks of a PNG (tEXt, zTXt, iTXt) by keyword:
// the metadata Blender stamps into a frame.
func pngText(t *testing.T, body []byte) map[string]string {
	t.Helper()
	const signature = "\x89PNG\r\n\x1a\n"
	if !bytes.HasPrefix(body, []byte(signature)) {
		t.Fatalf("not a PNG")
	}
	text := map[string]string{}
	for rest := body[len(signature):]; len(rest) >= 12; {
		n := int(binenc.BigEndian.Uint32(rest))
		if n > len(rest)-12 {
			t.Fatalf("a PNG chunk runs past the end of the file")
		}
		kind, data := string(rest[4:8]), rest[8:8+n]
		if kind == "tEXt" || kind == "zTXt" || kind == "iTXt" {
			keyword, value, _ := bytes.Cut(data, []byte{0})
			text[string(keyword)] = string(value)
		}
		rest = rest[12+n:]
	}
	return text
}

// TestSceneNamedLikeABlenderFlagRunsNoPython renders, with a Blender
// started for every chunk, files whose only scene is named like one of
// Blender's flags and which carry Python that turns the rendered cube from
// green to red. Each renders green: none of the file's Python ran. The
// same file rendered by hand with autoexec on comes out red, which shows
// the colour tells.
func TestSceneNamedLikeABlenderFlagRunsNoPython(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	names := []string{"-y", "--enable-autoexec", "--python-expr", "-P"}
	var scenes []hostileScene
	for i, name := range names {
		scenes = append(scenes, hostileScene{Out: filepath.Join(dir, "flag"+string(rune('a'+i))+".blend"), Scene: name, Glow: true})
	}
	makeScenes(t, scenes)

	// By hand, trusting the file: red.
	out, err := exec.Command("blender", "-b", "--factory-startup", "-y", "-noaudio", scenes[0].Out,
		"-o", filepath.Join(dir, "trusted_####"), "-f", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("rendering by hand: %v\n%s", err, out)
	}
	if got := centreColour(t, filepath.Join(dir, "trusted_0001.png")); got != "red" {
		t.Fatalf("with autoexec on, the cube is %s, want red: the file's Python did not run, so the test cannot tell", got)
	}

	f := startFarm(t, "--blender-keep-alive", "0")
	c := f.client("studio")
	ctx := testContext(t)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			job := validate(ctx, t, c, submit(ctx, t, c, scenes[i].Out).ID)
			if job.Status != client.StatusValidated {
				t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
			}
			done := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{
				ColorManagementPreset: client.String("default"), FrameRanges: []string{"1"}})
			if done.Status != client.StatusCompleted {
				t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
			}
			if done.FinalConfig == nil || done.FinalConfig.Scene != name {
				t.Errorf("rendered scene %+v, want %q", done.FinalConfig, name)
			}
			frame := downloadFrames(ctx, t, c, job.ID, 1)[0]
			checkPNG(t, frame, 32, 18)
			if got := centreColour(t, frame); got != "green" {
				t.Errorf("the cube rendered %s, want green: the file's Python ran", got)
			}
		})
	}
}

// centreColour names the colour of a frame's centre pixel, where the cube
// is: "red", "green" or "other".
func centreColour(t *testing.T, path string) string {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	b := img.Bounds()
	r, g, bl, _ := img.At((b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2).RGBA()
	switch {
	case r > 0x8000 && g < 0x2000 && bl < 0x2000:
		return "red"
	case g > 0x8000 && r < 0x2000 && bl < 0x2000:
		return "green"
	}
	return "other"
}

// crashPrintingItsFile makes Blender fail as it begins frame 1 with an
// error line holding the absolute path of the file it renders, as Blender's
// own errors often do.
const crashPrintingItsFile = `import bpy, os

@bpy.app.handlers.persistent
def crash(scene, *args):
    print("Error: cannot render %s" % bpy.data.filepath, flush=True)
    os._exit(3)

bpy.app.handlers.render_pre.append(crash)
`

// TestWhatClientsReadNamesNoPathOfTheFarm fails a job at validation (a
// damaged .blend) and another while rendering (Blender fails with a line
// naming the absolute path of its file) and reads what a client can: the
// failed reasons, the logs kept and the analysis. They name no path on the
// farm's machine.
func TestWhatClientsReadNamesNoPathOfTheFarm(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "crash.py")
	writeFile(t, script, []byte(crashPrintingItsFile))
	wrapper := filepath.Join(dir, "blender")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nexec blender --python "+script+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := startFarm(t, "--blender", wrapper)
	c := f.client("studio")
	ctx := testContext(t)
	noFarmPath := func(what, text string) {
		t.Helper()
		if strings.Contains(text, f.DataDir) || strings.Contains(text, dir) {
			t.Errorf("%s names a path of the farm: %s", what, text)
		}
	}

	// A damaged file: a valid header, then garbage.
	damaged := filepath.Join(dir, "damaged.blend")
	writeFile(t, damaged, append([]byte("BLENDER-v304"), bytes.Repeat([]byte{0x5a}, 4096)...))
	job := validate(ctx, t, c, submit(ctx, t, c, damaged).ID)
	if job.Status != client.StatusFailed || job.FailedReason == nil {
		t.Fatalf("the damaged file's validation ended %s, want failed", job.Status)
	}
	noFarmPath("the failed validation's reason", job.FailedReason.Message)
	lines, err := c.JobLog(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 {
		t.Error("no log kept of the failed validation")
	}
	for _, line := range lines {
		noFarmPath("the validation's log", line)
	}

	blend := filepath.Join(dir, "scene.blend")
	makeScenes(t, []hostileScene{{Out: blend}})
	job = validate(ctx, t, c, submit(ctx, t, c, blend).ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	analysis, err := json.Marshal(job.Analysis)
	if err != nil {
		t.Fatal(err)
	}
	noFarmPath("the analysis", string(analysis))
	done := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{
		ColorManagementPreset: client.String("default"), FrameRanges: []string{"1"}})
	if done.Status != client.StatusFailed || done.FailedReason == nil || !strings.Contains(done.FailedReason.Message, "cannot render") {
		t.Fatalf("job ended %s (%+v), want failed with Blender's error line", done.Status, done.FailedReason)
	}
	noFarmPath("the failed render's reason", done.FailedReason.Message)
	t.Logf("failed reason: %s", done.FailedReason.Message)
	lines, err = c.JobLog(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !containsLine(lines, "cannot render") {
		t.Errorf("the render's log lacks Blender's error line:\n%s", strings.Join(lines, "\n"))
	}
	for _, line := range lines {
		noFarmPath("the render's log", line)
	}
}

func containsLine(lines []string, s string) bool {
	for _, line := range lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}
