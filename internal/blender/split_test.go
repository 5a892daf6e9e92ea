package blender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Tests of a frame split into parts, with the real Blender on a scene each
// test makes: a cube on a plane lit by an area light, noisy at the few
// samples a test affords, at 64x36.

// splitSceneScript makes the test scene from its JSON spec.
const splitSceneScript = `
import bpy, json, sys
spec = json.loads(sys.argv[sys.argv.index("--") + 1])
scene = bpy.context.scene
scene.name = spec["scene"]
scene.view_layers[0].name = spec["layer"]
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = spec["samples"]
scene.cycles.seed = spec["seed"]
scene.cycles.use_denoising = False
if spec.get("adaptiveThreshold"):
    scene.cycles.use_adaptive_sampling = True
    scene.cycles.adaptive_threshold = spec["adaptiveThreshold"]
    scene.cycles.adaptive_min_samples = spec["adaptiveMinSamples"]
scene.render.resolution_x, scene.render.resolution_y = spec["width"], spec["height"]
scene.render.resolution_percentage = 100
scene.render.image_settings.file_format = "PNG"
if spec.get("sampleCountPass"):
    scene.view_layers[0].cycles.pass_debug_sample_count = True
if spec.get("compositing"):
    scene.use_nodes = True
    scene.render.use_compositing = True
bpy.ops.mesh.primitive_plane_add(size=8, location=(0, 0, -1))
light = bpy.data.objects["Light"]
light.data.type = "AREA"
light.data.energy = 400
light.data.size = 3
bpy.ops.wm.save_as_mainfile(filepath=spec["out"])
`

// splitScene describes a test scene.
type splitScene struct {
	Out     string `json:"out"`
	Scene   string `json:"scene"`
	Layer   string `json:"layer"`
	Samples int    `json:"samples"`
	Seed    int    `json:"seed"`
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	// AdaptiveThreshold and AdaptiveMinSamples, when set, make adaptive
	// sampling stop pixels early, at the few samples a test affords.
	AdaptiveThreshold  float64 `json:"adaptiveThreshold,omitempty"`
	AdaptiveMinSamples int     `json:"adaptiveMinSamples,omitempty"`
	// Compositing turns the scene's compositor on (its default nodes).
	Compositing bool `json:"compositing,omitempty"`
	// SampleCountPass makes the view layer keep the samples each pixel
	// took (Cycles' Debug Sample Count pass), in a multilayer OpenEXR.
	SampleCountPass bool `json:"sampleCountPass,omitempty"`
}

// makeSplitScene saves spec's scene with Debian's Blender (3.4 files open
// in 4.3 too) and answers its path.
func makeSplitScene(t *testing.T, spec splitScene) string {
	t.Helper()
	if spec.Scene == "" {
		spec.Scene = "Scene"
	}
	if spec.Layer == "" {
		spec.Layer = "ViewLayer"
	}
	if spec.Width == 0 {
		spec.Width, spec.Height = 64, 36
	}
	body, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio",
		"--python-exit-code", "1", "--python-expr", splitSceneScript, "--", string(body)).CombinedOutput()
	if err != nil {
		t.Fatalf("making the scene: %v\n%s", err, out)
	}
	return spec.Out
}

// renderWhole renders frame 1 of blend and answers its image's bytes.
func renderWhole(t *testing.T, r *Runner, blend string, settings Settings) []byte {
	t.Helper()
	var body []byte
	_, err := r.Render(context.Background(), RenderJob{BlendPath: blend, Frames: []int{1},
		OutputDir: filepath.Join(t.TempDir(), "whole"), Settings: settings}, func(ev Event) {
		if ev.Kind == FrameSaved {
			body = imageBytes(t, ev.Image)
		}
	})
	if err != nil {
		t.Fatalf("rendering the whole frame: %v", err)
	}
	return body
}

