package e2e

import (
	"archive/zip"
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// quickRender is a render of frames 1..n of cube.blend that takes a few
// seconds.
func quickRender(n int) client.RenderConfig {
	return client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{fmt.Sprintf("1-%d", n)},
		Resolution:            []int{160, 90},
		SampleCount:           client.Int(4),
	}
}

// holdingWrapper writes an executable script that stands in for tool
// (blender or ffmpeg): while the file hold exists and the arguments contain
// when, it waits; then it execs the real tool. The script only reads,
// so it works inside Blender's sandbox too, where its folder is read-only.
func holdingWrapper(t *testing.T, tool, when string) (wrapper, hold string) {
	t.Helper()
	dir := t.TempDir()
	wrapper, hold = filepath.Join(dir, tool), filepath.Join(dir, "hold")
	script := fmt.Sprintf(`#!/bin/sh
case "$*" in
*%s*) while [ -e %s ]; do sleep 0.1; done ;;
esac
exec %s "$@"
`, when, hold, tool)
	writeFile(t, hold, nil)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, hold
}

// processesWith lists the pids of running processes whose command line
// holds every one of parts.
func processesWith(parts ...string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a zombie
		}
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(string(cmdline), p) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitFor polls cond every 50 ms for up to two minutes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 2 minutes", what)
		}
	}
}

// killAll kills the processes whose command line holds every one of parts
// and waits until they are gone: what a killed server started and did not
// take with it.
func killAll(t *testing.T, parts ...string) {
	t.Helper()
	for _, pid := range processesWith(parts...) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	waitFor(t, "end of the processes of "+strings.Join(parts, " "), func() bool { return len(processesWith(parts...)) == 0 })
}

// runDirs lists Blender's run directories in the farm's work directory.
func runDirs(t *testing.T, f *farm) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(f.DataDir, "work", "tmp", "renderfarm-blender-*"))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// jobStatus answers a job's status.
func jobStatus(ctx context.Context, t *testing.T, c *client.Client, id string) client.Status {
	t.Helper()
	job, err := c.GetJob(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return job.Status
}

// TestKilledServerDuringValidationFinishesTheJobAfterRestart kills serve
// with SIGKILL while Blender inspects the job's file (held there by a
// wrapper around the real Blender, which the worker starts as a session), starts it again on the same data
// directory, and checks the validation is done again and the job renders
// to the end, every frame once and no file left over, the killed run's
// Blender directory included.
func TestKilledServerDuringValidationFinishesTheJobAfterRestart(t *testing.T) {
	requireTools(t)
	blender, hold := holdingWrapper(t, "blender", "session.py")
	f := startProcessFarm(t, "--worker-timeout", "3s", "--blender", blender)
	c := f.client("studio")
	ctx := testContext(t)

	job := submit(ctx, t, c, scene("cube.blend"))
	if _, err := c.Validate(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "inspection of the file", func() bool { return len(processesWith(blender, "session.py", f.DataDir)) > 0 })
	if st := jobStatus(ctx, t, c, job.ID); st != client.StatusValidating {
		t.Fatalf("job is %s while Blender inspects it, want validating", st)
	}
	left := runDirs(t, f)
	if len(left) != 1 {
		t.Fatalf("Blender run directories while inspecting: %v, want 1", left)
	}

	f.Kill()
	killAll(t, blender, "session.py", f.DataDir)
	if _, err := os.Stat(left[0]); err != nil {
		t.Fatalf("the killed run's directory should be left behind: %v", err)
	}
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}

	f.Start()
	c = f.client("studio")
	if _, err := os.Stat(left[0]); !os.IsNotExist(err) {
		t.Errorf("the killed run's directory %s is still there after the restart: %v", left[0], err)
	}
	validated, err := c.Wait(ctx, job.ID, client.UntilStatus(client.StatusValidated, client.StatusFailed, client.StatusCanceled), nil)
	if err != nil {
		t.Fatal(err)
	}
	if validated.Status != client.StatusValidated || validated.Analysis == nil {
		t.Fatalf("validation after the restart ended %s: %+v", validated.Status, validated.FailedReason)
	}
	done := renderAndWait(ctx, t, c, job.ID, quickRender(4))
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}
	checkCompletedOnce(ctx, t, f, c, job.ID, 4)
}

