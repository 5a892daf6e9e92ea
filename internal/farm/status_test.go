package farm_test

import (
	"slices"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// allowedMoves is every move CanMove accepts, written out in full: the
// normal path one step at a time, suspending and resuming, retrying a job
// that ended, and failing or canceling from every status that is not
// final. Every other pair of statuses is refused.
var allowedMoves = map[[2]farm.Status]bool{
	// The normal path.
	{farm.StatusCreated, farm.StatusValidating}:   true,
	{farm.StatusValidating, farm.StatusValidated}: true,
	{farm.StatusValidated, farm.StatusBooting}:    true,
	{farm.StatusBooting, farm.StatusRendering}:    true,
	{farm.StatusRendering, farm.StatusFinalizing}: true,
	{farm.StatusFinalizing, farm.StatusCompleted}: true,

	// Suspending (a request, or scout frames ready) and resuming.
	{farm.StatusBooting, farm.StatusSuspended}:   true,
	{farm.StatusRendering, farm.StatusSuspended}: true,
	{farm.StatusSuspended, farm.StatusRendering}: true,

	// Retrying some frames of a job that ended; a failed job whose
	// frames all rendered is only finalized again.
	{farm.StatusCompleted, farm.StatusBooting}: true,
	{farm.StatusCanceled, farm.StatusBooting}:  true,
	{farm.StatusFailed, farm.StatusBooting}:    true,
	{farm.StatusFailed, farm.StatusFinalizing}: true,

	// Failing, from every status that is not final.
	{farm.StatusCreated, farm.StatusFailed}:    true,
	{farm.StatusValidating, farm.StatusFailed}: true,
	{farm.StatusValidated, farm.StatusFailed}:  true,
	{farm.StatusDebugging, farm.StatusFailed}:  true,
	{farm.StatusBooting, farm.StatusFailed}:    true,
	{farm.StatusRendering, farm.StatusFailed}:  true,
	{farm.StatusFinalizing, farm.StatusFailed}: true,
	{farm.StatusSuspended, farm.StatusFailed}:  true,

	// Canceling, from every status that is not final.
	{farm.StatusCreated, farm.StatusCanceled}:    true,
	{farm.StatusValidating, farm.StatusCanceled}: true,
	{farm.StatusValidated, farm.StatusCanceled}:  true,
	{farm.StatusDebugging, farm.StatusCanceled}:  true,
	{farm.StatusBooting, farm.StatusCanceled}:    true,
	{farm.StatusRendering, farm.StatusCanceled}:  true,
	{farm.StatusFinalizing, farm.StatusCanceled}: true,
	{farm.StatusSuspended, farm.StatusCanceled}:  true,
}

func TestCanMoveAcceptsOnlyTheTable(t *testing.T) {
	if len(farm.AllStatuses) != 11 {
		t.Fatalf("AllStatuses has %d statuses, want the 11 of the contract", len(farm.AllStatuses))
	}
	for _, from := range farm.AllStatuses {
		for _, to := range farm.AllStatuses {
			want := allowedMoves[[2]farm.Status{from, to}]
			if got := farm.CanMove(from, to); got != want {
				t.Errorf("CanMove(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestCanMoveExamples(t *testing.T) {
	tests := []struct {
		name     string
		from, to farm.Status
		want     bool
	}{
		{"a new job is validated first", farm.StatusCreated, farm.StatusValidating, true},
		{"validation cannot be skipped", farm.StatusCreated, farm.StatusValidated, false},
		{"rendering cannot start before validation", farm.StatusCreated, farm.StatusRendering, false},
		{"booting cannot be skipped", farm.StatusValidated, farm.StatusRendering, false},
		{"finalizing cannot be skipped", farm.StatusRendering, farm.StatusCompleted, false},
		{"no step back", farm.StatusRendering, farm.StatusBooting, false},
		{"no staying put", farm.StatusRendering, farm.StatusRendering, false},
		{"a rendering job can fail", farm.StatusRendering, farm.StatusFailed, true},
		{"a job can be canceled before it is validated", farm.StatusCreated, farm.StatusCanceled, true},
		{"a suspended job can be canceled", farm.StatusSuspended, farm.StatusCanceled, true},
		{"the farm never enters debugging by itself", farm.StatusValidated, farm.StatusDebugging, false},
		{"a rendering job can be suspended", farm.StatusRendering, farm.StatusSuspended, true},
		{"a job is suspended before its first chunk starts too", farm.StatusBooting, farm.StatusSuspended, true},
		{"a resumed job renders", farm.StatusSuspended, farm.StatusRendering, true},
		{"a resumed job does not boot again", farm.StatusSuspended, farm.StatusBooting, false},
		{"a finalizing job cannot be suspended", farm.StatusFinalizing, farm.StatusSuspended, false},
		{"a validated job cannot be suspended", farm.StatusValidated, farm.StatusSuspended, false},
		{"a completed job is retried from booting", farm.StatusCompleted, farm.StatusBooting, true},
		{"a canceled job is retried from booting", farm.StatusCanceled, farm.StatusBooting, true},
		{"a failed job whose finalizing failed is finalized again", farm.StatusFailed, farm.StatusFinalizing, true},
		{"a completed job is not finalized again without its frames", farm.StatusCompleted, farm.StatusFinalizing, false},
		{"a retried job does not skip booting", farm.StatusFailed, farm.StatusRendering, false},
		{"a completed job cannot be canceled", farm.StatusCompleted, farm.StatusCanceled, false},
		{"a completed job cannot fail", farm.StatusCompleted, farm.StatusFailed, false},
		{"a failed job cannot be canceled", farm.StatusFailed, farm.StatusCanceled, false},
		{"a canceled job cannot fail", farm.StatusCanceled, farm.StatusFailed, false},
		{"a canceled job cannot be canceled again", farm.StatusCanceled, farm.StatusCanceled, false},
		{"a failed job is not restarted", farm.StatusFailed, farm.StatusValidating, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := farm.CanMove(tt.from, tt.to); got != tt.want {
				t.Errorf("CanMove(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

func TestStatusPredicates(t *testing.T) {
	tests := []struct {
		status                              farm.Status
		final, running, hasStartedRendering bool
	}{
		{farm.StatusCreated, false, false, false},
		{farm.StatusValidating, false, true, false},
		{farm.StatusValidated, false, false, false},
		{farm.StatusDebugging, false, false, false},
		{farm.StatusBooting, false, true, true},
		{farm.StatusRendering, false, true, true},
		{farm.StatusFinalizing, false, true, true},
		{farm.StatusCompleted, true, false, true},
		{farm.StatusFailed, true, false, false},
		{farm.StatusCanceled, true, false, false},
		{farm.StatusSuspended, false, false, true},
	}
	if len(tests) != len(farm.AllStatuses) {
		t.Fatalf("the table covers %d statuses, want all %d", len(tests), len(farm.AllStatuses))
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			if got := tt.status.IsFinal(); got != tt.final {
				t.Errorf("IsFinal() = %v, want %v", got, tt.final)
			}
			if got := tt.status.IsRunning(); got != tt.running {
				t.Errorf("IsRunning() = %v, want %v", got, tt.running)
			}
			if got := tt.status.HasStartedRendering(); got != tt.hasStartedRendering {
				t.Errorf("HasStartedRendering() = %v, want %v", got, tt.hasStartedRendering)
			}
		})
	}
}

// TestAFinalStatusIsLeftOnlyByARetry: the farm's work on a job that
// ended is over; only a retry (POST /retry) starts it again, and never
// by failing or canceling it anew.
func TestAFinalStatusIsLeftOnlyByARetry(t *testing.T) {
	for _, from := range farm.AllStatuses {
		if !from.IsFinal() {
			continue
		}
		for _, to := range farm.AllStatuses {
			retry := to == farm.StatusBooting || (from == farm.StatusFailed && to == farm.StatusFinalizing)
			if got := farm.CanMove(from, to); got != retry {
				t.Errorf("CanMove(%s, %s) = %v, want %v: a job that ended moves only to be retried", from, to, got, retry)
			}
		}
	}
}

func TestParseStatusAcceptsExactlyTheElevenNames(t *testing.T) {
	names := []string{"created", "validating", "validated", "debugging", "booting", "rendering",
		"finalizing", "completed", "failed", "canceled", "suspended"}
	for _, name := range names {
		st, ok := farm.ParseStatus(name)
		if !ok || string(st) != name {
			t.Errorf("ParseStatus(%q) = %q, %v; want %q, true", name, st, ok, name)
		}
	}
	for _, name := range []string{"", "Created", "RENDERING", " rendering", "cancelled", "running", "done"} {
		if st, ok := farm.ParseStatus(name); ok || st != "" {
			t.Errorf("ParseStatus(%q) = %q, %v; want it refused", name, st, ok)
		}
	}
}

// allowedFrameMoves is every move CanMoveFrame accepts, written out in
// full; a frame that is not final may also stay where it is. Every other
// pair is refused: nothing leaves completed, failed or canceled.
var allowedFrameMoves = map[[2]farm.FrameStatus]bool{
	{farm.FrameQueued, farm.FrameQueued}:    true,
	{farm.FrameQueued, farm.FrameRendering}: true,
	{farm.FrameQueued, farm.FrameCompleted}: true,
	{farm.FrameQueued, farm.FrameFailed}:    true,
	{farm.FrameQueued, farm.FrameCanceled}:  true,

	{farm.FrameRendering, farm.FrameRendering}: true,
	{farm.FrameRendering, farm.FrameQueued}:    true,
	{farm.FrameRendering, farm.FrameCompleted}: true,
	{farm.FrameRendering, farm.FrameFailed}:    true,
	{farm.FrameRendering, farm.FrameCanceled}:  true,
}

func TestCanMoveFrameAcceptsOnlyTheTable(t *testing.T) {
	for _, from := range farm.AllFrameStatuses {
		for _, to := range farm.AllFrameStatuses {
			want := allowedFrameMoves[[2]farm.FrameStatus{from, to}]
			if got := farm.CanMoveFrame(from, to); got != want {
				t.Errorf("CanMoveFrame(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestFrameStatusesBeforeAreThoseThatMayMove(t *testing.T) {
	for _, to := range farm.AllFrameStatuses {
		got := farm.FrameStatusesBefore(to)
		var want []farm.FrameStatus
		for _, from := range farm.AllFrameStatuses {
			if allowedFrameMoves[[2]farm.FrameStatus{from, to}] {
				want = append(want, from)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("FrameStatusesBefore(%s) = %v, want %v", to, got, want)
		}
	}
}
