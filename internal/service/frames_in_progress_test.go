package service

import (
	"strings"
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// The farm's limit, 1,000,000 frames, is lowered in these tests to 30 so
// that they make few frames.
const framesInProgressForTests = 30

// TestAWorkspaceHasOnlySoManyFramesInProgress: a render that would put
// the workspace's jobs in progress over the frames a workspace may have is
// refused with a 400 that says what to do, and leaves the job validated,
// without a frame or a chunk; one within the room left is taken, and a job
// that ends makes room.
func TestAWorkspaceHasOnlySoManyFramesInProgress(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.api.cfg.MaxFramesInProgress = framesInProgressForTests
		first := f.WaitingJob(f.api, 20, enginetest.RenderConfig(5))
		second := f.ValidatedJob(f.api, 20)

		_, _, err := f.api.Render(f.Ctx, f.P, second.ID, enginetest.RenderConfig(5))

		if enginetest.ErrorCode(err) != farm.CodeInvalidRequest || farm.KindOf(err) != farm.KindInvalid {
			t.Fatalf("a render of 20 frames beside 20 in progress: %v, want 400 %s", err, farm.CodeInvalidRequest)
		}
		for _, says := range []string{"this render asks for 20 frames", "pass the 30 frames a workspace may have in progress", "nothing was done", "cancel"} {
			if !strings.Contains(err.Error(), says) {
				t.Errorf("the refusal %q does not say %q", err, says)
			}
		}
		if st := f.Job(second.ID).Status; st != farm.StatusValidated {
			t.Errorf("the refused job is %s, want validated as before", st)
		}
		if n := f.Count("frames", "job_id = ?", second.ID) + f.Count("tasks", "job_id = ? AND kind = 'render'", second.ID); n != 0 {
			t.Errorf("the refused render left %d frames and chunks", n)
		}

		if _, _, err := f.api.Render(f.Ctx, f.P, second.ID, enginetest.RenderConfig(5, "1-10")); err != nil {
			t.Errorf("a render of the 10 frames left: %v", err)
		}

		if _, err := f.api.Cancel(f.Ctx, f.P, first.ID); err != nil {
			t.Fatal(err)
		}
		third := f.ValidatedJob(f.api, 20)
		if _, _, err := f.api.Render(f.Ctx, f.P, third.ID, enginetest.RenderConfig(5)); err != nil {
			t.Errorf("a render of 20 frames once a job of 20 was canceled: %v", err)
		}
	})
}

// TestARetryPastTheFramesInProgressIsRefused: a retry puts its job's
// frames in progress again; past the limit it is refused, and the job
// stays as it ended.
func TestARetryPastTheFramesInProgressIsRefused(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.api.cfg.MaxFramesInProgress = framesInProgressForTests
		ended := f.WaitingJob(f.api, 20, enginetest.RenderConfig(5))
		if _, err := f.api.Cancel(f.Ctx, f.P, ended.ID); err != nil {
			t.Fatal(err)
		}
		f.WaitingJob(f.api, 20, enginetest.RenderConfig(5))

		_, err := f.api.Retry(f.Ctx, f.P, ended.ID, farm.RetryRequest{Frames: farm.RetryFailed})

		if enginetest.ErrorCode(err) != farm.CodeInvalidRequest || !strings.Contains(err.Error(), "retrying this job puts back in progress its 20 frames") {
			t.Fatalf("Retry: %v, want 400 %s saying the retry's frames", err, farm.CodeInvalidRequest)
		}
		if st := f.Job(ended.ID).Status; st != farm.StatusCanceled {
			t.Errorf("the job is %s after the refused retry, want canceled as before", st)
		}
	})
}

