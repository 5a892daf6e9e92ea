package blender

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestCheckSplit: the splits the farm refuses, each naming the field to
// change and how.
func TestCheckSplit(t *testing.T) {
	good := SplitRequest{Mode: SplitSamples, Parts: 4, Engine: "CYCLES", OutputFormat: "PNG", Samples: 128}
	for _, tc := range []struct {
		name      string
		change    func(*SplitRequest)
		wantField string
		want      string
	}{
		{"samples mode", func(*SplitRequest) {}, "", ""},
		{"tiles mode", func(r *SplitRequest) { r.Mode = SplitTiles }, "", ""},
		{"the fewest parts", func(r *SplitRequest) { r.Parts = MinSplitParts }, "", ""},
		{"the most parts", func(r *SplitRequest) { r.Parts = MaxSplitParts }, "", ""},
		{"as many samples as parts", func(r *SplitRequest) { r.Samples = 4 }, "", ""},
		{"samples mode denoising", func(r *SplitRequest) { r.Denoising = true }, "", ""},
		{"an unknown mode", func(r *SplitRequest) { r.Mode = "rows" }, "splitFrame.mode", `"rows" is not a split mode`},
		{"one part", func(r *SplitRequest) { r.Parts = 1 }, "splitFrame.parts", "1 parts: a frame is split into 2 to 64 parts"},
		{"65 parts", func(r *SplitRequest) { r.Parts = 65 }, "splitFrame.parts", "65 parts: a frame is split into 2 to 64 parts"},
		{"EEVEE in tiles mode", func(r *SplitRequest) { r.Mode, r.Engine = SplitTiles, "BLENDER_EEVEE" }, "", ""},
		{"Workbench in tiles mode", func(r *SplitRequest) { r.Mode, r.Engine, r.Samples = SplitTiles, "BLENDER_WORKBENCH", 0 }, "", ""},
		{"EEVEE in samples mode", func(r *SplitRequest) { r.Engine = "BLENDER_EEVEE" }, "engine", `set engine to CYCLES, or splitFrame.mode to "tiles", or remove splitFrame`},
		{"Workbench in samples mode", func(r *SplitRequest) { r.Engine = "BLENDER_WORKBENCH" }, "engine", `samples mode merges what Cycles writes of its samples`},
		{"EEVEE Next in samples mode", func(r *SplitRequest) { r.Engine = "BLENDER_EEVEE_NEXT" }, "engine", "set engine to CYCLES or remove splitFrame"},
		{"EEVEE Next in tiles mode", func(r *SplitRequest) { r.Mode, r.Engine = SplitTiles, "BLENDER_EEVEE_NEXT" }, "engine", "EEVEE Next renders a tile's pixels differently"},
		{"an engine of its own in tiles mode", func(r *SplitRequest) { r.Mode, r.Engine = SplitTiles, "LUXCORE" }, "engine", "tiles are rendered with Cycles, EEVEE (Blender 4.1 and older) or Workbench"},
		{"a movie", func(r *SplitRequest) { r.OutputFormat = "FFMPEG" }, "outputFormat", `"FFMPEG" is a movie format`},
		{"an AVI", func(r *SplitRequest) { r.Mode, r.OutputFormat = SplitTiles, "AVI_JPEG" }, "outputFormat", "set outputFormat to an image format"},
		{"fewer samples than parts", func(r *SplitRequest) { r.Samples = 3 }, "splitFrame.parts", "3 samples cannot be shared by 4 parts: use at most 3 parts"},
		{"tiles denoising", func(r *SplitRequest) { r.Mode, r.Denoising = SplitTiles, true }, "splitFrame.mode", "tiles mode cannot denoise"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			err := CheckSplit(r)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckSplit(%+v): %v", r, err)
				}
				return
			}
			var split *SplitError
			if !errors.As(err, &split) {
				t.Fatalf("CheckSplit(%+v) = %v, want a *SplitError", r, err)
			}
			if split.Field != tc.wantField || !strings.Contains(split.Message, tc.want) {
				t.Errorf("CheckSplit(%+v) = %s: %s, want %s: …%s…", r, split.Field, split.Message, tc.wantField, tc.want)
			}
		})
	}
}

