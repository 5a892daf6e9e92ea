package blender

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
	// (a frame step) but may not be negative, as the farm's frame ranges
	// never are.
	Frames []int
	// OutputDir receives the frames as frame_0001.png and so on (at least
	// four digits, Blender's extension for the format; frame_0001_L.png
	// for a view), and every other file a frame makes below it
	// (scripts/outputs.py). It is created if needed, and should hold
	// nothing else: the farm takes each file from its name there.
	OutputDir string
	Settings  Settings
	// Naming is how the frames are named for download: farm.NamingFarm
	// (frame_0001.png; also for "") or farm.NamingScene (after the scene's
	// output path). It changes no file Blender writes.
	Naming string
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
	// ComputeDeviceType, when set (CUDA, OPTIX, HIP, ONEAPI, METAL),
	// renders Cycles on GPUDevices of this node's GPUs of that type,
	// through Cycles' preferences; a Blender that sees fewer fails before
	// the first frame, naming what it sees. "" renders as the file says.
	ComputeDeviceType string `json:"computeDeviceType,omitempty"`
	GPUDevices        int    `json:"gpuDevices,omitempty"`
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
	// Part, when set, renders only this part of the frame (see Part); the
	// job then has one frame, and its file is the part's float OpenEXR.
	Part *Part `json:"part,omitempty"`
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

// renderRequest is what a session's configure command carries to
// render_settings.py.
type renderRequest struct {
	Scene      string   `json:"scene,omitempty"`
	OutputPath string   `json:"outputPath"`
	Settings   Settings `json:"settings"`
}

// Render renders job's frames in a Blender of their own: a session given
// this one chunk. onEvent, if not nil, is called as Blender reports
// progress, in order and never concurrently, and not after Render returns;
// it should return quickly, as Blender waits while its output is not read.
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
	s, err := r.StartSession(SessionSpec{BlendPath: job.BlendPath, Scene: job.Scene, OutputRoot: job.OutputDir})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.render(ctx, job, onEvent, onLine)
}

// chunkOutput follows what Blender prints while it renders a chunk: the
// frames it saves, its first error line and the last lines of its log. It
// takes each saved frame's files from the chunk's output directory.
type chunkOutput struct {
	frames     []int
	parser     Parser
	tail       *logTail
	result     *RenderResult
	firstError string
	// frameErrors says, by frame, why a frame's file was refused.
	frameErrors map[int]string
	// lastStarted is the index in frames of the last frame begun, -1 before
	// the first.
	lastStarted int
	// dir is a handle on the output directory, outputDir its path, files
	// the files each frame makes there; the frames are taken from there
	// (nil dir: an inspection, which saves none).
	dir       *os.File
	outputDir string
	files     *frameFiles
	onEvent   func(Event)
	onLine    func(string)
}

