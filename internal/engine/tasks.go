package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// Enqueue records a task of a job and inserts the River job that carries
// it out, in the caller's transaction, and answers the task's id. Chunks
// of frames are queued with EnqueueChunks.
func (e *Engine) Enqueue(ctx context.Context, tx *store.Tx, job *farm.Job, kind store.TaskKind) (string, error) {
	now := time.Now().UTC()
	task := store.Task{ID: uuid.NewString(), JobID: job.ID, Kind: kind, Status: store.TaskQueued, Generation: 1, CreatedAt: now, UpdatedAt: now,
		WorkspaceID: job.WorkspaceID}
	if err := tx.InsertTask(ctx, task); err != nil {
		return "", err
	}
	return task.ID, e.insertTask(ctx, tx, task, nil)
}

// EnqueueChunks records a task and its frames for every chunk of a job,
// in the caller's transaction. The chunks wait (store.TaskWaiting) with
// their job's workspace, priority and requirements, and no River job:
// the dispatcher gives each to a worker with a free slot that can render
// it, and inserts its River job then (see dispatch.go). The caller
// dispatches once it has committed (DispatchIdle).
//
// Every chunk is rendered by the job's Blender (finalConfig.blenderVersion)
// on a worker that offers what finalConfig asks for (farm.RequirementsOf).
//
// A frame the job already has (a resume or a retry renders it again) is
// queued again under its new chunk, keeping its attempts
// (store.QueueFrame); the chunks are numbered after the job's earlier
// ones.
func (e *Engine) EnqueueChunks(ctx context.Context, tx *store.Tx, job *farm.Job, chunks [][]int) error {
	need := farm.RequirementsOf(job.FinalConfig)
	if err := tx.EnsureRequirements(ctx, need); err != nil {
		return err
	}
	now := time.Now().UTC()
	first, err := tx.NextChunk(ctx, job.ID)
	if err != nil {
		return err
	}
	if err := checkRenderTasksLeft(job, first, chunks); err != nil {
		return err
	}
	if job.FinalConfig.PartsPerFrame() > 1 {
		return e.enqueueParts(ctx, tx, job, need, first, chunks, now)
	}
	for i, frames := range chunks {
		task := store.Task{ID: uuid.NewString(), JobID: job.ID, Kind: store.TaskRender, Chunk: first + i, Status: store.TaskWaiting, Generation: 1, CreatedAt: now, UpdatedAt: now,
			BlenderVersion: need.BlenderVersion, WorkspaceID: job.WorkspaceID, Priority: job.Priority, Requirements: need.Key()}
		if err := tx.InsertTask(ctx, task); err != nil {
			return err
		}
		for _, f := range frames {
			if err := tx.QueueFrame(ctx, store.Frame{JobID: job.ID, Frame: f, TaskID: task.ID, Status: farm.FrameQueued, UpdatedAt: now}); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkRenderTasksLeft refuses chunks that would take job past the
// render tasks a job may make over its life (farm.MaxRenderTasksPerJob),
// made is how many it made before (the next chunk's number), counting each
// part of a split frame as a task, as enqueueParts makes them.
func checkRenderTasksLeft(job *farm.Job, made int, chunks [][]int) error {
	adding := len(chunks)
	if parts := job.FinalConfig.PartsPerFrame(); parts > 1 {
		adding = 0
		for _, frames := range chunks {
			adding += len(frames) * parts
		}
	}
	if made+adding <= farm.MaxRenderTasksPerJob {
		return nil
	}
	return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest,
		Message: fmt.Sprintf("job %s has made %d render tasks (chunks, and parts of split frames) over its render, resumes and retries, and this would make %d more, past the %d one job may make; nothing was done. "+
			"Upload the file again to render it as a new job", job.ID, made, adding, farm.MaxRenderTasksPerJob)}
}

// enqueueParts is EnqueueChunks for a job whose frames are split: a
// render task for each part of each frame, waiting for the dispatcher
// like a chunk, numbered from first. A part stored already (the job is
// resumed or retried) is not rendered again; a frame whose parts are all
// stored is merged (EnqueueMerge). The frame's task is its first part's
// to render, until the merge takes it.
func (e *Engine) enqueueParts(ctx context.Context, tx *store.Tx, job *farm.Job, need farm.Requirements, first int, chunks [][]int, now time.Time) error {
	count := job.FinalConfig.PartsPerFrame()
	next := first
	for _, frames := range chunks {
		for _, f := range frames {
			parts, err := tx.PartsOfFrame(ctx, job.ID, f)
			if err != nil {
				return err
			}
			stored := map[int]bool{}
			for _, p := range parts {
				stored[p.Part] = p.Stored()
			}
			frameTask := ""
			for i := range count {
				if stored[i] {
					continue
				}
				task := store.Task{ID: uuid.NewString(), JobID: job.ID, Kind: store.TaskRender, Chunk: next, Status: store.TaskWaiting, Generation: 1, CreatedAt: now, UpdatedAt: now,
					BlenderVersion: need.BlenderVersion, WorkspaceID: job.WorkspaceID, Priority: job.Priority, Requirements: need.Key()}
				next++
				if err := tx.InsertTask(ctx, task); err != nil {
					return err
				}
				if err := tx.QueuePart(ctx, store.FramePart{JobID: job.ID, Frame: f, Part: i, TaskID: task.ID}); err != nil {
					return err
				}
				if frameTask == "" {
					frameTask = task.ID
				}
			}
			if frameTask == "" {
				// Every part is stored: only the merge is left.
				if err := tx.QueueFrame(ctx, store.Frame{JobID: job.ID, Frame: f, TaskID: "", Status: farm.FrameQueued, UpdatedAt: now}); err != nil {
					return err
				}
				if err := e.EnqueueMerge(ctx, tx, job, f); err != nil {
					return err
				}
				continue
			}
			if err := tx.QueueFrame(ctx, store.Frame{JobID: job.ID, Frame: f, TaskID: frameTask, Status: farm.FrameQueued, UpdatedAt: now}); err != nil {
				return err
			}
		}
	}
	return nil
}

// EnqueueMerge queues the merge of a split frame whose parts are all
// stored, in the caller's transaction, and makes it the frame's task: it
// stores the merged frame as a render task stores a frame. The caller
// holds the job's lock, so that of the parts that end together, only the
// last one queues the merge.
func (e *Engine) EnqueueMerge(ctx context.Context, tx *store.Tx, job *farm.Job, frame int) error {
	now := time.Now().UTC()
	task := store.Task{ID: uuid.NewString(), JobID: job.ID, Kind: store.TaskMerge, Chunk: frame, Status: store.TaskQueued, Generation: 1, CreatedAt: now, UpdatedAt: now,
		BlenderVersion: job.FinalConfig.BlenderVersion, WorkspaceID: job.WorkspaceID, Priority: job.Priority}
	if err := tx.InsertTask(ctx, task); err != nil {
		return err
	}
	if err := tx.SetFrameTask(ctx, job.ID, frame, task.ID); err != nil {
		return err
	}
	return e.insertTask(ctx, tx, task, nil)
}

// Requeue hands a task out again: a new generation, so that whatever its
// old holder still writes is refused. A chunk waits for the dispatcher
// again (its old River job, if still waiting on its worker's queue, is
// canceled); the caller dispatches once it has committed (DispatchIdle).
// A validation or a finalizing gets a new River job at once. A chunk's
// frames that were rendering go back to the queue; those already rendered
// stay. why is logged. A task that ended meanwhile is left as it is.
func (e *Engine) Requeue(ctx context.Context, t store.Task, why string) error {
	return e.store.InTx(ctx, func(tx *store.Tx) error {
		if t.Kind == store.TaskRender {
			return e.returnToWaiting(ctx, tx, t, why)
		}
		gen, err := tx.RequeueTask(ctx, t.ID, t.Generation)
		if errors.Is(err, store.ErrConflict) {
			return nil // someone else moved it on
		}
		if err != nil {
			return err
		}
		t.Generation = gen
		e.logRequeue(why, t)
		if t.Kind == store.TaskFinalize {
			// The holder given up on may still run: a Put it began
			// before it lost the task may land in its folder after its
			// successor's sweep, and its node die before its own.
			if err := e.sweepLater(ctx, tx, DeleteObjectsArgs{JobID: t.JobID, Outputs: true}); err != nil {
				return err
			}
		}
		return e.insertTask(ctx, tx, t, nil)
	})
}

// StaleHolderSweepAfter is how long after a task is handed out again what
// a holder given up on may have stored and nothing records is removed
// (RemoveUnkeptOutputs for a finalize task, RemoveOrphanFrames for a
// chunk): far longer than such a holder takes to end a Put it began.
const StaleHolderSweepAfter = time.Hour

// sweepLater queues, in tx, the removal sweep (a job's unkept outputs or
// orphan frames) to run StaleHolderSweepAfter from now, unless the same
// sweep of the job already waits or runs: a worker given up on with a
// hundred chunks of one job hands them all out again at once, and one
// sweep after them all does.
func (e *Engine) sweepLater(ctx context.Context, tx *store.Tx, sweep DeleteObjectsArgs) error {
	opts := e.insertOpts(sweep)
	opts.ScheduledAt = time.Now().Add(StaleHolderSweepAfter)
	opts.UniqueOpts = river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled}}
	if _, err := e.River().InsertTx(ctx, tx.SQL(), sweep, opts); err != nil {
		return fmt.Errorf("queue the late removal sweep of job %s: %w", sweep.JobID, err)
	}
	return nil
}

