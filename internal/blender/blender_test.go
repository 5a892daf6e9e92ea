package blender

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// Tests in this file run the real Blender on the scenes in testdata/scenes
// (see its README); they skip when blender is not on PATH.

var capture = flag.Bool("capture", false, "capture Blender logs into testdata/*.log (then run with -update)")

const scenesDir = "../../testdata/scenes"

// needBlender returns a Runner confined as a worker's is by default
// (--sandbox auto): inside bubblewrap where it is installed, so that every
// test that renders or inspects also shows Blender works in the sandbox.
func needBlender(t *testing.T) *Runner {
	t.Helper()
	if _, err := exec.LookPath("blender"); err != nil {
		t.Skip("blender is not on PATH: install it (apt-get install blender) to run the tests that render")
	}
	sb, err := testSandbox()
	if err != nil {
		t.Fatal(err)
	}
	return &Runner{Sandbox: sb}
}

// testSandbox is the default sandbox of a worker, with its open-file limit.
var testSandbox = sync.OnceValues(func() (*sandbox.Sandbox, error) {
	return sandbox.New(context.Background(), sandbox.Config{Mode: sandbox.Auto, OpenFiles: 4096})
})

func scene(t *testing.T, name string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join(scenesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("test scene missing (see testdata/scenes/README.md): %v", err)
	}
	return path
}

func ptr[T any](v T) *T { return &v }

