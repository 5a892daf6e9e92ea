package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// storedFrame is a frame's image as the local object store holds it.
type storedFrame struct {
	path    string
	modTime time.Time
	sum     [sha256.Size]byte
}

// completedFrames reads, for each frame of a job that progress says is
// completed, its one stored image.
func completedFrames(ctx context.Context, t *testing.T, f *farm, c *client.Client, id string) map[int]storedFrame {
	t.Helper()
	p, err := c.Progress(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]storedFrame{}
	for _, fr := range p.Frames {
		if fr.Status != client.FrameCompleted {
			continue
		}
		paths, err := filepath.Glob(filepath.Join(f.DataDir, "objects", "jobs", id, "frames", "*", fmt.Sprintf("frame_%04d.png", fr.Frame)))
		if err != nil || len(paths) != 1 {
			t.Fatalf("completed frame %d stored as %v (%v), want one image", fr.Frame, paths, err)
		}
		info, err := os.Stat(paths[0])
		if err != nil {
			t.Fatal(err)
		}
		body, err := os.ReadFile(paths[0])
		if err != nil {
			t.Fatal(err)
		}
		out[fr.Frame] = storedFrame{path: paths[0], modTime: info.ModTime(), sum: sha256.Sum256(body)}
	}
	return out
}

// checkUnchanged checks that the frames of before are stored as they were:
// the same object, never written again, with the same bytes.
func checkUnchanged(t *testing.T, before, after map[int]storedFrame) {
	t.Helper()
	for n, was := range before {
		now, ok := after[n]
		switch {
		case !ok:
			t.Errorf("frame %d, completed before, is no longer completed", n)
		case now.path != was.path || !now.modTime.Equal(was.modTime) || now.sum != was.sum:
			t.Errorf("frame %d was stored again: %s (%s) became %s (%s)", n, was.path, was.modTime, now.path, now.modTime)
		}
	}
}

func frameAttempts(ctx context.Context, t *testing.T, c *client.Client, id string) map[int]int {
	t.Helper()
	p, err := c.Progress(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, fr := range p.Frames {
		out[fr.Frame] = fr.Attempts
	}
	return out
}

// TestSuspendMidRenderThenResumeRendersOnlyWhatWasLeft suspends a job
// while Blender renders it, kills serve with SIGKILL while it is
// suspended, and resumes it after the restart: Blender stops within 2 s,
// the frames done before stay stored as they were (same object, same
// bytes, never written again), and the job completes with every frame
// once.
func TestSuspendMidRenderThenResumeRendersOnlyWhatWasLeft(t *testing.T) {
	f := startProcessFarm(t, "--worker-timeout", "3s")
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	if _, _, err := c.Render(ctx, job.ID, slowRender("1-12")); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, c, job.ID, 2)
	suspended, replay, err := c.Suspend(ctx, job.ID)
	if err != nil || replay || suspended.Status != client.StatusSuspended || suspended.SuspendedReason != client.SuspendedOnRequest {
		t.Fatalf("Suspend = %+v, replay %v, %v; want suspended on request", suspended, replay, err)
	}
	waitFor(t, "Blender to stop", func() bool { return len(blenderProcesses(f.DataDir)) == 0 })
	stopped := time.Since(suspended.UpdatedAt)
	if stopped > 2*time.Second+time.Second {
		t.Errorf("Blender stopped %.1f s after the suspend, want within 2 s", stopped.Seconds())
	}
	t.Logf("Blender gone %.2f s after the suspend was recorded", stopped.Seconds())
	if _, replay, err := c.Suspend(ctx, job.ID); err != nil || !replay {
		t.Errorf("a second suspend = replay %v, %v; want a replay", replay, err)
	}
	before := completedFrames(ctx, t, f, c, job.ID)
	if len(before) < 2 || len(before) == 12 {
		t.Fatalf("%d frames completed at the suspend; want some, not all", len(before))
	}

	d, err := c.Downloads(ctx, job.ID)
	if err != nil || len(d.FrameOutputs) != len(before) {
		t.Errorf("a suspended job lists %d frames to download (%v); want the %d done", len(d.FrameOutputs), err, len(before))
	}

	// A crash while suspended loses nothing and starts nothing.
	f.Kill()
	f.Start()
	c = f.client("studio")
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != client.StatusSuspended || p.FramesCompleted != len(before) || p.FramesRendering != 0 {
		t.Fatalf("after a restart: %s, %d completed, %d rendering; want suspended as it was", p.Status, p.FramesCompleted, p.FramesRendering)
	}
	checkUnchanged(t, before, completedFrames(ctx, t, f, c, job.ID))

	resumed, replay, err := c.Resume(ctx, job.ID)
	if err != nil || replay || resumed.Status != client.StatusRendering {
		t.Fatalf("Resume = %+v, replay %v, %v; want rendering", resumed, replay, err)
	}
	done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}
	checkUnchanged(t, before, completedFrames(ctx, t, f, c, job.ID))
	attempts := frameAttempts(ctx, t, c, job.ID)
	for n := range before {
		if attempts[n] != 1 {
			t.Errorf("frame %d, done before the suspend, was begun %d times; want once", n, attempts[n])
		}
	}
	checkCompletedOnce(ctx, t, f, c, job.ID, 12)
}

