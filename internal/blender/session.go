package blender

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// ErrSessionClosed is returned by a session that was closed or whose
// Blender is gone.
var ErrSessionClosed = errors.New("blender: the session has ended")

// SessionSpec says what a session loads and where it may write.
type SessionSpec struct {
	// BlendPath is the .blend the session loads, once, at its start.
	BlendPath string
	// Scene is the scene it renders; "" is the file's active scene.
	// session.py chooses it when the first render configures the session.
	Scene string
	// OutputRoot is the directory every render's OutputDir must lie in: a
	// confined Blender may write there and in its run directory only. It
	// is made if needed. A session without one only inspects.
	OutputRoot string
}

// Session is one Blender process kept running with a .blend loaded, which
// inspects it and renders chunk after chunk of its frames as asked. Starting
// Blender and loading the file is paid once instead of for every chunk:
// about 0.5 s a chunk for a small scene, minutes for a large one. It talks
// to session.py: a command a line on Blender's stdin, and lines with a
// nonce of the worker's on stdout, which say when a frame begins and when
// its file is written, and end the command once Blender's own output for it
// has been flushed (see session.py). A one-off inspection or render is a
// session given one command.
//
// A session renders with one set of settings: the first render applies
// them, and every later render must ask for the same. It runs one command at
// a time; a failed command, a timeout or a canceled context ends it.
type Session struct {
	r    *Runner
	spec SessionSpec
	dir  string // the run directory: scripts, JSON files, TMPDIR
	// runDir and outputRoot are handles on dir and spec.OutputRoot (nil
	// without one), opened before Blender started: Blender may write in
	// both, so what the farm reads there it opens from these, following
	// no link Blender could have put in the way.
	runDir     *os.File
	outputRoot *os.File

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
	// format is the format Blender writes frames in, and layout what else
	// a frame makes, once configured.
	format imageFormat
	layout *outputLayout
	broken bool

	mu      sync.Mutex // guards current and between
	current *sessionCommand
	// between keeps what Blender prints while no command runs (loading the
	// file, above all), for the next command's log and errors.
	between *logTail
	// saved feeds the watchdog of the command under way when its script
	// says a frame's file is written.
	saved atomic.Pointer[savedFeed]
}

// savedFeed is a watchdog and the start of the line that feeds it.
type savedFeed struct {
	dog    *watchdog
	marker string
}

// sessionCommand is a command under way: the output it causes goes to out,
// and done receives whether it succeeded when its end line arrives.
type sessionCommand struct {
	ok, failed string // the end lines
	out        *chunkOutput
	done       chan bool
}

// sessionFile is the JSON session.py reads at its start (see session.py).
type sessionFile struct {
	BlendPath string `json:"blendPath"`
}

