package blender

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// ErrSessionClosed is returned by a session that was closed or whose
// Blender is gone.
var ErrSessionClosed = errors.New("blender: the session has ended")

// SessionSpec says what a session loads and where it may write.
type SessionSpec struct {
	// BlendPath is the .blend the session loads, once, at its start.
	BlendPath string
	// Scene is the scene it renders (-S); "" is the file's active scene.
	Scene string
	// OutputRoot is the directory every render's OutputDir must lie in: a
	// confined Blender may write there and in its run directory only. It
	// is made if needed.
	OutputRoot string
}

// Session is one Blender process kept running with a .blend loaded, which
// inspects it and renders chunk after chunk of its frames as asked. Starting
// Blender and loading the file is paid once instead of for every chunk:
// about 0.5 s a chunk for a small scene, minutes for a large one. It talks
// to session.py: a command a line on Blender's stdin, and an end line with a
// nonce of the worker's on stdout once Blender's own output for the command
// has been flushed (see session.py).
//
// A session renders with one set of settings: the first render applies
// them, and every later render must ask for the same. It runs one command at
// a time; a failed command, a timeout or a canceled context ends it.
type Session struct {
	r    *Runner
	spec SessionSpec
	dir  string // the run directory: scripts, JSON files, TMPDIR

	stdin  *os.File // the write end of Blender's stdin
	stop   context.CancelFunc
	exited chan struct{}
	status exitStatus // how Blender ended; set before exited is closed
	runErr error

	busy sync.Mutex // one command at a time; guards the fields below
	// scene is the scene renders get: the one the session started with, or
	// the file's active scene once inspected; "" while unknown.
	scene string
	// settings is the JSON of the render settings applied; "" before the
	// first render.
	settings string
	broken   bool

	mu      sync.Mutex // guards current and between
	current *sessionCommand
	// between keeps what Blender prints while no command runs (loading the
	// file, above all), for the next command's log and errors.
	between *logTail
	dog     atomic.Pointer[watchdog]
}

// sessionCommand is a command under way: the output it causes goes to out,
// and done receives whether it succeeded when its end line arrives.
type sessionCommand struct {
	ok, failed string // the end lines
	out        *chunkOutput
	done       chan bool
}

// StartSession starts Blender on spec.BlendPath in a session. It returns at
// once; a Blender that cannot start or load the file makes the first
// command fail.
func (r *Runner) StartSession(spec SessionSpec) (*Session, error) {
	var err error
	if spec.BlendPath, err = filepath.Abs(spec.BlendPath); err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	if spec.OutputRoot == "" {
		return nil, errors.New("blender: a session needs an output directory")
	}
	if spec.OutputRoot, err = filepath.Abs(spec.OutputRoot); err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	if _, err := os.Stat(spec.BlendPath); err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	if err := os.MkdirAll(spec.OutputRoot, 0o755); err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	dir, tmp, err := r.runDir()
	if err != nil {
		return nil, err
	}
	var script string
	for _, name := range []string{"inspect.py", "render_settings.py", "session.py"} {
		if script, err = writeScript(dir, name); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w: %v", ErrNotStarted, err)
	}

	ctx, stop := context.WithCancel(context.Background())
	s := &Session{r: r, spec: spec, dir: dir, stdin: stdinW, stop: stop, exited: make(chan struct{}),
		scene: spec.Scene, between: newLogTail(logTailLines)}
	argv := append([]string{r.binary()}, baseArgs...)
	argv = append(argv, "--python-exit-code", "1", spec.BlendPath)
	if spec.Scene != "" {
		argv = append(argv, "-S", spec.Scene)
	}
	if r.Threads > 0 {
		argv = append(argv, "-t", strconv.Itoa(r.Threads))
	}
	argv = append(argv, "--python", script)
	go func() {
		// run holds this goroutine's thread for Blender's whole life (see
		// sysProcAttr): a session outlives the calls that use it.
		s.status, s.runErr = r.run(ctx, command{
			argv:  argv,
			env:   r.env(tmp),
			paths: sandbox.Paths{ReadOnly: []string{r.inputPath(spec.BlendPath)}, Writable: []string{dir, spec.OutputRoot}},
			stdin: stdinR,
			onRead: func(line string) {
				if d := s.dog.Load(); d != nil && savedRe.MatchString(line) {
					d.feed()
				}
			},
		}, s.onLine)
		close(s.exited)
	}()
	return s, nil
}

