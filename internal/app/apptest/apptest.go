// Package apptest runs `renderfarm serve` for end-to-end tests: as an
// app.Main in the test's own process, which starts in a moment and whose
// services a test can reach, or, for the tests whose point is a real
// process (killed with SIGKILL, stopped with SIGTERM, started in a
// directory of its own), as the real binary, built once.
package apptest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/service"
)

// startTimeout bounds a start: Blender's first run and the database's
// migrations take seconds, a race-enabled build on a busy machine more.
const startTimeout = 60 * time.Second

// stopTimeout bounds a stop, beyond which a process is killed.
const stopTimeout = 60 * time.Second

// Farm is one `renderfarm serve` of a test, on a data directory of its own
// that outlives restarts.
type Farm struct {
	T testing.TB
	// DataDir holds the farm's database and objects.
	DataDir string
	// Args are serve's flags besides --addr, --metrics-addr and --data-dir.
	Args []string
	// Cwd, for a process, is its working directory; with it, serve is
	// given no --data-dir, and DataDir must be the default's place in Cwd.
	Cwd string
	// URL is where the API answers, once started.
	URL string
	// Log is everything the farm logged, over every start.
	Log *LogBuffer

	process bool

	main   *app.Main
	cancel context.CancelFunc

	proc *Process
}

// New is a farm in the test's process, not yet started, on a fresh data
// directory.
func New(t testing.TB, args ...string) *Farm {
	return &Farm{T: t, DataDir: t.TempDir(), Args: args, Log: &LogBuffer{}}
}

// NewProcess is a farm that runs the real binary, not yet started.
func NewProcess(t testing.TB, args ...string) *Farm {
	f := New(t, args...)
	f.process = true
	return f
}