// TestARenderOfAPartIsChecked: a part's job is refused before Blender
// starts when the part could not be rendered, and a good one renders to
// lossless float OpenEXR whatever the frame's format.
func TestARenderOfAPartIsChecked(t *testing.T) {
	blend := scene(t, "cube.blend")
	for _, tc := range []struct {
		name   string
		part   Part
		frames []int
		want   string
	}{
		{"unknown mode", Part{Mode: "rows", Index: 0, Count: 2}, []int{1}, `split mode "rows"`},
		{"index past the count", Part{Mode: SplitTiles, Index: 2, Count: 2}, []int{1}, "part 2 does not exist in a split into 2 parts"},
		{"negative index", Part{Mode: SplitTiles, Index: -1, Count: 2}, []int{1}, "part -1 does not exist"},
		{"too many parts", Part{Mode: SplitSamples, Index: 0, Count: 65}, []int{1}, "2 to 64 parts, not 65"},
		{"overscan too wide", Part{Mode: SplitTiles, Index: 0, Count: 2, Overscan: 65}, []int{1}, "0 to 64 pixels, not 65"},
		{"several frames", Part{Mode: SplitTiles, Index: 0, Count: 2}, []int{1, 2}, "rendered alone, not with frames 1,2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := RenderJob{BlendPath: blend, Frames: tc.frames, OutputDir: t.TempDir(), Settings: Settings{Part: &tc.part}}
			if err := checkJob(&job); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("checkJob: %v, want an error with %q", err, tc.want)
			}
		})
	}

	job := RenderJob{BlendPath: blend, Frames: []int{1}, OutputDir: t.TempDir(),
		Settings: Settings{OutputFormat: "JPEG", Quality: 80, ColorMode: "RGB", Part: &Part{Mode: SplitTiles, Index: 1, Count: 4}}}
	if err := checkJob(&job); err != nil {
		t.Fatal(err)
	}
	s := job.Settings
	if s.OutputFormat != "OPEN_EXR" || s.ColorDepth != "32" || s.ColorMode != "RGBA" || s.ExrCodec != "ZIP" || s.Quality != 0 {
		t.Errorf("a tile renders %s %s-bit %s %s quality %d, want lossless float OpenEXR", s.OutputFormat, s.ColorDepth, s.ColorMode, s.ExrCodec, s.Quality)
	}
	if s.Part.Overscan != DefaultTileOverscan {
		t.Errorf("a tile's overscan is %d, want the default %d", s.Part.Overscan, DefaultTileOverscan)
	}
	samples := partSettings(Settings{Part: &Part{Mode: SplitSamples, Index: 0, Count: 2, Overscan: 9}})
	if samples.OutputFormat != "OPEN_EXR_MULTILAYER" || samples.Part.Overscan != 0 {
		t.Errorf("a samples part renders %s with overscan %d, want OPEN_EXR_MULTILAYER and none", samples.OutputFormat, samples.Part.Overscan)
	}
}

// layoutScript prints split.py's tile grid and sample shares for the
// counts and frame sizes of its input.
const layoutScript = `
import importlib.util, json, os, sys
spec = json.loads(sys.argv[sys.argv.index("--") + 1])
module_spec = importlib.util.spec_from_file_location("renderfarm_split", os.path.join(spec["dir"], "split.py"))
split = importlib.util.module_from_spec(module_spec)
module_spec.loader.exec_module(split)
for count in range(2, 65):
    for width, height in spec["sizes"]:
        print("RESULT " + json.dumps({"count": count, "width": width, "height": height,
            "tiles": split.tile_grid(count, width, height)}))
    print("RESULT " + json.dumps({"count": count, "samples": [split.sample_share(1001, i, count) for i in range(count)]}))
    for total, threshold, min_samples in spec["adaptive"]:
        print("RESULT " + json.dumps({"count": count, "total": total, "threshold": threshold, "minSamples": min_samples,
            "adaptive": [split.adaptive_share(total, i, count, threshold, min_samples) for i in range(count)]}))
    # A file's threshold that is no threshold: shared as the automatic one.
    for hostile in (float("nan"), float("inf"), -1.0):
        print("RESULT " + json.dumps({"count": count, "total": 256, "threshold": 0, "minSamples": 0,
            "adaptive": [split.adaptive_share(256, i, count, hostile, 0) for i in range(count)]}))
`

