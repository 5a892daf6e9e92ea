package farm

// Status is where a job stands in its life. The eleven values are the
// Renderjuice ones; clients must be able to parse all of them, even the two
// (debugging, suspended) that this farm never enters by itself.
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
	StatusBooting:    {StatusRendering},
	StatusRendering:  {StatusFinalizing},
	StatusFinalizing: {StatusCompleted},
}

// IsFinal reports whether nothing can happen to a job any more.
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
	case StatusBooting, StatusRendering, StatusFinalizing, StatusCompleted:
		return true
	}
	return false
}

// CanMove reports whether a job may go from one status to another.
func CanMove(from, to Status) bool {
	if from.IsFinal() {
		return false
	}
	if to == StatusFailed || to == StatusCanceled {
		return true
	}
	for _, next := range transitions[from] {
		if next == to {
			return true
		}
	}
	return false
}