// TestKilledServerDuringFinalizingFinishesTheJobAfterRestart kills serve
// with SIGKILL while it makes the preview video (ffmpeg is held by a
// wrapper), after an image was stored that no frame refers to, as a worker
// killed between storing a frame and recording it leaves one. After a
// restart on the same data directory the job completes, every frame once,
// and the orphan image is gone.
func TestKilledServerDuringFinalizingFinishesTheJobAfterRestart(t *testing.T) {
	requireTools(t)
	ffmpeg, hold := holdingWrapper(t, "ffmpeg", "")
	f := startProcessFarm(t, "--worker-timeout", "3s", "--ffmpeg", ffmpeg)
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	if _, _, err := c.Render(ctx, job.ID, quickRender(4)); err != nil {
		t.Fatal(err)
	}
	// (serve's own command line names the wrapper and the data directory
	// too, but not ffmpeg's arguments.)
	waitFor(t, "preview video being made", func() bool { return len(processesWith(ffmpeg, "libx264", f.DataDir)) > 0 })
	if st := jobStatus(ctx, t, c, job.ID); st != client.StatusFinalizing {
		t.Fatalf("job is %s while its preview is made, want finalizing", st)
	}

	f.Kill()
	// ffmpeg dies with the server that started it.
	waitFor(t, "ffmpeg to die with serve", func() bool { return len(processesWith(ffmpeg, "libx264", f.DataDir)) == 0 })
	frames := filepath.Join(f.DataDir, "objects", "jobs", job.ID, "frames")
	held, err := filepath.Glob(filepath.Join(frames, "*", "frame_0002.png"))
	if err != nil || len(held) != 1 {
		t.Fatalf("frame 2 stored as %v (%v), want once", held, err)
	}
	// A holder of a later generation of frame 2's chunk stored its image
	// and was killed before recording it.
	task, gen, _ := strings.Cut(filepath.Base(filepath.Dir(held[0])), ".")
	orphan := filepath.Join(frames, task+"."+gen+"9", "frame_0002.png")
	if err := os.MkdirAll(filepath.Dir(orphan), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, orphan, []byte("\x89PNG an image no frame refers to"))
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}

	f.Start()
	c = f.client("studio")
	done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("the orphan image is still stored: %v", err)
	}
	checkCompletedOnce(ctx, t, f, c, job.ID, 4)
}

// checkCompletedOnce checks a completed job of frames 1..n: each frame
// completed once, downloadable once and in the zip once; the job's stored
// objects exactly what its downloads name, plus its logs and its input (so
// no orphan image); its work directory and every Blender run directory
// gone.
func checkCompletedOnce(ctx context.Context, t *testing.T, f *farm, c *client.Client, id string, n int) {
	t.Helper()
	p, err := c.Progress(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if p.FramesCompleted != n || p.FramesTotal != n || len(p.Frames) != n {
		t.Errorf("progress %d/%d with %d frames listed, want %d", p.FramesCompleted, p.FramesTotal, len(p.Frames), n)
	}
	seen := map[int]int{}
	for _, fr := range p.Frames {
		seen[fr.Frame]++
		if fr.Status != client.FrameCompleted {
			t.Errorf("frame %d is %s", fr.Frame, fr.Status)
		}
	}
	for i := 1; i <= n; i++ {
		if seen[i] != 1 {
			t.Errorf("frame %d listed %d times, want once", i, seen[i])
		}
	}

	d, err := c.Downloads(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Transforms.FramesZip == nil || (n >= 2 && d.Transforms.Video == nil) {
		t.Fatalf("downloads without a zip or a video: %+v", d.Transforms)
	}
	named := map[string]bool{}
	addKey := func(rawURL string) {
		u, err := url.Parse(rawURL)
		if err != nil || !strings.HasPrefix(u.Path, "/objects/") {
			t.Fatalf("download URL %q does not name a local object (%v)", rawURL, err)
		}
		named[strings.TrimPrefix(u.Path, "/objects/")] = true
	}
	downloadable := map[int]int{}
	for _, fo := range d.FrameOutputs {
		addKey(fo.URL)
		if fo.Frame != nil {
			downloadable[*fo.Frame]++
		}
	}
	for i := 1; i <= n; i++ {
		if downloadable[i] != 1 {
			t.Errorf("frame %d downloadable %d times, want once", i, downloadable[i])
		}
	}
	addKey(*d.Transforms.FramesZip)
	if d.Transforms.Video != nil {
		addKey(d.Transforms.Video.URL)
	}

	objects := filepath.Join(f.DataDir, "objects")
	jobDir := filepath.Join(objects, "jobs", id)
	stored := map[string]bool{}
	err = filepath.WalkDir(jobDir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		key, _ := filepath.Rel(objects, path)
		key = filepath.ToSlash(key)
		stored[key] = true
		if !named[key] && !strings.HasPrefix(key, "jobs/"+id+"/logs/") && !strings.HasPrefix(key, "jobs/"+id+"/input/") {
			t.Errorf("stored object %s is neither downloadable, a log nor the input", key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for key := range named {
		if !stored[key] {
			t.Errorf("downloadable object %s is not stored", key)
		}
	}

	zipPath := filepath.Join(t.TempDir(), "frames.zip")
	if _, err := c.DownloadFile(ctx, *d.Transforms.FramesZip, zipPath); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, zf := range zr.File {
		names = append(names, zf.Name)
	}
	slices.Sort(names)
	if len(names) != n || len(slices.Compact(slices.Clone(names))) != n {
		t.Errorf("frames.zip holds %v, want %d distinct frames", names, n)
	}

	if _, err := os.Stat(filepath.Join(f.DataDir, "work", id)); !os.IsNotExist(err) {
		t.Errorf("work files of the completed job remain: %v", err)
	}
	if left := runDirs(t, f); len(left) != 0 {
		t.Errorf("Blender run directories left: %v", left)
	}
}