// Start starts a farm in the test's process and stops it when the test
// ends.
func Start(t testing.TB, args ...string) *Farm {
	t.Helper()
	f := New(t, args...)
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

// StartProcess starts a farm that runs the real binary and stops it when
// the test ends.
func StartProcess(t testing.TB, args ...string) *Farm {
	t.Helper()
	f := NewProcess(t, args...)
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

// args are the command line of serve, past "serve". No unauthenticated
// metrics address unless a test asks for one: the default port would be
// taken by the first of the farms running at once.
func (f *Farm) args() []string {
	args := []string{"--addr", "127.0.0.1:0", "--metrics-addr", ""}
	if f.Cwd == "" {
		args = append(args, "--data-dir", f.DataDir)
	}
	return append(args, f.Args...)
}

// Start starts the farm, again after a stop, on the same data directory.
func (f *Farm) Start() {
	f.T.Helper()
	if f.process {
		f.startProcess()
		return
	}
	cfg, err := app.ParseConfig(app.Serve, f.args(), app.NewFlagSet("serve", f.Log))
	if err != nil {
		f.T.Fatalf("serve %v: %v", f.Args, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := app.NewMain(cfg, f.Log)
	if err := m.Run(ctx); err != nil {
		m.Close()
		cancel()
		f.T.Fatalf("renderfarm serve did not start: %v\n%s", err, f.Log.String())
	}
	f.main, f.cancel, f.URL = m, cancel, m.URL()
}

// Main is the running farm's process, for a test that reaches into its
// services; nil for a farm that runs the binary.
func (f *Farm) Main() *app.Main { return f.main }

// Stop stops the farm as SIGTERM does, waiting for running work up to
// --shutdown-timeout. A process that does not stop in a minute is killed.
func (f *Farm) Stop() {
	f.T.Helper()
	switch {
	case f.main != nil:
		if err := f.main.Close(); err != nil {
			f.T.Errorf("stop renderfarm serve: %v", err)
		}
		f.cancel()
		f.main = nil
	case f.running():
		f.Terminate()
	default:
		return
	}
	if f.T.Failed() {
		f.T.Logf("renderfarm log:\n%s", f.Log.String())
	}
}

// Kill kills the farm's process with SIGKILL and waits for it: nothing of
// it runs after. Only a farm that runs the binary can be killed.
func (f *Farm) Kill() {
	f.T.Helper()
	if !f.process {
		f.T.Fatal("apptest: only a farm of NewProcess can be killed; start it with StartProcess")
	}
	f.proc.Kill()
}

// Terminate sends the farm's process SIGTERM and answers its exit code.
func (f *Farm) Terminate() int {
	f.T.Helper()
	if !f.running() {
		f.T.Fatal("apptest: Terminate of a farm that runs no process")
	}
	return f.proc.Terminate(f.T)
}

// Signal sends the farm's process sig, without waiting for anything.
func (f *Farm) Signal(sig os.Signal) {
	f.T.Helper()
	if !f.running() {
		f.T.Fatal("apptest: Signal to a farm that runs no process")
	}
	if err := f.proc.Cmd.Process.Signal(sig); err != nil {
		f.T.Fatal(err)
	}
}

// Wait waits for the farm's process to exit, for up to a minute, and
// answers its exit code.
func (f *Farm) Wait() int {
	f.T.Helper()
	select {
	case <-f.proc.done:
	case <-time.After(stopTimeout):
		f.proc.Kill()
		f.T.Fatalf("renderfarm did not exit within %v:\n%s", stopTimeout, f.Log.String())
	}
	return f.proc.Cmd.ProcessState.ExitCode()
}

func (f *Farm) running() bool { return f.proc != nil && f.proc.Running() }

// startProcess runs the binary until it says it serves, which is where
// its URL is.
func (f *Farm) startProcess() {
	f.T.Helper()
	f.proc = StartCommand(f.T, f.Cwd, f.Log, "renderfarm serving at ", append([]string{"serve"}, f.args()...)...)
	f.URL = f.proc.Ready
}

// Process is a renderfarm process of a test: the binary, running.
type Process struct {
	Cmd *exec.Cmd
	Log *LogBuffer
	// Ready is the rest of the line of its standard output that said it
	// was up.
	Ready string
	done  chan struct{}
}

// StartCommand runs `renderfarm args…` in dir (the test's own, if "") with
// its log in log, and waits for a line of its standard output that starts
// with ready. It does not stop it: see Terminate and Kill.
func StartCommand(t testing.TB, dir string, log *LogBuffer, ready string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(Binary(t), args...), Log: log, done: make(chan struct{})}
	p.Cmd.Dir = dir
	stdout, err := p.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd.Stderr = log
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), ready); ok {
				select {
				case up <- rest:
				default:
				}
			}
		}
	}()
	go func() { _ = p.Cmd.Wait(); close(p.done) }()
	select {
	case p.Ready = <-up:
	case <-p.done:
		t.Fatalf("renderfarm %s exited at start:\n%s", args[0], log.String())
	case <-time.After(startTimeout):
		_ = p.Cmd.Process.Kill()
		t.Fatalf("renderfarm %s did not start in %v:\n%s", args[0], startTimeout, log.String())
	}
	return p
}

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill kills the process with SIGKILL and waits for it to be gone.
func (p *Process) Kill() {
	if !p.Running() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Terminate sends the process SIGTERM and answers its exit code, failing
// the test if it does not exit within a minute (it is killed then).
func (p *Process) Terminate(t testing.TB) int {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil && p.Running() {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.Kill()
		t.Fatalf("renderfarm did not stop within %v of SIGTERM:\n%s", stopTimeout, p.Log.String())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Key creates an API key for a workspace: on the farm's database, as
// `renderfarm keys create` does.
func (f *Farm) Key(workspace string) string {
	f.T.Helper()
	if f.main == nil {
		out, err := exec.Command(Binary(f.T), "keys", "create", "--data-dir", f.DataDir, "--workspace", workspace).Output()
		if err != nil {
			f.T.Fatalf("keys create: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	key, err := service.CreateAPIKey(f.T.Context(), f.main.Store(), workspace)
	if err != nil {
		f.T.Fatalf("create an API key: %v", err)
	}
	return key
}

// LogBuffer collects a farm's log, written while tests read it.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write adds to the log.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is the log so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The renderfarm binary, built once for a test binary's tests.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary builds the renderfarm binary on first use, with the race
// detector when the tests run with it, so that races in the commands
// themselves are caught too (same flags as every package's, so the build
// cache serves them all).
func Binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "renderfarm-bin-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "renderfarm")
		args := []string{"build", "-o", built.path}
		if raceEnabled() {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, modulePath+"/cmd/renderfarm")...)
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("build renderfarm: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

const modulePath = "github.com/renderfarm/renderfarm"

// moduleRoot is the repository's root, where this file lies three levels
// down.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// Main runs a package's tests (call it from TestMain) and removes the
// binary if one was built.
func Main(m *testing.M) int {
	code := m.Run()
	if built.dir != "" {
		if err := os.RemoveAll(built.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(os.Stderr, "apptest:", err)
		}
	}
	return code
}

// RequireTools skips a test when Blender or ffmpeg is not installed, with
// a message that says how to get them (scripts/test.sh installs both).
func RequireTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"blender", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; scripts/test.sh installs it", tool)
		}
	}
}