// Spec answers what the session loaded.
func (s *Session) Spec() SessionSpec { return s.spec }

// Alive reports whether the session's Blender still runs and can take a
// command.
func (s *Session) Alive() bool {
	select {
	case <-s.exited:
		return false
	default:
	}
	s.busy.Lock()
	defer s.busy.Unlock()
	return !s.broken
}

// Close ends Blender and removes the session's run directory.
func (s *Session) Close() {
	s.stop()
	<-s.exited
	s.stdin.Close()
	os.RemoveAll(s.dir)
}

// onLine routes a line of Blender's output to the command under way.
func (s *Session) onLine(line string) {
	s.mu.Lock()
	cmd := s.current
	if cmd == nil {
		s.between.add(line)
		s.mu.Unlock()
		return
	}
	end := strings.HasSuffix(line, cmd.ok)
	if end || strings.HasSuffix(line, cmd.failed) {
		s.current = nil
		s.mu.Unlock()
		cmd.done <- end
		return
	}
	s.mu.Unlock()
	// Outside the lock: out may call back into the engine, which stores
	// frames; only this goroutine touches a command's output.
	cmd.out.line(line)
}

// do sends one command and waits for its end. It reports whether the
// command succeeded and how Blender ended if it did not survive it; after
// a failure the session is broken. The caller holds s.busy.
func (s *Session) do(ctx context.Context, op map[string]any, out *chunkOutput) (ok bool, status exitStatus, timedOut bool, err error) {
	if s.broken {
		return false, exitStatus{}, false, ErrSessionClosed
	}
	nonce, err := newNonce()
	if err != nil {
		return false, exitStatus{}, false, err
	}
	op["nonce"] = nonce
	line, err := json.Marshal(op)
	if err != nil {
		return false, exitStatus{}, false, fmt.Errorf("blender: %w", err)
	}
	cmd := &sessionCommand{
		ok:     "renderfarm-session " + nonce + " ok",
		failed: "renderfarm-session " + nonce + " failed",
		out:    out,
		done:   make(chan bool, 1),
	}

	runCtx, dog, stopWatchdog := startWatchdog(ctx, s.r.FrameTimeout)
	defer stopWatchdog()
	s.dog.Store(dog)
	defer s.dog.Store(nil)
	s.mu.Lock()
	s.current = cmd
	// The lines Blender printed since the last command (loading the file,
	// for the first) belong to this one's log.
	for _, l := range s.between.lines() {
		out.line(l)
	}
	s.between = newLogTail(logTailLines)
	s.mu.Unlock()

	if _, werr := s.stdin.Write(append(line, '\n')); werr != nil {
		// Blender is gone (or going): what it said is its exit status.
		s.stop()
	}
	select {
	case ok = <-cmd.done:
	case <-s.exited:
	case <-runCtx.Done():
		s.stop()
		<-s.exited
	}
	if !ok {
		// A command that ended with its end line may still have been beaten
		// by the select; it counts.
		select {
		case ok = <-cmd.done:
		default:
		}
	}
	s.mu.Lock()
	s.current = nil
	s.mu.Unlock()
	if ok {
		return true, exitStatus{}, false, nil
	}
	s.broken = true
	select {
	case <-s.exited:
		status = s.status
		if s.runErr != nil && !status.canceled {
			return false, status, false, s.runErr
		}
	default:
		// The script reported the failure; Blender would have exited with
		// --python-exit-code's 1.
		status = exitStatus{exitCode: 1}
	}
	if ctx.Err() != nil {
		return false, status, false, ctx.Err()
	}
	return false, status, stalled(runCtx), nil
}

