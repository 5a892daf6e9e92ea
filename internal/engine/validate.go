package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// validateWorker checks a job's file: first cheaply in Go (the .blend
// header, the project zip), then with Blender, which reports the scenes,
// settings and external files that become the job's analysis.
type validateWorker struct {
	river.WorkerDefaults[validateArgs]
	e *Engine
}

func (w *validateWorker) Work(ctx context.Context, rj *river.Job[validateArgs]) error {
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
	var (
		analysis  *farm.Analysis
		sceneFile *farm.SceneFile
		failure   *farm.FailedReason
	)
	if job.Status == farm.StatusValidating {
		analysis, sceneFile, failure, err = e.inspect(ctx, job)
		if err != nil {
			if ctx.Err() != nil || rj.Attempt < rj.MaxAttempts {
				// Stopping, or worth another try: hand the task back.
				e.release(ref)
				return err
			}
			e.log.Error("validation failed on every attempt", "job", job.ID, "err", err)
			failure = &farm.FailedReason{Name: "VALIDATION_ERROR", Type: farm.FailValidation,
				Message: "the farm could not inspect the file (an internal error, logged on the server); try again later"}
		}
	}

	failed := false
	// From here on the outcome is recorded even if the worker is stopping.
	ctx = context.WithoutCancel(ctx)
	err = e.store.InTx(ctx, func(tx *store.Tx) error {
		// The job first, then the task: the order every transaction takes
		// them in, so that none waits on another in a cycle.
		current, err := tx.LockJob(ctx, "", job.ID)
		if err != nil {
			return err
		}
		status := store.TaskDone
		if job.Status != farm.StatusValidating {
			status = store.TaskCanceled
		}
		if ok, err := e.finish(ctx, tx, ref, status); !ok || current.Status != farm.StatusValidating {
			// Not ours any more, or canceled while we worked: leave it.
			return err
		}
		if sceneFile != nil {
			current.SceneFile = sceneFile
		}
		if failure != nil {
			current.FailedReason = failure
			failed = true
			return e.moveJob(ctx, tx, current, farm.StatusFailed)
		}
		id := uuid.NewString()
		current.Analysis = analysis
		current.AnalysisID = &id
		return e.moveJob(ctx, tx, current, farm.StatusValidated)
	})
	if err == nil && failed {
		// Nothing of a refused file stays on the worker.
		e.forgetJobFiles(job.ID)
	}
	return err
}

// inspect runs the checks. A bad file is a failure for the user to fix;
// an error is a passing fault worth retrying.
func (e *Engine) inspect(ctx context.Context, job *farm.Job) (*farm.Analysis, *farm.SceneFile, *farm.FailedReason, error) {
	in, err := e.prepareInput(ctx, job)
	if be, ok := isInputError(err); ok {
		return nil, nil, &farm.FailedReason{Name: be.Code, Type: farm.FailValidation, Message: be.Message}, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	var ins *farm.Inspection
	if e.cfg.Sessions != nil {
		// The session stays, with the file loaded, for the job's first
		// chunk on this worker.
		ins, err = e.cfg.Sessions.Inspect(ctx, in.BlendPath, e.outputRoot(job.ID))
	} else {
		ins, err = e.cfg.Blender.Inspect(ctx, in.BlendPath)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, nil, ctx.Err()
		}
		// What Blender said reaches the client without the farm's paths.
		paths := e.farmPaths(job.ID, in)
		var ie *blender.InspectError
		if errors.As(err, &ie) {
			e.keepLog(ctx, job.ID, "validate", ie.LogTail, paths)
		}
		return nil, &in.SceneFile, &farm.FailedReason{Name: "BLENDER_CANNOT_OPEN_FILE", Type: farm.FailValidation,
			Message: paths.scrub(fmt.Sprintf("%v; check that the file opens in Blender %s and upload it again", err, e.blenderVersion(ctx)))}, nil
	}
	return farm.AnalyzeInspection(*ins), &in.SceneFile, nil, nil
}

func (e *Engine) blenderVersion(ctx context.Context) string {
	v, err := e.cfg.Blender.Version(ctx)
	if err != nil {
		return "(unknown version)"
	}
	return v
}
