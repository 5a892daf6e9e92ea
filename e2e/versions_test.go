package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
	"github.com/renderfarm/renderfarm/internal/packer/packertest"
	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// blender43Root is Debian 13's root file system with Blender 4.3.2, which
// scripts/lib.sh's install_blenders puts there and `serve` finds by
// itself.
const blender43Root = packertest.Blender43Root

// requireBlender43 skips a test of Blender 4.3 where its root is missing.
func requireBlender43(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(blender43Root, "usr/bin/blender")); err != nil {
		t.Skipf("Blender 4.3 is not installed at %s (scripts/test.sh installs it with install_blenders): %v", blender43Root, err)
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bubblewrap is not installed; Blender 4.3 runs from its root inside it")
	}
}

// makeSceneScript saves Blender's default cube as a small, quick Cycles
// scene of two frames, compressed (zstd) as artists save: 64x36, 4
// samples, no denoising (neither Blender of the farm has a denoiser).
const makeSceneScript = `
import sys
import bpy
out = sys.argv[sys.argv.index("--") + 1]
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 4
scene.cycles.use_denoising = False
scene.render.resolution_x, scene.render.resolution_y = 64, 36
scene.render.resolution_percentage = 100
scene.frame_start, scene.frame_end = 1, 2
scene.render.image_settings.file_format = "PNG"
bpy.ops.wm.save_as_mainfile(filepath=out, compress=True)
`

// saveScene saves the scene of makeSceneScript at path with the Blender
// of release ("3.4": Debian 12's /usr/bin/blender; "4.3": the 4.3 root,
// run through the farm's own sandbox, which makes the root its /), so
// that the file's header says that Blender saved it.
func saveScene(t *testing.T, release, path string) {
	t.Helper()
	argv := []string{"blender", "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", "--python-expr", makeSceneScript, "--", path}
	if release == "4.3" {
		host, err := sandbox.New(context.Background(), sandbox.Config{Mode: sandbox.Bwrap})
		if err != nil {
			t.Fatal(err)
		}
		rooted, err := host.InRoot(blender43Root)
		if err != nil {
			t.Fatal(err)
		}
		argv[0] = "/usr/bin/blender"
		argv = rooted.Command(argv, sandbox.Paths{Writable: []string{filepath.Dir(path)}})
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + filepath.Dir(path)}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("saving a scene with Blender %s: %v\n%s", release, err, out)
	}
	header := make([]byte, 4)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(header); err != nil || string(header) != "\x28\xb5\x2f\xfd" {
		t.Fatalf("Blender %s did not save %s compressed (zstd): %q, %v", release, path, header, err)
	}
}

// versionScenes are a scene saved by Blender 3.4 and one saved by 4.3.
func versionScenes(t *testing.T) (saved34, saved43 string) {
	t.Helper()
	dir := t.TempDir()
	saved34, saved43 = filepath.Join(dir, "saved-by-3.4.blend"), filepath.Join(dir, "saved-by-4.3.blend")
	saveScene(t, "3.4", saved34)
	saveScene(t, "4.3", saved43)
	return saved34, saved43
}

// renderedWith checks that a completed job's frames exist and that its
// chunk's log names Blender version, and answers the log.
func renderedWith(ctx context.Context, t *testing.T, c *client.Client, job *client.Job, version string) {
	t.Helper()
	if job.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", job.Status, job.FailedReason)
	}
	if job.FinalConfig.BlenderVersion != version {
		t.Errorf("finalConfig.blenderVersion = %q, want %s", job.FinalConfig.BlenderVersion, version)
	}
	lines, err := c.JobLog(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !containsLine(lines, "with Blender "+version) {
		t.Errorf("the chunk's log does not say Blender %s rendered it:\n%s", version, strings.Join(lines, "\n"))
	}
	dl, err := c.Downloads(ctx, job.ID)
	if err != nil || len(dl.FrameOutputs) != 2 {
		t.Fatalf("downloads = %+v, %v; want 2 frames", dl, err)
	}
	path := filepath.Join(t.TempDir(), dl.FrameOutputs[1].FileName)
	if _, err := c.DownloadFile(ctx, dl.FrameOutputs[1].URL, path); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 64, 36)
}

