package engine

import "github.com/riverqueue/river"

// River queues: rendering runs as many at once as the worker has render
// slots; validating and finalizing are short and run beside it.
const (
	queueRender      = "render"
	queueControl     = "control"
	queueMaintenance = "maintenance"
	queueWebhooks    = "webhooks"
)

// taskRef names the task a River job carries out and the generation it was
// enqueued for; a job whose generation is no longer the task's does nothing.
type taskRef struct {
	JobID      string `json:"jobId"`
	TaskID     string `json:"taskId"`
	Generation int    `json:"generation"`
}

type validateArgs struct{ taskRef }

func (validateArgs) Kind() string { return "validate_file" }
func (validateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueControl, MaxAttempts: 3}
}

type renderArgs struct {
	taskRef
	Frames []int `json:"frames"`
}

func (renderArgs) Kind() string { return "render_chunk" }

// renderArgs carries no MaxAttempts: the engine's RenderAttempts is set on
// each insert, so that the last attempt can fail the job by itself.
func (renderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueRender}
}

type finalizeArgs struct{ taskRef }

func (finalizeArgs) Kind() string { return "finalize_outputs" }
func (finalizeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueControl, MaxAttempts: 3}
}

type reapArgs struct{}

func (reapArgs) Kind() string { return "reap_orphaned_tasks" }
func (reapArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueMaintenance, MaxAttempts: 1}
}

type deliverArgs struct {
	EventID string `json:"eventId"`
}

func (deliverArgs) Kind() string { return "deliver_webhook" }
func (deliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueWebhooks}
}
