package blender

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeBlender stands in for Blender in the tests of the frame timeout. It
// answers session.py's commands on stdin: a configure writes the layout
// of a scene that makes its frames' images alone; a render's frames are those of
// $FAKE_SAVES, each "rendering" for $FAKE_PAUSE_TENTHS tenths of a second
// (a progress line every tenth) before its file is written and said to be;
// with $FAKE_HANG set, an inspection, or a render once its frames are done,
// hangs for a minute. It tests the watchdog, not rendering.
const fakeBlender = `#!/bin/sh
while IFS= read -r line; do
	nonce=${line#*'"nonce":"'}
	nonce=${nonce%%'"'*}
	case "$line" in
	*'"op":"configure"'*)
		layout=${line#*'"out":"'}
		layout=${layout%%'"'*}
		echo '{"format": "PNG", "codec": "", "outputPath": "//", "useFileExtension": true, "multiview": null, "fileOutputNodes": [], "proxy": false}' > "$layout"
		echo "renderfarm-session $nonce output PNG JP2"
		;;
	*'"op":"inspect"'*)
		if [ -n "$FAKE_HANG" ]; then exec sleep 60; fi
		;;
	*'"op":"render"'*)
		out=${line#*'"outputDir":"'}
		out=${out%%'"'*}
		for f in $FAKE_SAVES; do
			echo "renderfarm-session $nonce frame $f"
			t=0
			while [ "$t" -lt "$FAKE_PAUSE_TENTHS" ]; do
				echo "Fra:$f Mem:1.00M (Peak 1.00M) | Time:00:00.10 | Scene, ViewLayer | Sample $t/1000000"
				sleep 0.1
				t=$((t + 1))
			done
			printf '\211PNG\r\n\032\n' > "$out/frame_000$f.png"
			echo "renderfarm-session $nonce saved $f 0.1"
		done
		if [ -n "$FAKE_HANG" ]; then exec sleep 60; fi
		;;
	esac
	echo "renderfarm-session $nonce ok"
done
`

// fakeRunner returns a Runner whose "Blender" is fakeBlender, and a job for
// frames whose pid file records the process group.
func fakeRunner(t *testing.T, timeout time.Duration, env ...string) (*Runner, RenderJob, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "blender")
	if err := os.WriteFile(bin, []byte(fakeBlender), 0o755); err != nil {
		t.Fatal(err)
	}
	blend := filepath.Join(dir, "scene.blend")
	if err := os.WriteFile(blend, []byte("BLENDER-v304"), 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "pid")
	r := &Runner{
		Binary:       bin,
		FrameTimeout: timeout,
		ExtraEnv:     env,
		Wrap:         recordPID(pidFile),
	}
	return r, RenderJob{BlendPath: blend, Frames: []int{1, 2, 3}, OutputDir: filepath.Join(dir, "out")}, pidFile
}

func TestFrameTimeoutKillsAHungRender(t *testing.T) {
	t.Parallel()
	r, job, pidFile := fakeRunner(t, 300*time.Millisecond, "FAKE_SAVES=1", "FAKE_PAUSE_TENTHS=1", "FAKE_HANG=1")
	start := time.Now()
	res, err := r.Render(context.Background(), job, nil)
	elapsed := time.Since(start)
	var re *RenderError
	if !errors.As(err, &re) {
		t.Fatalf("Render error = %v, want a *RenderError", err)
	}
	if re.Frame != 2 || re.Line != "Blender rendered nothing for 300ms; killed" || re.ExitCode != -1 {
		t.Errorf("RenderError = %+v; want frame 2, the timeout, killed", re)
	}
	if !slices.Equal(res.FramesSaved, []int{1}) {
		t.Errorf("FramesSaved = %v, want [1]", res.FramesSaved)
	}
	// Frame 1 took 0.1 s, then 0.3 s without a frame, then the kill.
	if elapsed > 3*time.Second {
		t.Errorf("Render returned after %v", elapsed)
	}
	pid := readPID(t, pidFile)
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still exists (kill: %v)", pid, err)
	}
	t.Log(err)
}

// A render that saves frames more often than the timeout lives as long as it
// needs: the timeout is per frame, not per chunk.
func TestFrameTimeoutRestartsAtEachFrame(t *testing.T) {
	t.Parallel()
	// Eight frames of 0.2 s each under a 1 s timeout: a frame fails only
	// if it takes five times as long as it should.
	r, job, _ := fakeRunner(t, time.Second, "FAKE_SAVES=1 2 3 4 5 6 7 8", "FAKE_PAUSE_TENTHS=2")
	job.Frames = []int{1, 2, 3, 4, 5, 6, 7, 8}
	start := time.Now()
	res, err := r.Render(context.Background(), job, nil)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("the render took %v, not the 1.6 s that outlasts the timeout", d)
	}
	if !slices.Equal(res.FramesSaved, job.Frames) {
		t.Errorf("FramesSaved = %v", res.FramesSaved)
	}
}

// Output is not progress: a Blender that keeps printing samples but saves
// nothing is stopped all the same.
func TestFrameTimeoutIgnoresChatter(t *testing.T) {
	t.Parallel()
	r, job, _ := fakeRunner(t, 300*time.Millisecond, "FAKE_SAVES=1", "FAKE_PAUSE_TENTHS=600")
	_, err := r.Render(context.Background(), job, nil)
	var re *RenderError
	if !errors.As(err, &re) || re.Frame != 1 || !strings.Contains(re.Line, "rendered nothing for 300ms") {
		t.Fatalf("Render error = %v; want frame 1 and the timeout", err)
	}
}

// Cancelling is not a timeout: the caller's context error comes back, so the
// engine hands the chunk back rather than counting a failed attempt.
func TestFrameTimeoutLeavesCancelAlone(t *testing.T) {
	t.Parallel()
	r, job, _ := fakeRunner(t, time.Minute, "FAKE_SAVES=1", "FAKE_PAUSE_TENTHS=600")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := r.Render(ctx, job, nil)
	var re *RenderError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &re) {
		t.Fatalf("Render error = %v; want the context's", err)
	}
}

// The real Blender, with a frame that takes longer than the timeout.
func TestFrameTimeoutBlender(t *testing.T) {
	r := needBlender(t)
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	r.Wrap = recordPID(pidFile)
	r.FrameTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := r.Render(context.Background(), RenderJob{
		BlendPath: scene(t, "cube.blend"),
		Frames:    []int{1, 2},
		OutputDir: filepath.Join(dir, "out"),
		Settings:  Settings{Denoising: ptr(false), Samples: 256, ResolutionX: 640, ResolutionY: 360},
	}, nil)
	var re *RenderError
	if !errors.As(err, &re) {
		t.Fatalf("Render error = %v, want a *RenderError", err)
	}
	if re.Frame != 1 || re.Line != "Blender rendered nothing for 300ms; killed" {
		t.Errorf("RenderError = %+v; want frame 1 and the timeout", re)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Render returned after %v", d)
	}
	pid := readPID(t, pidFile)
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still exists (kill: %v)", pid, err)
	}
	t.Log(err)
}

func TestInspectTimeout(t *testing.T) {
	t.Parallel()
	r, job, _ := fakeRunner(t, 300*time.Millisecond, "FAKE_SAVES=", "FAKE_HANG=1")
	_, err := r.Inspect(context.Background(), job.BlendPath)
	var ie *InspectError
	if !errors.As(err, &ie) || ie.Line != "Blender did not finish reading the file in 300ms; killed" {
		t.Fatalf("Inspect error = %v; want an InspectError for the timeout", err)
	}
}
