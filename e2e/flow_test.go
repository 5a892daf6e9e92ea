package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// TestRenderFlow walks the whole Renderjuice flow on cube.blend: upload,
// create, validate, render 24 frames, follow progress, download frames, the
// zip and the preview video.
func TestRenderFlow(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	job := submit(ctx, t, c, scene("cube.blend"))
	job = validate(ctx, t, c, job.ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	a := job.Analysis
	if a == nil || len(a.Scenes) != 1 {
		t.Fatalf("analysis = %+v, want one scene", a)
	}
	sc := a.Scenes[0]
	if sc.FrameStart != 1 || sc.FrameEnd != 24 || sc.ResolutionX != 64 || sc.ResolutionY != 36 || sc.Engine != "CYCLES" {
		t.Errorf("scene = %+v, want frames 1-24 at 64x36 in CYCLES", sc)
	}
	// cube.blend asks for denoising: a farm whose Blender has no
	// denoiser (Debian's) says it will render without.
	if got, want := hasWarning(a, client.WarnDenoiserUnavailable), sc.DenoisingEnabled && !a.DenoiserAvailable; got != want {
		t.Errorf("warnings = %+v; a DENOISER_UNAVAILABLE warning: %v, want %v (denoising asked: %v, available: %v)",
			a.Warnings, got, want, sc.DenoisingEnabled, a.DenoiserAvailable)
	}
	if job.SceneFile == nil || job.SceneFile.SHA256 == "" || job.SceneFile.Version == "" {
		t.Errorf("sceneFile = %+v, want size, hash and version", job.SceneFile)
	}

	cfg := client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{"1-24"},
		SampleCount:           client.Int(4),
	}
	started, replay, err := c.Render(ctx, job.ID, cfg)
	if err != nil || replay {
		t.Fatalf("render: replay=%v err=%v", replay, err)
	}
	if started.Status != client.StatusBooting || started.FinalConfig == nil || started.FinalConfig.FrameCount != 24 {
		t.Fatalf("render answered %s with finalConfig %+v", started.Status, started.FinalConfig)
	}
	if want := sc.DenoisingEnabled && a.DenoiserAvailable; started.FinalConfig.DenoisingEnabled != want {
		t.Errorf("finalConfig.denoisingEnabled = %v, want %v: the scene's, where the farm's Blender can denoise", started.FinalConfig.DenoisingEnabled, want)
	}
	_, replay, err = c.Render(ctx, job.ID, cfg)
	if err != nil || !replay {
		t.Errorf("second render: replay=%v err=%v, want a replay", replay, err)
	}

	var seen []client.Status
	done, err := c.Wait(ctx, job.ID, client.UntilFinal, func(p *client.Progress) {
		if len(seen) == 0 || seen[len(seen)-1] != p.Status {
			seen = append(seen, p.Status)
		}
	})
	if err != nil {
		t.Fatalf("wait: %v (statuses seen %v)", err, seen)
	}
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}
	if done.NormalizedSeconds <= 0 || done.PreviewURL == nil {
		t.Errorf("completed job: normalizedSeconds=%v previewUrl=%v", done.NormalizedSeconds, done.PreviewURL)
	}

	p, err := c.Progress(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.FramesTotal != 24 || p.FramesCompleted != 24 || p.PercentComplete != 100 || len(p.Frames) != 24 {
		t.Errorf("progress = %d/%d (%v%%) with %d frames, want 24/24", p.FramesCompleted, p.FramesTotal, p.PercentComplete, len(p.Frames))
	}
	for _, fr := range p.Frames {
		if fr.Status != client.FrameCompleted || fr.Worker == "" || fr.Attempts != 1 {
			t.Errorf("frame %d: %+v, want completed once by a named worker", fr.Frame, fr)
		}
	}

	d, err := c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Frames) != 24 || len(d.FrameOutputs) != 24 {
		t.Fatalf("downloads list %d frames and %d frame outputs, want 24", len(d.Frames), len(d.FrameOutputs))
	}
	dir := t.TempDir()
	names := map[string]bool{}
	for i, out := range d.FrameOutputs {
		if names[out.FileName] {
			t.Errorf("file name %s appears twice", out.FileName)
		}
		names[out.FileName] = true
		if out.Frame == nil || *out.Frame != i+1 {
			t.Errorf("frame output %d is frame %v, want frames in order", i, out.Frame)
		}
		path := filepath.Join(dir, out.FileName)
		if _, err := c.DownloadFile(ctx, out.URL, path); err != nil {
			t.Fatalf("download %s: %v", out.FileName, err)
		}
		checkPNG(t, path, 64, 36)
	}

	if d.Transforms.FramesZip == nil {
		t.Fatal("no frames zip")
	}
	zipPath := filepath.Join(dir, "frames.zip")
	if _, err := c.DownloadFile(ctx, *d.Transforms.FramesZip, zipPath); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var zipped []string
	for _, zf := range zr.File {
		zipped = append(zipped, zf.Name)
	}
	if len(zipped) != 24 || !slices.Contains(zipped, "frame_0001.png") || !slices.Contains(zipped, "frame_0024.png") {
		t.Errorf("zip holds %v, want frame_0001.png … frame_0024.png", zipped)
	}

	if d.Transforms.Video == nil {
		t.Fatal("no preview video")
	}
	videoPath := filepath.Join(dir, "preview.mp4")
	if _, err := c.DownloadFile(ctx, d.Transforms.Video.URL, videoPath); err != nil {
		t.Fatal(err)
	}
	checkMP4(t, videoPath)
}

