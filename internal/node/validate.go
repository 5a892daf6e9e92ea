package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// validation is one attempt at checking a job's file: first cheaply in Go
// (the .blend header, the project zip), then with Blender, which reports
// the scenes, settings and external files that become the job's analysis.
type validation struct {
	n   *Node
	ref engine.TaskRef

	loaded    *farm.Job // as the task was claimed
	analysis  *farm.Analysis
	sceneFile *farm.SceneFile
	failure   *farm.FailedReason // the file's own fault
	failed    bool               // the job was failed for it
}

func newValidation(n *Node, args engine.ValidateArgs) task {
	return &validation{n: n, ref: args.TaskRef}
}

func (v *validation) load(ctx context.Context) (*farm.Job, error) {
	job, err := v.n.store.GetJob(ctx, "", v.ref.JobID)
	v.loaded = job
	return job, err
}

func (v *validation) work(ctx context.Context, _ *waiter, job *farm.Job) error {
	if job.Status != farm.StatusValidating {
		return nil // canceled before it started: nothing to check
	}
	// A project is extracted into the work directory: a disk below its
	// reserve is waited for first.
	if err := v.n.checkDiskSpace(); err != nil {
		return err
	}
	var err error
	v.analysis, v.sceneFile, v.failure, err = v.n.inspect(ctx, job)
	if ctx.Err() != nil {
		return err
	}
	return v.n.blameDisk(err)
}

func (v *validation) finishAs(error) store.TaskStatus {
	if v.loaded.Status != farm.StatusValidating {
		return store.TaskCanceled
	}
	return store.TaskDone
}

func (v *validation) record(ctx context.Context, tx *store.Tx, current *farm.Job, workErr error) error {
	if current.Status != farm.StatusValidating {
		return nil // canceled while it was checked: leave it
	}
	switch {
	case outageFailure(workErr, farm.FailValidation) != nil:
		v.n.log.Error("validation gave up waiting for an outage", "job", current.ID, "err", workErr)
		v.failure = outageFailure(workErr, farm.FailValidation)
	case workErr != nil:
		v.n.log.Error("validation failed on every attempt", "job", current.ID, "err", workErr)
		v.failure = &farm.FailedReason{Name: "VALIDATION_ERROR", Type: farm.FailValidation,
			Message: "the farm could not inspect the file (an internal error, logged on the server); try again later"}
	}
	if v.sceneFile != nil {
		current.SceneFile = v.sceneFile
	}
	if v.failure != nil {
		current.FailedReason = v.failure
		v.failed = true
		return v.n.engine.MoveJob(ctx, tx, current, farm.StatusFailed)
	}
	id := uuid.NewString()
	current.Analysis = v.analysis
	current.AnalysisID = &id
	return v.n.engine.MoveJob(ctx, tx, current, farm.StatusValidated)
}

func (v *validation) done(recorded bool) {
	if recorded && v.failed {
		// Nothing of a refused file stays on the worker.
		v.n.forgetJobFiles(v.ref.JobID)
	}
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
