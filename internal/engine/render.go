package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// renderWorker renders one chunk of a job's frames in one Blender process,
// storing each frame the moment Blender saves it.
type renderWorker struct {
	river.WorkerDefaults[renderArgs]
	e *Engine
}

// NextRetry retries a failed chunk after 2 s, then 4 s: a frame that fails
// for a passing reason gets another go soon, and one that fails for good
// fails its job within seconds rather than River's default minutes.
func (w *renderWorker) NextRetry(job *river.Job[renderArgs]) time.Time {
	return time.Now().Add(time.Duration(job.Attempt) * 2 * time.Second)
}

func (w *renderWorker) Work(ctx context.Context, rj *river.Job[renderArgs]) error {
	e, ref := w.e, rj.Args.taskRef
	times := chunkTimes{start: time.Now()}
	if ok, err := e.claim(ctx, ref); !ok {
		return err
	}
	defer e.markBusy(ref.TaskID, false)

	job, todo, err := e.startChunk(ctx, ref)
	if err != nil {
		e.release(ref)
		return err
	}
	if job == nil || len(todo) == 0 {
		return e.endChunk(ctx, ref, nil)
	}

	renderErr := e.renderFrames(ctx, ref, job, todo, &times)
	defer e.tidyIfFinal(job.ID)
	switch {
	case renderErr == nil:
		err := e.endChunk(ctx, ref, nil)
		if err == nil {
			times.log(e.log, job.ID, ref.TaskID, len(todo))
		}
		return err
	case errors.Is(renderErr, errNotOurs):
		e.log.Info("chunk was handed to another worker; stopped", "job", job.ID, "task", ref.TaskID)
		return nil
	case savedEveryFrame(renderErr):
		// Blender failed on its way out, after every frame was saved and
		// stored: the chunk is done (endChunk sees it so too).
		e.log.Warn("Blender failed after saving every frame of the chunk", "job", job.ID, "task", ref.TaskID, "err", renderErr)
		return e.endChunk(ctx, ref, renderErr)
	case ctx.Err() != nil:
		// Canceled (the job was, or the worker is stopping): Cancel already
		// marked the task, or the reaper will hand it out again.
		e.release(ref)
		return renderErr
	case rj.Attempt < rj.MaxAttempts:
		e.log.Warn("chunk failed; River retries it", "job", job.ID, "task", ref.TaskID, "attempt", rj.Attempt, "err", renderErr)
		e.release(ref)
		return renderErr
	default:
		return e.endChunk(ctx, ref, renderErr)
	}
}

// startChunk moves the job to rendering and lists the chunk's frames that
// still need rendering (after a retry or a rescue, some are done). A nil job
// means the job no longer wants this chunk.
func (e *Engine) startChunk(ctx context.Context, ref taskRef) (*farm.Job, []int, error) {
	var job *farm.Job
	var todo []int
	err := e.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = tx.LockJob(ctx, "", ref.JobID); err != nil {
			return err
		}
		switch job.Status {
		case farm.StatusBooting:
			if err := e.moveJob(ctx, tx, job, farm.StatusRendering); err != nil {
				return err
			}
		case farm.StatusRendering:
		default:
			job = nil
			return nil
		}
		frames, err := tx.FramesOfTask(ctx, ref.TaskID)
		if err != nil {
			return err
		}
		for _, f := range frames {
			if f.Status != farm.FrameCompleted {
				todo = append(todo, f.Frame)
			}
		}
		return nil
	})
	return job, todo, err
}

// chunkTimes is where a chunk's time went: Blender's own work, and what the
// farm adds around it (preparing, starting Blender, storing and recording
// frames). It is logged when the chunk ends, for operators and for the
// benchmarks in bench/.
type chunkTimes struct {
	start      time.Time // the worker took the chunk
	spawn      time.Time // Blender was started
	firstFrame time.Time // Blender began the first frame
	lastSaved  time.Time // the last frame was stored and recorded
	exited     time.Time // Blender exited
	// store is the time spent putting frames into the object store,
	// record the time spent in the database transactions of frames.
	store, record time.Duration
}