func TestVersion(t *testing.T) {
	r := needBlender(t)
	v, err := r.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d+\.\d+(\.\d+)?$`).MatchString(v) {
		t.Fatalf("Version() = %q, want a version number", v)
	}
	start := time.Now()
	again, err := r.Version(context.Background())
	if err != nil || again != v {
		t.Fatalf("second Version() = %q, %v; want %q", again, err, v)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("second Version() took %v: not cached", d)
	}
}

func TestVersionMissingBinary(t *testing.T) {
	r := &Runner{Binary: filepath.Join(t.TempDir(), "no-blender")}
	_, err := r.Version(context.Background())
	if !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Version() error = %v, want ErrNotStarted", err)
	}
}

func TestInspect(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	ctx := context.Background()

	t.Run("cube", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		insp, err := r.Inspect(ctx, scene(t, "cube.blend"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Inspect(cube.blend) took %v", time.Since(start))
		if insp.FileVersion == "" || insp.BlenderVersion == "" {
			t.Errorf("versions = %q, %q; want both", insp.FileVersion, insp.BlenderVersion)
		}
		if insp.ActiveScene != "Scene" || len(insp.Scenes) != 1 {
			t.Fatalf("active scene %q, %d scenes; want Scene, 1", insp.ActiveScene, len(insp.Scenes))
		}
		s := insp.Scenes[0]
		want := farm.Scene{
			Name: "Scene", FrameStart: 1, FrameEnd: 24, FrameStep: 1, FPS: 24,
			ResolutionX: 64, ResolutionY: 36, ResolutionPercentage: 100,
			Engine: "CYCLES", Samples: 4, Camera: "Camera",
			OutputFormat: "PNG", ColorMode: "RGBA", ColorDepth: "8",
			DenoisingEnabled: true, Denoiser: "OPENIMAGEDENOISE",
			ViewLayers: []string{"ViewLayer"}, ViewTransform: s.ViewTransform,
			OutputPath: "/tmp/", UseFileExtension: true, FileOutputNodes: []farm.FileOutputNode{},
			// A scene saved to denoise keeps the noisy image too.
			RenderPasses: []farm.ViewLayerPasses{{ViewLayer: "ViewLayer", Passes: []string{"Combined", "Noisy Image"}}},
		}
		if !reflect.DeepEqual(s, want) {
			t.Errorf("scene = %+v\nwant   %+v", s, want)
		}
		if len(insp.ExternalFiles) != 0 {
			t.Errorf("external files = %+v, want none", insp.ExternalFiles)
		}
		if len(insp.ViewTransforms) == 0 || !slices.Contains(insp.ViewTransforms, s.ViewTransform) {
			t.Errorf("view transforms %q do not include the scene's %q", insp.ViewTransforms, s.ViewTransform)
		}
		if strings.HasPrefix(insp.BlenderVersion, "3.4.") && insp.DenoiserAvailable {
			t.Errorf("DenoiserAvailable = true on Blender %s; Debian's build has no OpenImageDenoise", insp.BlenderVersion)
		}
	})

	t.Run("missing texture", func(t *testing.T) {
		t.Parallel()
		insp, err := r.Inspect(ctx, scene(t, "missing_texture.blend"))
		if err != nil {
			t.Fatal(err)
		}
		want := []farm.ExternalFile{{Type: "image", Name: "missing.png", Path: "//textures/missing.png", Missing: true}}
		if !slices.Equal(insp.ExternalFiles, want) {
			t.Errorf("external files = %+v, want %+v", insp.ExternalFiles, want)
		}
	})

	t.Run("project", func(t *testing.T) {
		t.Parallel()
		insp, err := r.Inspect(ctx, scene(t, "project/scene.blend"))
		if err != nil {
			t.Fatal(err)
		}
		want := []farm.ExternalFile{{Type: "image", Name: "checker.png", Path: "//textures/checker.png"}}
		if !slices.Equal(insp.ExternalFiles, want) {
			t.Errorf("external files = %+v, want %+v", insp.ExternalFiles, want)
		}
	})

	t.Run("no camera and eevee", func(t *testing.T) {
		t.Parallel()
		insp, err := r.Inspect(ctx, scene(t, "nocamera.blend"))
		if err != nil {
			t.Fatal(err)
		}
		if c := insp.Scenes[0].Camera; c != "" {
			t.Errorf("nocamera.blend camera = %q, want none", c)
		}
		insp, err = r.Inspect(ctx, scene(t, "eevee.blend"))
		if err != nil {
			t.Fatal(err)
		}
		s := insp.Scenes[0]
		if s.Engine != "BLENDER_EEVEE" || s.Samples != 4 || s.FrameEnd != 2 || s.DenoisingEnabled || s.Denoiser != "" {
			t.Errorf("eevee.blend scene = %+v; want BLENDER_EEVEE, 4 samples, frames to 2, no denoising", s)
		}
	})

	t.Run("corrupt", func(t *testing.T) {
		t.Parallel()
		// A valid uncompressed header (64-bit, little endian, 3.4) and garbage.
		body := append([]byte("BLENDER-v304"), make([]byte, 4096)...)
		rand.Read(body[12:])
		path := filepath.Join(t.TempDir(), "corrupt.blend")
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := r.Inspect(ctx, path)
		var ie *InspectError
		if !errors.As(err, &ie) {
			t.Fatalf("Inspect(corrupt) error = %v, want *InspectError", err)
		}
		if !strings.Contains(ie.Line, "corrupt.blend") || ie.ExitCode == 0 {
			t.Errorf("InspectError = %+v; want Blender's line naming the file and a failed exit", ie)
		}
		t.Logf("corrupt file: %v", err)
	})
}

// makeExternalFilesScene has Blender save a .blend in dir that refers to an
// image sequence whose first frame is absent, UDIM tiles present and absent,
// a packed image and a missing sound.
const makeExternalFilesScene = `
import bpy, sys
out = sys.argv[sys.argv.index("--") + 1]
bpy.ops.wm.save_as_mainfile(filepath=out)
def image(name, path, source, tiled=False):
    img = bpy.data.images.new(name, 8, 8, tiled=tiled)
    img.source = source
    img.filepath = path
    img.use_fake_user = True
    return img
image("sequence", "//seq/frame_0001.png", "SEQUENCE")
image("udim", "//tiles/tex.<UDIM>.png", "TILED", tiled=True)
image("udim-missing", "//nowhere/tex.<UDIM>.png", "TILED", tiled=True)
packed = bpy.data.images.load(bpy.path.abspath("//seq/frame_0007.png"))
packed.name = "packed"
packed.pack()
packed.filepath = "//gone/packed.png"
packed.use_fake_user = True
sound = bpy.data.sounds.load("//audio/missing.wav", check_existing=False)
sound.use_fake_user = True
bpy.ops.wm.save_as_mainfile(filepath=out, compress=True)
`

func TestInspectExternalFiles(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"seq/frame_0007.png", "tiles/tex.1001.png"} {
		writePNG(t, filepath.Join(dir, name))
	}
	blend := filepath.Join(dir, "external.blend")
	argv := r.argv("--python-expr", makeExternalFilesScene, "--", blend)
	var log []string
	status, err := r.run(context.Background(), command{argv: argv, env: r.env(""), paths: sandbox.Paths{Writable: []string{dir}}},
		func(line string) { log = append(log, line) })
	if err != nil || status.failed() {
		t.Fatalf("making the scene: %v, %s\n%s", err, status.describe(), strings.Join(log, "\n"))
	}

	insp, err := r.Inspect(context.Background(), blend)
	if err != nil {
		t.Fatal(err)
	}
	want := []farm.ExternalFile{
		{Type: "image", Name: "packed", Path: "//gone/packed.png", Packed: true},
		{Type: "image", Name: "sequence", Path: "//seq/frame_0001.png"},
		{Type: "image", Name: "udim", Path: "//tiles/tex.<UDIM>.png"},
		{Type: "image", Name: "udim-missing", Path: "//nowhere/tex.<UDIM>.png", Missing: true},
		{Type: "sound", Name: "missing.wav", Path: "//audio/missing.wav", Missing: true},
	}
	if !slices.Equal(insp.ExternalFiles, want) {
		t.Errorf("external files:\n got %+v\nwant %+v", insp.ExternalFiles, want)
	}
}

func writePNG(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRenderFrames(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	out := t.TempDir()
	var events []Event
	start := time.Now()
	res, err := r.Render(context.Background(), RenderJob{
		BlendPath: scene(t, "cube.blend"),
		Frames:    []int{1, 2, 5},
		OutputDir: out,
		Settings:  Settings{Denoising: ptr(false)},
	}, func(ev Event) { events = append(events, ev) })
	if err != nil {
		t.Fatalf("Render: %v\n%s", err, strings.Join(res.LogTail, "\n"))
	}
	t.Logf("Render(cube.blend, 1,2,5) took %v", time.Since(start))
	if !slices.Equal(res.FramesSaved, []int{1, 2, 5}) {
		t.Errorf("FramesSaved = %v, want [1 2 5]", res.FramesSaved)
	}
	for _, f := range []int{1, 2, 5} {
		path := filepath.Join(out, "frame_"+pad4(f)+".png")
		checkPNG(t, path, 64, 36)
		started := slices.ContainsFunc(events, func(ev Event) bool { return ev.Kind == FrameStarted && ev.Frame == f })
		sampled := slices.ContainsFunc(events, func(ev Event) bool {
			return ev.Kind == SampleProgress && ev.Frame == f && ev.Sample == 4 && ev.Samples == 4
		})
		saved := slices.ContainsFunc(events, func(ev Event) bool {
			return ev.Kind == FrameSaved && ev.Frame == f && ev.Path == path && ev.RenderSeconds >= 0
		})
		if !started || !sampled || !saved {
			t.Errorf("frame %d: started %v, sampled 4/4 %v, saved %v; events %+v", f, started, sampled, saved, events)
		}
	}
	if len(res.LogTail) == 0 {
		t.Error("no log")
	}
}

func TestRenderSettings(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	tests := []struct {
		name     string
		settings Settings
		file     string
		summary  string // expected in the settings script's summary line
	}{
		{
			name: "workbench jpeg",
			settings: Settings{
				Engine: "BLENDER_WORKBENCH", ResolutionX: 40, ResolutionY: 30, ResolutionPercentage: 50,
				OutputFormat: "JPEG", ColorMode: "RGB", Quality: 80,
			},
			file:    "frame_0003.jpg",
			summary: "engine BLENDER_WORKBENCH, 40x30 at 50%, JPEG",
		},
		{
			name: "cycles exr tiled",
			settings: Settings{
				Samples: 2, Denoising: ptr(false), UseTiling: ptr(true), TileSize: 32, FPS: 30,
				OutputFormat: "OPEN_EXR", ColorDepth: "16", ExrCodec: "ZIP",
			},
			file:    "frame_0003.exr",
			summary: "engine CYCLES, 64x36 at 100%, OPEN_EXR, denoising off",
		},
		{
			name: "tiff with a view transform",
			settings: Settings{
				Denoising: ptr(false), OutputFormat: "TIFF", TiffCodec: "LZW", ColorDepth: "16",
				ColorManagement: "standard",
			},
			file:    "frame_0003.tif",
			summary: "TIFF, denoising off",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			res, err := r.Render(context.Background(), RenderJob{
				BlendPath: scene(t, "cube.blend"),
				Frames:    []int{3},
				OutputDir: out,
				Settings:  tt.settings,
			}, nil)
			if err != nil {
				t.Fatalf("Render: %v\n%s", err, strings.Join(res.LogTail, "\n"))
			}
			if _, err := os.Stat(filepath.Join(out, tt.file)); err != nil {
				t.Error(err)
			}
			if !slices.ContainsFunc(res.LogTail, func(line string) bool { return strings.Contains(line, tt.summary) }) {
				t.Errorf("no line containing %q in the log:\n%s", tt.summary, strings.Join(res.LogTail, "\n"))
			}
		})
	}
}

func TestRenderDenoiserMissing(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	insp, err := r.Inspect(context.Background(), scene(t, "cube.blend"))
	if err != nil {
		t.Fatal(err)
	}
	if insp.DenoiserAvailable {
		t.Skip("this Blender has OpenImageDenoise")
	}
	res, err := r.Render(context.Background(), RenderJob{
		BlendPath: scene(t, "cube.blend"),
		Frames:    []int{1, 2},
		OutputDir: t.TempDir(),
		Settings:  Settings{Denoising: ptr(true)},
	}, nil)
	var re *RenderError
	if !errors.As(err, &re) {
		t.Fatalf("Render error = %v, want *RenderError", err)
	}
	if re.Frame != 1 || !strings.Contains(re.Line, "OpenImageDenoiser") || re.ExitCode == 0 {
		t.Errorf("RenderError = %+v; want frame 1, the OpenImageDenoiser line, a failed exit", re)
	}
	if len(res.FramesSaved) != 0 {
		t.Errorf("FramesSaved = %v, want none", res.FramesSaved)
	}
}

func TestRenderRefuses(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	tests := []struct {
		name string
		job  RenderJob
		want string
	}{
		{"unknown scene", RenderJob{Scene: "Nope"}, `scene 'Nope' not found`},
		{"no camera", RenderJob{BlendPath: scene(t, "nocamera.blend"), Settings: Settings{Denoising: ptr(false)}}, "no camera"},
		{"movie format", RenderJob{Settings: Settings{OutputFormat: "FFMPEG"}}, "movie format"},
		{"bad color depth", RenderJob{Settings: Settings{OutputFormat: "JPEG", ColorDepth: "16"}}, "colorDepth '16'"},
		// These machines have no GPU: Cycles is asked for the device and
		// says it sees none, and nothing renders on the CPU instead.
		{"a GPU Cycles does not see", RenderJob{Settings: Settings{ComputeDeviceType: "CUDA", GPUDevices: 1}}, "computeDeviceType CUDA"},
	}
	if v, err := r.Version(context.Background()); err == nil && strings.HasPrefix(v, "3.") {
		// Blender 3.x has no ACES view transform.
		tests = append(tests, struct {
			name string
			job  RenderJob
			want string
		}{"aces", RenderJob{Settings: Settings{ColorManagement: "aces"}}, "color management 'aces' is not available"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := tt.job
			if job.BlendPath == "" {
				job.BlendPath = scene(t, "cube.blend")
			}
			job.Frames = []int{4}
			job.OutputDir = t.TempDir()
			_, err := r.Render(context.Background(), job, nil)
			var re *RenderError
			if !errors.As(err, &re) || re.Frame != 4 || !strings.Contains(re.Line, tt.want) {
				t.Fatalf("Render error = %v, want a RenderError for frame 4 containing %q", err, tt.want)
			}
			t.Log(err)
		})
	}
}

// TestGPUDevicesOnAMachineWithoutGPUs: --gpu auto asks Cycles, which on
// these machines sees no GPU of any type.
func TestGPUDevicesOnAMachineWithoutGPUs(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	gpus, err := r.GPUDevices(context.Background())
	if err != nil || len(gpus) != 0 {
		t.Errorf("GPUDevices = %v, %v; want none on a machine without GPUs", gpus, err)
	}
}

func TestRenderCancelKillsGroup(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	r.Wrap = recordPID(pidFile)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := r.Render(ctx, longJob(t, dir), func(ev Event) {
			if ev.Kind == SampleProgress && ev.Sample > 0 {
				once.Do(func() { close(started) })
			}
		})
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("render ended before it could be cancelled: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("render did not start sampling within 30 s")
	}
	pid := readPID(t, pidFile)

	cancelled := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Render error = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Render did not return within 2 s of cancel")
	}
	t.Logf("Render returned %v after cancel", time.Since(cancelled))
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		out, _ := exec.Command("ps", "-o", "pid,ppid,pgid,stat,args", "-s", strconv.Itoa(pid)).Output()
		t.Errorf("process group %d still exists after cancel (kill: %v)\n%s", pid, err, out)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("Blender (pid %d) still running after cancel (kill: %v)", pid, err)
	}
}

// TestWorkerDeathKillsBlender renders in a child process (this test binary
// again), kills that process with SIGKILL, and checks Blender died with it.
func TestWorkerDeathKillsBlender(t *testing.T) {
	if dir := os.Getenv("RENDERFARM_BLENDER_TEST_WORKER"); dir != "" {
		r := needBlender(t)
		r.Wrap = recordPID(filepath.Join(dir, "pid"))
		// The killed worker cannot remove its run directory; the test's
		// own directory goes with the test.
		r.TempDir = dir
		_, err := r.Render(context.Background(), longJob(t, dir), nil)
		t.Fatalf("the render was meant to be killed, but it ended: %v", err)
	}
	needBlender(t)
	if runtime.GOOS != "linux" {
		t.Skip("only Linux ties a child's life to its parent's")
	}
	t.Parallel()
	dir := t.TempDir()
	worker := exec.Command(os.Args[0], "-test.run=^TestWorkerDeathKillsBlender$")
	worker.Env = append(os.Environ(), "RENDERFARM_BLENDER_TEST_WORKER="+dir)
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	pid := readPID(t, filepath.Join(dir, "pid"))
	worker.Process.Kill()
	worker.Wait()
	// The whole group: in the sandbox, the recorded pid is bubblewrap's
	// and Blender is another member of its group.
	deadline := time.Now().Add(2 * time.Second)
	for syscall.Kill(-pid, 0) == nil {
		if time.Now().After(deadline) {
			out, _ := exec.Command("ps", "-o", "pid,ppid,pgid,stat,args", "-s", strconv.Itoa(pid)).Output()
			syscall.Kill(-pid, syscall.SIGKILL)
			t.Fatalf("Blender's process group %d outlived its worker by 2 s\n%s", pid, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// longJob renders for far longer than any test waits.
func longJob(t *testing.T, dir string) RenderJob {
	return RenderJob{
		BlendPath: scene(t, "cube.blend"),
		Frames:    []int{1, 2, 3},
		OutputDir: filepath.Join(dir, "out"),
		Settings:  Settings{Denoising: ptr(false), Samples: 1 << 20, ResolutionX: 320, ResolutionY: 180},
	}
}

// recordPID wraps Blender in a shell that writes its pid to pidFile and
// execs Blender, which keeps that pid.
func recordPID(pidFile string) func([]string) []string {
	return func(argv []string) []string {
		return append([]string{"/bin/sh", "-c", `echo $$ > "$0.tmp" && mv "$0.tmp" "$0" && exec "$@"`, pidFile}, argv...)
	}
}

func readPID(t *testing.T, pidFile string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		body, err := os.ReadFile(pidFile)
		if err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid after 30 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(body))
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if _, err := png.Decode(bytes.NewReader(body)); err != nil {
		t.Errorf("%s: %v", path, err)
	}
	if cfg.Width != w || cfg.Height != h {
		t.Errorf("%s is %dx%d, want %dx%d", path, cfg.Width, cfg.Height, w, h)
	}
}

func pad4(n int) string {
	s := strconv.Itoa(n)
	for len(s) < 4 {
		s = "0" + s
	}
	return s
}
