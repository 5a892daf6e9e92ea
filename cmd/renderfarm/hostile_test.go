package main_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// makeHostileScene has Blender save a scene whose names carry terminal
// escape codes, as Blender allows: a scene name that sets the window's
// title and clears the screen, a camera name with a newline that forges a
// line of output and a right-to-left override, and a missing image whose
// path turns the text red (the farm's MISSING_FILE warning quotes it).
const makeHostileScene = `
import bpy, sys
scene = bpy.context.scene
scene.name = "Sc\x1b]0;PWNED\x07\x1b[2J"
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.render.resolution_x, scene.render.resolution_y = 32, 18
scene.render.resolution_percentage = 100
scene.frame_start, scene.frame_end = 1, 1
scene.camera.name = "Cam\nWARNING FORGED: all is well\u202e"
image = bpy.data.images.new("wood", 4, 4)
image.source = "FILE"
image.filepath = "//tex\x1b[31m.png"
image.use_fake_user = True
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index("--") + 1])
`

// TestHostileNamesArePrintedEscaped: a .blend is the artist's, but it may
// come from anyone. What its names say reaches the terminal as text that
// can be read (\x1b, \n, \u202e), never as the codes themselves, and a
// newline in a name does not start a line of its own.
func TestHostileNamesArePrintedEscaped(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)
	blend := filepath.Join(t.TempDir(), "hostile.blend")
	if out, err := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio", "--python-exit-code", "1",
		"--python-expr", makeHostileScene, "--", blend).CombinedOutput(); err != nil {
		t.Fatalf("making the scene: %v\n%s", err, out)
	}

	// renderfarm fails the test on any control character it prints.
	r := renderfarm(t, f.env(), "submit", blend, "--frames", "1", "--wait")
	if r.code != 0 {
		t.Fatalf("submit: want exit 0, got\n%s", r)
	}
	for _, want := range []string{
		`  scene Sc\x1b]0;PWNED\a\x1b[2J: frames 1-1`,
		`camera Cam\nWARNING FORGED: all is well\u202e, PNG`,
		`of scene Sc\x1b]0;PWNED\a\x1b[2J,`,
		`refers to //tex\x1b[31m.png, which is not in the upload`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not say %s:\n%s", want, r)
		}
	}
	requireNoForgedLine(t, r)

	id := jobID(t, r)
	status := renderfarm(t, f.env(), "status", id)
	if want := `of scene Sc\x1b]0;PWNED\a\x1b[2J,`; status.code != 0 || !strings.Contains(status.stdout, want) {
		t.Errorf("status: want exit 0 saying %s, got\n%s", want, status)
	}
	requireNoForgedLine(t, status)
}

// requireNoForgedLine fails when a line of output starts with the text a
// name put after its newline.
func requireNoForgedLine(t *testing.T, r result) {
	t.Helper()
	for _, line := range strings.Split(r.stdout+r.stderr, "\n") {
		if strings.HasPrefix(line, "WARNING FORGED") {
			t.Errorf("a name's newline started a line of output:\n%s", r)
		}
	}
}