// returnToWaiting is Requeue's for a chunk.
func (e *Engine) returnToWaiting(ctx context.Context, tx *store.Tx, t store.Task, why string) error {
	current, err := tx.LockTask(ctx, t.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	gen, err := tx.ReturnToWaiting(ctx, t.ID, t.Generation)
	if errors.Is(err, store.ErrConflict) {
		return nil // someone else moved it on
	}
	if err != nil {
		return err
	}
	if current.RiverJobID != 0 {
		// Its River job may still wait on the queue of a worker that is
		// gone; canceled, it stays out of River's queue counts. (A running
		// one is told to stop: its writes are refused anyway.)
		if _, err := e.River().JobCancelTx(ctx, tx.SQL(), current.RiverJobID); err != nil && !errors.Is(err, river.ErrNotFound) {
			return fmt.Errorf("cancel the River job of task %s: %w", t.ID, err)
		}
	}
	if err := queueRenderingFrames(ctx, tx, t.ID); err != nil {
		return err
	}
	// The holder given up on may still run: a frame it stores after the
	// job's finalizing removed the orphans, its node then dying, would
	// stay.
	if err := e.sweepLater(ctx, tx, DeleteObjectsArgs{JobID: t.JobID, OrphanFrames: true}); err != nil {
		return err
	}
	t.Generation = gen
	e.logRequeue(why, t)
	return nil
}

// RetryChunkLater returns a chunk whose attempt, held for ref's
// generation, failed with attempts left to waiting, in a transaction of
// its own: the worker's slot is free at once for another chunk, and the
// dispatcher gives this one to a worker (the same or another) once
// backoff has passed, under a new generation, with a River job that
// carries its failed attempts (RenderArgs.FailedAttempts). Its frames
// that were rendering go back to the queue; those stored stay. A chunk
// that is no longer running at that generation is left as it is
// (store.ErrConflict).
func (e *Engine) RetryChunkLater(ctx context.Context, ref TaskRef, backoff time.Duration) error {
	return e.store.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.LockTask(ctx, ref.TaskID); err != nil {
			return err
		}
		if _, err := tx.RetryLater(ctx, ref.TaskID, ref.Generation, time.Now().Add(backoff)); err != nil {
			return err
		}
		return queueRenderingFrames(ctx, tx, ref.TaskID)
	})
}

