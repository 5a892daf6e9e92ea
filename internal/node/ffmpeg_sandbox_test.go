package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/sandbox"
	"github.com/renderfarm/renderfarm/internal/sandbox/sandboxtest"
)

// needSandbox returns the sandbox a worker makes with --sandbox bwrap, and
// skips the test where bubblewrap is not installed.
func needSandbox(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	requireFFmpeg(t)
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap is not on PATH: install bubblewrap (apt-get install bubblewrap) to run the tests of the sandbox")
	}
	sb, err := sandbox.New(context.Background(), sandbox.Config{Mode: sandbox.Bwrap, OpenFiles: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

// runFFmpeg runs ffmpeg with args as the engine runs it, working in dir,
// and answers its output and whether it succeeded.
func runFFmpeg(t *testing.T, n *Node, dir string, args ...string) (string, bool) {
	t.Helper()
	cmd, lifeline, err := n.ffmpegCommand(context.Background(), dir, append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...)
	if err != nil {
		t.Fatalf("ffmpegCommand: %v", err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		lifeline.Close()
		t.Fatalf("start ffmpeg: %v", err)
	}
	lifeline.Started()
	err = cmd.Wait()
	lifeline.Close()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("ffmpeg: %v", err)
	}
	return strings.TrimSpace(out.String()), err == nil
}

// TestSandboxedFFmpegReadsOnlyItsOwnDirectory: ffmpeg converts an image in
// its directory, but cannot open another job's frame nor the node's files,
// which the same command reads when unconfined.
func TestSandboxedFFmpegReadsOnlyItsOwnDirectory(t *testing.T) {
	sb := needSandbox(t)
	t.Parallel()
	confined := &Node{cfg: Config{FFmpeg: "ffmpeg", Sandbox: sb}}
	unconfined := &Node{cfg: Config{FFmpeg: "ffmpeg"}}
	image := grayFrames(t, 1, ".png")[0]
	dir, other := t.TempDir(), t.TempDir()
	own, secret := filepath.Join(dir, "frame.png"), filepath.Join(other, "secret.png")
	for _, path := range []string{own, secret} {
		if err := os.WriteFile(path, image, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if out, ok := runFFmpeg(t, confined, dir, "-i", own, filepath.Join(dir, "copy.bmp")); !ok {
		t.Fatalf("confined ffmpeg could not convert a frame in its own directory: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "copy.bmp")); err != nil {
		t.Errorf("confined ffmpeg wrote nothing in its own directory: %v", err)
	}
	for _, path := range []string{secret, "/etc/shadow"} {
		if _, err := os.Stat(path); err != nil {
			continue
		}
		if out, ok := runFFmpeg(t, unconfined, dir, "-f", "image2pipe", "-i", path, "-f", "null", "-"); path == secret && !ok {
			t.Fatalf("unconfined ffmpeg could not read %s either: %s", path, out)
		}
		out, ok := runFFmpeg(t, confined, dir, "-f", "image2pipe", "-i", path, "-f", "null", "-")
		if ok || !strings.Contains(out, "No such file or directory") {
			t.Errorf("confined ffmpeg reading %s: ok %v, %q; want it refused, the file not there", path, ok, out)
		} else {
			t.Logf("refused as it should be: %s", out)
		}
	}
	out, ok := runFFmpeg(t, confined, dir, "-i", own, filepath.Join(other, "leak.bmp"))
	if _, err := os.Stat(filepath.Join(other, "leak.bmp")); ok || err == nil {
		t.Errorf("confined ffmpeg wrote outside its directory: ok %v, %q", ok, out)
	} else {
		t.Logf("refused as it should be: %s", out)
	}
}

// TestSandboxedFFmpegHasNoNetwork: ffmpeg fetches an image over HTTP from
// this machine when unconfined, and reaches nothing when confined: it
// fails to connect, and the server sees no request.
func TestSandboxedFFmpegHasNoNetwork(t *testing.T) {
	sb := needSandbox(t)
	t.Parallel()
	image := grayFrames(t, 1, ".png")[0]
	var requests atomic.Int32
	bases := sandboxtest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "image/png")
		w.Write(image)
	}))
	confined := &Node{cfg: Config{FFmpeg: "ffmpeg", Sandbox: sb}}
	unconfined := &Node{cfg: Config{FFmpeg: "ffmpeg"}}
	dir := t.TempDir()
	for _, base := range bases {
		url := base + "/frame.png"
		before := requests.Load()
		if out, ok := runFFmpeg(t, unconfined, dir, "-i", url, "-f", "null", "-"); !ok || requests.Load() == before {
			t.Fatalf("unconfined ffmpeg could not fetch %s: %s", url, out)
		}
		before = requests.Load()
		out, ok := runFFmpeg(t, confined, dir, "-i", url, "-f", "null", "-")
		if ok || requests.Load() != before {
			t.Errorf("confined ffmpeg fetched %s (ok %v, %d requests): %s", url, ok, requests.Load()-before, out)
		}
		if !strings.Contains(out, "Connection refused") && !strings.Contains(out, "Network is unreachable") {
			t.Errorf("confined ffmpeg fetching %s failed for another reason than the network: %s", url, out)
		}
		t.Logf("confined ffmpeg fetching %s: %s", url, out)
	}
}

// TestFinalizeMakesThePreviewInsideTheSandbox finalizes as a confined
// worker does: the preview is the same video, from frames piped to ffmpeg
// (PNG) and from numbered files it reads in its directory (TIFF).
func TestFinalizeMakesThePreviewInsideTheSandbox(t *testing.T) {
	sb := needSandbox(t)
	t.Parallel()
	for _, ext := range []string{".png", ".tif"} {
		t.Run(ext, func(t *testing.T) {
			t.Parallel()
			const frames = 12
			images := grayFrames(t, frames, ext)
			f := newFixture(t, enginetest.SQLite)
			f.node.cfg.Sandbox = sb
			job := f.RenderingJob(f.api, frames, 6)
			f.renderImages(job.ID, ext, images)
			if err := f.finalize(job.ID); err != nil {
				t.Fatalf("finalize: %v", err)
			}
			done := f.Job(job.ID)
			if done.Status != farm.StatusCompleted {
				t.Fatalf("job = %s (%+v), want completed", done.Status, done.FailedReason)
			}
			f.checkFramesZip(done, ext, images)
			f.checkPreview(done, frames, 24)
		})
	}
}

// ffmpegWorkerEnv, when set to "MODE TOKEN DIR", makes
// TestFFmpegDiesWithItsWorker the worker: with the sandbox of MODE (bwrap or
// none) it starts an ffmpeg working in DIR that encodes an endless input
// into an output named TOKEN, says so, and waits to be killed. DIR is the
// test's, since the killed worker cannot remove a directory of its own.
const ffmpegWorkerEnv = "RENDERFARM_TEST_FFMPEG_WORKER"

// TestFFmpegDiesWithItsWorker kills -9 a worker process while its ffmpeg
// runs, confined and unconfined: ffmpeg dies with it. Its input is endless
// and none of its pipes lead to the worker, so only the kernel's
// parent-death signal can end it.
func TestFFmpegDiesWithItsWorker(t *testing.T) {
	if v := os.Getenv(ffmpegWorkerEnv); v != "" {
		mode, rest, _ := strings.Cut(v, " ")
		token, dir, _ := strings.Cut(rest, " ")
		sb, err := sandbox.New(context.Background(), sandbox.Config{Mode: sandbox.Mode(mode)})
		if err != nil {
			t.Fatal(err)
		}
		n := &Node{cfg: Config{FFmpeg: "ffmpeg", Sandbox: sb}}
		cmd, lifeline, err := n.ffmpegCommand(context.Background(), dir, "-hide_banner", "-loglevel", "error",
			"-re", "-f", "lavfi", "-i", "color=c=black:s=16x16:r=5", "-f", "null", token)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lifeline.Started()
		fmt.Println("ffmpeg started")
		select {}
	}
	needSandbox(t)
	for _, mode := range []sandbox.Mode{sandbox.Bwrap, sandbox.None} {
		t.Run(string(mode), func(t *testing.T) {
			// The token is ffmpeg's output name, so the test can find it.
			token := "endless-" + randomHex(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestFFmpegDiesWithItsWorker$", "-test.v")
			cmd.Env = append(os.Environ(), ffmpegWorkerEnv+"="+string(mode)+" "+token+" "+t.TempDir())
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			started := make(chan struct{})
			go func() {
				buf := make([]byte, 4096)
				var seen []byte
				for {
					n, err := stdout.Read(buf)
					seen = append(seen, buf[:n]...)
					if bytes.Contains(seen, []byte("ffmpeg started")) {
						close(started)
						return
					}
					if err != nil {
						return
					}
				}
			}()
			select {
			case <-started:
			case <-time.After(30 * time.Second):
				t.Fatal("the worker did not start ffmpeg within 30 s")
			}
			// The sandbox takes a moment to start ffmpeg.
			var mine []int
			for deadline := time.Now().Add(10 * time.Second); len(mine) == 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no ffmpeg under the worker 10 s after it was started")
				}
				for _, pid := range processesCalled(t, "ffmpeg", token) {
					if descendsFrom(pid, cmd.Process.Pid) {
						mine = append(mine, pid)
					}
				}
			}
			if len(mine) != 1 {
				t.Fatalf("found %d ffmpeg processes under the worker (%v), want 1", len(mine), mine)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			deadline := time.Now().Add(10 * time.Second)
			for alive(mine[0]) {
				if time.Now().After(deadline) {
					syscall.Kill(mine[0], syscall.SIGKILL)
					t.Fatalf("ffmpeg (pid %d) still ran 10 s after its worker was killed", mine[0])
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// processesWith lists the processes called comm whose command line holds
// arg.
func processesCalled(t *testing.T, comm, arg string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		name, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(name)) != comm {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && bytes.Contains(cmdline, []byte(arg)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// descendsFrom reports whether pid is a descendant of ancestor.
func descendsFrom(pid, ancestor int) bool {
	for pid > 1 {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// The parent is the second field after the command's parenthesis.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 {
			return false
		}
		if pid, err = strconv.Atoi(fields[1]); err != nil {
			return false
		}
		if pid == ancestor {
			return true
		}
	}
	return false
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// An ffmpeg that a hostile frame took over, confined, leaves under the
// video's name a link to a file of the node's, or a named pipe: the node
// stores no preview (nor that file), does not hang, and the job completes
// with its frames.
func TestAPreviewLeftAsALinkOrAPipeIsNotStored(t *testing.T) {
	sb := needSandbox(t)
	t.Parallel()
	for name, leave := range map[string]string{
		"link": `ln -s "$SECRET" "$last"`,
		"pipe": `mkfifo "$last"`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, enginetest.SQLite)
			secret := filepath.Join(f.Dir, "url-signing.key")
			if err := os.WriteFile(secret, []byte("the node's secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			// It reads its frames, then leaves its last argument, the
			// video's path, as the test says.
			taken := filepath.Join(t.TempDir(), "ffmpeg")
			script := "#!/bin/sh\nSECRET=" + secret + "\ncat >/dev/null\nfor last; do :; done\n" + leave + "\n"
			if err := os.WriteFile(taken, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			f.node.cfg.Sandbox, f.node.cfg.FFmpeg = sb, taken
			job := f.RenderingJob(f.api, 3, 3)
			images := grayFrames(t, 3, ".png")
			f.renderImages(job.ID, ".png", images)

			f.checkCompletedWithoutPreview(job.ID, images)
		})
	}
}
