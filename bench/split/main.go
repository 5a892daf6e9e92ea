// Command split measures a still frame split into parts (internal/blender's
// Part and Merge, in Blenders kept warm as a render node keeps them) with
// the real Blender: how close the merged frame is to
// the whole render against the noise floor (two whole renders that differ
// only in their seed), in samples and tiles mode; how much faster two
// single-threaded Blenders render a frame in parts and merge it than one
// renders it whole, in pairs of runs (whole, then split) whose ratios are
// read pair by pair, since this machine's speed moves between minutes by
// more than the split costs; the CPU seconds the Blenders used (the work
// the split adds); and how the merge's time grows with the parts.
//
//	go run ./bench/split                        # 640x360, 256 samples, 3 pairs
//	go run ./bench/split -width 160 -height 90 -samples 32 -merge-parts 2,4 -pairs 1
//
// Timings need a quiet machine: the report says how busy it was.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"
	"github.com/renderfarm/renderfarm/internal/blender"
)

// sceneScript makes the benchmark's scene: the default cube on a plane
// under an area light, Cycles on the CPU.
const sceneScript = `
import bpy, json, sys
spec = json.loads(sys.argv[sys.argv.index("--") + 1])
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = spec["samples"]
scene.cycles.seed = spec["seed"]
scene.cycles.use_denoising = False
scene.render.resolution_x, scene.render.resolution_y = spec["width"], spec["height"]
scene.render.resolution_percentage = 100
scene.render.image_settings.file_format = "PNG"
bpy.ops.mesh.primitive_plane_add(size=8, location=(0, 0, -1))
light = bpy.data.objects["Light"]
light.data.type = "AREA"
light.data.energy = 400
light.data.size = 3
bpy.ops.wm.save_as_mainfile(filepath=spec["out"])
`