func newChunkOutput(job RenderJob, onEvent func(Event), onLine func(string)) *chunkOutput {
	return &chunkOutput{frames: job.Frames, parser: Parser{Frames: job.Frames}, tail: newLogTail(logTailLines),
		result: &RenderResult{}, frameErrors: map[int]string{}, lastStarted: -1, onEvent: onEvent, onLine: onLine}
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

// finish ends the output.
func (c *chunkOutput) finish() {
	c.result.LogTail = c.tail.lines()
}

func (c *chunkOutput) handle(ev Event) {
	switch ev.Kind {
	case FrameStarted:
		c.lastStarted = max(c.lastStarted, slices.Index(c.frames, ev.Frame))
	case FrameSaved:
		if !c.take(&ev, false) {
			return
		}
		defer ev.closeImages()
	case ErrorLine:
		if c.firstError == "" {
			c.firstError = ev.Line
		}
	}
	if c.onEvent != nil {
		c.onEvent(ev)
	}
}

// take opens and checks the files of ev's frame, once per frame, and fills
// in ev's Image, Outputs and Path. A refused file is noted as the frame's
// error, and a missing one too unless quietIfMissing and it is the frame's
// own image: Blender may not have begun the frame, but once it wrote the
// image, every other file of the frame is written before it says so.
func (c *chunkOutput) take(ev *Event, quietIfMissing bool) bool {
	if slices.Contains(c.result.FramesSaved, ev.Frame) {
		return false
	}
	if c.dir == nil || c.files == nil {
		c.frameErrors[ev.Frame] = "the farm does not know where or in which format Blender wrote the frame"
		return false
	}
	var images []*FrameImage
	fail := func(err error) bool {
		for _, img := range images {
			img.close()
		}
		c.frameErrors[ev.Frame] = err.Error()
		return false
	}
	for i, want := range c.files.of(ev.Frame) {
		img, err := openOutput(c.dir, want)
		switch {
		case err == nil:
			images = append(images, img)
		case errors.Is(err, os.ErrNotExist) && want.optional:
		case errors.Is(err, os.ErrNotExist) && quietIfMissing && i == 0:
			return false
		default:
			return fail(err)
		}
	}
	ev.Image, ev.Outputs = images[0], images[1:]
	ev.Path = filepath.Join(c.outputDir, ev.Image.Name)
	c.result.FramesSaved = append(c.result.FramesSaved, ev.Frame)
	return true
}

// findUnsignalled takes the frames whose "saved" line never came but whose
// files Blender wrote in full: those before the last frame begun, and all
// of them when the render command ended well (renderOK). A file of the
// frame Blender was on when it failed may be cut short, and is left.
func (c *chunkOutput) findUnsignalled(renderOK bool) {
	for i, f := range c.frames {
		if !renderOK && i >= c.lastStarted {
			return
		}
		if _, refused := c.frameErrors[f]; refused {
			continue
		}
		ev := Event{Kind: FrameSaved, Frame: f}
		if c.take(&ev, true) {
			func() {
				defer ev.closeImages()
				if c.onEvent != nil {
					c.onEvent(ev)
				}
			}()
		}
	}
}

// verdict judges the chunk once its output is complete: nil when every
// frame was saved and Blender did not fail, else a *RenderError naming the
// first frame not saved and the most telling line: why its file was
// refused, Blender's first error line, or else its last words.
func (c *chunkOutput) verdict(r *Runner, status exitStatus, timedOut bool) error {
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
	line := c.frameErrors[unfinished]
	if line == "" {
		line = c.firstError
	}
	if line == "" {
		line = lastMeaningfulLine(c.result.LogTail, status)
		if !status.failed() {
			line = "Blender did not save the frame; its last line: " + line
		}
	}
	return &RenderError{Frame: unfinished, Line: r.explainRenderFailure(line, status), ExitCode: status.exitCode}
}

// explainRenderFailure is explainCrash for a render, plus two more signs
// of the memory limit, both seen with a 200 MiB limit, an allocation
// failing rather than killing Blender: a file that validation read fine
// but that Blender now fails to read ("Failed to read blend file …:
// Missing DNA block", the allocation failing while the file loads), and
// Python's MemoryError (one failing in the farm's session script, which
// ends Blender with exit code 1).
func (r *Runner) explainRenderFailure(line string, status exitStatus) string {
	if status.signal == 0 && (strings.Contains(line, "Failed to read blend file") || strings.Contains(line, "MemoryError")) {
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
			return fmt.Errorf("blender: frame %d: the farm renders no negative frames", f)
		}
	}
	if job.OutputDir == "" {
		return errors.New("blender: render job has no output directory")
	}
	if job.Settings.Part != nil {
		if err := job.Settings.Part.check(); err != nil {
			return err
		}
		if len(job.Frames) != 1 {
			return fmt.Errorf("blender: a part of a frame is rendered alone, not with frames %s", frameList(job.Frames))
		}
		job.Settings = partSettings(job.Settings)
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

// renderRequestFor is what render_settings.py is given for job.
func renderRequestFor(job RenderJob) renderRequest {
	return renderRequest{
		Scene:      job.Scene,
		OutputPath: filepath.Join(job.OutputDir, "frame_####"),
		Settings:   job.Settings,
	}
}

// frameList names frames in messages: "1,2,5".
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
