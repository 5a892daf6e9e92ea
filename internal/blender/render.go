package blender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// logTailLines is how much of Blender's output a chunk keeps as its log.
const logTailLines = 200

// RenderJob is one chunk of frames to render in one Blender process: a
// Blender start costs about a second, so a chunk amortises it over its
// frames.
type RenderJob struct {
	BlendPath string
	// Scene is the scene to render; "" renders the file's active scene.
	Scene string
	// Frames are the frames of the chunk, in render order. They may skip
	// (a frame step) but may not be negative: Blender's -f reads "-N" as
	// "N frames before the end".
	Frames []int
	// OutputDir receives the frames as frame_0001.png and so on (at least
	// four digits, Blender's extension for the format). It is created if
	// needed.
	OutputDir string
	Settings  Settings
}

// Settings are the render settings a request may change. Zero values keep
// what the file has, so an empty Settings renders the file as saved.
type Settings struct {
	// Engine is Blender's identifier: CYCLES, BLENDER_EEVEE,
	// BLENDER_WORKBENCH.
	Engine string `json:"engine,omitempty"`
	// Samples sets Cycles' or EEVEE's render samples (ignored by Workbench).
	Samples              int `json:"samples,omitempty"`
	ResolutionX          int `json:"resolutionX,omitempty"`
	ResolutionY          int `json:"resolutionY,omitempty"`
	ResolutionPercentage int `json:"resolutionPercentage,omitempty"`
	// OutputFormat is Blender's identifier (PNG, JPEG, OPEN_EXR, TIFF,
	// BMP, …). Movie formats are refused: the farm renders still frames, and
	// a file saved with one renders PNG.
	OutputFormat string `json:"outputFormat,omitempty"`
	ColorMode    string `json:"colorMode,omitempty"`  // BW, RGB, RGBA
	ColorDepth   string `json:"colorDepth,omitempty"` // "8", "16", "32"
	ExrCodec     string `json:"exrCodec,omitempty"`   // ZIP, PIZ, DWAA, …
	TiffCodec    string `json:"tiffCodec,omitempty"`  // NONE, DEFLATE, LZW, PACKBITS
	Compression  int    `json:"compression,omitempty"`
	Quality      int    `json:"quality,omitempty"`
	// Denoising, when set, turns Cycles denoising on or off for the scene
	// and every view layer. A Blender without OpenImageDenoise (Debian's)
	// fails every frame with it on.
	Denoising *bool `json:"denoising,omitempty"`
	// UseTiling and TileSize set Cycles' tiled rendering, which bounds
	// memory on large frames.
	UseTiling *bool `json:"useTiling,omitempty"`
	TileSize  int   `json:"tileSize,omitempty"`
	FPS       int   `json:"fps,omitempty"`
	// ColorManagement is a view transform or a preset: "" and "default"
	// keep the file's; other values ("aces", "Filmic", …) must match a view
	// transform of this Blender (case aside; a preset may match the start of
	// a name) or the render fails before its first frame.
	ColorManagement string `json:"colorManagement,omitempty"`
}

// RenderResult is what a chunk produced, also when it failed: frames saved
// before a failure are good and need not be rendered again.
type RenderResult struct {
	FramesSaved []int
	// LogTail is the last lines of Blender's output, kept as the chunk's log.
	LogTail []string
}

// RenderError is returned when Blender failed or did not save every frame of
// the chunk.
type RenderError struct {
	// Frame is the first frame of the chunk that was not saved, or -1 when
	// all were saved and Blender still failed.
	Frame int
	// Line is Blender's most relevant line about it: its first error line
	// (an "Error: …" line, a Python exception), or else its last words.
	Line string
	// ExitCode is Blender's exit code, -1 if it was killed by a signal.
	ExitCode int
}

func (e *RenderError) Error() string {
	if e.Frame < 0 {
		return fmt.Sprintf("blender: render failed after saving every frame (exit code %d): %s", e.ExitCode, e.Line)
	}
	return fmt.Sprintf("blender: frame %d was not rendered (exit code %d): %s", e.Frame, e.ExitCode, e.Line)
}

// renderRequest is the JSON render_settings.py reads.
type renderRequest struct {
	Scene      string   `json:"scene,omitempty"`
	OutputPath string   `json:"outputPath"`
	Settings   Settings `json:"settings"`
}

// Render renders job's frames in one Blender process. onEvent, if not nil,
// is called as Blender reports progress, in order and never concurrently,
// and not after Render returns; it should return quickly, as Blender waits
// while its output is not read.
//
// The result is returned also with an error, holding the frames saved so
// far and the log. A cancelled ctx kills Blender's whole process group and
// returns ctx's error (within about a second); a failed render returns a
// *RenderError.
func (r *Runner) Render(ctx context.Context, job RenderJob, onEvent func(Event)) (*RenderResult, error) {
	return r.render(ctx, job, onEvent, nil)
}

