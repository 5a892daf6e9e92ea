package farm

// Status is where a job stands in its life. The eleven values are the
// Renderjuice ones; clients must be able to parse all of them, even
// debugging, which this farm never enters.
type Status string

// The job statuses, in the order a job normally passes through them.
const (
	StatusCreated    Status = "created"
	StatusValidating Status = "validating"
	StatusValidated  Status = "validated"
	StatusDebugging  Status = "debugging"
	StatusBooting    Status = "booting"
	StatusRendering  Status = "rendering"
	StatusFinalizing Status = "finalizing"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusCanceled   Status = "canceled"
	StatusSuspended  Status = "suspended"
)

// AllStatuses lists every status a job can have.
var AllStatuses = []Status{
	StatusCreated, StatusValidating, StatusValidated, StatusDebugging,
	StatusBooting, StatusRendering, StatusFinalizing, StatusCompleted,
	StatusFailed, StatusCanceled, StatusSuspended,
}

// ParseStatus accepts one of the eleven status names.
func ParseStatus(s string) (Status, bool) {
	for _, st := range AllStatuses {
		if string(st) == s {
			return st, true
		}
	}
	return "", false
}

// transitions lists the moves the farm makes. Failing and canceling are
// allowed from every status that is not final, so they are not listed here.
var transitions = map[Status][]Status{
	StatusCreated:    {StatusValidating},
	StatusValidating: {StatusValidated},
	StatusValidated:  {StatusBooting},
	// Suspended: by POST /suspend, or by the farm once a job's scout
	// frames are rendered.
	StatusBooting:    {StatusRendering, StatusSuspended},
	StatusRendering:  {StatusFinalizing, StatusSuspended},
	StatusFinalizing: {StatusCompleted},
	// Resumed: the frames not yet completed render.
	StatusSuspended: {StatusRendering},
	// Retried (POST /retry): some frames of a job that ended render again
	// and the job is finalized anew; a failed job whose frames all
	// completed (its finalizing failed) is only finalized again.
	StatusCompleted: {StatusBooting},
	StatusCanceled:  {StatusBooting},
	StatusFailed:    {StatusBooting, StatusFinalizing},
}

// IsFinal reports whether the farm's work on a job has ended: nothing
// happens to it any more unless a retry (POST /retry) renders some of its
// frames again.
func (s Status) IsFinal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCanceled
}

// IsRunning reports whether the farm is working on the job right now, which
// is what GET /jobs/progress lists.
func (s Status) IsRunning() bool {
	switch s {
	case StatusValidating, StatusBooting, StatusRendering, StatusFinalizing:
		return true
	}
	return false
}

// HasStartedRendering reports whether a render request was accepted for the
// job, so that a repeated request is a replay rather than an error.
func (s Status) HasStartedRendering() bool {
	switch s {
	case StatusBooting, StatusRendering, StatusFinalizing, StatusCompleted, StatusSuspended:
		return true
	}
	return false
}

// Why a job is suspended (Job.SuspendedReason, ours).
const (
	// SuspendedOnRequest: POST /jobs/{id}/suspend.
	SuspendedOnRequest = "REQUESTED"
	// SuspendedScoutFramesReady: the job's scout frames are rendered and
	// wait for a person to look at them; POST /resume renders the rest.
	SuspendedScoutFramesReady = "SCOUT_FRAMES_READY"
)

// CanMove reports whether a job may go from one status to another.
func CanMove(from, to Status) bool {
	if !from.IsFinal() && (to == StatusFailed || to == StatusCanceled) {
		return true
	}
	for _, next := range transitions[from] {
		if next == to {
			return true
		}
	}
	return false
}

// FrameStatus is where one frame of a job stands.
type FrameStatus string

// The frame statuses. A frame is queued with its chunk, rendering while a
// worker's Blender works on it, and ends completed (its image stored),
// failed (its chunk's last attempt failed on it) or canceled (its job
// was canceled, or failed on another frame).
const (
	FrameQueued    FrameStatus = "queued"
	FrameRendering FrameStatus = "rendering"
	FrameCompleted FrameStatus = "completed"
	FrameFailed    FrameStatus = "failed"
	FrameCanceled  FrameStatus = "canceled"
)

// AllFrameStatuses lists every status a frame can have.
var AllFrameStatuses = []FrameStatus{FrameQueued, FrameRendering, FrameCompleted, FrameFailed, FrameCanceled}

// frameTransitions lists the moves a frame makes; the three final
// statuses have none. A frame may also stay where it is while its other
// fields change (an attempt that failed before Blender announced the
// frame records its error and leaves it queued).
var frameTransitions = map[FrameStatus][]FrameStatus{
	// Blender announced it; or it was saved with no announcement seen;
	// or its chunk's last attempt failed on it; or its job ended.
	FrameQueued: {FrameRendering, FrameCompleted, FrameFailed, FrameCanceled},
	// An attempt failed, or its holder was given up on (queued again);
	// stored; failed on the last attempt; its job ended.
	FrameRendering: {FrameQueued, FrameCompleted, FrameFailed, FrameCanceled},
}

// IsFinal reports whether nothing can happen to a frame any more.
func (s FrameStatus) IsFinal() bool {
	return s == FrameCompleted || s == FrameFailed || s == FrameCanceled
}

// CanMoveFrame reports whether a frame may go from one status to another.
func CanMoveFrame(from, to FrameStatus) bool {
	if from.IsFinal() {
		return false
	}
	if from == to {
		return true
	}
	for _, next := range frameTransitions[from] {
		if next == to {
			return true
		}
	}
	return false
}

// FrameStatusesBefore lists the statuses from which a frame may move to
// to, for a write that checks the move in the database itself.
func FrameStatusesBefore(to FrameStatus) []FrameStatus {
	var from []FrameStatus
	for _, s := range AllFrameStatuses {
		if CanMoveFrame(s, to) {
			from = append(from, s)
		}
	}
	return from
}
