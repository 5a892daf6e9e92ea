package blender

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

func TestArgv(t *testing.T) {
	tests := []struct {
		name   string
		runner *Runner
		action []string
		want   []string
	}{
		{
			name:   "a session",
			runner: &Runner{},
			action: []string{"--python", "/run/session.py", "--", "/run/session.json"},
			want: []string{"blender", "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", "--disable-autoexec",
				"--python", "/run/session.py", "--", "/run/session.json"},
		},
		{
			name:   "threads",
			runner: &Runner{Binary: "/opt/blender/blender", Threads: 2},
			action: []string{"--python", "/run/session.py", "--", "/run/session.json"},
			want: []string{"/opt/blender/blender", "-b", "--factory-startup", "-noaudio", "-t", "2", "--python-exit-code", "1", "--disable-autoexec",
				"--python", "/run/session.py", "--", "/run/session.json"},
		},
		{
			name:   "version",
			runner: &Runner{},
			action: []string{"--version"},
			want:   []string{"blender", "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", "--disable-autoexec", "--version"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.runner.argv(tt.action...); !slices.Equal(got, tt.want) {
				t.Errorf("argv:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// blenderFlags are names a scene, a view layer, a camera, a .blend in a zip
// or a request's setting could take to pass for Blender's flags.
var blenderFlags = []string{
	"-y", "--enable-autoexec", "-Y", "--disable-autoexec", "-P", "--python", "--python-expr", "--python-text",
	"--python-console", "--python-exit-code", "--addons", "-S", "--scene", "-a", "--render-anim", "-f",
	"--render-frame", "-s", "-e", "-j", "-o", "--render-output", "-F", "-E", "--engine", "-t", "--threads",
	"--", "-", "-b", "--background", "-noaudio", "--factory-startup", "--env-system-scripts",
	"--app-template", "--log-file", "--debug-python", "-x", "--use-extension",
	"Scene\n-y", "-y --enable-autoexec", "--python-expr=import os",
}

// Whatever the names in a job (its scene, the .blend's name in its zip, the
// settings a request asks for), the command line of the Blender that
// renders it is the one a plain job gets: they reach Blender through
// session.py's JSON, never as arguments. (View layers and cameras are not
// chosen by the farm at all; Blender reads them from the file.)
func TestArgvHoldsNoNameOfTheJob(t *testing.T) {
	dir := t.TempDir()
	var argvs [][]string
	r := &Runner{TempDir: filepath.Join(dir, "tmp"), Threads: 2, Wrap: func(argv []string) []string {
		argvs = append(argvs, argv)
		return []string{"/bin/true"}
	}}
	if _, err := r.ClaimTempDir(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// argvFor answers the command line that renders a chunk of job, with
	// its run directory (new for every run) written RUN.
	argvFor := func(job RenderJob) []string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(job.BlendPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(job.BlendPath, []byte("BLENDER-v304"), 0o644); err != nil {
			t.Fatal(err)
		}
		argvs = nil
		_, err := r.Render(context.Background(), job, nil)
		if len(argvs) != 1 {
			t.Fatalf("%d Blenders started for one render, want 1 (%v)", len(argvs), err)
		}
		argv := slices.Clone(argvs[0])
		if i := slices.IndexFunc(argv, func(a string) bool { return strings.HasSuffix(a, "/session.py") }); i >= 0 {
			run := filepath.Dir(argv[i])
			for i := range argv {
				argv[i] = strings.ReplaceAll(argv[i], run, "RUN")
			}
		}
		return argv
	}
	plain := argvFor(RenderJob{BlendPath: filepath.Join(dir, "in", "scene.blend"), Scene: "Scene", Frames: []int{1, 2},
		OutputDir: filepath.Join(dir, "out", "plain")})
	want := r.argv("--python", "RUN/session.py", "--", "RUN/session.json")
	if !slices.Equal(plain, want) {
		t.Fatalf("argv of a plain job:\n got %q\nwant %q", plain, want)
	}
	for i, name := range blenderFlags {
		job := RenderJob{
			BlendPath: filepath.Join(dir, "in", strconv.Itoa(i), name+".blend"),
			Scene:     name,
			Frames:    []int{1, 2},
			OutputDir: filepath.Join(dir, "out", strconv.Itoa(i)),
			Settings:  Settings{Engine: name, OutputFormat: name, ColorManagement: name, ColorMode: name},
		}
		if got := argvFor(job); !slices.Equal(got, plain) {
			t.Errorf("names %q: argv\n got %q\nwant %q", name, got, plain)
		}
	}
}

func TestWrap(t *testing.T) {
	r := &Runner{Wrap: func(argv []string) []string {
		return append([]string{"bwrap", "--die-with-parent", "--"}, argv...)
	}}
	got := r.wrap([]string{"blender", "-b"})
	want := []string{"bwrap", "--die-with-parent", "--", "blender", "-b"}
	if !slices.Equal(got, want) {
		t.Errorf("wrap = %q, want %q", got, want)
	}
	if got := (&Runner{}).wrap([]string{"blender"}); !slices.Equal(got, []string{"blender"}) {
		t.Errorf("default wrap = %q", got)
	}
}

func TestEnvIsSmall(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("HOME", "/home/worker")
	r := &Runner{ExtraEnv: []string{"CUDA_VISIBLE_DEVICES=0", "HOME=/sandbox"}}
	env := r.env("/run/tmp")
	for _, kv := range env {
		if strings.HasPrefix(kv, "AWS_") {
			t.Errorf("env leaks %s", kv)
		}
	}
	for _, want := range []string{"TMPDIR=/run/tmp", "CUDA_VISIBLE_DEVICES=0", "HOME=/home/worker"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %s", env, want)
		}
	}
	// ExtraEnv comes last, so exec's last-one-wins rule lets it override.
	if last := env[len(env)-1]; last != "HOME=/sandbox" {
		t.Errorf("last entry = %q, want ExtraEnv's", last)
	}
}

func TestRenderRequest(t *testing.T) {
	off := false
	body, err := json.Marshal(renderRequestFor(RenderJob{
		Scene:     "Scene",
		OutputDir: "/out/chunk-1",
		Settings: Settings{
			Engine: "CYCLES", Samples: 16, ResolutionX: 1920, ResolutionY: 1080,
			OutputFormat: "OPEN_EXR", ColorDepth: "32", ExrCodec: "ZIP",
			Denoising: &off, ColorManagement: "aces",
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"scene":      "Scene",
		"outputPath": "/out/chunk-1/frame_####",
		"settings": map[string]any{
			"engine": "CYCLES", "samples": 16.0, "resolutionX": 1920.0, "resolutionY": 1080.0,
			"outputFormat": "OPEN_EXR", "colorDepth": "32", "exrCodec": "ZIP",
			// false is sent: it means "turn denoising off", not "keep".
			"denoising": false, "colorManagement": "aces",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("request JSON:\n got %v\nwant %v", got, want)
	}

	// Zero settings say nothing, so the script keeps the file's values.
	body, err = json.Marshal(renderRequestFor(RenderJob{OutputDir: "/out"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"outputPath":"/out/frame_####","settings":{}}`; string(body) != want {
		t.Errorf("empty request JSON = %s, want %s", body, want)
	}
}

func TestCheckJob(t *testing.T) {
	blend := filepath.Join(t.TempDir(), "a.blend")
	if err := os.WriteFile(blend, []byte("BLENDER-v304"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		job  RenderJob
		want string // "" for no error
	}{
		{"ok", RenderJob{BlendPath: blend, Frames: []int{1}, OutputDir: "/out"}, ""},
		{"frame zero", RenderJob{BlendPath: blend, Frames: []int{0}, OutputDir: "/out"}, ""},
		{"no blend", RenderJob{Frames: []int{1}, OutputDir: "/out"}, "no .blend"},
		{"missing blend", RenderJob{BlendPath: blend + ".gone", Frames: []int{1}, OutputDir: "/out"}, "no such file"},
		{"no frames", RenderJob{BlendPath: blend, OutputDir: "/out"}, "no frames"},
		{"negative frame", RenderJob{BlendPath: blend, Frames: []int{1, -3}, OutputDir: "/out"}, "negative"},
		{"no output", RenderJob{BlendPath: blend, Frames: []int{1}}, "no output"},
		{"hash in output", RenderJob{BlendPath: blend, Frames: []int{1}, OutputDir: "/out/#1"}, "'#'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := tt.job
			err := checkJob(&job)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkJob: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("checkJob error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestRenderErrorMessage(t *testing.T) {
	err := &RenderError{Frame: 1, Line: "Error: Build without OpenImageDenoiser", ExitCode: 1}
	want := "blender: frame 1 was not rendered (exit code 1): Error: Build without OpenImageDenoiser"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestLogTail(t *testing.T) {
	tail := newLogTail(3)
	if got := tail.lines(); len(got) != 0 {
		t.Errorf("empty tail = %q", got)
	}
	for i := 1; i <= 5; i++ {
		tail.add(fmt.Sprint(i))
		if i == 2 {
			if got := tail.lines(); !slices.Equal(got, []string{"1", "2"}) {
				t.Errorf("tail after 2 = %q", got)
			}
		}
	}
	if got := tail.lines(); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Errorf("tail after 5 = %q, want [3 4 5]", got)
	}
}

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	input := "first\r\n" + long + "\nbad \xff byte\nlast without newline"
	var got []string
	readLines(strings.NewReader(input), func(line string) { got = append(got, line) })
	want := []string{"first", long[:maxLineBytes], "bad \uFFFD byte", "last without newline"}
	if !slices.Equal(got, want) {
		t.Errorf("lines = %d %q…, want %d", len(got), got[0], len(want))
	}

	// A reader that fails still ends the loop.
	got = nil
	readLines(io.MultiReader(strings.NewReader("a\nb"), errReader{}), func(line string) { got = append(got, line) })
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("lines = %q, want [a b]", got)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, os.ErrClosed }

// A render under a memory limit that fails for lack of memory says the
// limit may be why, whether Blender crashed, could not read the file it
// read fine at validation, or ran out of memory in Python.
func TestExplainRenderFailure(t *testing.T) {
	limited, err := sandbox.New(context.Background(), sandbox.Config{Mode: sandbox.None, MemoryBytes: 200 << 20})
	if err != nil {
		t.Fatal(err)
	}
	const hint = "it may have needed more than the 0.195 GiB of memory"
	readFailure := "Error: Failed to read blend file '/jobs/a/scene.blend': Missing DNA block"
	tests := []struct {
		name     string
		sandbox  *sandbox.Sandbox
		line     string
		status   exitStatus
		wantHint bool
	}{
		{"crash under a limit", limited, "Blender was killed by signal segmentation fault", exitStatus{exitCode: -1, signal: syscall.SIGSEGV}, true},
		{"read failure under a limit", limited, readFailure, exitStatus{exitCode: 1}, true},
		{"Python out of memory under a limit", limited, "MemoryError", exitStatus{exitCode: 1}, true},
		{"another error under a limit", limited, "Error: engine 'X' is not available", exitStatus{exitCode: 1}, false},
		{"read failure without a limit", nil, readFailure, exitStatus{exitCode: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := (&Runner{Sandbox: tt.sandbox}).explainRenderFailure(tt.line, tt.status)
			if !strings.HasPrefix(got, tt.line) || strings.Contains(got, hint) != tt.wantHint {
				t.Errorf("explainRenderFailure(%q) = %q; want the line, with the hint: %v", tt.line, got, tt.wantHint)
			}
		})
	}
}
