package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// validateWorker checks a job's file: first cheaply in Go (the .blend
// header, the project zip), then with Blender, which reports the scenes,
// settings and external files that become the job's analysis.
type validateWorker struct {
	river.WorkerDefaults[engine.ValidateArgs]
	n *Node
}

func (w *validateWorker) Work(ctx context.Context, rj *river.Job[engine.ValidateArgs]) error {
	n, ref := w.n, rj.Args.TaskRef
	var (
		loaded    *farm.Job
		analysis  *farm.Analysis
		sceneFile *farm.SceneFile
		failure   *farm.FailedReason
		failed    bool // the job was failed for it
	)
	recorded, err := n.runTask(ctx, ref, rj.Attempt, rj.MaxAttempts, taskSteps{
		load: func(ctx context.Context) (*farm.Job, error) {
			job, err := n.store.GetJob(ctx, "", ref.JobID)
			loaded = job
			return job, err
		},
		work: func(ctx context.Context, job *farm.Job) error {
			if job.Status != farm.StatusValidating {
				return nil // canceled before it started: nothing to check
			}
			var err error
			analysis, sceneFile, failure, err = n.inspect(ctx, job)
			return err
		},
		finishAs: func(error) store.TaskStatus {
			if loaded.Status != farm.StatusValidating {
				return store.TaskCanceled
			}
			return store.TaskDone
		},
		record: func(ctx context.Context, tx *store.Tx, current *farm.Job, workErr error) error {
			if current.Status != farm.StatusValidating {
				return nil // canceled while it was checked: leave it
			}
			if workErr != nil {
				n.log.Error("validation failed on every attempt", "job", current.ID, "err", workErr)
				failure = &farm.FailedReason{Name: "VALIDATION_ERROR", Type: farm.FailValidation,
					Message: "the farm could not inspect the file (an internal error, logged on the server); try again later"}
			}
			if sceneFile != nil {
				current.SceneFile = sceneFile
			}
			if failure != nil {
				current.FailedReason = failure
				failed = true
				return n.engine.MoveJob(ctx, tx, current, farm.StatusFailed)
			}
			id := uuid.NewString()
			current.Analysis = analysis
			current.AnalysisID = &id
			return n.engine.MoveJob(ctx, tx, current, farm.StatusValidated)
		},
	})
	if recorded && failed {
		// Nothing of a refused file stays on the worker.
		n.forgetJobFiles(ref.JobID)
	}
	return err
}

// inspect runs the checks. A bad file is a failure for the user to fix;
// an error is a passing fault worth retrying.
func (n *Node) inspect(ctx context.Context, job *farm.Job) (*farm.Analysis, *farm.SceneFile, *farm.FailedReason, error) {
	in, err := n.prepareInput(ctx, job)
	if be, ok := isInputError(err); ok {
		return nil, nil, &farm.FailedReason{Name: be.Code, Type: farm.FailValidation, Message: be.Message}, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	// A warm Blender keeps the file loaded for the job's first chunk on
	// this worker.
	ins, err := n.blender.Inspect(ctx, in.BlendPath, n.outputRoot(job.ID))
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, nil, ctx.Err()
		}
		// What Blender said reaches the client without the farm's paths.
		paths := n.farmPaths(job.ID, in)
		var ie *blender.InspectError
		if errors.As(err, &ie) {
			n.keepLog(ctx, job.ID, "validate", ie.LogTail, paths)
		}
		return nil, &in.SceneFile, &farm.FailedReason{Name: "BLENDER_CANNOT_OPEN_FILE", Type: farm.FailValidation,
			Message: paths.scrub(fmt.Sprintf("%v; check that the file opens in Blender %s and upload it again", err, n.blenderVersion(ctx)))}, nil
	}
	return farm.AnalyzeInspection(*ins), &in.SceneFile, nil, nil
}

func (n *Node) blenderVersion(ctx context.Context) string {
	v, err := n.blender.Version(ctx)
	if err != nil {
		return "(unknown version)"
	}
	return v
}