func imageBytes(t *testing.T, img *FrameImage) []byte {
	t.Helper()
	body, err := io.ReadAll(img.Reader())
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// renderPart renders part index of blend's frame 1 and places its file in
// the merge directory dir as the farm does: taken from the event, under the
// part's name.
func renderPart(t *testing.T, r *Runner, blend, sceneName string, part Part, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "parts"), 0o755); err != nil {
		t.Fatal(err)
	}
	saved := false
	_, err := r.Render(context.Background(), RenderJob{BlendPath: blend, Scene: sceneName, Frames: []int{1},
		OutputDir: filepath.Join(t.TempDir(), "part"), Settings: Settings{Part: &part}}, func(ev Event) {
		if ev.Kind != FrameSaved {
			return
		}
		if ev.Image.Name != "frame_0001.exr" {
			t.Errorf("part %d is %s, want frame_0001.exr", part.Index, ev.Image.Name)
		}
		if err := os.WriteFile(filepath.Join(dir, "parts", PartFileName(part.Index)), imageBytes(t, ev.Image), 0o644); err != nil {
			t.Fatal(err)
		}
		saved = true
	})
	if err != nil {
		t.Fatalf("rendering part %d: %v", part.Index, err)
	}
	if !saved {
		t.Fatalf("part %d saved nothing", part.Index)
	}
}

// mergeParts merges the parts in dir and answers the frame's bytes.
func mergeParts(t *testing.T, r *Runner, blend, sceneName string, mode SplitMode, parts int, dir string) []byte {
	t.Helper()
	var body []byte
	_, err := r.Merge(context.Background(), MergeJob{BlendPath: blend, Scene: sceneName, Frame: 1, Mode: mode, Parts: parts, Dir: dir},
		func(ev Event) {
			if ev.Kind == FrameSaved {
				if ev.Image.Name != "frame_0001.png" {
					t.Errorf("the merged frame is %s, want frame_0001.png", ev.Image.Name)
				}
				body = imageBytes(t, ev.Image)
			}
		})
	if err != nil {
		t.Fatalf("merging %d parts: %v", parts, err)
	}
	return body
}

// renderSplit renders blend's frame 1 in parts and merges them.
func renderSplit(t *testing.T, r *Runner, blend string, mode SplitMode, parts int) []byte {
	t.Helper()
	dir := t.TempDir()
	for i := range parts {
		renderPart(t, r, blend, "", Part{Mode: mode, Index: i, Count: parts}, dir)
	}
	return mergeParts(t, r, blend, "", mode, parts, dir)
}

