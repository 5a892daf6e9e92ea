package e2e

import (
	"context"
	"errors"
	"image"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// splitRender renders frame 1 of cube.blend (64x36) with 8 samples and no
// denoising (this Blender has no denoiser), split as split asks (nil:
// whole), and answers the frame and the job's final progress.
func splitRender(ctx context.Context, t *testing.T, c *client.Client, split *client.SplitFrame) (image.Image, *client.Progress) {
	t.Helper()
	return splitRenderOf(ctx, t, c, client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{"1"},
		SampleCount:           client.Int(8),
		DenoisingEnabled:      client.Bool(false),
		SplitFrame:            split,
	})
}

// splitRenderOf renders cube.blend with cfg, and answers its one frame and
// the job's final progress.
func splitRenderOf(ctx context.Context, t *testing.T, c *client.Client, cfg client.RenderConfig) (image.Image, *client.Progress) {
	t.Helper()
	split := cfg.SplitFrame
	job := renderScene(ctx, t, c, scene("cube.blend"), cfg)
	if split != nil {
		if got := job.FinalConfig.SplitFrame; got == nil || got.Parts != split.Parts || (split.Mode != "" && got.Mode != split.Mode) || got.Mode == "" {
			t.Errorf("finalConfig.splitFrame = %+v, want %+v with its mode resolved", got, split)
		}
	}
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Downloads(ctx, job.ID)
	if err != nil || len(d.FrameOutputs) != 1 {
		t.Fatalf("downloads = %+v, %v; want one frame", d, err)
	}
	return decodeImage(t, fetch(ctx, t, c, d.FrameOutputs[0].URL, t.TempDir(), "frame.png")), p
}

// meanAbsDiff is the mean absolute difference of two images' RGB, in
// 8-bit steps; +Inf when their sizes differ.
func meanAbsDiff(a, b image.Image) float64 {
	if a.Bounds() != b.Bounds() {
		return math.Inf(1)
	}
	var sum float64
	n := 0
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			for _, d := range [][2]uint32{{r1, r2}, {g1, g2}, {b1, b2}} {
				sum += math.Abs(float64(d[0]>>8) - float64(d[1]>>8))
				n++
			}
		}
	}
	return sum / float64(n)
}

// TestASplitFrameIsTheWholeRender renders one frame whole, then split in
// 2 parts by samples and by tiles: each split frame is the whole render's
// within a small fraction of an 8-bit step on average, and its progress
// counts the parts.
func TestASplitFrameIsTheWholeRender(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	whole, _ := splitRender(ctx, t, c, nil)
	for _, split := range []*client.SplitFrame{{Parts: 2}, {Mode: client.SplitTiles, Parts: 2}} {
		merged, p := splitRender(ctx, t, c, split)
		diff := meanAbsDiff(whole, merged)
		t.Logf("split %+v: mean absolute difference from the whole render %.3f 8-bit steps", *split, diff)
		if diff > 0.1 {
			t.Errorf("split %+v: the frame is %.3f 8-bit steps from the whole render on average, want at most 0.1", *split, diff)
		}
		if len(p.Frames) != 1 || p.Frames[0].Parts == nil || *p.Frames[0].Parts != (client.PartsProgress{Total: 2, Completed: 2}) {
			t.Errorf("split %+v: progress frames = %+v, want one frame with 2 of 2 parts", *split, p.Frames)
		}
	}
}

// TestAWorkbenchFrameSplitInTilesIsTheWholeRender renders one frame with
// the Workbench engine whole, then split into 4 tiles: Workbench renders
// the whole frame for a tile and keeps the tile's pixels, so the frame the
// farm merged is the whole render pixel for pixel; a split by samples,
// which only Cycles writes, is refused with a 400 naming renderEngine.
func TestAWorkbenchFrameSplitInTilesIsTheWholeRender(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	cfg := client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{"1"},
		RenderEngine:          client.String("BLENDER_WORKBENCH"),
	}
	whole, _ := splitRenderOf(ctx, t, c, cfg)
	cfg.SplitFrame = &client.SplitFrame{Mode: client.SplitTiles, Parts: 4}
	merged, p := splitRenderOf(ctx, t, c, cfg)
	if diff := meanAbsDiff(whole, merged); diff != 0 {
		t.Errorf("4 Workbench tiles merged are %.3f 8-bit steps from the whole render on average, want 0", diff)
	}
	if len(p.Frames) != 1 || p.Frames[0].Parts == nil || *p.Frames[0].Parts != (client.PartsProgress{Total: 4, Completed: 4}) {
		t.Errorf("progress frames = %+v, want one frame with 4 of 4 parts", p.Frames)
	}

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	cfg.SplitFrame = &client.SplitFrame{Mode: client.SplitSamples, Parts: 4}
	_, _, err := c.Render(ctx, job.ID, cfg)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.HasSuffix(apiErr.Field, "renderEngine") ||
		!strings.Contains(apiErr.Message, `splitFrame.mode to "tiles"`) {
		t.Errorf("a Workbench split by samples: %v, want a 400 naming renderEngine and saying to split by tiles", err)
	}
}

