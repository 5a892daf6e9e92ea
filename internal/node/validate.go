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
	// blender is the version the task was routed to, "" before a node
	// chose one.
	blender string
	routed  bool // handed to the nodes of another Blender

	loaded    *farm.Job // as the task was claimed
	analysis  *farm.Analysis
	sceneFile *farm.SceneFile
	failure   *farm.FailedReason // the file's own fault
	failed    bool               // the job was failed for it
}

func newValidation(n *Node, args engine.ValidateArgs) task {
	return &validation{n: n, ref: args.TaskRef, blender: args.BlenderVersion}
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
	check, err := v.n.inspect(ctx, job, v.ref, v.blender)
	if errors.Is(err, errNotOurs) {
		v.routed = true
	}
	v.analysis, v.sceneFile, v.failure = check.analysis, check.sceneFile, check.failure
	if err == nil || ctx.Err() != nil || v.routed {
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
	if (recorded && v.failed) || v.routed {
		// Nothing of a refused file stays on the worker, nor of one
		// another node validates.
		v.n.forgetJobFiles(v.ref.JobID)
	}
}

// fileCheck is what validation found: the analysis of a file Blender
// read, or the failure of a bad one, and the file's description.
type fileCheck struct {
	analysis  *farm.Analysis
	sceneFile *farm.SceneFile
	failure   *farm.FailedReason
}

// inspect runs the checks: the file in Go, then, with the farm's Blender
// that opens it, in Blender. routed is the Blender the task was routed to
// ("" for none yet). A bad file is a failure for the user to fix; an error
// is a passing fault worth retrying, or errNotOurs once the task was
// routed to the nodes of a Blender this node does not run.
func (n *Node) inspect(ctx context.Context, job *farm.Job, ref engine.TaskRef, routed string) (fileCheck, error) {
	in, err := n.prepareInput(ctx, job)
	if be, ok := isInputError(err); ok {
		return fileCheck{failure: &farm.FailedReason{Name: be.Code, Type: farm.FailValidation, Message: be.Message}}, nil
	}
	if err != nil {
		return fileCheck{}, err
	}
	// The header says which Blender saved the file, and so which of the
	// farm's Blenders can open it: a file newer than every one fails here,
	// without a Blender started for nothing.
	offered, err := n.farmBlenders(ctx)
	if err != nil {
		return fileCheck{}, err
	}
	fileVersion := in.Header.VersionString()
	version, ok := n.blenderFor(fileVersion, routed, offered)
	if !ok {
		return fileCheck{sceneFile: &in.SceneFile, failure: farm.BlenderTooOld(fileVersion, offered)}, nil
	}
	inst, here := n.install(version)
	if !here {
		return fileCheck{}, n.route(ctx, ref, version, &in.SceneFile)
	}
	// A warm Blender keeps the file loaded for the job's first chunk on
	// this worker.
	ins, err := inst.Blender.Inspect(ctx, in.BlendPath, n.outputRoot(job.ID))
	if err != nil {
		if ctx.Err() != nil {
			return fileCheck{}, ctx.Err()
		}
		// What Blender said reaches the client without the farm's paths.
		paths := n.farmPaths(job.ID, in)
		var ie *blender.InspectError
		if errors.As(err, &ie) {
			n.keepLog(ctx, nil, ref, "validate", ie.LogTail, paths)
		}
		return fileCheck{sceneFile: &in.SceneFile, failure: &farm.FailedReason{Name: farm.ReasonBlenderCannotOpenFile, Type: farm.FailValidation,
			Message: paths.scrub(fmt.Sprintf("Blender %s could not open the file, saved with Blender %s: %v; check that it opens in Blender %s and upload it again",
				inst.Version, fileVersion, err, inst.Version))}}, nil
	}
	a := farm.AnalyzeInspection(*ins)
	a.RenderBlenderVersion, a.FarmBlenderVersions = inst.Version, offered
	return fileCheck{analysis: a, sceneFile: &in.SceneFile}, nil
}