// cubeOf30Frames makes, with Blender, a copy of cube.blend whose scene
// runs from frame 1 to 30.
func cubeOf30Frames(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cube30.blend")
	expr := fmt.Sprintf("import bpy; bpy.context.scene.frame_end = 30; bpy.ops.wm.save_as_mainfile(filepath=%q)", out)
	cmd := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", scene("cube.blend"), "--python-expr", expr)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make a 30-frame cube: %v\n%s", err, b)
	}
	return out
}

// TestScoutFramesRenderFirstAndWaitForApproval renders a 30-frame job
// with scoutFrames "auto": frames 1, 15 and 30 render, the job is
// suspended with SCOUT_FRAMES_READY and an estimate of the rest, and
// resume renders the other 27.
func TestScoutFramesRenderFirstAndWaitForApproval(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, cubeOf30Frames(t)).ID)
	cfg := client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{"1-30"},
		Resolution:            []int{64, 36},
		SampleCount:           client.Int(1),
		ScoutFrames:           client.ScoutAuto,
	}
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	waiting, err := c.Wait(ctx, job.ID, func(j *client.Job) bool { return j.Status == client.StatusSuspended || j.Status.IsFinal() }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if waiting.Status != client.StatusSuspended || waiting.SuspendedReason != client.SuspendedScoutFramesReady {
		t.Fatalf("job = %s (%q), want suspended with its scout frames ready", waiting.Status, waiting.SuspendedReason)
	}
	if waiting.FinalConfig == nil || !slices.Equal(waiting.FinalConfig.ScoutFrames, []string{"1", "15", "30"}) {
		t.Errorf("finalConfig.scoutFrames = %v, want 1, 15, 30", waiting.FinalConfig)
	}
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	var done []int
	for _, fr := range p.Frames {
		if fr.Status == client.FrameCompleted {
			done = append(done, fr.Frame)
		}
	}
	slices.Sort(done)
	if !slices.Equal(done, []int{1, 15, 30}) || p.FramesTotal != 30 || p.SuspendedReason != client.SuspendedScoutFramesReady {
		t.Fatalf("progress: frames %v done of %d, reason %q; want the scouts 1, 15 and 30 of 30", done, p.FramesTotal, p.SuspendedReason)
	}
	if p.EtaSeconds == nil || *p.EtaSeconds <= 0 {
		t.Errorf("etaSeconds = %v, want an estimate of the other 27 frames from the scouts", p.EtaSeconds)
	}
	scouts := completedFrames(ctx, t, f, c, job.ID)

	approved := time.Now()
	if _, replay, err := c.Resume(ctx, job.ID); err != nil || replay {
		t.Fatalf("Resume = replay %v, %v", replay, err)
	}
	finished, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if finished.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", finished.Status, finished.FailedReason)
	}
	t.Logf("the scouts estimated the other 27 frames at %.1f s; they took %.1f s with the finalizing", *p.EtaSeconds, time.Since(approved).Seconds())
	checkUnchanged(t, scouts, completedFrames(ctx, t, f, c, job.ID))
	for n, a := range frameAttempts(ctx, t, c, job.ID) {
		if a != 1 {
			t.Errorf("frame %d begun %d times, want once", n, a)
		}
	}
	checkCompletedOnce(ctx, t, f, c, job.ID, 30)
}

