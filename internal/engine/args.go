package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// River's queues. Rendering runs as many chunks at once as a render node
// has slots, each chunk on the queue of the worker run it was given to
// (RenderQueue); validating and finalizing are short and run beside it on
// the same nodes. A validation that needs one Blender version goes to
// that version's own control queue (see BlenderQueue). Maintenance and
// cleanup run on every process, webhooks on the processes that deliver
// them (the API servers).
const (
	QueueRender      = "render"
	QueueControl     = "control"
	QueueMaintenance = "maintenance"
	QueueCleanup     = "cleanup"
	QueueWebhooks    = "webhooks"
)

// BlenderQueue is the queue of base's work (QueueControl) that needs the
// Blender of version blenderVersion ("4.3.2"): only render nodes that run
// that Blender work it, so a validation never reaches a node that cannot
// open its file. River's queue names allow letters, digits,
// "_" and "-", so "render_4_3_2". No version is base itself, which every
// render node works.
func BlenderQueue(base, blenderVersion string) (string, error) {
	if blenderVersion == "" {
		return base, nil
	}
	v, ok := farm.ParseBlenderVersion(blenderVersion)
	if !ok {
		return "", fmt.Errorf("%q is not a Blender version", blenderVersion)
	}
	return base + "_" + strings.ReplaceAll(v.String(), ".", "_"), nil
}

// validateAttempts and finalizeAttempts are how many times River tries a
// validation or a finalizing before the job fails; a chunk's attempts are
// Config.RenderAttempts, a webhook event's Config.WebhookAttempts.
const (
	validateAttempts = 3
	finalizeAttempts = 3
	mergeAttempts    = 3
)

// TaskRef names the task a River job carries out and the generation it was
// enqueued for; a job whose generation is no longer the task's does nothing.
type TaskRef struct {
	JobID      string `json:"jobId"`
	TaskID     string `json:"taskId"`
	Generation int    `json:"generation"`
}

// Task is the task a River job carries out, so that its arguments name it
// whatever their kind.
func (r TaskRef) Task() TaskRef { return r }

// ValidateArgs are a validate_file job's: check a job's file, with the
// Blender of BlenderVersion once a node has chosen it ("" before: the
// first node to take it reads the file's version and routes it).
type ValidateArgs struct {
	TaskRef
	BlenderVersion string `json:"blenderVersion,omitempty"`
}

// Kind is River's name for the job.
func (ValidateArgs) Kind() string { return "validate_file" }

// RenderArgs are a render_chunk job's: render these frames of a job with
// the Blender of BlenderVersion (the job's finalConfig.blenderVersion).
//
// FailedAttempts are the attempts at the chunk that failed before this
// River job, on whichever worker (a failed attempt frees its slot and the
// chunk is dispatched again, with a River job of its own): the job's
// first attempt is the chunk's FailedAttempts+1.
type RenderArgs struct {
	TaskRef
	Frames         []int  `json:"frames"`
	BlenderVersion string `json:"blenderVersion,omitempty"`
	FailedAttempts int    `json:"failedAttempts,omitempty"`
}

// Kind is River's name for the job.
func (RenderArgs) Kind() string { return "render_chunk" }

// FinalizeArgs are a finalize_outputs job's: make a job's zip and preview.
type FinalizeArgs struct{ TaskRef }

// Kind is River's name for the job.
func (FinalizeArgs) Kind() string { return "finalize_outputs" }

// MergeArgs are a merge_parts job's: merge the stored parts of a split
// frame of a job into the frame, with the Blender of BlenderVersion.
type MergeArgs struct {
	TaskRef
	Frame          int    `json:"frame"`
	BlenderVersion string `json:"blenderVersion,omitempty"`
}

// Kind is River's name for the job.
func (MergeArgs) Kind() string { return "merge_parts" }

// DeliverArgs are a deliver_webhook job's: send one event.
type DeliverArgs struct {
	EventID string `json:"eventId"`
}

// Kind is River's name for the job.
func (DeliverArgs) Kind() string { return "deliver_webhook" }

// ReapArgs are the periodic reap_orphaned_tasks job's.
type ReapArgs struct{}

// Kind is River's name for the job.
func (ReapArgs) Kind() string { return "reap_orphaned_tasks" }

// ExpireUploadsArgs are the periodic expire_uploads job's.
type ExpireUploadsArgs struct{}

// Kind is River's name for the job.
func (ExpireUploadsArgs) Kind() string { return "expire_uploads" }

// CountJobLogsArgs are the periodic count_job_logs job's.
type CountJobLogsArgs struct{}

// Kind is River's name for the job.
func (CountJobLogsArgs) Kind() string { return "count_job_logs" }

// DeleteObjectsArgs name objects to remove: exact keys, and prefixes that
// hold a whole folder. JobID, when set, is the job they belonged to.
// Outputs removes, after them, what that job's finalizings stored that
// the job does not keep (Engine.RemoveUnkeptOutputs): a retry's removal
// sets it, and so do a cancel of a finalizing job and the reaper failing
// one whose finalizing panicked; they may run long after they were
// queued and still take nothing a later finalizing stored. OrphanFrames
// removes the job's frame files that no frame records and whose holder
// can record nothing more (Engine.RemoveOrphanFrames): the reaper's
// requeue of a chunk sets it, for an hour later.
type DeleteObjectsArgs struct {
	JobID        string   `json:"jobId,omitempty"`
	Keys         []string `json:"keys,omitempty"`
	Prefixes     []string `json:"prefixes,omitempty"`
	Outputs      bool     `json:"outputs,omitempty"`
	OrphanFrames bool     `json:"orphanFrames,omitempty"`
}

