package engine

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// finalizeWorker removes the frame images no frame refers to, makes the
// job's zip of frames and preview video, then completes the job. It starts
// the moment the last frame lands.
type finalizeWorker struct {
	river.WorkerDefaults[finalizeArgs]
	e *Engine
}

func (w *finalizeWorker) Work(ctx context.Context, rj *river.Job[finalizeArgs]) error {
	e, ref := w.e, rj.Args.taskRef
	if ok, err := e.claim(ctx, ref); !ok {
		return err
	}
	defer e.markBusy(ref.TaskID, false)

	job, err := e.store.GetJob(ctx, "", ref.JobID)
	if err != nil {
		e.release(ref)
		return err
	}
	var files farm.JobFiles
	var renderSeconds float64
	var failure *farm.FailedReason
	if job.Status == farm.StatusFinalizing {
		err = e.removeOrphanFrames(ctx, job.ID)
		if err == nil {
			files, renderSeconds, err = e.makeOutputs(ctx, job, ref.Generation)
		}
		if err != nil {
			if ctx.Err() != nil || rj.Attempt < rj.MaxAttempts {
				// Stopping, or worth another try: hand the task back.
				e.release(ref)
				return err
			}
			e.log.Error("finalizing failed on every attempt", "job", job.ID, "err", err)
			failure = &farm.FailedReason{Name: "FINALIZE_FAILED", Type: farm.FailFinalize,
				Message: "the frames rendered but the zip could not be made; the frames stay downloadable one by one"}
		}
	}
	// From here on the outcome is recorded even if the worker is stopping.
	ctx = context.WithoutCancel(ctx)
	err = e.store.InTx(ctx, func(tx *store.Tx) error {
		// The job first, then the task: the order every transaction takes
		// them in, so that none waits on another in a cycle.
		current, err := tx.LockJob(ctx, "", job.ID)
		if err != nil {
			return err
		}
		if ok, err := e.finish(ctx, tx, ref, store.TaskDone); !ok || current.Status != farm.StatusFinalizing {
			return err
		}
		if failure != nil {
			current.FailedReason = failure
			return e.moveJob(ctx, tx, current, farm.StatusFailed)
		}
		current.Files = files
		current.NormalizedSeconds = renderSeconds
		return e.moveJob(ctx, tx, current, farm.StatusCompleted)
	})
	if err == nil {
		e.forgetJobFiles(job.ID)
	}
	return err
}

// removeOrphanFrames deletes every image under the job's frames/ that no
// frame row refers to. Each holder of a task stores its images under a key
// of its own (frames/{task}.{generation}/), so a worker killed after
// storing an image and before recording it leaves that image behind, and
// its successor's image of the same frame goes elsewhere. By the time the
// job is finalizing every frame is recorded and no frame row changes any
// more, so what the rows do not name is an orphan. (A worker that was
// given up on but still runs removes an image it stores too late itself:
// see frameSaved.)
func (e *Engine) removeOrphanFrames(ctx context.Context, jobID string) error {
	frames, err := e.store.FramesOfJob(ctx, jobID)
	if err != nil {
		return err
	}
	referenced := make(map[string]bool, len(frames))
	for _, f := range frames {
		if f.ObjectKey != "" {
			referenced[f.ObjectKey] = true
		}
	}
	stored, err := e.objects.List(ctx, jobFramesPrefix(jobID))
	if err != nil {
		return fmt.Errorf("list the frames of job %s: %w", jobID, err)
	}
	removed, first := 0, ""
	for _, obj := range stored {
		if referenced[obj.Key] {
			continue
		}
		if err := e.objects.Delete(ctx, obj.Key); err != nil {
			return fmt.Errorf("remove orphan frame image %s: %w", obj.Key, err)
		}
		if removed == 0 {
			first = obj.Key
		}
		removed++
	}
	if removed > 0 {
		e.log.Info("removed frame images that no frame refers to", "job", jobID, "count", removed, "first", first)
	}
	return nil
}