// TestEachFileRendersInTheBlenderThatOpensIt: one serve with both of the
// farm's Blenders, found in their default places. A file saved by 4.3
// validates and renders in 4.3.2, as the analysis, the final config and
// the chunk's log say; one saved by 3.4 in 3.4.1; pinned to 4.3, a 3.4
// file renders in 4.3.2; a version no node runs is refused with 400,
// naming the field and what there is, and changes nothing.
func TestEachFileRendersInTheBlenderThatOpensIt(t *testing.T) {
	requireBlender43(t)
	saved34, saved43 := versionScenes(t)
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	offered, err := c.BlenderVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []client.BlenderVersion{{Version: "3.4.1", Workers: 1}, {Version: "4.3.2", Workers: 1}}
	if !slices.Equal(offered.Versions, want) {
		t.Fatalf("GET /blender = %+v, want %+v", offered.Versions, want)
	}

	job43 := validate(ctx, t, c, submit(ctx, t, c, saved43).ID)
	if job43.Status != client.StatusValidated {
		t.Fatalf("the 4.3 file's validation ended %s: %+v", job43.Status, job43.FailedReason)
	}
	a := job43.Analysis
	if a.FileVersion != "4.3" || a.RenderBlenderVersion != "4.3.2" || a.BlenderVersion != "4.3.2" || !slices.Equal(a.FarmBlenderVersions, []string{"3.4.1", "4.3.2"}) {
		t.Errorf("analysis: file %s, opened with %s (reports %s), farm %v; want 4.3, 4.3.2, 4.3.2, [3.4.1 4.3.2]",
			a.FileVersion, a.RenderBlenderVersion, a.BlenderVersion, a.FarmBlenderVersions)
	}
	if hasWarning(a, client.WarnNewerFile) {
		t.Errorf("a 4.3 file opened by 4.3.2 is warned about as newer than the farm: %+v", a.Warnings)
	}
	renderedWith(ctx, t, c, renderAndWait(ctx, t, c, job43.ID, client.RenderConfig{ColorManagementPreset: client.String("default")}), "4.3.2")

	job34 := validate(ctx, t, c, submit(ctx, t, c, saved34).ID)
	if job34.Status != client.StatusValidated || job34.Analysis.FileVersion != "3.4" || job34.Analysis.RenderBlenderVersion != "3.4.1" {
		t.Fatalf("the 3.4 file: %s, analysis %+v", job34.Status, job34.Analysis)
	}
	renderedWith(ctx, t, c, renderAndWait(ctx, t, c, job34.ID, client.RenderConfig{ColorManagementPreset: client.String("default")}), "3.4.1")

	pinned := validate(ctx, t, c, submit(ctx, t, c, saved34).ID)
	_, _, err = c.Render(ctx, pinned.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), BlenderVersion: client.String("9.9")})
	var apiErr *client.APIError
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Field != "requestedRenderConfig.blenderVersion" ||
		!strings.Contains(apiErr.Message, "the farm offers 3.4.1, 4.3.2") {
		t.Fatalf("pinning Blender 9.9: %v; want 400 about requestedRenderConfig.blenderVersion listing 3.4.1, 4.3.2", err)
	}
	if after, err := c.GetJob(ctx, pinned.ID); err != nil || after.Status != client.StatusValidated {
		t.Fatalf("after the refused pin: %+v, %v; want the job still validated", after, err)
	}
	renderedWith(ctx, t, c, renderAndWait(ctx, t, c, pinned.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), BlenderVersion: client.String("4.3")}), "4.3.2")
}

// TestAFileNewerThanEveryBlenderFailsWithoutStartingOne: a farm with
// Blender 3.4.1 alone, run through a wrapper that records every start, is
// sent a file saved by 4.3. Validation fails with BLENDER_TOO_OLD, naming
// the file's version and the farm's newest, and saying how to add a
// Blender; no Blender was started for it (the one start is the version
// read when the farm started).
func TestAFileNewerThanEveryBlenderFailsWithoutStartingOne(t *testing.T) {
	requireBlender43(t)
	dir := t.TempDir()
	saved43 := filepath.Join(dir, "saved-by-4.3.blend")
	saveScene(t, "4.3", saved43)
	starts := filepath.Join(dir, "blender-starts")
	wrapper := filepath.Join(dir, "blender")
	writeFile(t, wrapper, []byte(fmt.Sprintf("#!/bin/sh\necho \"$*\" >> '%s'\nexec /usr/bin/blender \"$@\"\n", starts)))
	if err := os.Chmod(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	// The wrapper writes beside itself, which the sandbox would not let
	// it: unconfined, and with this one Blender given, the root is not
	// looked for.
	f := startFarm(t, "--blender", wrapper, "--sandbox", "none")
	countStarts := func() int {
		b, err := os.ReadFile(starts)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "\n")
	}
	if n := countStarts(); n != 1 {
		t.Fatalf("Blender started %d times with the farm, want once (its version)", n)
	}
	c := f.client("studio")
	ctx := testContext(t)
	if offered, err := c.BlenderVersions(ctx); err != nil || len(offered.Versions) != 1 || offered.Versions[0].Version != "3.4.1" {
		t.Fatalf("GET /blender = %+v, %v; want 3.4.1 alone", offered, err)
	}

	job := validate(ctx, t, c, submit(ctx, t, c, saved43).ID)
	if job.Status != client.StatusFailed || job.FailedReason == nil || job.FailedReason.Name != "BLENDER_TOO_OLD" || job.FailedReason.Type != client.FailValidation {
		t.Fatalf("validation ended %s, %+v; want failed BLENDER_TOO_OLD", job.Status, job.FailedReason)
	}
	for _, want := range []string{"saved with Blender 4.3", "Blender 3.4.1 at newest", "--blender"} {
		if !strings.Contains(job.FailedReason.Message, want) {
			t.Errorf("failedReason %q does not say %q", job.FailedReason.Message, want)
		}
	}
	if job.SceneFile == nil || job.SceneFile.Version != "4.3" {
		t.Errorf("sceneFile = %+v, want the header's 4.3", job.SceneFile)
	}
	if n := countStarts(); n != 1 {
		t.Errorf("Blender started %d times, want still once: the file's header was enough", n)
	}
}

