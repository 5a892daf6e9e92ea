// Package dashboard drives the web dashboard of a real `renderfarm serve`
// (real Blender, real ffmpeg) with a real headless Chromium.
package dashboard

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once   sync.Once
	binary string
	err    error
	out    []byte
}

// renderfarmBinary builds the binary once for the package's tests, with
// the same flags as the e2e package so the two share the build cache. The
// build is lazy so that a skipped test costs nothing.
func renderfarmBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "renderfarm-dashboard-")
		if err != nil {
			build.err = err
			return
		}
		build.binary = filepath.Join(dir, "renderfarm")
		cmd := exec.Command("go", "build", "-race", "-o", build.binary, "../../cmd/renderfarm")
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("build renderfarm: %v\n%s", build.err, build.out)
	}
	return build.binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.binary != "" {
		os.RemoveAll(filepath.Dir(build.binary))
	}
	os.Exit(code)
}

// farm is one running `renderfarm serve` with a fresh data directory.
type farm struct {
	binary  string
	dataDir string
	url     string
	log     *logBuffer
}

func startFarm(t *testing.T) *farm {
	t.Helper()
	f := &farm{binary: renderfarmBinary(t), dataDir: t.TempDir(), log: &logBuffer{}}
	cmd := exec.Command(f.binary, "serve", "--addr", "127.0.0.1:0", "--metrics-addr", "", "--data-dir", f.dataDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = f.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "renderfarm serving at "); ok {
				urls <- u
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("renderfarm log:\n%s", f.log.String())
		}
	})
	select {
	case f.url = <-urls:
	case <-done:
		t.Fatalf("renderfarm serve exited at start:\n%s", f.log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("renderfarm serve did not start in 60 s:\n%s", f.log.String())
	}
	return f
}

// key creates an API key for a workspace with the real CLI.
func (f *farm) key(t *testing.T, workspace string) string {
	t.Helper()
	out, err := exec.Command(f.binary, "keys", "create", "--data-dir", f.dataDir, "--workspace", workspace).Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// scene is the path of a test scene made by testdata/scenes/make_scenes.py.
func scene(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "scenes", name)
}

// logBuffer collects the server's log; the process writes while tests read.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
