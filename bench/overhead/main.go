// Command overhead measures what the farm adds to Blender's own time: it
// renders the same frames of the same scene with the same settings once
// with Blender by hand (`blender -b … -a`) and once through `renderfarm
// serve` (from the render request to `completed`), and prints both and
// their ratio.
//
//	go run ./bench/overhead [-frames 24] [-size 320x180] [-samples 32] [-runs 1]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

func main() {
	frames := flag.Int("frames", 24, "frames to render (1..N of the scene)")
	size := flag.String("size", "320x180", "resolution WxH")
	samples := flag.Int("samples", 32, "Cycles samples")
	runs := flag.Int("runs", 1, "how many times to measure each side (the best is kept)")
	scene := flag.String("scene", "testdata/scenes/cube.blend", "the .blend to render")
	flag.Parse()
	var w, h int
	if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil {
		log.Fatalf("-size %q: want WxH", *size)
	}
	ctx := context.Background()
	work, err := os.MkdirTemp("", "renderfarm-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)

	binary := filepath.Join(work, "renderfarm")
	run(exec.Command("go", "build", "-o", binary, "./cmd/renderfarm"))

	var direct, farm time.Duration
	for i := 0; i < *runs; i++ {
		d := byHand(work, *scene, *frames, w, h, *samples)
		f, breakdown := throughFarm(ctx, binary, work, *scene, *frames, w, h, *samples)
		fmt.Printf("run %d: blender by hand %.2f s, through the farm %.2f s (%s)\n", i+1, d.Seconds(), f.Seconds(), breakdown)
		if direct == 0 || d < direct {
			direct = d
		}
		if farm == 0 || f < farm {
			farm = f
		}
	}
	fmt.Printf("\n%d frames at %dx%d, %d samples, Cycles CPU\n", *frames, w, h, *samples)
	fmt.Printf("blender by hand:  %.2f s\n", direct.Seconds())
	fmt.Printf("through the farm: %.2f s\n", farm.Seconds())
	fmt.Printf("ratio:            %.3f\n", farm.Seconds()/direct.Seconds())
}

// settingsExpr applies the same settings the farm applies: resolution,
// samples, and no denoiser (Debian's Blender has none).
func settingsExpr(out string, frames, w, h, samples int) string {
	return fmt.Sprintf(`import bpy
s = bpy.context.scene
s.frame_start, s.frame_end = 1, %d
s.render.resolution_x, s.render.resolution_y, s.render.resolution_percentage = %d, %d, 100
s.cycles.samples = %d
s.cycles.use_denoising = False
for vl in s.view_layers: vl.cycles.use_denoising = False
s.render.image_settings.file_format = 'PNG'
s.render.filepath = %q
`, frames, w, h, samples, out)
}

func byHand(work, scene string, frames, w, h, samples int) time.Duration {
	out := filepath.Join(work, "direct", "frame_####")
	start := time.Now()
	run(exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio", scene,
		"--python-expr", settingsExpr(out, frames, w, h, samples), "-a"))
	took := time.Since(start)
	got, _ := filepath.Glob(filepath.Join(work, "direct", "frame_*.png"))
	if len(got) != frames {
		log.Fatalf("blender by hand wrote %d frames, want %d", len(got), frames)
	}
	return took
}

func throughFarm(ctx context.Context, binary, work, scene string, frames, w, h, samples int) (time.Duration, string) {
	dataDir, err := os.MkdirTemp(work, "farm-")
	if err != nil {
		log.Fatal(err)
	}
	keyOut, err := exec.Command(binary, "keys", "create", "--data-dir", dataDir, "--workspace", "bench").Output()
	if err != nil {
		log.Fatal(err)
	}
	serve := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir)
	stdout, _ := serve.StdoutPipe()
	serve.Stderr = nil
	if err := serve.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = serve.Process.Kill(); _ = serve.Wait() }()
	sc := bufio.NewScanner(stdout)
	var url string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "renderfarm serving at "); ok {
			url = u
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	c := client.New(url, strings.TrimSpace(string(keyOut)), client.WithPollInterval(20*time.Millisecond))
	slug, err := c.UploadFile(ctx, scene, nil)
	if err != nil {
		log.Fatal(err)
	}
	job, err := c.CreateJob(ctx, slug)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Validate(ctx, job.ID); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Wait(ctx, job.ID, client.UntilStatus(client.StatusValidated), nil); err != nil {
		log.Fatal(err)
	}
	var firstFrame, lastFrame time.Time
	start := time.Now()
	_, _, err = c.Render(ctx, job.ID, client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{fmt.Sprintf("1-%d", frames)},
		Resolution:            []int{w, h},
		SampleCount:           client.Int(samples),
	})
	if err != nil {
		log.Fatal(err)
	}
	done, err := c.Wait(ctx, job.ID, client.UntilFinal, func(p *client.Progress) {
		if p.FramesCompleted > 0 && firstFrame.IsZero() {
			firstFrame = time.Now()
		}
		if p.FramesCompleted == frames && lastFrame.IsZero() {
			lastFrame = time.Now()
		}
	})
	took := time.Since(start)
	if err != nil || done.Status != client.StatusCompleted {
		log.Fatalf("farm job ended %v: %v", done.Status, err)
	}
	breakdown := fmt.Sprintf("first frame stored after %.2f s, last frame to completed %.2f s, Blender render seconds %.2f",
		firstFrame.Sub(start).Seconds(), took.Seconds()-lastFrame.Sub(start).Seconds(), done.NormalizedSeconds)
	return took, breakdown
}

func run(cmd *exec.Cmd) {
	cmd.Stderr = os.Stderr
	if out, err := cmd.Output(); err != nil {
		log.Fatalf("%s: %v\n%s", strings.Join(cmd.Args[:2], " "), err, out)
	}
}