// render is Render with a hook that sees every raw line, for capturing logs.
func (r *Runner) render(ctx context.Context, job RenderJob, onEvent func(Event), onLine func(string)) (*RenderResult, error) {
	if err := checkJob(&job); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(job.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	dir, tmp, err := r.runDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script, err := writeScript(dir, "render_settings.py")
	if err != nil {
		return nil, err
	}
	settingsPath := filepath.Join(dir, "settings.json")
	body, err := settingsJSON(job)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(settingsPath, body, 0o600); err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}

	out := newChunkOutput(job, onEvent, onLine)
	runCtx, dog, stopWatchdog := startWatchdog(ctx, r.FrameTimeout)
	defer stopWatchdog()
	status, runErr := r.run(runCtx, command{
		argv:  r.renderArgv(job, script, settingsPath),
		env:   r.env(tmp),
		paths: r.renderPaths(job, dir),
		onRead: func(line string) {
			if savedRe.MatchString(line) {
				dog.feed()
			}
		},
	}, out.line)
	out.flush()
	timedOut := runErr != nil && ctx.Err() == nil && stalled(runCtx)
	if runErr != nil && !timedOut {
		return out.result, fmt.Errorf("blender: rendering frames %s: %w", frameList(job.Frames), runErr)
	}
	return out.result, out.verdict(r, status, timedOut, "Blender exited without saving the frame; its last line: ")
}

// chunkOutput follows what Blender prints while it renders a chunk: the
// frames it saves, its first error line and the last lines of its log.
type chunkOutput struct {
	frames     []int
	parser     Parser
	tail       *logTail
	result     *RenderResult
	firstError string
	onEvent    func(Event)
	onLine     func(string)
}

func newChunkOutput(job RenderJob, onEvent func(Event), onLine func(string)) *chunkOutput {
	return &chunkOutput{frames: job.Frames, tail: newLogTail(logTailLines), result: &RenderResult{},
		onEvent: onEvent, onLine: onLine}
}

// line takes one line of Blender's output.
func (c *chunkOutput) line(line string) {
	if c.onLine != nil {
		c.onLine(line)
	}
	c.tail.add(line)
	for _, ev := range c.parser.Feed(line) {
		c.handle(ev)
	}
}

// flush ends the output: a saved frame whose time line never came is
// reported now.
func (c *chunkOutput) flush() {
	for _, ev := range c.parser.Flush() {
		c.handle(ev)
	}
	c.result.LogTail = c.tail.lines()
}

func (c *chunkOutput) handle(ev Event) {
	switch ev.Kind {
	case FrameSaved:
		if !slices.Contains(c.result.FramesSaved, ev.Frame) {
			c.result.FramesSaved = append(c.result.FramesSaved, ev.Frame)
		}
	case ErrorLine:
		if c.firstError == "" {
			c.firstError = ev.Line
		}
	}
	if c.onEvent != nil {
		c.onEvent(ev)
	}
}

// verdict judges the chunk once its output is complete: nil when every
// frame was saved and Blender did not fail, else a *RenderError naming the
// first frame not saved and Blender's most telling line. unsaved prefixes
// Blender's last line when it failed to save a frame without saying why.
func (c *chunkOutput) verdict(r *Runner, status exitStatus, timedOut bool, unsaved string) error {
	unfinished := -1
	for _, f := range c.frames {
		if !slices.Contains(c.result.FramesSaved, f) {
			unfinished = f
			break
		}
	}
	if unfinished < 0 && !status.failed() {
		return nil
	}
	if timedOut && unfinished >= 0 {
		return &RenderError{Frame: unfinished, ExitCode: status.exitCode,
			Line: fmt.Sprintf("Blender rendered nothing for %v; killed", r.FrameTimeout)}
	}
	line := c.firstError
	if line == "" {
		line = lastMeaningfulLine(c.result.LogTail, status)
		if !status.failed() {
			line = unsaved + line
		}
	}
	return &RenderError{Frame: unfinished, Line: r.explainRenderFailure(line, status), ExitCode: status.exitCode}
}

// explainRenderFailure is explainCrash for a render, plus one more sign of
// the memory limit: a file that validation read fine but that Blender now
// fails to read ("Failed to read blend file …: Missing DNA block", seen
// with a 200 MiB limit, the allocation failing while the file loads rather
// than killing Blender).
func (r *Runner) explainRenderFailure(line string, status exitStatus) string {
	if status.signal == 0 && strings.Contains(line, "Failed to read blend file") {
		return r.withMemoryHint(line)
	}
	return r.explainCrash(line, status)
}