// TestAJobGoesOnlyToTheNodesWithItsBlender runs the distributed shape
// (PostgreSQL, a bucket, an API server and two render nodes): node-a runs
// Blender 3.4.1 alone, node-b 3.4.1 and 4.3.2 (found in their default
// places). A file saved by 4.3 validates in 4.3.2; while node-b is
// stopped its chunks wait, progress says for what, and the job does not
// fail; once node-b is back, every frame is rendered there, none on
// node-a.
func TestAJobGoesOnlyToTheNodesWithItsBlender(t *testing.T) {
	requireBlender43(t)
	_, saved43 := versionScenes(t)
	d := newDistributed(t)
	api := d.api(t, "--workers", "0", "--worker-timeout", "5s")
	node := func(name string, args ...string) *apptest.Process {
		return worker(t, append([]string{"--worker-name", name, "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage, "--worker-timeout", "5s"}, args...)...)
	}
	node("node-a", "--blender", "/usr/bin/blender")
	nodeB := node("node-b")
	c := api.client("studio")
	ctx := testContext(t)

	offered, err := c.BlenderVersions(ctx)
	if want := []client.BlenderVersion{{Version: "3.4.1", Workers: 2}, {Version: "4.3.2", Workers: 1}}; err != nil || !slices.Equal(offered.Versions, want) {
		t.Fatalf("GET /blender = %+v, %v; want %+v", offered, err, want)
	}
	out, err := exec.Command(binary(t), "workers", "--json", "--database", d.database).Output()
	if err != nil {
		t.Fatalf("renderfarm workers: %v", err)
	}
	var workers []struct {
		Name            string   `json:"name"`
		BlenderVersions []string `json:"blenderVersions"`
	}
	if err := json.Unmarshal(out, &workers); err != nil {
		t.Fatalf("renderfarm workers --json: %v\n%s", err, out)
	}
	listed := map[string][]string{}
	for _, w := range workers {
		listed[w.Name] = w.BlenderVersions
	}
	if !slices.Equal(listed["node-a"], []string{"3.4.1"}) || !slices.Equal(listed["node-b"], []string{"3.4.1", "4.3.2"}) {
		t.Errorf("renderfarm workers lists the Blenders as %v", listed)
	}

	job := validate(ctx, t, c, submit(ctx, t, c, saved43).ID)
	if job.Status != client.StatusValidated || job.Analysis.RenderBlenderVersion != "4.3.2" {
		t.Fatalf("the 4.3 file: %s (%+v), analysis %+v; want validated by 4.3.2", job.Status, job.FailedReason, job.Analysis)
	}

	// node-b stops: no live node runs 4.3.2.
	if code := nodeB.Terminate(t); code != 0 {
		t.Fatalf("node-b exited %d", code)
	}
	if _, _, err := c.Render(ctx, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), ChunkSize: client.Int(1)}); err != nil {
		t.Fatal(err)
	}
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != client.StatusBooting || !strings.Contains(p.WaitingFor, "a render node with Blender 4.3.2") {
		t.Fatalf("with node-b stopped: %s, waiting for %q; want booting, waiting for a node with Blender 4.3.2", p.Status, p.WaitingFor)
	}

	node("node-b")
	done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != client.StatusCompleted || done.FinalConfig.BlenderVersion != "4.3.2" {
		t.Fatalf("job ended %s with Blender %q: %+v", done.Status, done.FinalConfig.BlenderVersion, done.FailedReason)
	}
	if p, err = c.Progress(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Frames {
		if f.Worker != "node-b" || f.Status != client.FrameCompleted {
			t.Errorf("frame %d: %s on %q; want completed on node-b", f.Frame, f.Status, f.Worker)
		}
	}
	if len(p.Frames) != 2 || p.WaitingFor != "" {
		t.Errorf("%d frames, waiting for %q; want 2, nothing", len(p.Frames), p.WaitingFor)
	}
}
