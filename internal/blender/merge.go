package blender

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxPartBytes bounds a part's file: a samples part holds, beside the
// frame's four float channels, the samples per pixel and the denoiser's
// albedo and normal (eleven channels in all), so three frames' worth.
const maxPartBytes = 3 * maxFrameBytes

// exrMagic starts every OpenEXR file.
const exrMagic = "\x76\x2f\x31\x01"

// MergeJob is the last step of a split frame: the parts' files, rendered by
// RenderJobs whose Settings carried a Part, made into the frame.
type MergeJob struct {
	BlendPath string
	// Scene is the scene the parts rendered; "" is the file's active one.
	Scene string
	Frame int
	// Mode, Parts and Overscan are the split's, as every part had them.
	Mode     SplitMode
	Parts    int
	Overscan int
	// Dir is the directory the farm made for the merge: it places part i's
	// file in PartsDir() as PartFileName(i) before the merge, and the frame
	// and every file it makes are written into OutputDir(), under the
	// names a render gives them. The merge reads nothing else there.
	Dir string
	// Settings are the frame's, as a whole render of it would have them,
	// without a Part: the merge writes the frame in their format, through
	// the scene's view transform, as a render does.
	Settings Settings
	// Naming is as RenderJob's.
	Naming string
}

// PartsDir is where the farm places the parts' files.
func (j MergeJob) PartsDir() string { return filepath.Join(j.Dir, "parts") }

// OutputDir is where the merged frame is written.
func (j MergeJob) OutputDir() string { return filepath.Join(j.Dir, "frame") }

// renderJob is the render that writes the merged frame.
func (j MergeJob) renderJob() RenderJob {
	return RenderJob{BlendPath: j.BlendPath, Scene: j.Scene, Frames: []int{j.Frame}, OutputDir: j.OutputDir(),
		Settings: j.Settings, Naming: j.Naming}
}

// check refuses a merge the scripts could not make.
func (j *MergeJob) check() error {
	if j.Settings.Part != nil {
		return errors.New("blender: a merge writes the whole frame: its settings carry no part")
	}
	part := Part{Mode: j.Mode, Count: j.Parts, Overscan: j.Overscan}
	if err := part.check(); err != nil {
		return err
	}
	j.Overscan = part.withDefaults().Overscan
	if j.Dir == "" {
		return errors.New("blender: merge job has no directory")
	}
	var err error
	if j.Dir, err = filepath.Abs(j.Dir); err != nil {
		return fmt.Errorf("blender: %w", err)
	}
	return nil
}

// Merge makes job's frame of its parts in a Blender of its own, as
// Session.Merge does.
func (r *Runner) Merge(ctx context.Context, job MergeJob, onEvent func(Event)) (*RenderResult, error) {
	if err := job.check(); err != nil {
		return nil, err
	}
	s, err := r.StartSession(SessionSpec{BlendPath: job.BlendPath, Scene: job.Scene, OutputRoot: job.Dir})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Merge(ctx, job, onEvent)
}

// Merge makes job's frame of the parts' files in job.PartsDir(): samples
// mode merges them with Cycles' merge (each pixel weighted by the samples
// each part took there) and denoises the result once when the scene
// denoises; tiles mode assembles the tiles, dropping their overscan. The
// frame is then written as a render writes it: the same events, result and
// errors as Render, the same files in job.OutputDir(). A part missing, or
// not a regular file of OpenEXR, is an error naming it before Blender
// reads any. job.Dir must lie in the session's OutputRoot, and the session
// must not have rendered with other settings; it renders nothing after.
func (s *Session) Merge(ctx context.Context, job MergeJob, onEvent func(Event)) (*RenderResult, error) {
	if err := job.check(); err != nil {
		return nil, err
	}
	if s.outputRoot == nil {
		return nil, errors.New("blender: the session has no directory to merge in")
	}
	rel, err := filepath.Rel(s.spec.OutputRoot, job.Dir)
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return nil, fmt.Errorf("blender: merge directory %s is outside the session's %s", job.Dir, s.spec.OutputRoot)
	}
	render := job.renderJob()
	if err := checkJob(&render); err != nil {
		return nil, err
	}
	settings, err := jsonString(render.Settings)
	if err != nil {
		return nil, err
	}
	if !s.renders(render, settings) {
		return nil, errors.New("blender: the session cannot merge this frame (another file, scene or settings)")
	}
	s.busy.Lock()
	defer s.busy.Unlock()
	parts, err := s.checkParts(filepath.Join(rel, "parts"), job)
	if err != nil {
		return nil, err
	}
	outDir, err := openSubdir(s.outputRoot, filepath.Join(rel, "frame"))
	if err != nil {
		s.broken = true
		return nil, fmt.Errorf("blender: output directory: %w", err)
	}
	defer outDir.Close()
	// The merge leaves the scene compositing the merged image: the
	// session is done.
	defer func() { s.broken = true }()

	out := newChunkOutput(render, onEvent, nil)
	out.dir, out.outputDir = outDir, render.OutputDir
	ok, status, timedOut, err := s.configure(ctx, render, renderRequestFor(render), settings, out)
	var refused *RenderError
	if errors.As(err, &refused) {
		out.finish()
		return out.result, err
	}
	if ok && err == nil {
		out.files = newFrameFiles(s.layout, s.format, render.Naming)
		ok, status, timedOut, err = s.do(ctx, map[string]any{"op": "merge", "frame": job.Frame, "mode": job.Mode,
			"parts": parts, "overscan": job.Overscan, "outputDir": render.OutputDir}, out)
		if err == nil {
			out.findUnsignalled(ok)
		}
	}
	out.finish()
	if err != nil {
		return out.result, fmt.Errorf("blender: merging frame %d: %w", job.Frame, err)
	}
	return out.result, out.verdict(s.r, status, timedOut)
}

// checkParts answers the paths of job's parts in the directory rel below
// the session's OutputRoot, each checked to be a regular file of one link
// that starts as OpenEXR does, or an error naming the first that is not.
func (s *Session) checkParts(rel string, job MergeJob) ([]string, error) {
	dir, err := openSubdir(s.outputRoot, rel)
	if err != nil {
		return nil, fmt.Errorf("blender: parts directory: %w", err)
	}
	defer dir.Close()
	paths := make([]string, job.Parts)
	for i := range job.Parts {
		name := PartFileName(i)
		if err := checkPart(dir, name); err != nil {
			return nil, fmt.Errorf("blender: part %d of the %d parts (%s): %w", i, job.Parts, name, err)
		}
		paths[i] = filepath.Join(job.PartsDir(), name)
	}
	return paths, nil
}

// checkPart checks the part file name in dir.
func checkPart(dir *os.File, name string) error {
	f, _, err := openRegular(dir, name, maxPartBytes)
	if errors.Is(err, os.ErrNotExist) {
		return errors.New("missing: the parts directory has no such file")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, len(exrMagic))
	if n, _ := f.ReadAt(head, 0); n < len(head) || !strings.HasPrefix(string(head), exrMagic) {
		return errors.New("not an OpenEXR file")
	}
	return nil
}
