package engine

import (
	"fmt"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/store"
)

// River's queues. Rendering runs as many chunks at once as a render node
// has slots; validating and finalizing are short and run beside it on the
// same nodes. Maintenance and cleanup run on every process, webhooks on
// the processes that deliver them (the API servers).
const (
	QueueRender      = "render"
	QueueControl     = "control"
	QueueMaintenance = "maintenance"
	QueueCleanup     = "cleanup"
	QueueWebhooks    = "webhooks"
)

// validateAttempts and finalizeAttempts are how many times River tries a
// validation or a finalizing before the job fails; a chunk's attempts are
// Config.RenderAttempts, a webhook event's Config.WebhookAttempts.
const (
	validateAttempts = 3
	finalizeAttempts = 3
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

// ValidateArgs are a validate_file job's: check a job's file.
type ValidateArgs struct{ TaskRef }

// Kind is River's name for the job.
func (ValidateArgs) Kind() string { return "validate_file" }

// RenderArgs are a render_chunk job's: render these frames of a job.
type RenderArgs struct {
	TaskRef
	Frames []int `json:"frames"`
}

// Kind is River's name for the job.
func (RenderArgs) Kind() string { return "render_chunk" }

// FinalizeArgs are a finalize_outputs job's: make a job's zip and preview.
type FinalizeArgs struct{ TaskRef }

// Kind is River's name for the job.
func (FinalizeArgs) Kind() string { return "finalize_outputs" }

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

// DeleteObjectsArgs name objects to remove: exact keys, and prefixes that
// hold a whole folder. JobID, when set, is the job they belonged to.
type DeleteObjectsArgs struct {
	JobID    string   `json:"jobId,omitempty"`
	Keys     []string `json:"keys,omitempty"`
	Prefixes []string `json:"prefixes,omitempty"`
}

// Kind is River's name for the job.
func (DeleteObjectsArgs) Kind() string { return "delete_objects" }

// argsFor is the River job that carries out a task of kind for ref, with
// its queue and attempts: the one place a task becomes River work, whether
// it is queued for the first time or handed out again. frames are a
// chunk's, for a render task.
func (e *Engine) argsFor(kind store.TaskKind, ref TaskRef, frames []int) (river.JobArgs, *river.InsertOpts, error) {
	switch kind {
	case store.TaskValidate:
		return ValidateArgs{ref}, &river.InsertOpts{Queue: QueueControl, MaxAttempts: validateAttempts}, nil
	case store.TaskRender:
		// The last attempt fails the job by itself, naming the frame.
		return RenderArgs{TaskRef: ref, Frames: frames}, &river.InsertOpts{Queue: QueueRender, MaxAttempts: e.cfg.RenderAttempts}, nil
	case store.TaskFinalize:
		return FinalizeArgs{ref}, &river.InsertOpts{Queue: QueueControl, MaxAttempts: finalizeAttempts}, nil
	}
	return nil, nil, fmt.Errorf("unknown task kind %q", kind)
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