// queueRenderingFrames puts a chunk's frames that were rendering back in
// the queue, in tx; those already rendered stay.
func queueRenderingFrames(ctx context.Context, tx *store.Tx, taskID string) error {
	rows, err := tx.FramesOfTask(ctx, taskID)
	if err != nil {
		return err
	}
	for _, f := range rows {
		if f.Status == farm.FrameRendering {
			f.Status = farm.FrameQueued
			if err := tx.UpdateFrame(ctx, f); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *Engine) logRequeue(why string, t store.Task) {
	ref := TaskRef{JobID: t.JobID, TaskID: t.ID, Generation: t.Generation}
	detail, _ := json.Marshal(ref)
	e.log.Warn(why, "task", t.ID, "kind", t.Kind, "job", t.JobID, "ref", string(detail))
}

// Route hands a validation, which the caller holds for generation, to
// the render nodes that run the Blender of blenderVersion: a new
// generation (the caller's River job can then write nothing more) and a
// River job on that version's queue, in one transaction. A node that took
// a validation whose file needs a Blender it lacks routes it so, with
// what it read of the file (sceneFile, recorded on the job: its header's
// version says which Blenders open it, should the reaper have to route
// it again, see Reroute). A task that ended meanwhile is left as it is.
// Chunks are never routed: the dispatcher gives them only to workers
// that run their Blender.
func (e *Engine) Route(ctx context.Context, ref TaskRef, blenderVersion string, sceneFile *farm.SceneFile) error {
	return e.store.InTx(ctx, func(tx *store.Tx) error {
		if sceneFile != nil {
			// The job's row before its task's, as every transaction
			// takes them.
			if err := tx.RecordSceneFile(ctx, ref.JobID, sceneFile); err != nil {
				return err
			}
		}
		_, err := e.route(ctx, tx, ref, blenderVersion, false)
		return err
	})
}

// Reroute hands a queued validation or merge, t as the caller read it,
// to the render nodes of another Blender, blenderVersion ("" for a
// validation: to the queue every node works, whose first taker reads the
// file and chooses its Blender), as Route does, and cancels its River job
// on the queue it leaves. The reaper routes so a task whose Blender's
// nodes have all left the farm. routed is false when the task moved on
// meanwhile (it began running, or ended), and then nothing changes.
func (e *Engine) Reroute(ctx context.Context, t store.Task, blenderVersion string) (routed bool, err error) {
	err = e.store.InTx(ctx, func(tx *store.Tx) error {
		var old store.Task
		if old, err = e.route(ctx, tx, TaskRef{JobID: t.JobID, TaskID: t.ID, Generation: t.Generation}, blenderVersion, true); err != nil || old.ID == "" {
			return err
		}
		routed = true
		if old.RiverJobID != 0 {
			if _, err := e.River().JobCancelTx(ctx, tx.SQL(), old.RiverJobID); err != nil && !errors.Is(err, river.ErrNotFound) {
				return fmt.Errorf("cancel the River job of task %s: %w", t.ID, err)
			}
		}
		return nil
	})
	return routed, err
}

// route is Route's and Reroute's: it answers the task as it was before it
// was routed, or no task (its ID empty) when it had moved on from
// ref's generation, or, queuedOnly, began running.
func (e *Engine) route(ctx context.Context, tx *store.Tx, ref TaskRef, blenderVersion string, queuedOnly bool) (store.Task, error) {
	t, err := tx.LockTask(ctx, ref.TaskID)
	if err != nil {
		return store.Task{}, err
	}
	if queuedOnly && (t.Status != store.TaskQueued || t.Generation != ref.Generation) {
		return store.Task{}, nil
	}
	if t.Kind == store.TaskRender {
		return store.Task{}, fmt.Errorf("task %s is a chunk, which the dispatcher gives only to workers with its Blender; it cannot be routed", t.ID)
	}
	gen, err := tx.RouteTask(ctx, t.ID, ref.Generation, blenderVersion)
	if errors.Is(err, store.ErrConflict) {
		return store.Task{}, nil // someone else moved it on
	}
	if err != nil {
		return store.Task{}, err
	}
	before := t
	t.Generation, t.BlenderVersion = gen, blenderVersion
	return before, e.insertTask(ctx, tx, t, nil)
}

// insertTask inserts the River job of a task's current generation and
// records it on the task, so that canceling the farm's job cancels it.
// A validation or a merge is given its River priority by how many of its
// workspace's validations and merges made before it still wait
// (controlPriority).
func (e *Engine) insertTask(ctx context.Context, tx *store.Tx, task store.Task, frames []int) error {
	ahead := 0
	if task.Kind == store.TaskValidate || task.Kind == store.TaskMerge {
		var err error
		if ahead, err = tx.ControlTasksAhead(ctx, task, controlPriorityCap); err != nil {
			return err
		}
	}
	args, opts, err := e.argsFor(task, frames, ahead)
	if err != nil {
		return err
	}
	res, err := e.River().InsertTx(ctx, tx.SQL(), args, opts)
	if err != nil {
		return fmt.Errorf("queue %s: %w", task.Kind, err)
	}
	return tx.SetTaskRiverJob(ctx, task.ID, res.Job.ID)
}

// insertChunkJobs inserts the River jobs of chunks being given to
// workers (each task's WorkerID set), frames being each chunk's frames by
// task id, in one batch (InsertManyTx) however many chunks, and answers
// each task's River job by task id, for the caller to record.
func (e *Engine) insertChunkJobs(ctx context.Context, tx *store.Tx, chunks []store.Task, frames map[string][]int) (map[string]int64, error) {
	if len(chunks) == 0 {
		return nil, nil
	}
	params := make([]river.InsertManyParams, len(chunks))
	for i, task := range chunks {
		args, opts, err := e.argsFor(task, frames[task.ID], 0)
		if err != nil {
			return nil, err
		}
		params[i] = river.InsertManyParams{Args: args, InsertOpts: opts}
	}
	results, err := e.River().InsertManyTx(ctx, tx.SQL(), params)
	if err != nil {
		return nil, fmt.Errorf("queue %d chunks: %w", len(chunks), err)
	}
	// Each River job names its task in its arguments: matched by that,
	// not by the order River answers in.
	riverJobs := make(map[string]int64, len(results))
	for _, res := range results {
		var ref TaskRef
		if err := json.Unmarshal(res.Job.EncodedArgs, &ref); err != nil {
			return nil, fmt.Errorf("read a queued chunk's River job %d: %w", res.Job.ID, err)
		}
		riverJobs[ref.TaskID] = res.Job.ID
	}
	if len(riverJobs) != len(chunks) {
		return nil, fmt.Errorf("queue %d chunks: River answered %d jobs for %d of them", len(chunks), len(results), len(riverJobs))
	}
	return riverJobs, nil
}

// Insert queues River work that carries out no task of a job (removing
// objects), in the caller's transaction.
func (e *Engine) Insert(ctx context.Context, tx *store.Tx, args river.JobArgs) error {
	if _, err := e.River().InsertTx(ctx, tx.SQL(), args, e.insertOpts(args)); err != nil {
		return fmt.Errorf("queue %s: %w", args.Kind(), err)
	}
	return nil
}

// InsertLater is Insert, with the River job to run at at.
func (e *Engine) InsertLater(ctx context.Context, tx *store.Tx, args river.JobArgs, at time.Time) error {
	opts := e.insertOpts(args)
	opts.ScheduledAt = at
	if _, err := e.River().InsertTx(ctx, tx.SQL(), args, opts); err != nil {
		return fmt.Errorf("queue %s for %s: %w", args.Kind(), at.Format(time.RFC3339), err)
	}
	return nil
}

// CancelWork stops every unfinished task of a job: their River jobs are
// canceled (a running one's context ends, which kills its Blender) and
// their unfinished frames are marked canceled.
func (e *Engine) CancelWork(ctx context.Context, tx *store.Tx, jobID string) error {
	if err := e.stopTasks(ctx, tx, jobID); err != nil {
		return err
	}
	return tx.MoveFramesOfJob(ctx, jobID, farm.FrameCanceled)
}

// SuspendWork stops every unfinished task of a job as CancelWork does,
// but the job is not over: its frames that were rendering go back to the
// queue, and those queued stay so, for EnqueueChunks to queue again when
// the job is resumed. Frames already stored stay as they are.
func (e *Engine) SuspendWork(ctx context.Context, tx *store.Tx, jobID string) error {
	if err := e.stopTasks(ctx, tx, jobID); err != nil {
		return err
	}
	return tx.MoveUnfinishedFramesOfJob(ctx, jobID)
}

// stopTasks marks a job's unfinished tasks canceled and cancels their
// River jobs, in the caller's transaction: nothing their holders still
// write counts (each write checks the task is running).
func (e *Engine) stopTasks(ctx context.Context, tx *store.Tx, jobID string) error {
	tasks, uncharged, err := tx.CancelTasksOfJob(ctx, jobID)
	if err != nil {
		return err
	}
	for _, u := range uncharged {
		e.log.Warn("a stopped chunk's completed frames are charged no render seconds: the node that claimed it, of a version before migration 0023, recorded no threads, and no end of its tells them",
			"job", jobID, "task", u.TaskID, "renderSeconds", u.RenderSeconds)
	}
	for _, t := range tasks {
		if t.RiverJobID == 0 {
			continue
		}
		if _, err := e.River().JobCancelTx(ctx, tx.SQL(), t.RiverJobID); err != nil && !errors.Is(err, river.ErrNotFound) {
			return fmt.Errorf("cancel task %s: %w", t.ID, err)
		}
	}
	return nil
}