// TestProjectZipRendersWithItsTextures renders a project uploaded as a zip
// whose .blend uses a texture beside it.
func TestProjectZipRendersWithItsTextures(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("project.zip")).ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	if hasWarning(job.Analysis, client.WarnMissingFile) {
		t.Errorf("warnings = %+v: the texture is in the zip", job.Analysis.Warnings)
	}
	if job.SceneFile.BlendPath != "scene.blend" || job.SceneFile.ProjectEntries < 2 {
		t.Errorf("sceneFile = %+v, want scene.blend and its texture", job.SceneFile)
	}
	done := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-2"}})
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}
}

// TestMissingTextureIsAWarning: a file referring to a missing image still
// validates, and the analysis names the missing file.
func TestMissingTextureIsAWarning(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("missing_texture.blend")).ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	var missing []string
	for _, ef := range job.Analysis.ExternalFiles {
		if ef.Missing {
			missing = append(missing, ef.Path)
		}
	}
	if !slices.Contains(missing, "//textures/missing.png") || !hasWarning(job.Analysis, client.WarnMissingFile) {
		t.Errorf("missing files %v, warnings %+v: want //textures/missing.png named", missing, job.Analysis.Warnings)
	}
}

func renderAndWait(ctx context.Context, t *testing.T, c *client.Client, id string, cfg client.RenderConfig) *client.Job {
	t.Helper()
	if _, _, err := c.Render(ctx, id, cfg); err != nil {
		t.Fatalf("render: %v", err)
	}
	job, err := c.Wait(ctx, id, client.UntilFinal, nil)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return job
}

func hasWarning(a *client.Analysis, code string) bool {
	if a == nil {
		return false
	}
	for _, w := range a.Warnings {
		if w.Code == code {
			return true
		}
	}
	return false
}

func checkPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", filepath.Base(path), err)
	}
	if cfg.Width != w || cfg.Height != h {
		t.Errorf("%s is %dx%d, want %dx%d", filepath.Base(path), cfg.Width, cfg.Height, w, h)
	}
}

// checkMP4 checks the file is an MP4 (an ftyp box first) that holds H.264.
func checkMP4(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 || string(b[4:8]) != "ftyp" {
		t.Fatalf("%s does not start with an MP4 ftyp box", path)
	}
	if !bytes.Contains(b, []byte("avc1")) {
		t.Errorf("%s holds no H.264 (avc1) track", path)
	}
}