// TestTileGridAndSampleShares: for 2 to 64 parts, split.py's tiles cover
// every pixel of the frame exactly once and are near square (no tile
// more than 3 times as wide as high or the other way, at 640x360 and
// 1920x1080), the parts' sample ranges follow each other and add up to
// the frame's samples, and their adaptive sampling shares the whole's (a
// file's NaN, infinite or negative threshold taken as the automatic one).
func TestTileGridAndSampleShares(t *testing.T) {
	b := blendersHere(t)[0]
	dir := t.TempDir()
	if _, err := writeScript(dir, "split.py"); err != nil {
		t.Fatal(err)
	}
	sizes := [][2]int{{640, 360}, {1920, 1080}, {64, 36}, {100, 1000}}
	// Scenes' adaptive sampling as (samples, threshold, minimum samples):
	// Blender's defaults, the automatic threshold, a minimum of the
	// scene's own, and a minimum the whole render never gets past.
	adaptive := [][3]float64{{256, 0.01, 0}, {4096, 0, 0}, {1000, 0.05, 200}, {64, 0.01, 0}}
	_, results := runNameScript(t, b, dir, layoutScript, map[string]any{"dir": dir, "sizes": sizes, "adaptive": adaptive})
	if want := 63 * (len(sizes) + 1 + len(adaptive) + 3); len(results) != want {
		t.Fatalf("got %d results, want %d", len(results), want)
	}
	for _, line := range results {
		var got struct {
			Count, Width, Height int
			Tiles                [][4]int
			Samples              [][2]int
			Total                int
			Threshold            float64
			MinSamples           int
			Adaptive             [][2]float64
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatal(err)
		}
		if got.Adaptive != nil {
			checkAdaptiveShares(t, got.Count, got.Total, got.Threshold, got.MinSamples, got.Adaptive)
			continue
		}
		if got.Samples != nil {
			next := 0
			for i, s := range got.Samples {
				if s[0] != next || s[1] < 1001/got.Count || s[1] > 1001/got.Count+1 {
					t.Errorf("%d parts: part %d has samples %d from %d, after %d", got.Count, i, s[1], s[0], next)
				}
				next = s[0] + s[1]
			}
			if next != 1001 {
				t.Errorf("%d parts render %d samples, want 1001", got.Count, next)
			}
			continue
		}
		if len(got.Tiles) != got.Count {
			t.Errorf("%d parts at %dx%d: %d tiles", got.Count, got.Width, got.Height, len(got.Tiles))
			continue
		}
		covered := make([]int, got.Width*got.Height)
		for _, tile := range got.Tiles {
			w, h := tile[2]-tile[0], tile[3]-tile[1]
			if w < 1 || h < 1 {
				t.Errorf("%d parts at %dx%d: empty tile %v", got.Count, got.Width, got.Height, tile)
				continue
			}
			if got.Width*9 == got.Height*16 && got.Width >= 640 && (w > 3*h || h > 3*w) {
				t.Errorf("%d parts at %dx%d: tile %v is %dx%d, not near square", got.Count, got.Width, got.Height, tile, w, h)
			}
			for y := tile[1]; y < tile[3]; y++ {
				for x := tile[0]; x < tile[2]; x++ {
					covered[y*got.Width+x]++
				}
			}
		}
		for i, n := range covered {
			if n != 1 {
				t.Errorf("%d parts at %dx%d: pixel %d,%d is in %d tiles", got.Count, got.Width, got.Height, i%got.Width, i/got.Width, n)
				break
			}
		}
	}
}

// checkAdaptiveShares checks the parts' (threshold, minimum samples) of a
// frame of total samples whose adaptive sampling has threshold and
// minSamples (0: Cycles' automatic values): each part's threshold is the
// whole render's times sqrt(count), and the parts' first convergence
// tests, which Cycles makes after its minimum rounded up to 16 samples,
// add up to the whole render's, or are one step each when the count is
// past the whole's steps. Where the whole render tests no pixel before
// its last sample, no part does either.
func checkAdaptiveShares(t *testing.T, count, total int, threshold float64, minSamples int, shares [][2]float64) {
	t.Helper()
	what := fmt.Sprintf("%d parts of %d samples, threshold %g, minimum %d", count, total, threshold, minSamples)
	if threshold == 0 {
		threshold = max(0.001, 1/float64(total))
	}
	if minSamples == 0 {
		minSamples = int(math.Ceil(16 / math.Pow(threshold, 0.3)))
	}
	firstTest := func(min int) int { return ((max(min, 4) + 1) | 15) + 1 }
	whole := firstTest(minSamples)
	if whole >= total {
		for i, s := range shares {
			if partSamples := total/count + btoi(i < total%count); s[0] != threshold || int(s[1]) < partSamples {
				t.Errorf("%s: part %d has threshold %g and minimum %g, want %g and no test before its %d samples end",
					what, i, s[0], s[1], threshold, partSamples)
			}
		}
		return
	}
	sum, earliest, latest := 0, math.MaxInt, 0
	for i, s := range shares {
		if want := threshold * math.Sqrt(float64(count)); math.Abs(s[0]-want) > 1e-9 {
			t.Errorf("%s: part %d has threshold %g, want %g", what, i, s[0], want)
		}
		first := firstTest(int(s[1]))
		sum += first
		earliest, latest = min(earliest, first), max(latest, first)
	}
	// The parts' first tests add up to the scene's minimum in whole steps
	// (no merged pixel has fewer samples than the minimum asks), or one
	// step each when there are more parts than steps.
	if want := max(16*((max(minSamples, 4)+15)/16), 16*count); sum != want {
		t.Errorf("%s: the parts test pixels first after %d samples in all, want %d (the whole render: %d)", what, sum, want, whole)
	}
	// A split frame is done when its slowest part is: no part waits longer
	// for its first test than one step more than another.
	if latest-earliest > 16 {
		t.Errorf("%s: the parts test pixels first after %d to %d samples, more than a step apart", what, earliest, latest)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