// StartSession starts Blender on spec.BlendPath in a session. It returns at
// once; a Blender that cannot start or load the file makes the first
// command fail.
func (r *Runner) StartSession(spec SessionSpec) (*Session, error) {
	var err error
	if spec.BlendPath, err = filepath.Abs(spec.BlendPath); err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	if _, err := os.Stat(spec.BlendPath); err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	s := &Session{r: r, spec: spec, scene: spec.Scene, between: newLogTail(logTailLines), exited: make(chan struct{})}
	fail := func(err error) (*Session, error) {
		s.closeFiles()
		if s.dir != "" {
			os.RemoveAll(s.dir)
		}
		return nil, err
	}
	paths := sandbox.Paths{ReadOnly: []string{r.inputPath(spec.BlendPath)}}
	if spec.OutputRoot != "" {
		if s.spec.OutputRoot, err = filepath.Abs(spec.OutputRoot); err != nil {
			return nil, fmt.Errorf("blender: %w", err)
		}
		if err := os.MkdirAll(s.spec.OutputRoot, 0o755); err != nil {
			return nil, fmt.Errorf("blender: %w", err)
		}
		if s.outputRoot, err = openDir(s.spec.OutputRoot); err != nil {
			return nil, fmt.Errorf("blender: %w", err)
		}
		paths.Writable = append(paths.Writable, s.spec.OutputRoot)
	}
	dir, tmp, err := r.runDir()
	if err != nil {
		return fail(err)
	}
	s.dir = dir
	paths.Writable = append(paths.Writable, dir)
	if s.runDir, err = openDir(dir); err != nil {
		return fail(fmt.Errorf("blender: %w", err))
	}
	var script string
	for _, name := range []string{"inspect.py", "outputs.py", "render_settings.py", "split.py", "session.py"} {
		if script, err = writeScript(dir, name); err != nil {
			return fail(err)
		}
	}
	// Written before Blender starts, into a directory it has not seen.
	body, err := json.Marshal(sessionFile{BlendPath: s.spec.BlendPath})
	if err != nil {
		return fail(fmt.Errorf("blender: %w", err))
	}
	sessionPath := filepath.Join(dir, "session.json")
	if err := os.WriteFile(sessionPath, body, 0o600); err != nil {
		return fail(fmt.Errorf("blender: %w", err))
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrNotStarted, err))
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stdin, s.stop = stdinW, stop
	argv := r.argv("--python", script, "--", sessionPath)
	go func() {
		// run holds this goroutine's thread for Blender's whole life (see
		// sysProcAttr): a session outlives the calls that use it.
		s.status, s.runErr = r.run(ctx, command{
			argv:  argv,
			env:   r.env(tmp),
			paths: paths,
			stdin: stdinR,
			onRead: func(line string) {
				if f := s.saved.Load(); f != nil && strings.Contains(line, f.marker) {
					f.dog.feed()
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
	s.closeFiles()
	os.RemoveAll(s.dir)
}

func (s *Session) closeFiles() {
	for _, f := range []*os.File{s.runDir, s.outputRoot} {
		if f != nil {
			f.Close()
		}
	}
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
	s.saved.Store(&savedFeed{dog: dog, marker: signalPrefix + nonce + " saved "})
	defer s.saved.Store(nil)
	s.mu.Lock()
	out.parser.Nonce = nonce
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
func (s *Session) Inspect(ctx context.Context) (*farm.Inspection, error) {
	s.busy.Lock()
	defer s.busy.Unlock()
	const name = "inspection.json"
	os.Remove(filepath.Join(s.dir, name))
	out := newChunkOutput(RenderJob{}, nil, nil)
	ok, status, timedOut, err := s.do(ctx, map[string]any{"op": "inspect", "out": filepath.Join(s.dir, name)}, out)
	out.finish()
	abs := s.spec.BlendPath
	if err != nil {
		return nil, fmt.Errorf("blender: inspecting %s: %w", filepath.Base(abs), err)
	}
	insp, err := s.r.inspection(abs, s.runDir, name, ok, status, timedOut, out.firstError, out.result.LogTail)
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
	return s.loaded(job) && (s.settings == "" || s.settings == settings)
}

// reloads reports whether the session could render job once reloaded
// (see Reload): it holds job's file and scene, whatever settings it has
// applied.
func (s *Session) reloads(job RenderJob) bool {
	s.busy.Lock()
	defer s.busy.Unlock()
	return s.loaded(job)
}

// loaded reports whether the session holds job's file and scene. The
// caller holds s.busy.
func (s *Session) loaded(job RenderJob) bool {
	if s.broken || job.BlendPath != s.spec.BlendPath {
		return false
	}
	if job.Scene != "" && job.Scene != s.scene {
		return false
	}
	return job.Scene != "" || s.spec.Scene == ""
}

// Reload loads the session's file again, as at its start, and forgets the
// settings applied, so that the session can render with others (another
// part of a split frame) or merge a split frame: that costs the file's
// load, not Blender's start as well. Whatever the commands before changed
// in the scene is gone: the next render configures the file as it is on
// disk. A session that has applied no settings is left as it is; a failed
// reload ends the session.
func (s *Session) Reload(ctx context.Context) error {
	s.busy.Lock()
	defer s.busy.Unlock()
	if s.settings == "" && !s.broken {
		return nil
	}
	out := newChunkOutput(RenderJob{}, nil, nil)
	ok, _, _, err := s.do(ctx, map[string]any{"op": "reload"}, out)
	out.finish()
	if err == nil && !ok {
		err = errors.New(cmp.Or(out.firstError, "the file did not load again"))
	}
	if err != nil {
		return fmt.Errorf("blender: reloading %s: %w", filepath.Base(s.spec.BlendPath), err)
	}
	s.settings, s.format, s.layout = "", imageFormat{}, nil
	return nil
}

// Render renders job's frames in the session, as Runner.Render does in a
// session of its own, with the same events, result and errors. job must
// name the session's file, its scene (or none) and, after the first render,
// the same settings; its OutputDir must lie in the session's OutputRoot.
// A failed render, a timeout or a canceled ctx ends the session.
func (s *Session) Render(ctx context.Context, job RenderJob, onEvent func(Event)) (*RenderResult, error) {
	return s.render(ctx, job, onEvent, nil)
}

// render is Render with a hook that sees every line, for capturing logs.
func (s *Session) render(ctx context.Context, job RenderJob, onEvent func(Event), onLine func(string)) (*RenderResult, error) {
	if err := checkJob(&job); err != nil {
		return nil, err
	}
	if s.outputRoot == nil {
		return nil, errors.New("blender: the session has no output directory to render into")
	}
	rel, err := filepath.Rel(s.spec.OutputRoot, job.OutputDir)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("blender: output directory %s is outside the session's %s", job.OutputDir, s.spec.OutputRoot)
	}
	request := renderRequestFor(job)
	settings, err := jsonString(job.Settings)
	if err != nil {
		return nil, err
	}
	if !s.renders(job, settings) {
		return nil, fmt.Errorf("blender: the session cannot render this job (another file, scene or settings)")
	}
	s.busy.Lock()
	defer s.busy.Unlock()
	outDir, err := openSubdir(s.outputRoot, rel)
	if err != nil {
		s.broken = true
		return nil, fmt.Errorf("blender: output directory: %w", err)
	}
	defer outDir.Close()

	out := newChunkOutput(job, onEvent, onLine)
	out.dir, out.outputDir = outDir, job.OutputDir
	ok, status, timedOut, err := s.configure(ctx, job, request, settings, out)
	var refused *RenderError
	if errors.As(err, &refused) {
		out.finish()
		return out.result, err
	}
	if ok && err == nil {
		out.files = newFrameFiles(s.layout, s.format, job.Naming)
		// Whether it ended well shows in status and the frames saved.
		ok, status, timedOut, err = s.do(ctx, map[string]any{"op": "render", "frames": job.Frames, "outputDir": job.OutputDir}, out)
		if err == nil {
			out.findUnsignalled(ok)
		}
	}
	out.finish()
	if err != nil {
		return out.result, fmt.Errorf("blender: rendering frames %s: %w", frameList(job.Frames), err)
	}
	return out.result, out.verdict(s.r, status, timedOut)
}

// configure applies job's settings (request, and settings in JSON) once,
// with the first command's output: an error in them fails that command as
// it fails a render process. A layout or format the farm cannot follow is
// a *RenderError naming the job's first frame. The caller holds s.busy.
func (s *Session) configure(ctx context.Context, job RenderJob, request renderRequest, settings string, out *chunkOutput) (ok bool, status exitStatus, timedOut bool, err error) {
	if s.settings != "" {
		return true, exitStatus{}, false, nil
	}
	const layoutName = "layout.json"
	os.Remove(filepath.Join(s.dir, layoutName))
	ok, status, timedOut, err = s.do(ctx, map[string]any{"op": "configure", "request": request, "out": filepath.Join(s.dir, layoutName)}, out)
	if !ok || err != nil {
		return ok, status, timedOut, err
	}
	format, err := outputFormat(job.Settings.OutputFormat, out.parser.output)
	var layout *outputLayout
	if err == nil {
		layout, err = readLayout(s.runDir, layoutName)
	}
	if err != nil {
		s.broken = true
		return false, status, false, &RenderError{Frame: job.Frames[0], Line: err.Error()}
	}
	s.settings, s.format, s.layout = settings, format, layout
	return true, status, false, nil
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
