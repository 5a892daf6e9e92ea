package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// slowRender makes each frame of cube.blend take a good fraction of a
// second, so that a test can act while Blender is busy.
func slowRender(frames string) client.RenderConfig {
	return client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{frames},
		Resolution:            []int{320, 180},
		SampleCount:           client.Int(48),
	}
}

// TestCancelKillsBlenderAndKeepsFinishedFrames cancels a job while Blender
// renders it: Blender is gone within 2 s, the job stays canceled, and the
// frames already rendered stay downloadable.
func TestCancelKillsBlenderAndKeepsFinishedFrames(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	if _, _, err := c.Render(ctx, job.ID, slowRender("1-24")); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, c, job.ID, 1)
	if len(blenderProcesses(f.DataDir)) == 0 {
		t.Fatal("no Blender process found while rendering")
	}

	canceled, err := c.Cancel(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if canceled.Status != client.StatusCanceled {
		t.Fatalf("cancel answered %s", canceled.Status)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(blenderProcesses(f.DataDir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Blender still runs 2 s after cancel: pids %v", blenderProcesses(f.DataDir))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Once the killed chunk's worker has returned, nothing of it can
	// write any more: check that nothing moved.
	f.waitWorkDone("render_chunk")
	after, err := c.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != client.StatusCanceled {
		t.Errorf("job is %s after cancel, want canceled", after.Status)
	}
	if _, err := c.Cancel(ctx, job.ID); !client.IsInvalidState(err) {
		t.Errorf("second cancel: %v, want INVALID_STATE", err)
	}
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.FramesCompleted == 0 || len(d.FrameOutputs) != p.FramesCompleted {
		t.Fatalf("%d frames completed, %d downloadable; want the finished frames downloadable", p.FramesCompleted, len(d.FrameOutputs))
	}
	for _, fr := range p.Frames {
		if fr.Status == client.FrameRendering || fr.Status == client.FrameQueued {
			t.Errorf("frame %d is still %s after cancel", fr.Frame, fr.Status)
		}
	}
	path := filepath.Join(t.TempDir(), d.FrameOutputs[0].FileName)
	if _, err := c.DownloadFile(ctx, d.FrameOutputs[0].URL, path); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 320, 180)
}

// TestKilledServerFinishesTheJobAfterRestart kills serve with SIGKILL in the
// middle of a render, starts it again on the same data directory, and
// checks the job completes with every frame exactly once.
func TestKilledServerFinishesTheJobAfterRestart(t *testing.T) {
	f := startProcessFarm(t, "--worker-timeout", "3s")
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	if _, _, err := c.Render(ctx, job.ID, slowRender("1-12")); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, c, job.ID, 3)
	f.Kill()
	// Blender dies with the process that started it.
	deadline := time.Now().Add(2 * time.Second)
	for len(blenderProcesses(f.DataDir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Blender outlived the killed server: pids %v", blenderProcesses(f.DataDir))
		}
		time.Sleep(50 * time.Millisecond)
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
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.FramesCompleted != 12 || p.FramesTotal != 12 {
		t.Errorf("progress %d/%d, want 12/12", p.FramesCompleted, p.FramesTotal)
	}
	stored, err := filepath.Glob(filepath.Join(f.DataDir, "objects", "jobs", job.ID, "frames", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 12 {
		t.Errorf("%d frame files stored, want 12: %v", len(stored), stored)
	}
	d, err := c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FrameOutputs) != 12 || d.Transforms.FramesZip == nil {
		t.Errorf("downloads: %d frames, zip %v", len(d.FrameOutputs), d.Transforms.FramesZip)
	}
	// Nothing of the job is left in the work directory once it completed.
	if _, err := os.Stat(filepath.Join(f.DataDir, "work", job.ID)); !os.IsNotExist(err) {
		t.Errorf("work files of the completed job remain: %v", err)
	}
}

// waitFrames waits until at least n frames of the job are completed.
func waitFrames(t *testing.T, c *client.Client, id string, n int) {
	t.Helper()
	ctx := testContext(t)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		p, err := c.Progress(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.FramesCompleted >= n {
			return
		}
		if p.Status.IsFinal() {
			t.Fatalf("job ended %s before %d frames were done", p.Status, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("fewer than %d frames done after 2 minutes", n)
}

// blenderProcesses lists the pids of Blender processes working on files
// under dataDir.
func blenderProcesses(dataDir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && strings.Contains(filepath.Base(args[0]), "blender") && strings.Contains(string(cmdline), dataDir) {
			// A zombie has no command line; one that still has it runs.
			pids = append(pids, pid)
		}
	}
	return pids
}