// explainCrash adds to the line about a Blender that crashed that the
// memory limit may be why: Blender does not report a failed allocation, it
// dies of it.
func (r *Runner) explainCrash(line string, status exitStatus) string {
	switch status.signal {
	case syscall.SIGSEGV, syscall.SIGABRT, syscall.SIGBUS:
		return r.withMemoryHint(line)
	}
	return line
}

// withMemoryHint adds to line that the memory limit, if there is one, may
// be why.
func (r *Runner) withMemoryHint(line string) string {
	if limit := r.Sandbox.MemoryLimit(); limit > 0 {
		return fmt.Sprintf("%s (it may have needed more than the %.3g GiB of memory a Blender may use on this worker)", line, float64(limit)/(1<<30))
	}
	return line
}

// renderPaths are what a confined render may use: the job's files to read,
// its run directory (scripts, settings, TMPDIR) and the output directory to
// write.
func (r *Runner) renderPaths(job RenderJob, runDir string) sandbox.Paths {
	return sandbox.Paths{
		ReadOnly: []string{r.inputPath(job.BlendPath)},
		Writable: []string{runDir, job.OutputDir},
	}
}

// checkJob refuses what Blender would misread and makes paths absolute,
// since Blender resolves relative output paths against the .blend's folder.
func checkJob(job *RenderJob) error {
	if job.BlendPath == "" {
		return errors.New("blender: render job has no .blend file")
	}
	if len(job.Frames) == 0 {
		return errors.New("blender: render job has no frames")
	}
	for _, f := range job.Frames {
		if f < 0 {
			return fmt.Errorf("blender: frame %d: negative frames cannot be rendered with -f", f)
		}
	}
	if job.OutputDir == "" {
		return errors.New("blender: render job has no output directory")
	}
	// Blender turns runs of # in the output path into the frame number.
	if strings.Contains(job.OutputDir, "#") {
		return fmt.Errorf("blender: output directory %q contains '#'", job.OutputDir)
	}
	var err error
	if job.BlendPath, err = filepath.Abs(job.BlendPath); err != nil {
		return fmt.Errorf("blender: %w", err)
	}
	if job.OutputDir, err = filepath.Abs(job.OutputDir); err != nil {
		return fmt.Errorf("blender: %w", err)
	}
	if _, err := os.Stat(job.BlendPath); err != nil {
		return fmt.Errorf("blender: %w", err)
	}
	return nil
}

// settingsJSON is what render_settings.py is given for job.
func settingsJSON(job RenderJob) ([]byte, error) {
	body, err := json.Marshal(renderRequest{
		Scene:      job.Scene,
		OutputPath: filepath.Join(job.OutputDir, "frame_####"),
		Settings:   job.Settings,
	})
	if err != nil {
		return nil, fmt.Errorf("blender: %w", err)
	}
	return body, nil
}

// renderArgv is the command line of a render, before Wrap. Blender reads its
// arguments in order: the file loads, -S picks the scene, -t applies to the
// renders, the script adjusts the scene, and -f renders.
func (r *Runner) renderArgv(job RenderJob, script, settingsPath string) []string {
	argv := append([]string{r.binary()}, baseArgs...)
	argv = append(argv, "--python-exit-code", "1", job.BlendPath)
	if job.Scene != "" {
		argv = append(argv, "-S", job.Scene)
	}
	if r.Threads > 0 {
		argv = append(argv, "-t", strconv.Itoa(r.Threads))
	}
	return append(argv,
		"--python", script,
		"-f", frameList(job.Frames),
		"--", settingsPath)
}

// frameList is Blender's -f syntax for frames: "1,2,5".
func frameList(frames []int) string {
	parts := make([]string, len(frames))
	for i, f := range frames {
		parts[i] = strconv.Itoa(f)
	}
	return strings.Join(parts, ",")
}

// logTail keeps the last n lines of a log.
type logTail struct {
	buf  []string
	next int
	full bool
}

func newLogTail(n int) *logTail { return &logTail{buf: make([]string, n)} }

func (t *logTail) add(line string) {
	t.buf[t.next] = line
	t.next++
	if t.next == len(t.buf) {
		t.next, t.full = 0, true
	}
}

func (t *logTail) lines() []string {
	if !t.full {
		return slices.Clone(t.buf[:t.next])
	}
	return append(slices.Clone(t.buf[t.next:]), t.buf[:t.next]...)
}
