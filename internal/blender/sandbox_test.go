package blender

import (
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/sandbox/sandboxtest"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// needSandbox returns a Runner confined by bubblewrap, as a worker's is.
func needSandbox(t *testing.T) *Runner {
	t.Helper()
	r := needBlender(t)
	if !r.Sandbox.Confined() {
		t.Skipf("Blender cannot be confined here (%s): install bubblewrap (apt-get install bubblewrap) to run the tests of the sandbox", r.Sandbox)
	}
	return r
}

// runPython runs a Python expression in Blender as a render would run
// (same flags, same sandbox, the same directories for job) and answers what
// it printed after "renderfarm-probe: ", decoded from JSON.
func runPython(t *testing.T, r *Runner, job RenderJob, expr string, args ...string) map[string]string {
	t.Helper()
	dir, tmp, err := r.runDir()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// The probe loads the .blend from its command line: a test's file, named
	// by the test.
	argv := slices.Concat(r.argv(job.BlendPath, "--python-expr", expr, "--"), args)
	paths := sandbox.Paths{ReadOnly: []string{r.inputPath(job.BlendPath)}, Writable: []string{dir, job.OutputDir}}
	var log []string
	var got map[string]string
	status, err := r.run(context.Background(), command{argv: argv, env: r.env(tmp), paths: paths}, func(line string) {
		log = append(log, line)
		if rest, ok := strings.CutPrefix(line, "renderfarm-probe: "); ok {
			if err := json.Unmarshal([]byte(rest), &got); err != nil {
				t.Errorf("probe output %q: %v", rest, err)
			}
		}
	})
	if err != nil || status.failed() || got == nil {
		t.Fatalf("running the probe: %v, %s\n%s", err, status.describe(), strings.Join(log, "\n"))
	}
	return got
}

// netProbe tries a TCP connection to each address given and a name lookup.
const netProbe = `
import json, socket, sys
res = {}
for addr in sys.argv[sys.argv.index("--") + 1:]:
    host, port = addr.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        res[addr] = "connected"
    except OSError as e:
        res[addr] = "failed: %s" % e
try:
    socket.getaddrinfo("example.com", 443)
    res["example.com"] = "resolved"
except OSError as e:
    res["example.com"] = "failed: %s" % e
print("renderfarm-probe: " + json.dumps(res), flush=True)
`

// A Blender started by the farm cannot open a network connection, where the
// same Python in the same Blender outside the sandbox can.
func TestSandboxedBlenderHasNoNetwork(t *testing.T) {
	r := needSandbox(t)
	t.Parallel()
	addrs := sandboxtest.Listener(t)
	job := RenderJob{BlendPath: scene(t, "cube.blend"), OutputDir: t.TempDir()}

	outside := runPython(t, &Runner{}, job, netProbe, addrs...)
	inside := runPython(t, r, job, netProbe, addrs...)
	t.Logf("unconfined: %v", outside)
	t.Logf("sandboxed:  %v", inside)
	for _, addr := range addrs {
		if outside[addr] != "connected" {
			t.Errorf("unconfined Blender could not reach the test's listener at %s: %s", addr, outside[addr])
		}
		if !strings.HasPrefix(inside[addr], "failed") {
			t.Errorf("sandboxed Blender reached %s: %s", addr, inside[addr])
		}
	}
	if !strings.HasPrefix(inside["example.com"], "failed") {
		t.Errorf("sandboxed Blender resolved example.com: %s", inside["example.com"])
	}
}

// fsProbe tries to write each path given (and reads those after "read:").
const fsProbe = `
import json, os, sys
res = {}
for arg in sys.argv[sys.argv.index("--") + 1:]:
    op, path = arg.split(":", 1)
    try:
        if op == "read":
            open(path, "rb").read()
        else:
            with open(path, "w") as f:
                f.write("x")
        res[arg] = "ok"
    except OSError as e:
        res[arg] = "failed: %s" % e
try:
    with open(os.path.join(os.environ["TMPDIR"], "probe"), "w") as f:
        f.write("x")
    res["tmpdir"] = "ok"
except OSError as e:
    res["tmpdir"] = "failed: %s" % e
print("renderfarm-probe: " + json.dumps(res), flush=True)
`

// A sandboxed Blender writes only its output and temp directories, reads
// its own job's files and not another job's, and sees nothing of the
// worker's home.
func TestSandboxedBlenderFiles(t *testing.T) {
	r := needSandbox(t)
	t.Parallel()
	jobs := t.TempDir()
	r.JobsDir = jobs
	input := filepath.Join(jobs, "job1", "input")
	other := filepath.Join(jobs, "job2", "input")
	for _, dir := range []string{input, other} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	blend := filepath.Join(input, "scene.blend")
	copyFile(t, scene(t, "cube.blend"), blend)
	copyFile(t, scene(t, "cube.blend"), filepath.Join(other, "secret.blend"))
	out := filepath.Join(jobs, "job1", "out", "task-1")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}

	allowed := []string{
		"write:" + filepath.Join(out, "frame_0001.png"),
		"read:" + blend,
		"read:/usr/bin/env",
	}
	refused := []string{
		"write:" + filepath.Join(input, "scene.blend"),
		"write:" + filepath.Join(input, "new.blend"),
		"write:" + filepath.Join(jobs, "job1", "prepared.json"),
		"write:" + filepath.Join(other, "x"),
		"read:" + filepath.Join(other, "secret.blend"),
		"write:" + filepath.Join(home, "renderfarm-probe"),
		"write:/etc/renderfarm-probe",
		"write:/usr/renderfarm-probe",
	}
	got := runPython(t, r, RenderJob{BlendPath: blend, OutputDir: out}, fsProbe, slices.Concat(allowed, refused)...)
	for _, a := range append(allowed, "tmpdir") {
		if got[a] != "ok" {
			t.Errorf("%s: %s, want ok", a, got[a])
		}
	}
	for _, a := range refused {
		if got[a] == "ok" || got[a] == "" {
			t.Errorf("%s: %q, want refused", a, got[a])
		} else {
			t.Logf("%s: %s", a, got[a])
		}
	}
	if _, err := os.Stat(filepath.Join(home, "renderfarm-probe")); err == nil {
		os.Remove(filepath.Join(home, "renderfarm-probe"))
		t.Error("the sandboxed Blender wrote into the worker's home")
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	body, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeProjectShot saves the project's scene as scenes/shot.blend, its
// texture now at //../textures/checker.png: a project laid out in folders,
// as zips often are.
const makeProjectShot = `
import bpy, sys
out = sys.argv[sys.argv.index("--") + 1]
for img in bpy.data.images:
    if img.filepath == "//textures/checker.png":
        img.filepath = "//../textures/checker.png"
bpy.ops.wm.save_as_mainfile(filepath=out, relative_remap=False, compress=True)
`

// In the sandbox, a .blend under JobsDir still reaches its job's files
// outside its own folder, for inspecting and rendering; without JobsDir it
// sees its own folder only.
func TestSandboxedProject(t *testing.T) {
	r := needSandbox(t)
	t.Parallel()
	jobs := t.TempDir()
	project := filepath.Join(jobs, "job1", "input", "project")
	copyFile(t, scene(t, "project/textures/checker.png"), filepath.Join(project, "textures", "checker.png"))
	shot := filepath.Join(project, "scenes", "shot.blend")
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		t.Fatal(err)
	}
	argv := r.argv(scene(t, "project/scene.blend"), "--python-expr", makeProjectShot, "--", shot)
	var log []string
	status, err := r.run(context.Background(), command{argv: argv, env: r.env(""), paths: sandbox.Paths{
		ReadOnly: []string{filepath.Dir(scene(t, "project/scene.blend"))},
		Writable: []string{filepath.Dir(shot)},
	}}, func(line string) { log = append(log, line) })
	if err != nil || status.failed() {
		t.Fatalf("making the scene: %v, %s\n%s", err, status.describe(), strings.Join(log, "\n"))
	}

	r.JobsDir = jobs
	insp, err := r.Inspect(context.Background(), shot)
	if err != nil {
		t.Fatal(err)
	}
	want := []farm.ExternalFile{{Type: "image", Name: "checker.png", Path: "//../textures/checker.png"}}
	if !slices.Equal(insp.ExternalFiles, want) {
		t.Errorf("external files = %+v, want %+v", insp.ExternalFiles, want)
	}
	out := filepath.Join(jobs, "job1", "out", "t-1")
	res, err := r.Render(context.Background(), RenderJob{BlendPath: shot, Frames: []int{1}, OutputDir: out, Settings: Settings{Denoising: ptr(false)}}, nil)
	if err != nil {
		t.Fatalf("Render: %v\n%s", err, strings.Join(res.LogTail, "\n"))
	}
	checkPNG(t, filepath.Join(out, "frame_0001.png"), 64, 36)
	// Blender paints a texture it cannot find magenta.
	if n := magentaPixels(t, filepath.Join(out, "frame_0001.png")); n > 0 {
		t.Errorf("%d magenta pixels: the texture was not found", n)
	}

	r.JobsDir = ""
	insp, err = r.Inspect(context.Background(), shot)
	if err != nil {
		t.Fatal(err)
	}
	if len(insp.ExternalFiles) != 1 || !insp.ExternalFiles[0].Missing {
		t.Errorf("without JobsDir, external files = %+v; want the texture missing, out of view", insp.ExternalFiles)
	}
	out = filepath.Join(jobs, "job1", "out", "t-2")
	if _, err := r.Render(context.Background(), RenderJob{BlendPath: shot, Frames: []int{1}, OutputDir: out, Settings: Settings{Denoising: ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	if n := magentaPixels(t, filepath.Join(out, "frame_0001.png")); n == 0 {
		t.Error("without JobsDir the texture was still found")
	}
}

func magentaPixels(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			// Shaded magenta: red and blue alike, far above green.
			if r > 0x2000 && r > 3*g && bl > 3*g {
				n++
			}
		}
	}
	return n
}

func TestInputPath(t *testing.T) {
	r := &Runner{JobsDir: "/w"}
	tests := map[string]string{
		"/w/job1/input/scene.blend":          "/w/job1",
		"/w/job1/input/project/s/shot.blend": "/w/job1",
		"/w/loose.blend":                     "/w/loose.blend",
		"/elsewhere/scene.blend":             "/elsewhere",
		"/w2/job/scene.blend":                "/w2/job",
		"/w/../etc/scene.blend":              "/etc",
	}
	for blend, want := range tests {
		if got := r.inputPath(filepath.Clean(blend)); got != want {
			t.Errorf("inputPath(%s) = %s, want %s", blend, got, want)
		}
	}
	if got := (&Runner{}).inputPath("/w/job1/input/scene.blend"); got != "/w/job1/input" {
		t.Errorf("without JobsDir: %s", got)
	}
}

// Over its memory limit Blender crashes rather than reports; the error says
// the limit may be why.
func TestMemoryLimit(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	sb, err := sandbox.New(context.Background(), sandbox.Config{Mode: sandbox.Auto, MemoryBytes: 200 << 20, OpenFiles: 4096})
	if err != nil {
		t.Fatal(err)
	}
	r.Sandbox = sb
	_, err = r.Render(context.Background(), RenderJob{
		BlendPath: scene(t, "cube.blend"), Frames: []int{1}, OutputDir: t.TempDir(),
		Settings: Settings{Denoising: ptr(false)},
	}, nil)
	var re *RenderError
	if !errors.As(err, &re) || re.Frame != 1 || !strings.Contains(re.Line, "0.195 GiB of memory") {
		t.Fatalf("Render error = %v; want frame 1 and the memory limit", err)
	}
	t.Log(err)
}

// Every Blender the runner starts has --disable-autoexec, given to Blender
// and not to the sandbox around it, as the last of its flags: only the
// action (our script, or --version) follows.
func TestEveryBlenderDisablesAutoexec(t *testing.T) {
	t.Parallel()
	r, job, _ := fakeRunner(t, 0, "FAKE_SAVES=")
	if sb, err := testSandbox(); err == nil {
		r.Sandbox = sb
	}
	var argvs [][]string
	r.Wrap = func(argv []string) []string {
		argvs = append(argvs, argv)
		return argv
	}
	ctx := context.Background()
	_, _ = r.Version(ctx)
	_, _ = r.Inspect(ctx, job.BlendPath)
	_, _ = r.Render(ctx, job, nil)
	if len(argvs) != 3 {
		t.Fatalf("%d processes started, want 3", len(argvs))
	}
	for _, argv := range argvs {
		i := slices.Index(argv, r.Binary)
		j := slices.Index(argv, "--disable-autoexec")
		if i < 0 || j < i || j+1 >= len(argv) || (argv[j+1] != "--python" && argv[j+1] != "--version") {
			t.Errorf("argv without --disable-autoexec as Blender's last flag: %q", argv)
		}
	}
}