// TestRendersAskedForAtOnceStayWithinTheFramesInProgress: four renders of
// 10 frames asked for at the same moment, where the workspace has room
// for 30, make three.
func TestRendersAskedForAtOnceStayWithinTheFramesInProgress(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.api.cfg.MaxFramesInProgress = framesInProgressForTests
		jobs := make([]*farm.Job, 4)
		for i := range jobs {
			jobs[i] = f.ValidatedJob(f.api, 10)
		}
		errs := make([]error, len(jobs))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, job := range jobs {
			wg.Go(func() {
				<-start
				_, _, errs[i] = f.api.Render(f.Ctx, f.P, job.ID, enginetest.RenderConfig(5))
			})
		}
		close(start)
		wg.Wait()

		accepted := 0
		for _, err := range errs {
			switch {
			case err == nil:
				accepted++
			case enginetest.ErrorCode(err) != farm.CodeInvalidRequest:
				t.Errorf("Render: %v, want success or %s", err, farm.CodeInvalidRequest)
			}
		}
		if frames := f.Count("frames", ""); accepted != 3 || frames != 30 {
			t.Errorf("%d renders accepted, %d frames stored; want 3 and 30", accepted, frames)
		}
	})
}

func TestTheFarmsLimitOfFramesInProgressIsAMillion(t *testing.T) {
	if farm.MaxFramesInProgressPerWorkspace != 1_000_000 {
		t.Errorf("farm.MaxFramesInProgressPerWorkspace = %d, want 1,000,000, as docs/api.md says", farm.MaxFramesInProgressPerWorkspace)
	}
	if got := DefaultConfig().MaxFramesInProgress; got != farm.MaxFramesInProgressPerWorkspace {
		t.Errorf("DefaultConfig().MaxFramesInProgress = %d, want farm.MaxFramesInProgressPerWorkspace", got)
	}
}

// TestThePartsOfSplitFramesCountAsFramesInProgress: each part of a split
// frame is a task as a chunk is, so it counts against the limit as a
// frame does: 5 frames in 4 parts are 25, and 10 frames more pass 30.
func TestThePartsOfSplitFramesCountAsFramesInProgress(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.api.cfg.MaxFramesInProgress = framesInProgressForTests
		split := enginetest.RenderConfig(1, "1-5")
		split.SplitFrame = &farm.SplitFrame{Parts: 4}
		f.WaitingJob(f.api, 5, split)
		other := f.ValidatedJob(f.api, 10)

		_, _, err := f.api.Render(f.Ctx, f.P, other.ID, enginetest.RenderConfig(5))

		if enginetest.ErrorCode(err) != farm.CodeInvalidRequest || !strings.Contains(err.Error(), "each part of a split frame counting as a frame too") {
			t.Fatalf("a render of 10 frames beside 5 frames in 4 parts: %v, want 400 %s saying parts count", err, farm.CodeInvalidRequest)
		}
		if _, _, err := f.api.Render(f.Ctx, f.P, other.ID, enginetest.RenderConfig(5, "1-5")); err != nil {
			t.Errorf("a render of the 5 frames left: %v", err)
		}
	})
}

// TestResumingASplitScoutJobCountsTheRestOfItsParts: a split job with
// scout frames queues the parts of its other frames only when it is
// resumed, so the resume counts them, and past the limit it is refused
// and the job stays suspended.
func TestResumingASplitScoutJobCountsTheRestOfItsParts(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.api.cfg.MaxFramesInProgress = framesInProgressForTests
		cfg := enginetest.RenderConfig(1, "1-5")
		cfg.SplitFrame = &farm.SplitFrame{Parts: 4}
		cfg.ScoutFrames = &farm.ScoutFrames{Ranges: []string{"1"}}
		scouted := f.WaitingJob(f.api, 5, cfg) // 5 frames and frame 1's 4 parts: 9
		f.WaitingJob(f.api, 15, enginetest.RenderConfig(5))
		f.SetStatus(scouted.ID, farm.StatusSuspended)

		_, _, err := f.api.Resume(f.Ctx, f.P, scouted.ID)

		if enginetest.ErrorCode(err) != farm.CodeInvalidRequest || !strings.Contains(err.Error(), "resuming this job, its frames in parts, asks for 20 frames") {
			t.Fatalf("Resume: %v, want 400 %s counting the 20 parts of the frames not completed, 1 to 5", err, farm.CodeInvalidRequest)
		}
		if st := f.Job(scouted.ID).Status; st != farm.StatusSuspended {
			t.Errorf("the job is %s after the refused resume, want suspended as before", st)
		}
	})
}