// Kind is River's name for the job.
func (DeleteObjectsArgs) Kind() string { return "delete_objects" }

// controlPriority is the River priority (1 first, 4 last) of a
// validation or a merge of which ahead of its workspace's validations and
// merges, made before it, still wait to run. River runs a control queue's
// jobs by priority, then in the order they were queued: without this, a
// workspace that queues 2,000 validations at once has every other
// workspace's next validation wait for all of them. With it, each
// workspace's first two waiting validations and merges come before
// anyone's third, its first eight before anyone's ninth, its first 32
// before the rest (TestAWorkspacesManyValidationsDoNotHoldUpAnothers).
//
// The rank is taken when the River job is inserted: for a task queued
// again (its holder given up on, routed to another Blender), among those
// made before it, so that it keeps its place rather than go behind its
// workspace's later ones. The ones queued behind keep their priority as
// the first end; a later validation of the workspace then comes after
// them, which is still fair, since every workspace's first few come
// before them. River's retry of a failed attempt keeps its River job,
// and its priority. One that has waited ControlPriorityAge is raised to
// the first priority by the reaper, so that none waits for ever while
// other workspaces keep queueing their first few.
func controlPriority(ahead int) int {
	switch {
	case ahead < 2:
		return 1
	case ahead < 8:
		return 2
	case ahead < controlPriorityCap:
		return 3
	}
	return 4
}

// ControlPriorityAge is how long a validation or merge waits at the
// priority it was given before the reaper raises it to the first
// (store.RaiseLongWaitingControlTasks): a workspace's later ones wait
// behind other workspaces' first few, but not for longer than this.
const ControlPriorityAge = 10 * time.Minute

// controlPriorityCap is how many waiting validations and merges ahead of
// a task are counted at most: past it, the priority is the lowest.
const controlPriorityCap = 32

// argsFor is the River job that carries out task (its current
// generation), with its queue, attempts and priority: the one place a
// task becomes River work, whether it is queued for the first time,
// handed out again or routed to another Blender. frames are a chunk's,
// for a render task. A task that needs a Blender version goes to that
// version's queue. ahead is, for a validation or a merge, how many of its
// workspace's validations and merges made before it wait to run
// (controlPriority); finalizing keeps River's first priority, and a chunk
// is given its slot by the dispatcher.
func (e *Engine) argsFor(task store.Task, frames []int, ahead int) (river.JobArgs, *river.InsertOpts, error) {
	ref := TaskRef{JobID: task.JobID, TaskID: task.ID, Generation: task.Generation}
	switch task.Kind {
	case store.TaskValidate:
		queue, err := BlenderQueue(QueueControl, task.BlenderVersion)
		if err != nil {
			return nil, nil, fmt.Errorf("task %s: %w", task.ID, err)
		}
		return ValidateArgs{TaskRef: ref, BlenderVersion: task.BlenderVersion},
			&river.InsertOpts{Queue: queue, MaxAttempts: validateAttempts, Priority: controlPriority(ahead)}, nil
	case store.TaskRender:
		// A chunk goes to the queue of the worker run the dispatcher gave
		// it to, which only that run works.
		if task.WorkerID == "" {
			return nil, nil, fmt.Errorf("task %s: a chunk gets a River job only once it is given to a worker", task.ID)
		}
		// The last attempt fails the job by itself, naming the frame. The
		// River job has the attempts the chunk has left: River retries it
		// only after a passing failure (its data could not be read), which
		// counts against them too.
		return RenderArgs{TaskRef: ref, Frames: frames, BlenderVersion: task.BlenderVersion, FailedAttempts: task.FailedAttempts},
			&river.InsertOpts{Queue: RenderQueue(task.WorkerID), MaxAttempts: max(1, e.cfg.RenderAttempts-task.FailedAttempts)}, nil
	case store.TaskMerge:
		// A merge runs the job's Blender: only nodes that run it work
		// that version's control queue.
		queue, err := BlenderQueue(QueueControl, task.BlenderVersion)
		if err != nil {
			return nil, nil, fmt.Errorf("task %s: %w", task.ID, err)
		}
		return MergeArgs{TaskRef: ref, Frame: task.Chunk, BlenderVersion: task.BlenderVersion},
			&river.InsertOpts{Queue: queue, MaxAttempts: mergeAttempts, Priority: controlPriority(ahead)}, nil
	case store.TaskFinalize:
		// Finalizing runs ffmpeg, not Blender: any render node does it.
		return FinalizeArgs{ref}, &river.InsertOpts{Queue: QueueControl, MaxAttempts: finalizeAttempts}, nil
	}
	return nil, nil, fmt.Errorf("unknown task kind %q", task.Kind)
}

// insertOpts are the options of the River jobs that carry out no task:
// webhook deliveries, the periodic jobs and removals.
func (e *Engine) insertOpts(args river.JobArgs) *river.InsertOpts {
	switch args.(type) {
	case DeliverArgs:
		return &river.InsertOpts{Queue: QueueWebhooks, MaxAttempts: e.cfg.WebhookAttempts}
	case DeleteObjectsArgs:
		return &river.InsertOpts{Queue: QueueCleanup}
	}
	// The periodic jobs: the next run comes soon enough.
	return &river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 1}
}

// RemoveHistoryArgs are the periodic remove_history job's.
type RemoveHistoryArgs struct{}

// Kind is River's name for the job.
func (RemoveHistoryArgs) Kind() string { return "remove_history" }