// makeOutputs writes the frames zip and, for two frames or more, the
// preview video; it returns what it made and the Blender seconds spent.
// Each generation of the task works in a directory of its own: an ffmpeg
// left running by a killed holder cannot write into its successor's.
func (e *Engine) makeOutputs(ctx context.Context, job *farm.Job, generation int) (farm.JobFiles, float64, error) {
	var files farm.JobFiles
	frames, err := e.store.FramesOfJob(ctx, job.ID)
	if err != nil {
		return files, 0, err
	}
	var done []store.Frame
	var seconds float64
	for _, f := range frames {
		if f.Status == farm.FrameCompleted && f.ObjectKey != "" {
			done = append(done, f)
			seconds += f.RenderSeconds
		}
	}
	if len(done) == 0 {
		return files, 0, fmt.Errorf("job %s has no rendered frames", job.ID)
	}
	dir := filepath.Join(e.jobDir(job.ID), "finalize-"+strconv.Itoa(generation))
	if err := os.RemoveAll(dir); err != nil {
		return files, 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return files, 0, err
	}
	defer os.RemoveAll(dir)

	// Frames are fetched once, into a numbered sequence that both the zip
	// and ffmpeg read (ffmpeg needs consecutive numbers even when the job
	// rendered every fifth frame).
	seq := make([]string, len(done))
	for i, f := range done {
		local := filepath.Join(dir, fmt.Sprintf("seq_%06d%s", i, path.Ext(f.ObjectKey)))
		if err := e.copyObjectTo(ctx, f.ObjectKey, local); err != nil {
			return files, 0, err
		}
		seq[i] = local
	}

	zipPath := filepath.Join(dir, "frames.zip")
	if err := writeFramesZip(zipPath, done, seq); err != nil {
		return files, 0, err
	}
	files.FramesZipKey = "jobs/" + job.ID + "/frames.zip"
	if files.FramesZipSize, err = e.putFile(ctx, files.FramesZipKey, zipPath); err != nil {
		return files, 0, err
	}
	files.PreviewKey = done[len(done)/2].ObjectKey

	if len(done) >= 2 {
		fps := job.FinalConfig.FPS
		if fps <= 0 {
			fps = 24
		}
		videoPath := filepath.Join(dir, "preview.mp4")
		if err := e.encodePreview(ctx, filepath.Join(dir, "seq_%06d"+path.Ext(done[0].ObjectKey)), fps, videoPath); err != nil {
			// The frames are what the user asked for; a preview that
			// cannot be made is logged, not a failed job.
			e.log.Warn("preview video failed", "job", job.ID, "err", err)
		} else {
			files.VideoKey = "jobs/" + job.ID + "/preview.mp4"
			files.VideoFPS = fps
			if files.VideoSize, err = e.putFile(ctx, files.VideoKey, videoPath); err != nil {
				return files, 0, err
			}
		}
	}
	return files, seconds, nil
}

func writeFramesZip(zipPath string, frames []store.Frame, local []string) error {
	out, err := os.Create(zipPath)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(out)
	for i, f := range frames {
		// Images are compressed already: store them as they are.
		w, err := zw.CreateHeader(&zip.FileHeader{Name: path.Base(f.ObjectKey), Method: zip.Store, Modified: f.UpdatedAt})
		if err != nil {
			out.Close()
			return err
		}
		if err := copyFileTo(w, local[i]); err != nil {
			out.Close()
			return err
		}
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// encodePreview makes an H.264 MP4 that every browser plays: yuv420p needs
// even dimensions, and faststart lets it play before it is fully loaded.
func (e *Engine) encodePreview(ctx context.Context, pattern string, fps float64, out string) error {
	cmd := exec.CommandContext(ctx, e.cfg.FFmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-framerate", strconv.FormatFloat(fps, 'f', -1, 64), "-i", pattern,
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2",
		"-movflags", "+faststart", out)
	output, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ffmpeg: %v: %s", err, strings.TrimSpace(string(output)))
	}
	return nil
}

func (e *Engine) copyObjectTo(ctx context.Context, key, dst string) error {
	r, err := e.objects.Get(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (e *Engine) putFile(ctx context.Context, key, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return e.objects.Put(ctx, key, f)
}

func copyFileTo(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
