package node

import (
	"context"
	"fmt"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/riverqueue/river"
)

// finalizeWorker removes the frame images no frame refers to, makes the
// job's zip of frames and preview video, then completes the job. It starts
// the moment the last frame lands. How the outputs are made is in
// finalize_outputs.go.
type finalizeWorker struct {
	river.WorkerDefaults[engine.FinalizeArgs]
	n *Node
}

func (w *finalizeWorker) Work(ctx context.Context, rj *river.Job[engine.FinalizeArgs]) error {
	n, ref := w.n, rj.Args.TaskRef
	var (
		files         farm.JobFiles
		renderSeconds float64
	)
	recorded, err := n.runTask(ctx, ref, rj.Attempt, rj.MaxAttempts, taskSteps{
		load: func(ctx context.Context) (*farm.Job, error) { return n.store.GetJob(ctx, "", ref.JobID) },
		work: func(ctx context.Context, job *farm.Job) error {
			if job.Status != farm.StatusFinalizing {
				return nil
			}
			// Every frame is rendered: the job's warm Blender sessions on
			// this worker have nothing left to do, and end before the job
			// does.
			n.forgetSessions(job.ID)
			var err error
			files, renderSeconds, err = n.makeOutputs(ctx, job, ref.Generation)
			return err
		},
		finishAs: func(error) store.TaskStatus { return store.TaskDone },
		record: func(ctx context.Context, tx *store.Tx, current *farm.Job, workErr error) error {
			if current.Status != farm.StatusFinalizing {
				return nil
			}
			if workErr != nil {
				n.log.Error("finalizing failed on every attempt", "job", current.ID, "err", workErr)
				current.FailedReason = &farm.FailedReason{Name: "FINALIZE_FAILED", Type: farm.FailFinalize,
					Message: "the frames rendered but the zip could not be made; the frames stay downloadable one by one"}
				return n.engine.MoveJob(ctx, tx, current, farm.StatusFailed)
			}
			current.Files = files
			current.NormalizedSeconds = renderSeconds
			return n.engine.MoveJob(ctx, tx, current, farm.StatusCompleted)
		},
	})
	if recorded {
		n.forgetJobFiles(ref.JobID)
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
func (n *Node) removeOrphanFrames(ctx context.Context, jobID string, frames []store.Frame) error {
	referenced := make(map[string]bool, len(frames))
	for _, f := range frames {
		if f.ObjectKey != "" {
			referenced[f.ObjectKey] = true
		}
	}
	stored, err := n.objects.List(ctx, farm.JobFramesPrefix(jobID))
	if err != nil {
		return fmt.Errorf("list the frames of job %s: %w", jobID, err)
	}
	removed, first := 0, ""
	for _, obj := range stored {
		if referenced[obj.Key] {
			continue
		}
		if err := n.objects.Delete(ctx, obj.Key); err != nil {
			return fmt.Errorf("remove orphan frame image %s: %w", obj.Key, err)
		}
		if removed == 0 {
			first = obj.Key
		}
		removed++
	}
	if removed > 0 {
		n.log.Info("removed frame images that no frame refers to", "job", jobID, "count", removed, "first", first)
	}
	return nil
}