func decode(t *testing.T, body []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// meanAbsDiff is the mean absolute difference of a and b per channel (R,
// G, B, A) in 8-bit steps over the pixels of rect.
func meanAbsDiff(a, b image.Image, rect image.Rectangle) [4]float64 {
	var sum [4]float64
	for y := rect.Min.Y; y < rect.Max.Y; y++ {
		for x := rect.Min.X; x < rect.Max.X; x++ {
			r1, g1, b1, a1 := a.At(x, y).RGBA()
			r2, g2, b2, a2 := b.At(x, y).RGBA()
			for i, d := range [4]float64{float64(r1) - float64(r2), float64(g1) - float64(g2),
				float64(b1) - float64(b2), float64(a1) - float64(a2)} {
				if d < 0 {
					d = -d
				}
				sum[i] += d / 257
			}
		}
	}
	n := float64(rect.Dx() * rect.Dy())
	for i := range sum {
		sum[i] /= n
	}
	return sum
}

// noiseFloor is how far apart two whole renders of the scene are that
// differ only in their seed: what no one can tell from noise.
type noiseFloor struct {
	whole, other image.Image
	floor        [4]float64
}

func measureNoiseFloor(t *testing.T, r *Runner, spec splitScene) (string, noiseFloor) {
	t.Helper()
	dir := t.TempDir()
	spec.Out = filepath.Join(dir, "scene.blend")
	blend := makeSplitScene(t, spec)
	other := spec
	other.Out, other.Seed = filepath.Join(dir, "other-seed.blend"), spec.Seed+1
	makeSplitScene(t, other)
	n := noiseFloor{whole: decode(t, renderWhole(t, r, blend, Settings{})),
		other: decode(t, renderWhole(t, r, other.Out, Settings{}))}
	n.floor = meanAbsDiff(n.whole, n.other, n.whole.Bounds())
	if n.floor[0]+n.floor[1]+n.floor[2] == 0 {
		t.Fatal("two seeds made the same image: the scene shows no noise to compare with")
	}
	t.Logf("noise floor (mean abs diff of two seeds, 8-bit steps, RGBA): %.3f", n.floor)
	return blend, n
}

// within fails unless every colour channel of got is at most fraction of
// the floor's.
func within(t *testing.T, what string, got, floor [4]float64, fraction float64) {
	t.Helper()
	for c := range 3 {
		if got[c] > fraction*floor[c] {
			t.Errorf("%s: channel %d differs by %.3f, over %.2f of the noise floor %.3f", what, c, got[c], fraction, floor[c])
		}
	}
	if got[3] != 0 {
		t.Errorf("%s: alpha differs by %.3f", what, got[3])
	}
}

// TestSplitBySamplesIsTheWholeRender: 4 parts of 8 samples, each from its
// own sample offset, merged, are the whole render of 32 samples, on every
// Blender of the machine: the same image with the scene's adaptive
// sampling as saved (it stops no pixel at these samples; a quarter of the
// noise floor allowed), and within half the floor where adaptive sampling
// stops pixels early in the whole render, which the parts, at 8 samples
// each, do not: the merged frame took every sample there, and is less
// noisy (0.37 steps from the whole render on 3.4, 0.43 on 4.3, for floors
// of 1.69 and 1.67). One part alone is far noisier than either, so the
// comparison can tell.
func TestSplitBySamplesIsTheWholeRender(t *testing.T) {
	for _, b := range splitRunners(t) {
		for _, sc := range []struct {
			name    string
			scene   splitScene
			ofFloor float64
		}{
			{"as saved", splitScene{Samples: 32}, 0.25},
			{"adaptive sampling stopping early", splitScene{Samples: 32, AdaptiveThreshold: 0.03, AdaptiveMinSamples: 4}, 0.5},
		} {
			t.Run(b.name+"/"+sc.name, func(t *testing.T) {
				blend, n := measureNoiseFloor(t, b.r, sc.scene)
				merged := decode(t, renderSplit(t, b.r, blend, SplitSamples, 4))
				if merged.Bounds() != n.whole.Bounds() {
					t.Fatalf("the merged frame is %v, the whole render %v", merged.Bounds(), n.whole.Bounds())
				}
				diff := meanAbsDiff(merged, n.whole, merged.Bounds())
				t.Logf("merged vs whole: %.3f", diff)
				within(t, "merged vs whole", diff, n.floor, sc.ofFloor)

				quarter := decode(t, renderWhole(t, b.r, blend, Settings{Samples: 8}))
				alone := meanAbsDiff(quarter, n.whole, quarter.Bounds())
				if alone[0] < n.floor[0]/2 {
					t.Errorf("a render of 8 samples is only %.3f from the whole of 32: the scene is too quiet to test with", alone[0])
				}
			})
		}
	}
}

// TestSplitByTilesHasNoSeam: 4 tiles (a 2x2 grid) and 3 (three columns)
// assembled are the whole render: the same size and format, and every row
// and column of pixels (the ones along the tiles' edges among them) within
// a quarter of the noise floor, on every Blender of the machine. Adaptive
// sampling stops pixels early here, which is what the tiles' overscan is
// for: without it, the rows and columns along the edges were 0.44 to 0.52
// steps from the whole render's (a floor of 1.53); with 1 pixel or 2 they
// are the same.
func TestSplitByTilesHasNoSeam(t *testing.T) {
	for _, b := range splitRunners(t) {
		t.Run(b.name, func(t *testing.T) {
			r := b.r
			blend, n := measureNoiseFloor(t, r, splitScene{Samples: 64, AdaptiveThreshold: 0.03, AdaptiveMinSamples: 4})
			wholeConfig, err := png.DecodeConfig(bytes.NewReader(renderWhole(t, r, blend, Settings{})))
			if err != nil {
				t.Fatal(err)
			}
			for _, parts := range []int{4, 3} {
				t.Run(fmt.Sprint(parts), func(t *testing.T) {
					body := renderSplit(t, r, blend, SplitTiles, parts)
					config, err := png.DecodeConfig(bytes.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					if config != wholeConfig {
						t.Errorf("the assembled frame is %dx%d in %v, the whole render %dx%d in %v",
							config.Width, config.Height, config.ColorModel, wholeConfig.Width, wholeConfig.Height, wholeConfig.ColorModel)
					}
					assembled := decode(t, body)
					b := assembled.Bounds()
					diff := meanAbsDiff(assembled, n.whole, b)
					t.Logf("assembled vs whole: %.3f", diff)
					within(t, "assembled vs whole", diff, n.floor, 0.25)
					for y := b.Min.Y; y < b.Max.Y; y++ {
						within(t, fmt.Sprintf("row %d", y), meanAbsDiff(assembled, n.whole, image.Rect(b.Min.X, y, b.Max.X, y+1)), n.floor, 0.25)
					}
					for x := b.Min.X; x < b.Max.X; x++ {
						within(t, fmt.Sprintf("column %d", x), meanAbsDiff(assembled, n.whole, image.Rect(x, b.Min.Y, x+1, b.Max.Y)), n.floor, 0.25)
					}
				})
			}
		})
	}
}

// splitRunners are Debian's Blender in the sandbox, and 4.3 where the
// machine has it.
func splitRunners(t *testing.T) []struct {
	name string
	r    *Runner
} {
	runners := []struct {
		name string
		r    *Runner
	}{{"3.4 sandboxed", needBlender(t)}}
	for _, b := range runnersHere(t) {
		if b.name != "PATH" {
			runners = append(runners, b)
		}
	}
	return runners
}

// TestAPartRenderedTwiceMergesTheSame: a part rendered again replaces its
// file, and files beside the parts' (a part beyond the count, a backup)
// are not read, so the merge is the same image: each part is used once.
// The scene and its view layer have hostile names, which stay names.
func TestAPartRenderedTwiceMergesTheSame(t *testing.T) {
	r := needBlender(t)
	dir := t.TempDir()
	const hostileScene = "--enable-autoexec"
	blend := makeSplitScene(t, splitScene{Out: filepath.Join(dir, "scene.blend"), Scene: hostileScene,
		Layer: `../../parts/part_000.exr"; import os`, Samples: 8})
	merge := filepath.Join(dir, "merge")
	for i := range 2 {
		renderPart(t, r, blend, hostileScene, Part{Mode: SplitSamples, Index: i, Count: 2}, merge)
	}
	first := decode(t, mergeParts(t, r, blend, hostileScene, SplitSamples, 2, merge))

	renderPart(t, r, blend, hostileScene, Part{Mode: SplitSamples, Index: 1, Count: 2}, merge)
	part0, err := os.ReadFile(filepath.Join(merge, "parts", PartFileName(0)))
	if err != nil {
		t.Fatal(err)
	}
	for _, stray := range []string{PartFileName(2), PartFileName(1) + ".bak"} {
		if err := os.WriteFile(filepath.Join(merge, "parts", stray), part0, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	again := decode(t, mergeParts(t, r, blend, hostileScene, SplitSamples, 2, merge))
	if diff := meanAbsDiff(first, again, first.Bounds()); diff != [4]float64{} {
		t.Errorf("merging again after part 1 was rendered twice differs by %.3f", diff)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "scene.blend" && e.Name() != "merge" {
			t.Errorf("something wrote %s beside the merge directory", e.Name())
		}
	}
}

// TestAWarmSessionRendersTheNextPartAndMerges: as the farm keeps Blender
// warm, a session that rendered one part of a split frame renders the
// next part and then merges the frame, each after loading the file again
// rather than starting another Blender: one Blender start in all. The
// reload forgets what the part changed in the scene (its border and crop,
// its format), so the merged frame is the one a Blender of its own makes
// of the same parts, pixel for pixel; a merge on the tile's border would
// be the tile's size.
func TestAWarmSessionRendersTheNextPartAndMerges(t *testing.T) {
	r := needBlender(t)
	starts := countStarts(r)
	p := &Sessions{Runner: r, KeepAlive: time.Minute, Max: 1}
	defer p.Close()
	dir := t.TempDir()
	blend := makeSplitScene(t, splitScene{Out: filepath.Join(dir, "scene.blend"), Samples: 8, Width: 48, Height: 32})
	root := filepath.Join(dir, "out")
	merge := filepath.Join(root, "merge-1")
	if err := os.MkdirAll(filepath.Join(merge, "parts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		part := Part{Mode: SplitTiles, Index: i, Count: 2}
		_, err := p.Render(context.Background(), RenderJob{BlendPath: blend, Frames: []int{1},
			OutputDir: filepath.Join(root, fmt.Sprintf("part-%d", i)), Settings: Settings{Part: &part}}, root, func(ev Event) {
			if ev.Kind == FrameSaved {
				if err := os.WriteFile(filepath.Join(merge, "parts", PartFileName(i)), imageBytes(t, ev.Image), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	if n := starts.Load(); n != 1 {
		t.Errorf("%d Blender starts for 2 parts in a pool of 1, want 1", n)
	}

	var warm []byte
	_, err := p.Merge(context.Background(), MergeJob{BlendPath: blend, Frame: 1, Mode: SplitTiles, Parts: 2, Dir: merge}, func(ev Event) {
		if ev.Kind == FrameSaved {
			warm = imageBytes(t, ev.Image)
		}
	})
	if err != nil {
		t.Fatalf("merging in the warm session: %v", err)
	}
	if n := starts.Load(); n != 1 {
		t.Errorf("%d Blender starts after the merge, want 1: the merge took the part's session", n)
	}
	if live, idle := p.Live(); live != 0 || idle != 0 {
		t.Errorf("after the merge: live %d, idle %d; want the merged session ended", live, idle)
	}
	if warm == nil {
		t.Fatal("the warm merge saved no frame")
	}
	cold := decode(t, mergeParts(t, r, blend, "", SplitTiles, 2, merge))
	got := decode(t, warm)
	if got.Bounds() != cold.Bounds() {
		t.Fatalf("the warm session's merge is %v, a fresh Blender's %v", got.Bounds(), cold.Bounds())
	}
	if diff := meanAbsDiff(got, cold, cold.Bounds()); diff != [4]float64{} {
		t.Errorf("the warm session's merge differs from a fresh Blender's by %.3f", diff)
	}
}

// TestAPartThatIsNotThereIsAnErrorNamingIt: before Blender reads a part,
// each is opened by the name the farm gave it; a missing one, a link or a
// file that is not OpenEXR is an error naming the part.
func TestAPartThatIsNotThereIsAnErrorNamingIt(t *testing.T) {
	r := needBlender(t)
	blend := scene(t, "cube.blend")
	for _, tc := range []struct {
		name  string
		part1 func(path string) error
		want  string
	}{
		{"missing", func(string) error { return nil }, "part 1 of the 3 parts (part_001.exr): missing"},
		{"a link", func(path string) error { return os.Symlink(filepath.Join(filepath.Dir(path), PartFileName(0)), path) },
			"part 1 of the 3 parts (part_001.exr)"},
		{"not OpenEXR", func(path string) error { return os.WriteFile(path, []byte("\x89PNG\r\n\x1a\n"), 0o644) },
			"part 1 of the 3 parts (part_001.exr): not an OpenEXR file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			parts := filepath.Join(dir, "parts")
			if err := os.MkdirAll(parts, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, i := range []int{0, 2} {
				if err := os.WriteFile(filepath.Join(parts, PartFileName(i)), []byte(exrMagic+"rest"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.part1(filepath.Join(parts, PartFileName(1))); err != nil {
				t.Fatal(err)
			}
			_, err := r.Merge(context.Background(), MergeJob{BlendPath: blend, Frame: 1, Mode: SplitTiles, Parts: 3, Dir: dir}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Merge: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestTheMergeWritesTheFramesFormat: a merge writes the frame in the
// format a whole render of it would have, with the files such a frame
// makes: an OpenEXR frame and its preview proxy.
func TestTheMergeWritesTheFramesFormat(t *testing.T) {
	r := needBlender(t)
	dir := t.TempDir()
	blend := makeSplitScene(t, splitScene{Out: filepath.Join(dir, "scene.blend"), Samples: 4})
	merge := filepath.Join(dir, "merge")
	for i := range 2 {
		renderPart(t, r, blend, "", Part{Mode: SplitTiles, Index: i, Count: 2}, merge)
	}
	var names []string
	_, err := r.Merge(context.Background(), MergeJob{BlendPath: blend, Frame: 1, Mode: SplitTiles, Parts: 2, Dir: merge,
		Settings: Settings{OutputFormat: "OPEN_EXR", ColorDepth: "16"}}, func(ev Event) {
		if ev.Kind == FrameSaved {
			for _, img := range append([]*FrameImage{ev.Image}, ev.Outputs...) {
				names = append(names, img.Name)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"frame_0001.exr", "preview/frame_0001.jpg"}; !slices.Equal(names, want) {
		t.Errorf("the merge made %q, want %q", names, want)
	}
}

// TestASplitRefusesWhatItCannotMerge: a part of a scene whose split frame
// would not be its whole render fails before Blender renders, saying why
// and what to change; so does a merge.
func TestASplitRefusesWhatItCannotMerge(t *testing.T) {
	r := needBlender(t)
	dir := t.TempDir()
	compositing := makeSplitScene(t, splitScene{Out: filepath.Join(dir, "compositing.blend"), Samples: 4, Compositing: true})
	fourSamples := makeSplitScene(t, splitScene{Out: filepath.Join(dir, "four-samples.blend"), Samples: 4})
	for _, tc := range []struct {
		name  string
		blend string
		part  Part
		want  string
	}{
		{"compositing", compositing, Part{Mode: SplitSamples, Index: 0, Count: 2}, `scene 'Scene' composites its render`},
		{"EEVEE in samples mode", scene(t, "eevee.blend"), Part{Mode: SplitSamples, Index: 0, Count: 2}, "samples mode merges what Cycles writes of its samples"},
		{"more parts than samples", fourSamples, Part{Mode: SplitSamples, Index: 0, Count: 5}, "4 samples cannot be shared by 5 parts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Render(context.Background(), RenderJob{BlendPath: tc.blend, Frames: []int{1},
				OutputDir: filepath.Join(t.TempDir(), "part"), Settings: Settings{Part: &tc.part}}, nil)
			var rerr *RenderError
			if !errors.As(err, &rerr) || !strings.Contains(rerr.Line, tc.want) {
				t.Errorf("rendering the part: %v, want a RenderError with %q", err, tc.want)
			}
		})
	}
	merge := filepath.Join(dir, "merge")
	if err := os.MkdirAll(filepath.Join(merge, "parts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := os.WriteFile(filepath.Join(merge, "parts", PartFileName(i)), []byte(exrMagic), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.Merge(context.Background(), MergeJob{BlendPath: compositing, Frame: 1, Mode: SplitTiles, Parts: 2, Dir: merge}, nil)
	if err == nil || !strings.Contains(err.Error(), "composites its render") {
		t.Errorf("merging: %v, want an error saying the scene composites", err)
	}
}

// samplesPerPixel is the mean of the samples each pixel of a multilayer
// OpenEXR took, from its Debug Sample Count pass, which Cycles writes as a
// share of the render's samples.
func samplesPerPixel(t *testing.T, path string, samples int) float64 {
	t.Helper()
	img, err := readEXR(path)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := img.channelEndingIn("Debug Sample Count.X")
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sum := 0.0
	for _, c := range counts {
		sum += float64(c)
	}
	return sum * float64(samples) / float64(len(counts))
}

// TestSamplesPartsStopWhereTheWholeRenderDoes: with Cycles' default
// adaptive sampling (threshold 0.01, automatic minimum), which stops most
// pixels of the scene early, the parts of a frame split by samples take
// together about the samples the whole render takes, each pixel stopped
// at about its share, and their merge is within the seed-to-seed noise
// floor of the whole render. Before the parts scaled the threshold and the
// minimum to their share, 2 parts took 1.61 times the whole render's
// samples and 4 parts 2.15 times (every sample: a part of 64 samples
// tested no pixel before its 80th, the whole render's first test).
func TestSamplesPartsStopWhereTheWholeRenderDoes(t *testing.T) {
	const samples = 256
	for _, b := range splitRunners(t) {
		t.Run(b.name, func(t *testing.T) {
			spec := splitScene{Samples: samples, SampleCountPass: true}
			blend, n := measureNoiseFloor(t, b.r, spec)
			wholeEXR := filepath.Join(t.TempDir(), "whole.exr")
			body := renderWhole(t, b.r, blend, Settings{OutputFormat: "OPEN_EXR_MULTILAYER", ColorDepth: "32", ExrCodec: "ZIP"})
			if err := os.WriteFile(wholeEXR, body, 0o644); err != nil {
				t.Fatal(err)
			}
			whole := samplesPerPixel(t, wholeEXR, samples)
			if whole > 0.8*samples {
				t.Fatalf("the whole render took %.1f samples per pixel of %d: adaptive sampling stops too few pixels to test with", whole, samples)
			}
			for _, tc := range []struct {
				parts int
				most  float64 // the parts' samples over the whole render's, at most
			}{{2, 1.1}, {4, 1.2}} {
				t.Run(fmt.Sprint(tc.parts), func(t *testing.T) {
					dir := t.TempDir()
					inParts := 0.0
					for i := range tc.parts {
						renderPart(t, b.r, blend, "", Part{Mode: SplitSamples, Index: i, Count: tc.parts}, dir)
						inParts += samplesPerPixel(t, filepath.Join(dir, "parts", PartFileName(i)), samples/tc.parts)
					}
					t.Logf("samples per pixel: whole render %.1f, %d parts %.1f (%.2f times)", whole, tc.parts, inParts, inParts/whole)
					if inParts > tc.most*whole {
						t.Errorf("%d parts took %.1f samples per pixel, %.2f times the whole render's %.1f: over %.2f times",
							tc.parts, inParts, inParts/whole, whole, tc.most)
					}
					merged := decode(t, mergeParts(t, b.r, blend, "", SplitSamples, tc.parts, dir))
					diff := meanAbsDiff(merged, n.whole, merged.Bounds())
					t.Logf("merged vs whole: %.3f (floor %.3f)", diff, n.floor)
					within(t, "merged vs whole", diff, n.floor, 1)
				})
			}
		})
	}
}

// engineSceneScript makes a scene for another engine than Cycles from its
// JSON spec: the cube on a plane, a glossy floor and a bright emissive
// sphere, with the engine's screen-space effects on, the ones that read
// pixels past a tile's edge (EEVEE: bloom, ambient occlusion, screen-space
// reflections, soft shadows; Workbench: cavity, shadows, outlines).
const engineSceneScript = `
import bpy, json, sys
spec = json.loads(sys.argv[sys.argv.index("--") + 1])
scene = bpy.context.scene
scene.render.engine = spec["engine"]
scene.render.resolution_x, scene.render.resolution_y = spec["width"], spec["height"]
scene.render.resolution_percentage = 100
scene.render.image_settings.file_format = "PNG"
bpy.ops.mesh.primitive_plane_add(size=8, location=(0, 0, -1))
bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(1.5, 0.5, 0))
glow = bpy.data.materials.new("glow")
glow.use_nodes = True
emission = glow.node_tree.nodes.new("ShaderNodeEmission")
emission.inputs["Strength"].default_value = 20
glow.node_tree.links.new(emission.outputs[0], glow.node_tree.nodes["Material Output"].inputs[0])
bpy.data.objects["Sphere"].data.materials.append(glow)
floor = bpy.data.materials.new("floor")
floor.use_nodes = True
floor.node_tree.nodes["Principled BSDF"].inputs["Roughness"].default_value = 0.1
bpy.data.objects["Plane"].data.materials.append(floor)
if spec["engine"] == "BLENDER_EEVEE":
    eevee = scene.eevee
    eevee.taa_render_samples = spec["samples"]
    eevee.use_bloom = eevee.use_gtao = eevee.use_ssr = eevee.use_soft_shadows = True
else:
    shading = scene.display.shading
    shading.show_cavity, shading.cavity_type = True, "BOTH"
    shading.show_shadows = shading.show_object_outline = True
bpy.ops.wm.save_as_mainfile(filepath=spec["out"])
`

// TestTilesOfEEVEEAndWorkbenchAreTheWholeRender: EEVEE (Blender 3.4) and
// Workbench (3.4 and 4.3) render the whole frame for a tile and keep the
// tile's pixels, so 4 tiles assembled are the whole render pixel for
// pixel, screen-space effects (bloom, ambient occlusion, reflections,
// cavity, outlines) included; EEVEE Next (Blender 4.3 opening the same
// EEVEE file), whose 2 tiles of this scene at 8 samples were 0.28 steps
// (of linear light, in 8 bits) from the whole render on average and up to
// 68 at a pixel, overscan or not, is refused with a message.
func TestTilesOfEEVEEAndWorkbenchAreTheWholeRender(t *testing.T) {
	dir := t.TempDir()
	blends := map[string]string{}
	for _, engine := range []string{"BLENDER_EEVEE", "BLENDER_WORKBENCH"} {
		blends[engine] = filepath.Join(dir, engine+".blend")
		spec, err := json.Marshal(map[string]any{"engine": engine, "width": 64, "height": 36, "samples": 4, "out": blends[engine]})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio",
			"--python-exit-code", "1", "--python-expr", engineSceneScript, "--", string(spec)).CombinedOutput()
		if err != nil {
			t.Fatalf("making the %s scene: %v\n%s", engine, err, out)
		}
	}
	for _, b := range splitRunners(t) {
		for _, engine := range []string{"BLENDER_EEVEE", "BLENDER_WORKBENCH"} {
			t.Run(b.name+"/"+engine, func(t *testing.T) {
				blend := blends[engine]
				if engine == "BLENDER_EEVEE" && b.name == "4.3" {
					_, err := b.r.Render(context.Background(), RenderJob{BlendPath: blend, Frames: []int{1},
						OutputDir: filepath.Join(t.TempDir(), "part"), Settings: Settings{Part: &Part{Mode: SplitTiles, Index: 0, Count: 4}}}, nil)
					var rerr *RenderError
					if !errors.As(err, &rerr) || !strings.Contains(rerr.Line, "EEVEE Next, whose tiles differ from the whole frame") {
						t.Errorf("rendering a tile with EEVEE Next: %v, want a RenderError saying its tiles differ", err)
					}
					return
				}
				whole := decode(t, renderWhole(t, b.r, blend, Settings{}))
				assembled := decode(t, renderSplit(t, b.r, blend, SplitTiles, 4))
				if assembled.Bounds() != whole.Bounds() {
					t.Fatalf("the assembled frame is %v, the whole render %v", assembled.Bounds(), whole.Bounds())
				}
				if diff := meanAbsDiff(assembled, whole, whole.Bounds()); diff != [4]float64{} {
					t.Errorf("4 tiles assembled differ from the whole render by %.3f (8-bit steps, RGBA)", diff)
				}
			})
		}
	}
}