func (t *chunkTimes) log(log *slog.Logger, jobID, taskID string, frames int) {
	log.LogAttrs(context.Background(), slog.LevelInfo, "chunk rendered",
		slog.String("job", jobID), slog.String("task", taskID), slog.Int("frames", frames),
		// From taking the chunk to starting Blender: the claim, the job's
		// move to rendering and the input made ready.
		slog.Duration("prepare", t.spawn.Sub(t.start)),
		// From starting Blender to its first frame: the process and its
		// sandbox, loading the file, applying the settings.
		slog.Duration("blenderStart", t.firstFrame.Sub(t.spawn)),
		// From the first frame begun to the last one stored.
		slog.Duration("rendering", t.lastSaved.Sub(t.firstFrame)),
		// From the last frame stored to Blender gone.
		slog.Duration("blenderExit", t.exited.Sub(t.lastSaved)),
		slog.Duration("store", t.store),
		slog.Duration("record", t.record),
		slog.Duration("took", time.Since(t.start)))
}

// renderFrames runs Blender on the frames and records each as it lands.
func (e *Engine) renderFrames(ctx context.Context, ref taskRef, job *farm.Job, frames []int, times *chunkTimes) error {
	in, err := e.prepareInput(ctx, job)
	if err != nil {
		return err
	}
	outRoot := e.outputRoot(job.ID)
	outDir := filepath.Join(outRoot, ref.TaskID+"-"+strconv.Itoa(ref.Generation))
	if err := os.RemoveAll(outDir); err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(outDir)

	// A failure to record a frame stops Blender: going on would render
	// frames nobody can see.
	renderCtx, stop := context.WithCancel(ctx)
	defer stop()
	var recordErr error
	onEvent := func(ev blender.Event) {
		if recordErr != nil {
			return
		}
		switch ev.Kind {
		case blender.FrameStarted:
			now := time.Now()
			if times.firstFrame.IsZero() {
				times.firstFrame = now
			}
			recordErr = e.frameStarted(ctx, ref, ev.Frame)
			times.record += time.Since(now)
		case blender.FrameSaved:
			recordErr = e.frameSaved(ctx, ref, ev, times)
			times.lastSaved = time.Now()
		}
		if recordErr != nil {
			stop()
		}
	}
	chunk := blender.RenderJob{
		BlendPath: in.BlendPath,
		Scene:     job.FinalConfig.Scene,
		Frames:    frames,
		OutputDir: outDir,
		Settings:  settingsFor(job.FinalConfig),
	}
	times.spawn = time.Now()
	var result *blender.RenderResult
	if e.cfg.Sessions != nil {
		result, err = e.cfg.Sessions.Render(renderCtx, chunk, outRoot, onEvent)
	} else {
		result, err = e.cfg.Blender.Render(renderCtx, chunk, onEvent)
	}
	times.exited = time.Now()
	if recordErr != nil {
		return recordErr
	}
	if err != nil {
		// Blender's lines reach the client (the frame's error, the job's
		// failure, the log) without the farm's paths.
		paths := e.farmPaths(job.ID, in)
		var re *blender.RenderError
		if errors.As(err, &re) {
			re.Line = paths.scrub(re.Line)
			if re.Frame >= 0 {
				e.frameFailed(ctx, ref, re.Frame, re.Line)
			}
		}
		if result != nil && ctx.Err() == nil {
			e.keepLog(ctx, job.ID, fmt.Sprintf("chunk%d", ref.Generation), result.LogTail, paths)
		}
	}
	return err
}

// errNotOurs stops a chunk whose task was handed to another worker.
var errNotOurs = errors.New("the task was handed to another worker")

func (e *Engine) frameStarted(ctx context.Context, ref taskRef, frame int) error {
	return e.updateFrame(ctx, ref, frame, func(f *store.Frame) {
		if f.Status == farm.FrameRendering && f.Worker == e.cfg.WorkerName {
			return // the same start, reported twice
		}
		f.Status = farm.FrameRendering
		f.Worker = e.cfg.WorkerName
		f.Attempts++
	})
}