func main() {
	width := flag.Int("width", 640, "frame width")
	height := flag.Int("height", 360, "frame height")
	samples := flag.Int("samples", 256, "samples of the frame")
	mergeParts := flag.String("merge-parts", "2,4,8,16", "part counts whose merge is timed")
	pairs := flag.Int("pairs", 3, "pairs of runs (whole, then split) timed for each split")
	flag.Parse()
	defer benchkit.RunExits()

	work, err := os.MkdirTemp("", "bench-split-")
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	benchkit.AtExit(func() { os.RemoveAll(work) })
	ctx := context.Background()
	meter := benchkit.StartCPUMeter()
	fmt.Printf("split frame: %dx%d, %d samples, Cycles CPU; %s, %s; load %s\n",
		*width, *height, *samples, benchkit.CPUModel(), benchkit.MemTotal(), benchkit.LoadAverage())

	blend := makeScene(work, "scene.blend", *width, *height, *samples, 0)
	other := makeScene(work, "other-seed.blend", *width, *height, *samples, 1)
	all := &blender.Runner{TempDir: work}
	one := &blender.Runner{TempDir: work, Threads: 1}

	// Quality.
	whole, _ := renderWhole(ctx, one, blend, work)
	otherSeed, _ := renderWhole(ctx, all, other, work)
	floor := meanAbsDiff(whole, otherSeed)
	fmt.Printf("\nquality (mean abs difference per channel R,G,B in 8-bit steps)\n")
	fmt.Printf("  noise floor (whole render, seed 0 vs seed 1): %s\n", fmtDiff(floor))
	for _, mode := range []blender.SplitMode{blender.SplitSamples, blender.SplitTiles} {
		merged, _, _, _, _ := split(ctx, all, blend, work, mode, 4, 2)
		fmt.Printf("  %-7s 4 parts merged vs whole render:       %s\n", mode, fmtDiff(meanAbsDiff(merged, whole)))
	}

	// Speed: one Blender of one thread, whole, against two of one thread
	// each rendering the parts, in pairs run one after the other (whole,
	// split, whole, split...), each pair's ratio read on its own: this
	// machine's speed moves between minutes by more than the split's cost.
	fmt.Printf("\nspeed (Blenders of 1 thread; %d pairs of runs, the whole frame in 1 Blender then the split, ratios pair by pair, median first)\n", *pairs)
	// The machine's own ceiling: two whole renders at once against one
	// alone. Two cores that slow each other down (siblings of one physical
	// core, shared caches, a busy host) cap any split of a frame in 2
	// below 2x, whatever the farm does.
	var ceiling, alone, both []float64
	for range *pairs {
		_, one1 := renderWhole(ctx, one, blend, work)
		start := time.Now()
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				renderWhole(ctx, one, blend, work)
			}()
		}
		wg.Wait()
		two := time.Since(start)
		alone, both = append(alone, one1.Seconds()), append(both, two.Seconds())
		ceiling = append(ceiling, 2*one1.Seconds()/two.Seconds())
	}
	fmt.Printf("  the machine: 2 whole renders at once %s as fast as 1 after the other (the most any split in 2 could reach here)\n", fmtRatios(ceiling))
	fmt.Printf("          1 alone %s s; 2 at once %s s\n", fmtList(alone), fmtList(both))
	for _, mode := range []blender.SplitMode{blender.SplitSamples, blender.SplitTiles} {
		for _, parts := range []int{2, 4} {
			var withMerge, partsOnly, cpuRatios []float64
			var wholes, renderTimes, mergeTimes []float64
			for range *pairs {
				cpu := childCPU()
				_, wholeTime := renderWhole(ctx, one, blend, work)
				wholeCPU := childCPU() - cpu
				_, renderTime, mergeTime, _, partsCPU := split(ctx, one, blend, work, mode, parts, 2)
				wholes = append(wholes, wholeTime.Seconds())
				renderTimes = append(renderTimes, renderTime.Seconds())
				mergeTimes = append(mergeTimes, mergeTime.Seconds())
				withMerge = append(withMerge, wholeTime.Seconds()/(renderTime+mergeTime).Seconds())
				partsOnly = append(partsOnly, wholeTime.Seconds()/renderTime.Seconds())
				cpuRatios = append(cpuRatios, partsCPU/wholeCPU)
			}
			fmt.Printf("  %-7s %d parts on 2 Blenders: %s with the merge; parts only %s\n", mode, parts, fmtRatios(withMerge), fmtRatios(partsOnly))
			fmt.Printf("          whole %s s; parts %s s; merge %s s; CPU of the parts and the merge over the whole render's %s\n",
				fmtList(wholes), fmtList(renderTimes), fmtList(mergeTimes), fmtList(cpuRatios))
		}
	}

	// The merge as the parts grow.
	fmt.Printf("\nmerge time by parts: wall (in the session of a part: the file's load again included), and in Blender\n")
	for _, field := range strings.Split(*mergeParts, ",") {
		parts, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil {
			benchkit.Fatalf("-merge-parts: %v", err)
		}
		for _, mode := range []blender.SplitMode{blender.SplitSamples, blender.SplitTiles} {
			_, _, mergeTime, inBlender, _ := split(ctx, all, blend, work, mode, parts, 2)
			fmt.Printf("  %-7s %2d parts: %.2f s, %.3f s in Blender\n", mode, parts, mergeTime.Seconds(), inBlender.Seconds())
		}
	}
	fmt.Printf("\n%s\n", meter.Report())
}

// childCPU is the CPU seconds, user and system, of this process's children
// that have ended: the Blenders it ran.
func childCPU() float64 {
	var children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		benchkit.Fatalf("getrusage: %v", err)
	}
	return benchkit.Seconds(children.Utime) + benchkit.Seconds(children.Stime)
}

func makeScene(work, name string, width, height, samples, seed int) string {
	out := filepath.Join(work, name)
	spec, _ := json.Marshal(map[string]any{"out": out, "width": width, "height": height, "samples": samples, "seed": seed})
	cmd := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio",
		"--python-exit-code", "1", "--python-expr", sceneScript, "--", string(spec))
	if body, err := cmd.CombinedOutput(); err != nil {
		benchkit.Fatalf("making the scene: %v\n%s", err, body)
	}
	return out
}

// frameOf renders or merges with run and answers the frame's image and
// the seconds Blender took to make it, its start and the file's load left
// out.
func frameOf(run func(func(blender.Event)) error) (image.Image, time.Duration) {
	var img image.Image
	var decodeErr error
	var seconds float64
	err := run(func(ev blender.Event) {
		if ev.Kind == blender.FrameSaved && strings.HasSuffix(ev.Image.Name, ".png") {
			img, decodeErr = png.Decode(ev.Image.Reader())
			seconds = ev.RenderSeconds
		}
	})
	if err == nil {
		err = decodeErr
	}
	if err == nil && img == nil {
		err = fmt.Errorf("no frame")
	}
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	return img, time.Duration(seconds * float64(time.Second))
}