// failingFrames is a Python startup script for the real Blender (the
// farm's, not the file's) that makes it die at frame 3 while the file
// crash exists, and wait at frame 2 while the file hold exists. It only
// reads, so it works inside Blender's sandbox.
const failingFrames = `import bpy, os, time

@bpy.app.handlers.persistent
def misbehave(scene, *args):
    if scene.frame_current == 3 and os.path.exists(%q):
        print("Error: simulated crash while rendering frame 3", flush=True)
        os._exit(3)
    while scene.frame_current == 2 and os.path.exists(%q):
        time.sleep(0.1)

bpy.app.handlers.render_pre.append(misbehave)
`

// TestRetryRendersOnlyTheFramesAskedFor fails a job on frame 3, retries
// its failed frames, then retries frame 2 of the completed job and kills
// serve with SIGKILL while that retry renders. Only the frames asked for
// render again; every other frame's image stays as it was; each frame's
// attempts count across retries; the job completes with failedReason
// cleared and every frame once.
func TestRetryRendersOnlyTheFramesAskedFor(t *testing.T) {
	dir := t.TempDir()
	crash, hold := filepath.Join(dir, "crash"), filepath.Join(dir, "hold")
	script, wrapper := filepath.Join(dir, "failing_frames.py"), filepath.Join(dir, "blender")
	writeFile(t, script, fmt.Appendf(nil, failingFrames, crash, hold))
	writeFile(t, crash, nil)
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nexec blender --python "+script+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := startProcessFarm(t, "--worker-timeout", "3s", "--blender", wrapper)
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	cfg := quickRender(6)
	cfg.ChunkSize = client.Int(1)
	failed := renderAndWait(ctx, t, c, job.ID, cfg)
	if failed.Status != client.StatusFailed || failed.FailedReason == nil || !strings.Contains(failed.FailedReason.Message, "frame 3") {
		t.Fatalf("job ended %s: %+v; want failed on frame 3", failed.Status, failed.FailedReason)
	}
	before := completedFrames(ctx, t, f, c, job.ID)
	if _, ok := before[3]; ok || len(before) == 0 {
		t.Fatalf("frames completed before the retry: %v; want some, not frame 3", before)
	}
	attemptsBefore := frameAttempts(ctx, t, c, job.ID)

	// Mended: the failed frames render again, and only those.
	if err := os.Remove(crash); err != nil {
		t.Fatal(err)
	}
	retried, err := c.Retry(ctx, job.ID, client.RetryRequest{Frames: client.RetryFailed})
	if err != nil || retried.Status != client.StatusBooting {
		t.Fatalf("Retry(failed) = %+v, %v; want booting", retried, err)
	}
	done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != client.StatusCompleted || done.FailedReason != nil {
		t.Fatalf("retried job ended %s with failedReason %+v; want completed, the reason cleared", done.Status, done.FailedReason)
	}
	checkUnchanged(t, before, completedFrames(ctx, t, f, c, job.ID))
	attempts := frameAttempts(ctx, t, c, job.ID)
	for n := 1; n <= 6; n++ {
		want := attemptsBefore[n]
		if _, ok := before[n]; !ok {
			want++
		}
		if attempts[n] != want {
			t.Errorf("frame %d begun %d times in all; want %d (%d before the retry)", n, attempts[n], want, attemptsBefore[n])
		}
	}
	checkCompletedOnce(ctx, t, f, c, job.ID, 6)

	// Frame 2 of the completed job again, with serve killed as it renders.
	writeFile(t, hold, nil)
	previous := completedFrames(ctx, t, f, c, job.ID)
	if _, err := c.Retry(ctx, job.ID, client.RetryRequest{FrameRanges: []string{"2"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "frame 2 to render again", func() bool {
		p, err := c.Progress(ctx, job.ID)
		return err == nil && slices.ContainsFunc(p.Frames, func(fr client.FrameProgress) bool { return fr.Frame == 2 && fr.Status == client.FrameRendering })
	})
	f.Kill()
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	f.Start()
	c = f.client("studio")
	again, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", again.Status, again.FailedReason)
	}
	after := completedFrames(ctx, t, f, c, job.ID)
	old2 := previous[2]
	delete(previous, 2)
	checkUnchanged(t, previous, after)
	if after[2].path == old2.path {
		t.Errorf("frame 2 is still stored as %s; want the retry's new image, under its own key", old2.path)
	}
	if _, err := os.Stat(old2.path); !os.IsNotExist(err) {
		t.Errorf("frame 2's old image %s is still stored (%v); finalizing removes what no frame names", old2.path, err)
	}
	checkCompletedOnce(ctx, t, f, c, job.ID, 6)
}

// TestAWorkerWhoseBlenderAlwaysFailsIsSetAside runs two render nodes on
// one database and bucket: a healthy one, and one whose Blender answers
// --version but fails everything else. The failing node's chunks move to
// the healthy one, it is blocked on a job whose chunks failed twice
// there, and once chunks of three jobs failed on it, it is sick: listed
// so by `renderfarm workers` and /metrics, until `renderfarm workers
// enable`.
func TestAWorkerWhoseBlenderAlwaysFailsIsSetAside(t *testing.T) {
	d := newDistributed(t)
	api := d.api(t, "--workers", "0", "--worker-timeout", "5s", "--metrics-addr", "127.0.0.1:0")
	worker(t, "--worker-name", "node-good", "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage, "--worker-timeout", "5s")
	c := api.client("studio")
	ctx := testContext(t)

	var jobs []string
	for range 3 {
		job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
		if job.Status != client.StatusValidated {
			t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
		}
		jobs = append(jobs, job.ID)
	}
	broken := filepath.Join(t.TempDir(), "blender")
	writeFile(t, broken, []byte("#!/bin/sh\ncase \"$*\" in\n*--version*) exec blender \"$@\" ;;\nesac\necho 'Error: this Blender is broken' >&2\nexit 1\n"))
	if err := os.Chmod(broken, 0o755); err != nil {
		t.Fatal(err)
	}
	worker(t, "--worker-name", "node-bad", "--blender", broken, "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage, "--worker-timeout", "5s")
	waitFor(t, "node-bad to start", func() bool {
		out, _ := exec.Command(binary(t), "workers", "--database", d.database).Output()
		return strings.Contains(string(out), "node-bad")
	})

	cfg := quickRender(6)
	cfg.ChunkSize = client.Int(1)
	// One job after another: each render request gives both idle nodes a
	// chunk at once, so node-bad fails a chunk of each of the three jobs
	// whatever the healthy node's speed.
	var blocked []string
	for _, id := range jobs {
		if _, _, err := c.Render(ctx, id, cfg); err != nil {
			t.Fatal(err)
		}
		done, err := c.Wait(ctx, id, client.UntilFinal, nil)
		if err != nil {
			t.Fatal(err)
		}
		if done.Status != client.StatusCompleted {
			t.Fatalf("job %s ended %s: %+v", id, done.Status, done.FailedReason)
		}
		p, err := c.Progress(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range p.Frames {
			if fr.Worker != "node-good" {
				t.Errorf("job %s frame %d was rendered by %q, want node-good", id, fr.Frame, fr.Worker)
			}
		}
		blocked = append(blocked, p.BlockedWorkers...)
	}
	if !slices.Contains(blocked, "node-bad") {
		t.Errorf("no job lists node-bad under blockedWorkers (%v)", blocked)
	}

	out, err := exec.Command(binary(t), "workers", "--database", d.database).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "node-bad is sick: chunks of 3 different jobs failed on it") {
		t.Fatalf("renderfarm workers: %v\n%s\nwant node-bad sick", err, out)
	}
	resp, err := http.Get(api.metricsURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.Contains(string(metrics), `renderfarm_worker_sick{worker="node-bad"} 1`) {
		t.Errorf("/metrics does not show node-bad sick (%v):\n%s", err, metrics)
	}
	out, err = exec.Command(binary(t), "workers", "enable", "node-bad", "--database", d.database).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "node-bad is enabled") {
		t.Fatalf("renderfarm workers enable: %v\n%s", err, out)
	}
	out, _ = exec.Command(binary(t), "workers", "--database", d.database).CombinedOutput()
	if strings.Contains(string(out), "sick") {
		t.Errorf("node-bad is still sick once enabled:\n%s", out)
	}
}

// denoisedOnFrame3 has Blender make a scene whose denoising (the scene's
// and its view layer's) is keyed on at frame 3 alone. Debian's Blender has no denoiser, so that frame, and only
// it, fails with "Build without OpenImageDenoiser": a fault of the file's
// own, with no Python in it.
const denoisedOnFrame3 = `
import bpy, sys
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.render.resolution_x, scene.render.resolution_y = 32, 18
scene.frame_start, scene.frame_end = 1, 5
layer = scene.view_layers[0]
for frame, on in ((1, False), (3, True), (4, False)):
    scene.cycles.use_denoising = layer.cycles.use_denoising = on
    scene.keyframe_insert('cycles.use_denoising', frame=frame)
    scene.keyframe_insert('view_layers["%s"].cycles.use_denoising' % layer.name, frame=frame)
for curve in scene.animation_data.action.fcurves:
    for key in curve.keyframe_points:
        key.interpolation = "CONSTANT"
scene.cycles.use_denoising = layer.cycles.use_denoising = False
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index("--") + 1])
`

// TestRetryOfAFrameTheFileFailsRendersOnlyThatFrame: a file whose frame 3
// fails on every render node fails its job after --max-failed-chunks
// failed chunks; a retry of its failed frames renders frame 3 again, and
// nothing else: every other frame's image stays as it was, begun once.
func TestRetryOfAFrameTheFileFailsRendersOnlyThatFrame(t *testing.T) {
	requireTools(t)
	blend := filepath.Join(t.TempDir(), "denoised_on_frame_3.blend")
	if out, err := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio", "--python-exit-code", "1",
		"--python-expr", denoisedOnFrame3, "--", blend).CombinedOutput(); err != nil {
		t.Fatalf("making the scene: %v\n%s", err, out)
	}
	// Two render slots: frames 4 and 5 render while frame 3's chunk waits
	// out River's retry backoff in the other slot.
	f := startFarm(t, "--workers", "2")
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, blend).ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	failed := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), ChunkSize: client.Int(1)})
	if failed.Status != client.StatusFailed || failed.FailedReason == nil ||
		!strings.Contains(failed.FailedReason.Message, "frame 3 failed after 3 attempts") || !strings.Contains(failed.FailedReason.Message, "OpenImageDenoiser") {
		t.Fatalf("job ended %s: %+v; want failed on frame 3, saying why", failed.Status, failed.FailedReason)
	}
	before := completedFrames(ctx, t, f, c, job.ID)
	attemptsBefore := frameAttempts(ctx, t, c, job.ID)
	if _, ok := before[3]; ok || len(before) == 0 {
		t.Fatalf("frames completed: %v; want some, not frame 3", before)
	}

	if _, err := c.Retry(ctx, job.ID, client.RetryRequest{Frames: client.RetryFailed}); err != nil {
		t.Fatal(err)
	}
	again, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != client.StatusFailed || again.FailedReason == nil || !strings.Contains(again.FailedReason.Message, "frame 3 failed after 6 attempts") {
		t.Fatalf("retried job ended %s: %+v; want failed again on frame 3, its attempts counted across the retry", again.Status, again.FailedReason)
	}
	checkUnchanged(t, before, completedFrames(ctx, t, f, c, job.ID))
	attempts := frameAttempts(ctx, t, c, job.ID)
	for n := 1; n <= 5; n++ {
		want := attemptsBefore[n]
		switch _, done := before[n]; {
		case n == 3:
			want += 3
		case !done:
			want++
		}
		if attempts[n] != want {
			t.Errorf("frame %d begun %d times in all, want %d: only what did not complete renders again", n, attempts[n], want)
		}
	}
	t.Logf("frames begun before the retry %v, after %v", attemptsBefore, attempts)
}
