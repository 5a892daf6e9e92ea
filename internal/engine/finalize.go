package engine

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// finalizeWorker removes the frame images no frame refers to, makes the
// job's zip of frames and preview video, then completes the job. It starts
// the moment the last frame lands. How the outputs are made is in
// finalize_outputs.go.
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
		// Every frame is rendered: the job's warm Blender sessions on this
		// worker have nothing left to do, and end before the job does.
		e.forgetSessions(job.ID)
		files, renderSeconds, err = e.makeOutputs(ctx, job, ref.Generation)
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
func (e *Engine) removeOrphanFrames(ctx context.Context, jobID string, frames []store.Frame) error {
	referenced := make(map[string]bool, len(frames))
	for _, f := range frames {
		if f.ObjectKey != "" {
			referenced[f.ObjectKey] = true
		}
	}
	stored, err := e.objects.List(ctx, farm.JobFramesPrefix(jobID))
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