func renderWhole(ctx context.Context, r *blender.Runner, blend, work string) (image.Image, time.Duration) {
	out, err := os.MkdirTemp(work, "whole-")
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	start := time.Now()
	img, _ := frameOf(func(on func(blender.Event)) error {
		_, err := r.Render(ctx, blender.RenderJob{BlendPath: blend, Frames: []int{1}, OutputDir: out}, on)
		return err
	})
	return img, time.Since(start)
}

// split renders the frame in parts on processes Blenders at once, places
// them as the farm does, and merges them, with Blender kept warm as a
// render node keeps it (blender.Sessions): a Blender that rendered a part
// renders its next part, and the merge, after loading the file again
// rather than starting anew. It answers the frame, the wall time of the
// parts and of the merge, the merge's time in Blender (the file's load
// left out), and the CPU seconds the parts' and the merge's Blenders used
// in all.
func split(ctx context.Context, r *blender.Runner, blend, work string, mode blender.SplitMode, parts, processes int) (image.Image, time.Duration, time.Duration, time.Duration, float64) {
	dir, err := os.MkdirTemp(work, "job-")
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	merge := filepath.Join(dir, "merge")
	if err := os.MkdirAll(filepath.Join(merge, "parts"), 0o755); err != nil {
		benchkit.Fatalf("%v", err)
	}
	pool := &blender.Sessions{Runner: r, KeepAlive: time.Minute, Max: processes}
	next := make(chan int, parts)
	for i := range parts {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	errs := make(chan error, parts)
	cpu := childCPU()
	start := time.Now()
	for range processes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out := filepath.Join(dir, fmt.Sprintf("render-%d", i))
				_, err := pool.Render(ctx, blender.RenderJob{BlendPath: blend, Frames: []int{1}, OutputDir: out,
					Settings: blender.Settings{Part: &blender.Part{Mode: mode, Index: i, Count: parts}}}, dir, func(ev blender.Event) {
					if ev.Kind == blender.FrameSaved {
						errs <- place(ev.Image, filepath.Join(merge, "parts", blender.PartFileName(i)))
					}
				})
				if err != nil {
					errs <- fmt.Errorf("part %d: %w", i, err)
				}
			}
		}()
	}
	wg.Wait()
	renderTime := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			benchkit.Fatalf("%v", err)
		}
	}
	start = time.Now()
	img, inBlender := frameOf(func(on func(blender.Event)) error {
		_, err := pool.Merge(ctx, blender.MergeJob{BlendPath: blend, Frame: 1, Mode: mode, Parts: parts, Dir: merge}, on)
		return err
	})
	mergeTime := time.Since(start)
	pool.Close()
	return img, renderTime, mergeTime, inBlender, childCPU() - cpu
}

// place copies a part's file where the merge reads it.
func place(img *blender.FrameImage, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, img.Reader()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func meanAbsDiff(a, b image.Image) [3]float64 {
	var sum [3]float64
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			for i, d := range [3]float64{float64(r1) - float64(r2), float64(g1) - float64(g2), float64(b1) - float64(b2)} {
				sum[i] += max(d, -d) / 257
			}
		}
	}
	n := float64(r.Dx() * r.Dy())
	return [3]float64{sum[0] / n, sum[1] / n, sum[2] / n}
}

// fmtRatios prints ratios as "1.85x (1.83x 1.85x 1.90x)": the median,
// then each pair's in the order run.
func fmtRatios(r []float64) string {
	sorted := slices.Sorted(slices.Values(r))
	each := make([]string, len(r))
	for i, v := range r {
		each[i] = fmt.Sprintf("%.2fx", v)
	}
	return fmt.Sprintf("%.2fx (%s)", sorted[len(sorted)/2], strings.Join(each, " "))
}

func fmtList(v []float64) string {
	each := make([]string, len(v))
	for i, x := range v {
		each[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(each, " ")
}

func fmtDiff(d [3]float64) string { return fmt.Sprintf("%.3f %.3f %.3f", d[0], d[1], d[2]) }
