package blender

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// countStarts makes r count the Blender processes it starts.
func countStarts(r *Runner) *atomic.Int32 {
	var n atomic.Int32
	r.Wrap = func(argv []string) []string {
		n.Add(1)
		return argv
	}
	return &n
}

// decodePNG reads a frame's pixels.
func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// samePixels fails the test unless a and b hold the same picture.
func samePixels(t *testing.T, a, b string) {
	t.Helper()
	ia, ib := decodePNG(t, a), decodePNG(t, b)
	if ia.Bounds() != ib.Bounds() {
		t.Fatalf("%s is %v, %s is %v", a, ia.Bounds(), b, ib.Bounds())
	}
	differ := 0
	for y := ia.Bounds().Min.Y; y < ia.Bounds().Max.Y; y++ {
		for x := ia.Bounds().Min.X; x < ia.Bounds().Max.X; x++ {
			r1, g1, b1, a1 := ia.At(x, y).RGBA()
			r2, g2, b2, a2 := ib.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				differ++
			}
		}
	}
	if differ > 0 {
		t.Errorf("%s and %s differ in %d pixels", a, b, differ)
	}
}

// settingsByHand applies, as a --python-expr, what the farm's settings
// script applies for TestSessionRendersChunksLikeBlender's settings.
const settingsByHand = `
import bpy
scene = bpy.context.scene
scene.cycles.use_denoising = False
for layer in scene.view_layers:
    layer.cycles.use_denoising = False
scene.cycles.samples = 8
scene.render.resolution_x, scene.render.resolution_y = 96, 54
`

