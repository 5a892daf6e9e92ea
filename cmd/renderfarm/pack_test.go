package main_test

import (
	"archive/zip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/packer"
	"github.com/renderfarm/renderfarm/internal/packer/packertest"
)

func TestPackCommand(t *testing.T) {
	t.Parallel()
	requireBlender(t)
	dir := t.TempDir()
	shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{OffCamera: []string{"//tex/missing.png"}})
	out := filepath.Join(dir, "shot.zip")

	r := renderfarm(t, cleanEnv(), "pack", shot.Blend, out)
	if r.code != 0 {
		t.Fatalf("pack: want exit 0, got\n%s", r)
	}
	for _, want := range []string{
		"packed 6 files", "into " + out, ", 1 missing",
		"from outside the project folder " + filepath.Dir(shot.Blend), shot.Outside,
		`missing: image "extra0" in shot.blend: //tex/missing.png (` + filepath.Join(filepath.Dir(shot.Blend), "tex", "missing.png") + "): no such file",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not say %q:\n%s", want, r)
		}
	}

	r = renderfarm(t, cleanEnv(), "pack", "--json", "--project-root", shot.Project, shot.Blend, out)
	var rep packer.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
		t.Fatalf("pack --json: %v\n%s", err, r)
	}
	if rep.ProjectRoot != shot.Project || len(rep.Files) != 6 || len(rep.Missing) != 1 || rep.Files[1].ZipPath == "" {
		t.Errorf("report = %+v", rep)
	}
	if !strings.Contains(r.stderr, "packed 6 files") {
		t.Errorf("with --json the summary goes to stderr:\n%s", r)
	}
}

func TestPackAndAddonMistakes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.blend")
	if err := os.WriteFile(text, []byte("not a blend"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no arguments", []string{"pack"}, 2, "give the .blend to pack and the zip to write"},
		{"no output", []string{"pack", scene("cube.blend")}, 2, "give the .blend to pack and the zip to write"},
		{"an output that is not a zip", []string{"pack", scene("cube.blend"), filepath.Join(dir, "out.tar")}, 2, "name it OUT.zip"},
		{"a file that is not there", []string{"pack", filepath.Join(dir, "absent.blend"), filepath.Join(dir, "out.zip")}, 2, "no such file"},
		{"a file that is not a .blend", []string{"pack", text, filepath.Join(dir, "out.zip")}, 1, "notes.blend"},
		{"no Blender", []string{"pack", scene("cube.blend"), filepath.Join(dir, "out.zip"), "--blender", filepath.Join(dir, "no-blender")}, 1, "install Blender or pass --blender PATH"},
		{"add-on to a file that is not a zip", []string{"addon", filepath.Join(dir, "addon.tar")}, 2, "name the output OUT.zip"},
		{"project root for a zip", []string{"submit", scene("project.zip"), "--project-root", dir}, 2, "--project-root is for packing a .blend"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderfarm(t, append(cleanEnv(), "RENDERFARM_SERVER=http://127.0.0.1:9", "RENDERFARM_API_KEY=RF-unused"), tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("want exit %d saying %q, got\n%s", tt.code, tt.want, r)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "out.zip")); !os.IsNotExist(err) {
		t.Errorf("a failed pack left its output: %v", err)
	}
}

func TestAddonCommand(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "renderfarm-addon.zip")
	r := renderfarm(t, cleanEnv(), "addon", out)
	if r.code != 0 || !strings.Contains(r.stdout, "wrote the Blender add-on to "+out) {
		t.Fatalf("addon: %s", r)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if _, err := zr.Open("renderfarm/__init__.py"); err != nil {
		t.Errorf("the add-on zip has no renderfarm/__init__.py: %v", err)
	}
}

// Without a Blender to pack with, submit says so and sends the .blend
// alone; --no-pack does that without trying.
func TestSubmitWithoutBlenderSendsTheBlendAlone(t *testing.T) {
	t.Parallel()
	f := sharedFarm(t)
	r := renderfarm(t, f.env(), "submit", scene("cube.blend"), "--frames", "1", "--blender", filepath.Join(t.TempDir(), "no-blender"))
	if r.code != 0 || !strings.Contains(r.stdout, "WARNING NOT_PACKED") || !strings.Contains(r.stdout, "were not packed: submitting the .blend alone") {
		t.Errorf("submit without Blender: want exit 0 and a NOT_PACKED warning, got\n%s", r)
	}
	if !strings.Contains(r.stderr, "uploading cube.blend") {
		t.Errorf("want cube.blend uploaded as it is:\n%s", r)
	}
	r = renderfarm(t, f.env(), "submit", scene("cube.blend"), "--frames", "1", "--no-pack")
	if r.code != 0 || strings.Contains(r.stdout, "pack") || !strings.Contains(r.stderr, "uploading cube.blend") {
		t.Errorf("submit --no-pack: want exit 0 and no packing, got\n%s", r)
	}
	// A .blend the local Blender cannot open is not sent at all.
	corrupt := filepath.Join(t.TempDir(), "corrupt.blend")
	if err := os.WriteFile(corrupt, append([]byte("BLENDER-v304"), make([]byte, 2000)...), 0o644); err != nil {
		t.Fatal(err)
	}
	r = renderfarm(t, f.env(), "submit", corrupt)
	if r.code != 1 || !strings.Contains(r.stderr, "Blender cannot open") || !strings.Contains(r.stderr, "nothing was submitted") || strings.Contains(r.stderr, "uploading") {
		t.Errorf("submit of a file Blender cannot open: want exit 1 before any upload, got\n%s", r)
	}
	// A .blend that uses no other file goes alone after packing.
	r = renderfarm(t, f.env(), "submit", scene("cube.blend"), "--frames", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "cube.blend uses no other file: submitting it alone") {
		t.Errorf("submit of a .blend without dependencies: got\n%s", r)
	}
}

func requireBlender(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("blender"); err != nil {
		t.Skip("blender is not installed; scripts/test.sh installs it")
	}
}
