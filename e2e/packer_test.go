package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/packer"
	"github.com/renderfarm/renderfarm/internal/packer/packertest"
)

// cli runs the renderfarm binary against f as a person at a shell would,
// with the workspace's key in the environment.
func (f *farm) cli(t *testing.T, workspace string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "RENDERFARM_SERVER="+f.URL, "RENDERFARM_API_KEY="+f.Key(workspace))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case asExitError(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("renderfarm %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

var submittedJob = regexp.MustCompile(`job ([0-9a-f-]{36}): validating`)

// A shot that links a prop from another .blend (whose material, linked in
// turn from a third .blend, reads a texture in the assets folder), reads an
// image by its absolute path from outside the project and an image
// sequence: `submit shot.blend` packs them all, the farm finds every file,
// also the library linked through the library, and the frames show every
// one of them.
func TestSubmitPacksTheShotWithItsLibraryAndOutsideFiles(t *testing.T) {
	f := startFarm(t)
	dir := t.TempDir()
	shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{Nested: true})
	before := packertest.Checksums(t, shot.Root)
	frames := filepath.Join(dir, "frames")

	stdout, stderr, code := f.cli(t, "studio", "submit", shot.Blend, "--wait", "--download", frames)
	if code != 0 {
		t.Fatalf("submit: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"packed 7 files", ", 0 missing", "external files: 5, all found", "completed, 2 frames"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("submit does not say %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, client.WarnMissingFile) {
		t.Errorf("validation found a missing file:\n%s", stdout)
	}
	packertest.SameChecksums(t, before, packertest.Checksums(t, shot.Root))
	for _, frame := range packertest.Frames {
		packertest.CheckFrame(t, filepath.Join(frames, fmt.Sprintf("frame_%04d.png", frame)), frame)
	}

	// The analysis lists the libraries apart, found.
	m := submittedJob.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no job id in:\n%s", stdout)
	}
	job, err := f.client("studio").GetJob(testContext(t), m[1])
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, lib := range job.Analysis.Libraries {
		if lib.Missing || !strings.HasPrefix(lib.Path, "//_outside/") {
			t.Errorf("library %+v: want it found, under _outside/", lib)
		}
		found[lib.Name] = lib.Parent
	}
	if len(found) != 2 || found["prop.blend"] != "" || found["red.blend"] != "prop.blend" {
		t.Errorf("libraries = %+v, want prop.blend, and red.blend linked through it", job.Analysis.Libraries)
	}
	if job.SceneFile == nil || job.SceneFile.FileType != "zip" || job.SceneFile.BlendPath != "shot.blend" {
		t.Errorf("sceneFile = %+v, want the packed zip with shot.blend at its top", job.SceneFile)
	}
}

// A texture that is really missing is listed by pack, reported by
// validation, and the render goes ahead with everything else.
func TestAMissingDependencyIsListedReportedAndTheRenderGoesAhead(t *testing.T) {
	f := startFarm(t)
	dir := t.TempDir()
	shot := packertest.MakeShot(t, filepath.Join(dir, "files"), packertest.Options{OffCamera: []string{"//tex/missing.png"}})
	zipPath := filepath.Join(dir, "shot.zip")

	stdout, stderr, code := f.cli(t, "studio", "pack", shot.Blend, zipPath, "--json")
	var rep packer.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 0 {
		t.Fatalf("pack --json: exit %d, %v\n%s\n%s", code, err, stdout, stderr)
	}
	if len(rep.Missing) != 1 || rep.Missing[0].Path != "//tex/missing.png" || !strings.Contains(stderr, ", 1 missing") {
		t.Errorf("pack: missing = %+v\n%s", rep.Missing, stderr)
	}

	frames := filepath.Join(dir, "frames")
	stdout, stderr, code = f.cli(t, "studio", "submit", zipPath, "--wait", "--download", frames)
	if code != 0 {
		t.Fatalf("submit: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "WARNING "+client.WarnMissingFile) || !strings.Contains(stdout, "//tex/missing.png") {
		t.Errorf("validation does not report the missing texture:\n%s", stdout)
	}
	if !strings.Contains(stdout, "completed, 2 frames") {
		t.Errorf("the render did not go ahead:\n%s", stdout)
	}
	for _, frame := range packertest.Frames {
		packertest.CheckFrame(t, filepath.Join(frames, fmt.Sprintf("frame_%04d.png", frame)), frame)
	}
}
