package node

import (
	"context"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// finalizing is one attempt at a job's outputs: it removes the frame
// images no frame refers to, makes the zip of frames and the preview
// video, then completes the job. It starts the moment the last frame
// lands. How the outputs are made is in finalize_outputs.go.
type finalizing struct {
	n   *Node
	ref engine.TaskRef

	files         farm.JobFiles
	renderSeconds float64
	// completed says record completed the job with files.
	completed bool
	// stored says this attempt stored a zip. Work that met an outage is
	// done again, and files are the last pass's, which may have stored
	// nothing before it failed.
	stored bool
}

func newFinalizing(n *Node, args engine.FinalizeArgs) task {
	return &finalizing{n: n, ref: args.TaskRef}
}

func (fin *finalizing) load(ctx context.Context) (*farm.Job, error) {
	return fin.n.store.GetJob(ctx, "", fin.ref.JobID)
}

func (fin *finalizing) work(ctx context.Context, _ *waiter, job *farm.Job) error {
	if job.Status != farm.StatusFinalizing {
		return nil
	}
	// Every frame is rendered: the job's warm Blender sessions on this
	// worker have nothing left to do, and end before the job does.
	fin.n.forgetSessions(job.ID)
	// The preview is made in the work directory: a disk below its reserve
	// is waited for first.
	if err := fin.n.checkDiskSpace(); err != nil {
		return err
	}
	var err error
	fin.files, fin.renderSeconds, err = fin.n.makeOutputs(ctx, job, fin.ref)
	fin.stored = fin.stored || fin.files.FramesZipKey != ""
	if ctx.Err() != nil {
		return err
	}
	return fin.n.blameDisk(err)
}

func (fin *finalizing) finishAs(error) store.TaskStatus { return store.TaskDone }

func (fin *finalizing) record(ctx context.Context, tx *store.Tx, current *farm.Job, workErr error) error {
	fin.completed = false
	if current.Status != farm.StatusFinalizing {
		return nil
	}
	if workErr != nil {
		fin.n.log.Error("finalizing failed", "job", current.ID, "err", workErr)
		current.FailedReason = outageFailure(workErr, farm.FailFinalize)
		if current.FailedReason == nil {
			current.FailedReason = &farm.FailedReason{Name: "FINALIZE_FAILED", Type: farm.FailFinalize,
				Message: "the frames rendered but the zip could not be made; the frames stay downloadable one by one"}
		}
		return fin.n.engine.MoveJob(ctx, tx, current, farm.StatusFailed)
	}
	current.Files = fin.files
	current.NormalizedSeconds = fin.renderSeconds
	// A retried job that failed before completes with no failure left.
	current.FailedReason = nil
	if err := fin.n.engine.MoveJob(ctx, tx, current, farm.StatusCompleted); err != nil {
		return err
	}
	fin.completed = true
	return nil
}

// done removes what the job's finalizings stored that the job does not
// keep (Engine.RemoveUnkeptOutputs), once this attempt stored anything or
// ended the task: its own zips and preview unless it completed the job
// with them (it failed the job, or lost its task while it stored them:
// the job was canceled, perhaps deleted, or the task given to another
// node); those that earlier attempts at its generation stored before
// they handed the task back for River's retry (this attempt, which ends
// the task, may have failed before it stored anything itself); and those
// of earlier holders of the task whose nodes died before they could do
// the same. A sweep that fails is queued (delete_objects), to be tried
// again.
func (fin *finalizing) done(recorded bool) {
	if recorded {
		fin.n.forgetJobFiles(fin.ref.JobID)
	}
	if !recorded && !fin.stored {
		return
	}
	ctx := context.Background()
	removed, err := fin.n.removeUnkeptOutputs(ctx, fin.ref.JobID)
	switch {
	case err != nil:
		// Once the task has ended nothing else sweeps the job's outputs
		// (unless it is retried or canceled), and a sweep fails most
		// likely in the very outage that failed the job: the cleanup
		// queue, which tries again, takes it over.
		qerr := fin.n.store.InTx(ctx, func(tx *store.Tx) error {
			return fin.n.engine.Insert(ctx, tx, engine.DeleteObjectsArgs{JobID: fin.ref.JobID, Outputs: true})
		})
		if qerr != nil {
			fin.n.log.Error("could not remove the zips and preview the job does not keep, nor queue their removal", "job", fin.ref.JobID, "task", fin.ref.TaskID, "err", err, "queueErr", qerr)
			return
		}
		fin.n.log.Warn("could not remove the zips and preview the job does not keep; their removal is queued", "job", fin.ref.JobID, "task", fin.ref.TaskID, "err", err)
	case removed > 0:
		fin.n.log.Info("removed zips and previews the job does not keep", "job", fin.ref.JobID, "task", fin.ref.TaskID, "completed", recorded && fin.completed, "count", removed)
	}
}

// removeOrphanFrames deletes every object under the job's frames/ that no
// frame row, nor any file a frame recorded, refers to. Each holder of a
// task stores its files under a key of its own
// (frames/{task}.{generation}/), so a worker killed after storing a
// frame's files and before recording them leaves them behind, and its
// successor's files of the same frame go elsewhere. By the time the job
// is finalizing every frame is recorded and no frame row changes any
// more, so what the rows do not name is an orphan. (A worker that was
// given up on but still runs removes the files it stores too late itself:
// see storeFrame.)
//
// That holds while this finalizing holds its task, but it may have lost
// it without knowing (its node stalled): the job canceled and retried
// meanwhile renders frames again under new tasks, whose files the frames
// as read do not name. So a file in a holder's folder is removed only
// if that holder was over (engine.HoldersOver) in tasks, the job's tasks
// read before frames and outputs: everything it recorded is in them.
func (n *Node) removeOrphanFrames(ctx context.Context, jobID string, tasks []store.Task, frames []store.Frame, outputs map[int][]farm.FrameOutput) error {
	removed, first, err := engine.RemoveUnreferencedFrames(ctx, n.objects, jobID, tasks, frames, outputs, true)
	if removed > 0 {
		n.log.Info("removed frame images that no frame refers to", "job", jobID, "count", removed, "first", first)
	}
	return err
}