// Inspect describes the loaded file as Runner.Inspect does, and makes its
// active scene the one the session renders.
func (s *Session) Inspect(ctx context.Context) (*Inspection, error) {
	s.busy.Lock()
	defer s.busy.Unlock()
	outPath := filepath.Join(s.dir, "inspection.json")
	os.Remove(outPath)
	out := newChunkOutput(RenderJob{}, nil, nil)
	ok, status, timedOut, err := s.do(ctx, map[string]any{"op": "inspect", "out": outPath}, out)
	out.flush()
	abs := s.spec.BlendPath
	if err != nil {
		return nil, fmt.Errorf("blender: inspecting %s: %w", filepath.Base(abs), err)
	}
	insp, err := s.r.inspection(abs, outPath, ok, status, timedOut, out.firstError, out.result.LogTail)
	if err != nil {
		s.broken = true
		return nil, err
	}
	if s.scene == "" {
		s.scene = insp.ActiveScene
	}
	return insp, nil
}

// renders reports whether the session can render job: the same file and
// scene, and either no settings applied yet or the same ones.
func (s *Session) renders(job RenderJob, settings string) bool {
	s.busy.Lock()
	defer s.busy.Unlock()
	if s.broken || job.BlendPath != s.spec.BlendPath {
		return false
	}
	if job.Scene != "" && job.Scene != s.scene {
		return false
	}
	if job.Scene == "" && s.spec.Scene != "" {
		return false
	}
	return s.settings == "" || s.settings == settings
}

// Render renders job's frames in the session, as Runner.Render does in a
// process of its own, with the same events, result and errors. job must
// name the session's file, its scene (or none) and, after the first render,
// the same settings; its OutputDir must lie in the session's OutputRoot.
// A failed render, a timeout or a canceled ctx ends the session.
func (s *Session) Render(ctx context.Context, job RenderJob, onEvent func(Event)) (*RenderResult, error) {
	if err := checkJob(&job); err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(s.spec.OutputRoot, job.OutputDir); err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("blender: output directory %s is outside the session's %s", job.OutputDir, s.spec.OutputRoot)
	}
	if err := os.MkdirAll(job.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	request, err := settingsJSON(job)
	if err != nil {
		return nil, err
	}
	settings, err := jsonString(job.Settings)
	if err != nil {
		return nil, err
	}
	if !s.renders(job, settings) {
		return nil, fmt.Errorf("blender: the session cannot render this job (another file, scene or settings)")
	}
	s.busy.Lock()
	defer s.busy.Unlock()

	out := newChunkOutput(job, onEvent, nil)
	ok, status, timedOut := true, exitStatus{}, false
	if s.settings == "" {
		// The settings are applied once, with this chunk's output: an error
		// in them fails the chunk as it fails a render process.
		path := filepath.Join(s.dir, "settings.json")
		if err := os.WriteFile(path, request, 0o600); err != nil {
			return nil, fmt.Errorf("blender: %w", err)
		}
		ok, status, timedOut, err = s.do(ctx, map[string]any{"op": "configure", "request": path}, out)
		if ok {
			s.settings = settings
		}
	}
	if ok && err == nil {
		// Whether it ended well shows in status and the frames saved.
		_, status, timedOut, err = s.do(ctx, map[string]any{"op": "render", "frames": job.Frames, "outputDir": job.OutputDir}, out)
	}
	out.flush()
	if err != nil {
		return out.result, fmt.Errorf("blender: rendering frames %s: %w", frameList(job.Frames), err)
	}
	return out.result, out.verdict(s.r, status, timedOut, "Blender did not save the frame; its last line: ")
}

// jsonString is v in JSON, to compare settings.
func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("blender: %w", err)
	}
	return string(b), nil
}

func newNonce() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("blender: %w", err)
	}
	return hex.EncodeToString(b), nil
}