func (e *Engine) frameFailed(ctx context.Context, ref taskRef, frame int, line string) {
	err := e.updateFrame(context.WithoutCancel(ctx), ref, frame, func(f *store.Frame) {
		if f.Status != farm.FrameRendering {
			// Blender failed before it announced the frame: it was
			// attempted all the same.
			f.Attempts++
		}
		f.Status = farm.FrameQueued
		f.Worker = e.cfg.WorkerName
		f.Error = line
	})
	if err != nil && !errors.Is(err, errNotOurs) {
		e.log.Warn("could not record failed frame", "job", ref.JobID, "frame", frame, "err", err)
	}
}

// frameSaved stores the frame's image, which the runner took from the
// chunk's output directory and checked, and marks the frame done, unless
// the task has moved on to another holder. times, when not nil, takes the
// time spent storing and recording.
func (e *Engine) frameSaved(ctx context.Context, ref taskRef, ev blender.Event, times *chunkTimes) error {
	if ev.Image == nil {
		return fmt.Errorf("frame %d was reported saved without its image", ev.Frame)
	}
	return e.storeFrame(ctx, ref, ev.Frame, ev.Image.Name, ev.Image.Reader(), ev.RenderSeconds, times)
}

// storeFrame stores image, named name, as frame's and marks the frame done
// (see frameSaved).
func (e *Engine) storeFrame(ctx context.Context, ref taskRef, frame int, name string, image io.Reader, renderSeconds float64, times *chunkTimes) error {
	key := farm.FrameKey(ref.JobID, ref.TaskID, ref.Generation, name)
	start := time.Now()
	size, err := e.objects.Put(ctx, key, image, maxFrameBytes)
	if err != nil {
		return fmt.Errorf("store frame %d: %w", frame, err)
	}
	stored := time.Now()
	if times != nil {
		times.store += stored.Sub(start)
		defer func() { times.record += time.Since(stored) }()
	}
	err = e.updateFrame(ctx, ref, frame, func(f *store.Frame) {
		f.Status = farm.FrameCompleted
		f.Worker = e.cfg.WorkerName
		f.RenderSeconds = renderSeconds
		f.ObjectKey = key
		f.SizeBytes = size
		f.Error = ""
	})
	switch {
	case err == nil:
		e.cfg.Metrics.FrameStored(e.cfg.WorkerName, renderSeconds)
	case errors.Is(err, errNotOurs):
		// Refused: the image stored above belongs to no frame.
		if delErr := e.objects.Delete(context.WithoutCancel(ctx), key); delErr != nil {
			e.log.Warn("could not remove a refused frame image", "key", key, "err", delErr)
		}
	}
	return err
}

// updateFrame changes one frame of the chunk, checking in the same
// transaction that this worker still holds the task; the write itself
// checks it again in the database, so a requeue between the two cannot let
// a stale holder through.
func (e *Engine) updateFrame(ctx context.Context, ref taskRef, frame int, change func(*store.Frame)) error {
	return e.store.InTx(ctx, func(tx *store.Tx) error {
		task, err := tx.LockTask(ctx, ref.TaskID)
		if err != nil {
			return err
		}
		if task.Generation != ref.Generation || task.Status != store.TaskRunning || task.WorkerID != e.workerID {
			return errNotOurs
		}
		frames, err := tx.FramesOfTask(ctx, ref.TaskID)
		if err != nil {
			return err
		}
		for _, f := range frames {
			if f.Frame == frame {
				if f.Status == farm.FrameCompleted {
					return nil // each frame once
				}
				change(&f)
				err := tx.UpdateFrameOwned(ctx, f, ref.Generation, e.workerID)
				if errors.Is(err, store.ErrConflict) {
					return errNotOurs
				}
				return err
			}
		}
		return fmt.Errorf("frame %d is not part of task %s", frame, ref.TaskID)
	})
}