// TestCancelMidSplitStopsEveryPart cancels a job of one frame split in 4
// parts while its parts render: the job and the frame are canceled, and
// once the work has ended, nothing was merged or stored.
func TestCancelMidSplitStopsEveryPart(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	cfg := slowRender("1")
	cfg.DenoisingEnabled = client.Bool(false)
	cfg.SplitFrame = &client.SplitFrame{Parts: 4}
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	// A part has begun once the frame is rendering.
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := c.Progress(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Frames) == 1 && p.Frames[0].Status == client.FrameRendering {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no part began within a minute: %+v", p.Frames)
		}
		time.Sleep(20 * time.Millisecond)
	}
	canceled, err := c.Cancel(ctx, job.ID)
	if err != nil || canceled.Status != client.StatusCanceled {
		t.Fatalf("cancel = %+v, %v; want canceled", canceled, err)
	}
	f.waitWorkDone("render_chunk", "merge_parts")
	after, err := c.GetJob(ctx, job.ID)
	if err != nil || after.Status != client.StatusCanceled {
		t.Fatalf("job after its work ended = %+v, %v; want canceled", after, err)
	}
	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Frames) != 1 || p.Frames[0].Status != client.FrameCanceled || p.Frames[0].Parts == nil || p.Frames[0].Parts.Total != 4 {
		t.Errorf("progress frames = %+v, want frame 1 canceled, of 4 parts", p.Frames)
	}
	d, err := c.Downloads(ctx, job.ID)
	if err != nil || len(d.FrameOutputs) != 0 {
		t.Errorf("downloads = %+v, %v; want no frame", d, err)
	}
	if n := len(blenderProcesses(f.DataDir)); n != 0 {
		t.Errorf("%d Blender processes left after the cancel", n)
	}
}

// TestAKilledWorkerMidSplitLosesNothing runs the distributed shape with
// two render nodes; node-a's Blender is held as it starts a part, so that
// node-a holds a part when it is killed with SIGKILL. The reaper hands
// the part to node-b, and the frame is merged once, of its 4 parts.
func TestAKilledWorkerMidSplitLosesNothing(t *testing.T) {
	d := newDistributed(t)
	api := d.api(t, "--workers", "0", "--worker-timeout", "5s")
	nodeArgs := func(name string) []string {
		return []string{"--worker-name", name, "--work-dir", t.TempDir(), "--database", d.database, "--storage", d.storage, "--worker-timeout", "5s"}
	}
	worker(t, nodeArgs("node-b")...)
	c := api.client("studio")
	ctx := testContext(t)
	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	// node-a starts once the file is validated: every Blender it starts
	// for a part waits.
	held, _ := holdingWrapper(t, "blender", "session.py")
	nodeA := worker(t, append(nodeArgs("node-a"), "--blender", held)...)

	cfg := client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{"1"},
		Resolution:            []int{160, 90},
		SampleCount:           client.Int(16),
		DenoisingEnabled:      client.Bool(false),
		SplitFrame:            &client.SplitFrame{Parts: 4},
	}
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a part held on node-a", func() bool { return len(processesWith(held, "session.py")) > 0 })
	nodeA.Kill()
	killAll(t, held, "session.py")

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
	if len(p.Frames) != 1 || p.Frames[0].Worker != "node-b" || p.Frames[0].Parts == nil || *p.Frames[0].Parts != (client.PartsProgress{Total: 4, Completed: 4}) {
		t.Errorf("progress frames = %+v, want frame 1 merged by node-b of 4 of 4 parts", p.Frames)
	}
	dl, err := c.Downloads(ctx, job.ID)
	if err != nil || len(dl.FrameOutputs) != 1 {
		t.Fatalf("downloads = %+v, %v; want one frame", dl, err)
	}
	if img := decodeImage(t, fetch(ctx, t, c, dl.FrameOutputs[0].URL, t.TempDir(), "frame.png")); img.Bounds().Dx() != 160 || img.Bounds().Dy() != 90 {
		t.Errorf("the merged frame is %v, want 160x90", img.Bounds())
	}
}
