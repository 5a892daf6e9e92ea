// Package e2e drives the real renderfarm binary, with the real Blender and
// ffmpeg, through the public client package, checking every response
// against the OpenAPI document.
package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/httpapi/apitest"
)

// binary is the renderfarm binary built once for all tests.
var binary string

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "renderfarm-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "renderfarm")
	cmd := exec.Command("go", "build", "-race", "-o", binary, "../cmd/renderfarm")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("build renderfarm: %w", err)
	}
	return m.Run(), nil
}

// requireTools skips a test when Blender or ffmpeg is not installed, with a
// message that says how to get them (scripts/test.sh installs both).
func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"blender", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; scripts/test.sh installs it", tool)
		}
	}
}

// farm is one running `renderfarm serve`.
type farm struct {
	t       *testing.T
	dataDir string
	// cwd, if set, is serve's working directory, and serve is given no
	// --data-dir: dataDir is then the default's place in cwd.
	cwd  string
	args []string
	cmd  *exec.Cmd
	url  string
	log  *logBuffer
	done chan struct{}
}

// startFarm starts serve on a free port with a fresh data directory.
func startFarm(t *testing.T, args ...string) *farm {
	t.Helper()
	requireTools(t)
	f := &farm{t: t, dataDir: t.TempDir(), args: args}
	f.start()
	t.Cleanup(func() { f.stop(syscall.SIGTERM) })
	return f
}

func (f *farm) start() {
	f.t.Helper()
	// No unauthenticated metrics address unless a test asks for one: the
	// default port would be taken by the first of the farms running at once.
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", "", "--data-dir", f.dataDir}, f.args...)
	if f.cwd != "" {
		args = append([]string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", ""}, f.args...)
	}
	cmd := exec.Command(binary, args...)
	cmd.Dir = f.cwd
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	f.log = &logBuffer{}
	cmd.Stderr = f.log
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.cmd = cmd
	f.done = make(chan struct{})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, "renderfarm serving at "); ok {
				urls <- u
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(f.done) }()
	select {
	case f.url = <-urls:
	case <-f.done:
		f.t.Fatalf("renderfarm serve exited at start:\n%s", f.log.String())
	case <-time.After(60 * time.Second):
		f.t.Fatalf("renderfarm serve did not start in 60 s:\n%s", f.log.String())
	}
	resp, err := http.Get(f.url + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		f.t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

// stop ends the server with sig and waits for it.
func (f *farm) stop(sig syscall.Signal) {
	if f.cmd == nil || f.cmd.Process == nil {
		return
	}
	select {
	case <-f.done:
		return
	default:
	}
	_ = f.cmd.Process.Signal(sig)
	select {
	case <-f.done:
	case <-time.After(60 * time.Second):
		_ = f.cmd.Process.Kill()
		<-f.done
	}
	if f.t.Failed() {
		f.t.Logf("renderfarm log:\n%s", f.log.String())
	}
}

// key creates an API key for a workspace with the real CLI.
func (f *farm) key(workspace string) string {
	f.t.Helper()
	out, err := exec.Command(binary, "keys", "create", "--data-dir", f.dataDir, "--workspace", workspace).Output()
	if err != nil {
		f.t.Fatalf("keys create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// client returns an API client for a workspace whose every exchange is
// checked against the OpenAPI document.
func (f *farm) client(workspace string) *client.Client {
	return f.clientWith(workspace, apitest.ValidatingTransport(f.t, http.DefaultTransport))
}

// lenientClient is client for tests that send requests the API document
// forbids on purpose: the answers are still checked against it.
func (f *farm) lenientClient(workspace string) *client.Client {
	return f.clientWith(workspace, apitest.LenientTransport(f.t, http.DefaultTransport))
}

func (f *farm) clientWith(workspace string, transport http.RoundTripper) *client.Client {
	hc := &http.Client{Transport: transport, Timeout: 2 * time.Minute}
	return client.New(f.url, f.key(workspace), client.WithHTTPClient(hc), client.WithPollInterval(100*time.Millisecond))
}

// scene is the path of a test scene made by testdata/scenes/make_scenes.py.
func scene(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "scenes", name)
}

// submit uploads a file and creates its job.
func submit(ctx context.Context, t *testing.T, c *client.Client, path string) *client.Job {
	t.Helper()
	slug, err := c.UploadFile(ctx, path, nil)
	if err != nil {
		t.Fatalf("upload %s: %v", path, err)
	}
	job, err := c.CreateJob(ctx, slug)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	if job.Status != client.StatusCreated {
		t.Fatalf("new job status = %s, want created", job.Status)
	}
	return job
}

// validate validates a job and waits for the outcome.
func validate(ctx context.Context, t *testing.T, c *client.Client, id string) *client.Job {
	t.Helper()
	if _, err := c.Validate(ctx, id); err != nil {
		t.Fatalf("validate: %v", err)
	}
	job, err := c.Wait(ctx, id, client.UntilStatus(client.StatusValidated, client.StatusFailed), nil)
	if err != nil {
		t.Fatalf("wait for validation: %v", err)
	}
	return job
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
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

func writeFile(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

func asExitError(err error, target **exec.ExitError) bool {
	return errors.As(err, target)
}