// endChunk closes the task. With renderErr (the last attempt failed) the
// job fails, naming the frame; otherwise, if this was the last chunk, the
// job moves to finalizing and the finalize work is queued in the same
// transaction.
func (e *Engine) endChunk(ctx context.Context, ref taskRef, renderErr error) error {
	ctx = context.WithoutCancel(ctx)
	if savedEveryFrame(renderErr) {
		renderErr = nil
	}
	return e.store.InTx(ctx, func(tx *store.Tx) error {
		// The job first, then the task: the order every transaction takes
		// them in. The job's lock also makes the last two chunks to end take
		// turns, so exactly one of them queues the finalizing.
		job, err := tx.LockJob(ctx, "", ref.JobID)
		if err != nil {
			return err
		}
		status := store.TaskDone
		if renderErr != nil {
			status = store.TaskFailed
		}
		if ok, err := e.finish(ctx, tx, ref, status); !ok {
			return err
		}
		if job.Status != farm.StatusRendering && job.Status != farm.StatusBooting {
			return nil
		}
		if renderErr != nil {
			job.FailedReason = renderFailure(renderErr, e.cfg.RenderAttempts, e.farmPaths(job.ID, nil))
			if err := e.moveJob(ctx, tx, job, farm.StatusFailed); err != nil {
				return err
			}
			// The frame Blender failed on is failed; the others that never
			// rendered are canceled with the job's other work.
			var re *blender.RenderError
			if errors.As(renderErr, &re) && re.Frame >= 0 {
				frames, err := tx.FramesOfTask(ctx, ref.TaskID)
				if err != nil {
					return err
				}
				for _, f := range frames {
					if f.Frame == re.Frame && !f.Status.IsFinal() {
						f.Status = farm.FrameFailed
						if err := tx.UpdateFrame(ctx, f); err != nil {
							return err
						}
					}
				}
			}
			return e.cancelWork(ctx, tx, job.ID)
		}
		counts, err := tx.CountFrames(ctx, job.ID)
		if err != nil {
			return err
		}
		total := 0
		for _, n := range counts {
			total += n
		}
		if counts[farm.FrameCompleted] < total {
			return nil
		}
		if err := e.moveJob(ctx, tx, job, farm.StatusFinalizing); err != nil {
			return err
		}
		_, err = e.enqueue(ctx, tx, job.ID, store.TaskFinalize, 0, func(r taskRef) river.JobArgs { return finalizeArgs{r} }, nil)
		return err
	})
}

// renderFailure is the reason a job fails for a chunk that failed on its
// last attempt, told without the farm's paths.
func renderFailure(err error, attempts int, paths farmPaths) *farm.FailedReason {
	var re *blender.RenderError
	if errors.As(err, &re) && re.Frame >= 0 {
		msg := fmt.Sprintf("frame %d failed after %d attempts", re.Frame, attempts)
		if re.Line != "" {
			msg += ": " + re.Line
		}
		return &farm.FailedReason{Name: "FRAME_FAILED", Type: farm.FailRender, Message: paths.scrub(msg)}
	}
	return &farm.FailedReason{Name: "RENDER_FAILED", Type: farm.FailRender,
		Message: paths.scrub(fmt.Sprintf("a chunk failed after %d attempts: %v", attempts, err))}
}

// settingsFor turns the final configuration into what the settings script
// applies in Blender.
func settingsFor(fc *farm.FinalConfig) blender.Settings {
	denoise := fc.DenoisingEnabled
	s := blender.Settings{
		Engine:               fc.RenderEngine,
		Samples:              fc.SampleCount,
		ResolutionPercentage: fc.ResolutionPercentage,
		OutputFormat:         fc.OutputFormat,
		ColorMode:            fc.OutputSettings.ColorMode,
		ColorDepth:           fc.OutputSettings.ColorDepth,
		ExrCodec:             fc.OutputSettings.ExrCodec,
		TiffCodec:            fc.OutputSettings.TiffCodec,
		Denoising:            &denoise,
		UseTiling:            fc.UseTiling,
		TileSize:             fc.TileSize,
		ColorManagement:      fc.ColorManagementPreset,
	}
	if len(fc.Resolution) == 2 {
		s.ResolutionX, s.ResolutionY = fc.Resolution[0], fc.Resolution[1]
	}
	if fc.OutputSettings.Compression != nil {
		s.Compression = *fc.OutputSettings.Compression
	}
	if fc.OutputSettings.Quality != nil {
		s.Quality = *fc.OutputSettings.Quality
	}
	return s
}

// savedEveryFrame reports whether a render error came after Blender had
// saved every frame it was given (the runner names no frame then).
func savedEveryFrame(err error) bool {
	var re *blender.RenderError
	return errors.As(err, &re) && re.Frame < 0
}
