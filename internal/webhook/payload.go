package webhook

import (
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// RenderComplete is onRenderComplete, byte-compatible with Renderjuice's:
// outputs is left out when there are no frames.
type RenderComplete struct {
	Event       string    `json:"event"`
	Status      string    `json:"status"`
	JobID       string    `json:"jobId"`
	WorkspaceID string    `json:"workspaceId"`
	CompletedAt time.Time `json:"completedAt"`
	Outputs     *Outputs  `json:"outputs,omitempty"`
}

// Outputs lists a completed job's frames as presigned download URLs.
type Outputs struct {
	Frames []string `json:"frames"`
	// FramesTotal (ours) is how many frame images the job made, given only
	// when Frames lists fewer: the first MaxFrameURLs, in frame order.
	// GET /jobs/{id}/downloads lists them all.
	FramesTotal int `json:"framesTotal,omitempty"`
}

// MaxFrameURLs bounds the frame URLs one onRenderComplete lists. The body
// is fixed when the job completes, stored with each of its webhooks'
// events, and sent whole on every attempt: about 500 bytes a URL, so 5 MB
// at the bound, where a job of 100,000 stereo frames would have been 100
// MB stored twenty times over and sent to a receiver given 7 s to answer.
const MaxFrameURLs = 10_000

// RenderFail is onRenderFail: a job ended failed, at any stage.
type RenderFail struct {
	Event        string             `json:"event"`
	Status       string             `json:"status"`
	JobID        string             `json:"jobId"`
	WorkspaceID  string             `json:"workspaceId"`
	FailedAt     time.Time          `json:"failedAt"`
	FailedReason *farm.FailedReason `json:"failedReason"`
}

// StatusChange is onStatusChange, sent on every change of status.
type StatusChange struct {
	Event          string    `json:"event"`
	Status         string    `json:"status"`
	PreviousStatus string    `json:"previousStatus"`
	JobID          string    `json:"jobId"`
	WorkspaceID    string    `json:"workspaceId"`
	ChangedAt      time.Time `json:"changedAt"`
	// SuspendedReason is why a job moved to suspended (REQUESTED, or
	// SCOUT_FRAMES_READY: its scout frames wait to be approved); left out
	// for every other status.
	SuspendedReason string `json:"suspendedReason,omitempty"`
}

// retrySteps space the attempts of one event, as multiples of the first
// retry's delay: at the default 5 s the first retry comes within seconds
// (a receiver restarting), then the waits grow (30 s, 2 min, 10 min,
// 30 min, 1 h, 3 h, 6 h, 12 h), so that ten attempts cover about a day (a
// receiver down for a night).
var retrySteps = []time.Duration{1, 6, 24, 120, 360, 720, 2160, 4320, 8640}

// DefaultFirstRetry is the wait before an event's second attempt.
const DefaultFirstRetry = 5 * time.Second

// DefaultAttempts is how many times an event is tried by default.
const DefaultAttempts = 10

// RetryDelay is the wait after the given failed attempt (1 for the first),
// for a schedule that starts with first.
func RetryDelay(first time.Duration, attempt int) time.Duration {
	if first <= 0 {
		first = DefaultFirstRetry
	}
	attempt = max(1, min(attempt, len(retrySteps)))
	return first * retrySteps[attempt-1]
}