// A session renders chunk after chunk in one Blender, and its frames are
// the frames Blender renders by hand with -f, pixel for pixel; so are those
// of a render in a Blender of its own.
func TestSessionRendersChunksLikeBlender(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	settings := Settings{Denoising: ptr(false), Samples: 8, ResolutionX: 96, ResolutionY: 54}
	blend := scene(t, "cube.blend")
	dir := t.TempDir()

	byHand := filepath.Join(dir, "by-hand")
	var log []string
	argv := r.argv(blend, "--python-expr", settingsByHand, "-o", filepath.Join(byHand, "frame_####"), "-f", "1,2,5")
	status, err := r.run(context.Background(), command{argv: argv, env: r.env(""),
		paths: sandbox.Paths{ReadOnly: []string{filepath.Dir(blend)}, Writable: []string{dir}}},
		func(line string) { log = append(log, line) })
	if err != nil || status.failed() {
		t.Fatalf("rendering by hand: %v, %s\n%s", err, status.describe(), strings.Join(log, "\n"))
	}
	own := filepath.Join(dir, "own")
	if res, err := r.Render(context.Background(), RenderJob{BlendPath: blend, Frames: []int{1, 2, 5},
		OutputDir: own, Settings: settings}, nil); err != nil {
		t.Fatalf("Render: %v\n%s", err, strings.Join(res.LogTail, "\n"))
	}
	for _, f := range []int{1, 2, 5} {
		samePixels(t, filepath.Join(own, "frame_"+pad4(f)+".png"), filepath.Join(byHand, "frame_"+pad4(f)+".png"))
	}

	starts := countStarts(r)
	root := filepath.Join(dir, "out")
	s, err := r.StartSession(SessionSpec{BlendPath: blend, OutputRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ins, err := s.Inspect(context.Background())
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if ins.ActiveScene != "Scene" || len(ins.Scenes) != 1 {
		t.Errorf("inspection: active scene %q, %d scenes", ins.ActiveScene, len(ins.Scenes))
	}
	for i, chunk := range [][]int{{1, 2}, {5}} {
		out := filepath.Join(root, "chunk", string(rune('a'+i)))
		var events []Event
		res, err := s.Render(context.Background(), RenderJob{BlendPath: blend, Scene: "Scene", Frames: chunk,
			OutputDir: out, Settings: settings}, func(ev Event) { events = append(events, ev) })
		if err != nil {
			t.Fatalf("chunk %v: %v\n%s", chunk, err, strings.Join(res.LogTail, "\n"))
		}
		if !slices.Equal(res.FramesSaved, chunk) {
			t.Errorf("chunk %v: FramesSaved = %v", chunk, res.FramesSaved)
		}
		for _, f := range chunk {
			path := filepath.Join(out, "frame_"+pad4(f)+".png")
			samePixels(t, path, filepath.Join(byHand, "frame_"+pad4(f)+".png"))
			started := slices.ContainsFunc(events, func(ev Event) bool { return ev.Kind == FrameStarted && ev.Frame == f })
			saved := slices.ContainsFunc(events, func(ev Event) bool {
				return ev.Kind == FrameSaved && ev.Frame == f && ev.Path == path && ev.RenderSeconds > 0
			})
			if !started || !saved {
				t.Errorf("frame %d: started %v, saved %v; events %+v", f, started, saved, events)
			}
		}
	}
	if n := starts.Load(); n != 1 {
		t.Errorf("%d Blender processes started for an inspection and two chunks, want 1", n)
	}
	if !s.Alive() {
		t.Error("the session ended after rendering")
	}
}

// Settings Blender refuses fail the chunk as they fail a render process:
// naming the field, on the chunk's first frame. The session is not used
// again.
func TestSessionRefusedSettingsFailTheChunk(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	dir := t.TempDir()
	s, err := r.StartSession(SessionSpec{BlendPath: scene(t, "cube.blend"), OutputRoot: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Render(context.Background(), RenderJob{BlendPath: scene(t, "cube.blend"), Frames: []int{3, 4},
		OutputDir: filepath.Join(dir, "a"), Settings: Settings{Engine: "NO_SUCH_ENGINE"}}, nil)
	var re *RenderError
	if !errors.As(err, &re) || re.Frame != 3 || !strings.Contains(re.Line, "NO_SUCH_ENGINE") {
		t.Fatalf("err = %v; want a RenderError on frame 3 naming the engine", err)
	}
	if s.Alive() {
		t.Error("a session whose command failed is still offered")
	}
}

// A canceled render ends the session's Blender at once.
func TestSessionCancel(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	dir := t.TempDir()
	job := longJob(t, dir)
	s, err := r.StartSession(SessionSpec{BlendPath: job.BlendPath, OutputRoot: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var canceledAt time.Time
	_, err = s.Render(ctx, job, func(ev Event) {
		if ev.Kind == SampleProgress && canceledAt.IsZero() {
			canceledAt = time.Now()
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(canceledAt); took > 3*time.Second {
		t.Errorf("Render returned %v after the cancel", took)
	}
	select {
	case <-s.exited:
	default:
		t.Error("Blender still runs after the cancel")
	}
}

// A chunk that saves no frame within the frame timeout is killed and
// fails naming its first frame.
func TestSessionFrameTimeout(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	r.FrameTimeout = 300 * time.Millisecond
	dir := t.TempDir()
	job := RenderJob{BlendPath: scene(t, "cube.blend"), Frames: []int{1, 2}, OutputDir: filepath.Join(dir, "out"),
		Settings: Settings{Denoising: ptr(false), Samples: 256, ResolutionX: 640, ResolutionY: 360}}
	s, err := r.StartSession(SessionSpec{BlendPath: job.BlendPath, OutputRoot: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Render(context.Background(), job, nil)
	var re *RenderError
	if !errors.As(err, &re) || re.Frame != 1 || re.Line != "Blender rendered nothing for 300ms; killed" {
		t.Fatalf("err = %v; want a RenderError on frame 1 for the timeout", err)
	}
	if s.Alive() {
		t.Error("the session survived its timeout")
	}
}

// The pool keeps one Blender for a job: the session that inspected the file
// renders its chunks, until it has been idle for KeepAlive.
func TestSessionsKeepBlenderForTheJob(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	starts := countStarts(r)
	p := &Sessions{Runner: r, KeepAlive: time.Minute, Max: 1}
	defer p.Close()
	dir := t.TempDir()
	blend := filepath.Join(dir, "job", "scene.blend")
	copyFile(t, scene(t, "cube.blend"), blend)
	root := filepath.Join(dir, "job", "out")
	settings := Settings{Denoising: ptr(false), Samples: 1, ResolutionX: 32, ResolutionY: 18}

	if _, err := p.Inspect(context.Background(), blend, root); err != nil {
		t.Fatal(err)
	}
	render := func(frames []int, s Settings) {
		t.Helper()
		out := filepath.Join(root, "f"+pad4(frames[0]))
		res, err := p.Render(context.Background(), RenderJob{BlendPath: blend, Scene: "Scene", Frames: frames,
			OutputDir: out, Settings: s}, root, nil)
		if err != nil {
			t.Fatalf("frames %v: %v\n%s", frames, err, strings.Join(res.LogTail, "\n"))
		}
		for _, f := range frames {
			checkPNG(t, filepath.Join(out, "frame_"+pad4(f)+".png"), s.ResolutionX, s.ResolutionY)
		}
	}
	render([]int{1, 2}, settings)
	render([]int{3}, settings)
	if n := starts.Load(); n != 1 {
		t.Errorf("%d Blender processes for an inspection and two chunks, want 1", n)
	}

	// Other settings (another part of a split frame, in the farm) load
	// the file again in the same Blender, and render as they ask.
	other := settings
	other.Samples, other.ResolutionX, other.ResolutionY = 2, 40, 24
	render([]int{4}, other)
	if n := starts.Load(); n != 1 {
		t.Errorf("%d Blender processes after a change of settings, want 1", n)
	}
	if live, idle := p.Live(); live != 1 || idle != 1 {
		t.Errorf("live %d, idle %d; want the one session", live, idle)
	}

	// A Blender that died while idle is replaced without failing the chunk.
	p.mu.Lock()
	dead := p.idle[0].s
	p.mu.Unlock()
	dead.stop()
	<-dead.exited
	render([]int{5}, other)
	if n := starts.Load(); n != 2 {
		t.Errorf("%d Blender processes after one died, want 2", n)
	}

	p.Forget(filepath.Join(dir, "job"))
	if live, idle := p.Live(); live != 0 || idle != 0 {
		t.Errorf("after Forget: live %d, idle %d", live, idle)
	}
}

// An idle session ends after KeepAlive.
func TestSessionsExpire(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	p := &Sessions{Runner: r, KeepAlive: 300 * time.Millisecond, Max: 2}
	defer p.Close()
	dir := t.TempDir()
	if _, err := p.Inspect(context.Background(), scene(t, "cube.blend"), dir); err != nil {
		t.Fatal(err)
	}
	if live, idle := p.Live(); live != 1 || idle != 1 {
		t.Fatalf("live %d, idle %d after an inspection", live, idle)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if live, _ := p.Live(); live == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle session still runs 5 s after its KeepAlive of 300 ms")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
