package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// crashAtFrame3 is a Python startup script that makes the real Blender die
// the moment it starts rendering frame 3, as a crash would.
const crashAtFrame3 = `import bpy, os, sys

@bpy.app.handlers.persistent
def crash(scene, *args):
    if scene.frame_current == 3:
        print("Error: simulated crash while rendering frame 3", flush=True)
        os._exit(3)

bpy.app.handlers.render_pre.append(crash)
`

// TestFrameThatKeepsFailingFailsTheJob runs the real Blender with a crash
// injected at frame 3: the chunk is retried, frames 1 and 2 are kept, and
// after the last attempt the job fails with a reason naming frame 3.
func TestFrameThatKeepsFailingFailsTheJob(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "crash_at_frame_3.py")
	wrapper := filepath.Join(dir, "blender")
	if err := os.WriteFile(script, []byte(crashAtFrame3), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nexec blender --python "+script+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := startFarm(t, "--blender", wrapper)
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	start := time.Now()
	done := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-6"}})
	if done.Status != client.StatusFailed || done.FailedReason == nil {
		t.Fatalf("job ended %s, want failed", done.Status)
	}
	r := done.FailedReason
	if r.Type != client.FailRender || r.Name != "FRAME_FAILED" || !strings.Contains(r.Message, "frame 3") || !strings.Contains(r.Message, "simulated crash") {
		t.Errorf("failedReason = %+v, want a render failure naming frame 3 and Blender's error line", r)
	}
	t.Logf("failed after %.1f s: %s", time.Since(start).Seconds(), r.Message)

	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	byFrame := map[int]client.FrameProgress{}
	for _, fr := range p.Frames {
		byFrame[fr.Frame] = fr
	}
	for _, n := range []int{1, 2} {
		if byFrame[n].Status != client.FrameCompleted || byFrame[n].Attempts != 1 {
			t.Errorf("frame %d = %+v, want completed on the first attempt and kept", n, byFrame[n])
		}
	}
	if fr := byFrame[3]; fr.Status != client.FrameFailed || fr.Attempts != 3 {
		t.Errorf("frame 3 = %+v, want failed after 3 attempts", fr)
	}
	d, err := c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FrameOutputs) != 2 {
		t.Errorf("%d frames downloadable, want the 2 that rendered", len(d.FrameOutputs))
	}
}
