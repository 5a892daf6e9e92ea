package service

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// invalid is the farm error of a 400, or fails the test.
func invalid(t *testing.T, what string, err error) *farm.Error {
	t.Helper()
	var fe *farm.Error
	if !errors.As(err, &fe) || fe.Kind != farm.KindInvalid {
		t.Fatalf("%s = %v, want a 400", what, err)
	}
	return fe
}

// queuedFrames lists the frames of a job's chunks that wait for a slot
// or were given one, sorted.
func (f *fixture) queuedFrames(jobID string) []int {
	f.T.Helper()
	queued := map[string]bool{}
	for _, task := range f.Tasks(jobID, store.TaskRender) {
		// A chunk waits for a free slot, or was given to a node's slot.
		if task.Status == store.TaskWaiting || task.Status == store.TaskQueued {
			queued[task.ID] = true
		}
	}
	var out []int
	for _, fr := range f.Frames(jobID) {
		if queued[fr.TaskID] {
			out = append(out, fr.Frame)
		}
	}
	slices.Sort(out)
	return out
}

// TestSuspendStopsTheWorkAndResumeQueuesOnlyWhatIsLeft: a completed
// frame keeps its image; a frame that was rendering goes back to the
// queue; every chunk is canceled, and resume queues the frames not yet
// completed in new chunks. Both answer a repeat as a replay.
func TestSuspendStopsTheWorkAndResumeQueuesOnlyWhatIsLeft(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.CreateWebhook(f.api, "onStatusChange")
		job := f.RenderingJob(f.api, 4, 2)
		f.SetStatus(job.ID, farm.StatusRendering)
		f.SetFrame(job.ID, 1, func(fr *store.Frame) {
			fr.Status, fr.ObjectKey, fr.Attempts = farm.FrameCompleted, "jobs/x/frames/1.png", 1
		})
		f.SetFrame(job.ID, 2, func(fr *store.Frame) { fr.Status, fr.Attempts = farm.FrameRendering, 1 })

		suspended, replay, err := f.api.Suspend(f.Ctx, f.P, job.ID)
		if err != nil || replay || suspended.Status != farm.StatusSuspended || suspended.SuspendedReason != farm.SuspendedOnRequest {
			t.Fatalf("Suspend = %+v, %v, %v; want suspended on request", suspended, replay, err)
		}
		for _, task := range f.Tasks(job.ID, store.TaskRender) {
			if task.Status != store.TaskCanceled || f.RiverJobByID(task.RiverJobID).State != "cancelled" {
				t.Errorf("task %d = %s, River job %s; want both canceled", task.Chunk, task.Status, f.RiverJobByID(task.RiverJobID).State)
			}
		}
		frames := f.Frames(job.ID)
		if frames[1].Status != farm.FrameCompleted || frames[1].ObjectKey != "jobs/x/frames/1.png" || frames[2].Status != farm.FrameQueued {
			t.Errorf("frames after suspend = %+v; want 1 completed with its image, 2 queued again", frames)
		}
		if _, replay, err := f.api.Suspend(f.Ctx, f.P, job.ID); err != nil || !replay {
			t.Errorf("Suspend again = %v, %v; want a replay", replay, err)
		}

		resumed, replay, err := f.api.Resume(f.Ctx, f.P, job.ID)
		if err != nil || replay || resumed.Status != farm.StatusRendering || resumed.SuspendedReason != "" {
			t.Fatalf("Resume = %+v, %v, %v; want rendering", resumed, replay, err)
		}
		if got := f.queuedFrames(job.ID); !slices.Equal(got, []int{2, 3, 4}) {
			t.Errorf("resume queued frames %v; want 2, 3 and 4 alone", got)
		}
		if fr := f.Frames(job.ID)[2]; fr.Attempts != 1 {
			t.Errorf("frame 2's attempts = %d after resume; want 1, kept", fr.Attempts)
		}
		if _, replay, err := f.api.Resume(f.Ctx, f.P, job.ID); err != nil || !replay {
			t.Errorf("Resume again = %v, %v; want a replay", replay, err)
		}
		f.CheckTaskInvariant()

		var moves []string
		for _, ev := range f.WebhookEvents(job.ID) {
			moves = append(moves, ev.Body["previousStatus"].(string)+">"+ev.Body["status"].(string))
		}
		if !slices.Equal(moves, []string{"validated>booting", "rendering>suspended", "suspended>rendering"}) {
			t.Errorf("onStatusChange events %v; want one for the suspend and one for the resume", moves)
		}

		if _, _, err := f.api.Suspend(f.Ctx, f.P, job.ID); err != nil {
			t.Fatal(err)
		}
		if canceled, err := f.api.Cancel(f.Ctx, f.P, job.ID); err != nil || canceled.Status != farm.StatusCanceled {
			t.Errorf("Cancel of a suspended job = %+v, %v; want canceled", canceled, err)
		}
	})
}

// TestSuspendResumeAndRetryRefuseOtherStatuses: 400 INVALID_STATE that
// says what to do, and nothing changes.
func TestSuspendResumeAndRetryRefuseOtherStatuses(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		type call func(id string) error
		suspend := func(id string) error { _, _, err := f.api.Suspend(f.Ctx, f.P, id); return err }
		resume := func(id string) error { _, _, err := f.api.Resume(f.Ctx, f.P, id); return err }
		retry := func(id string) error {
			_, err := f.api.Retry(f.Ctx, f.P, id, farm.RetryRequest{Frames: farm.RetryFailed})
			return err
		}
		tests := []struct {
			name   string
			call   call
			status farm.Status
			want   string
		}{
			{"suspend validated", suspend, farm.StatusValidated, "has nothing to stop"},
			{"suspend finalizing", suspend, farm.StatusFinalizing, "wait for it to complete"},
			{"suspend completed", suspend, farm.StatusCompleted, "/retry"},
			{"suspend canceled", suspend, farm.StatusCanceled, "/retry"},
			{"resume validated", resume, farm.StatusValidated, "only a suspended job"},
			{"resume failed", resume, farm.StatusFailed, "/retry"},
			{"retry rendering", retry, farm.StatusRendering, "wait for it to end"},
			{"retry suspended", retry, farm.StatusSuspended, "/resume"},
			{"retry validated", retry, farm.StatusValidated, "wait for it to end"},
		}
		for _, tt := range tests {
			job := f.InsertJob(f.api, tt.status)
			before := f.Job(job.ID)
			fe := invalid(t, tt.name, tt.call(job.ID))
			if fe.Code != farm.CodeInvalidState || !strings.Contains(fe.Message, tt.want) {
				t.Errorf("%s: %s %q; want INVALID_STATE saying %q", tt.name, fe.Code, fe.Message, tt.want)
			}
			if after := f.Job(job.ID); after.Status != tt.status || !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Errorf("%s: job = %s, want it untouched", tt.name, after.Status)
			}
		}

		deleted := f.FinishedJobWithFiles(f.api, farm.StatusCompleted)
		if _, err := f.api.DeleteJob(f.Ctx, f.P, deleted.ID); err != nil {
			t.Fatal(err)
		}
		if fe := invalid(t, "retry of a deleted job", retry(deleted.ID)); fe.Code != farm.CodeInvalidState || !strings.Contains(fe.Message, "were deleted") {
			t.Errorf("retry of a deleted job: %s %q; want INVALID_STATE saying its files were deleted", fe.Code, fe.Message)
		}
	})
}

// TestRetryRendersOnlyTheFramesAskedForAndKeepsTheirAttempts: a failed
// job's failed frame, or named frames of a completed job, are queued
// again in new chunks; the job boots again; bad frame ranges are refused
// naming the field.
func TestRetryRendersOnlyTheFramesAskedForAndKeepsTheirAttempts(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 6, 2)
		for n := 1; n <= 6; n++ {
			f.SetFrame(job.ID, n, func(fr *store.Frame) {
				fr.Status, fr.Attempts, fr.ObjectKey = farm.FrameCompleted, 1, "old-key"
				if n == 4 {
					fr.Status, fr.Attempts, fr.ObjectKey = farm.FrameFailed, 3, ""
				}
			})
		}
		f.Exec(`UPDATE tasks SET status = ? WHERE job_id = ?`, store.TaskDone, job.ID)
		failed := f.SetStatus(job.ID, farm.StatusFailed)
		failed.FailedReason = &farm.FailedReason{Name: "FRAME_FAILED", Message: "frame 4 failed after 3 attempts"}
		if err := f.Store.UpdateJob(f.Ctx, failed); err != nil {
			t.Fatal(err)
		}

		for _, bad := range []struct {
			req  farm.RetryRequest
			want string
		}{
			{farm.RetryRequest{FrameRanges: []string{"9"}}, "outside"},
			{farm.RetryRequest{FrameRanges: []string{"x"}}, "is not of the form"},
			{farm.RetryRequest{FrameRanges: []string{"2"}}, "frame 4 of the job did not complete"},
			{farm.RetryRequest{Frames: "all"}, `must be "failed"`},
		} {
			_, err := f.api.Retry(f.Ctx, f.P, job.ID, bad.req)
			if fe := invalid(t, "a bad retry", err); !strings.Contains(fe.Message, bad.want) || (fe.Field != "frameRanges" && fe.Field != "frames") {
				t.Errorf("Retry(%+v) = %s on %q: %q; want the field named, saying %q", bad.req, fe.Code, fe.Field, fe.Message, bad.want)
			}
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFailed {
			t.Fatalf("job after refused retries = %s, want failed, untouched", st)
		}

		retried, err := f.api.Retry(f.Ctx, f.P, job.ID, farm.RetryRequest{Frames: farm.RetryFailed})
		if err != nil || retried.Status != farm.StatusBooting {
			t.Fatalf("Retry(failed) = %+v, %v; want booting", retried, err)
		}
		if got := f.queuedFrames(job.ID); !slices.Equal(got, []int{4}) {
			t.Errorf("retry queued frames %v, want [4]", got)
		}
		if fr := f.Frames(job.ID)[4]; fr.Attempts != 3 || fr.Status != farm.FrameQueued {
			t.Errorf("frame 4 = %s after %d attempts; want queued, its 3 attempts kept", fr.Status, fr.Attempts)
		}
		f.CheckTaskInvariant()

		// Once it completed, named frames render again in place.
		f.Exec(`UPDATE tasks SET status = ? WHERE job_id = ?`, store.TaskDone, job.ID)
		f.SetFrame(job.ID, 4, func(fr *store.Frame) { fr.Status, fr.ObjectKey = farm.FrameCompleted, "new-key" })
		f.SetStatus(job.ID, farm.StatusCompleted)
		if _, err := f.api.Retry(f.Ctx, f.P, job.ID, farm.RetryRequest{Frames: farm.RetryFailed}); err == nil ||
			!strings.Contains(err.Error(), "every frame of the job completed") {
			t.Errorf("Retry(failed) of a completed job = %v; want a refusal saying no frame failed", err)
		}
		if _, err := f.api.Retry(f.Ctx, f.P, job.ID, farm.RetryRequest{FrameRanges: []string{"2", "5-6"}}); err != nil {
			t.Fatalf("Retry(2, 5-6): %v", err)
		}
		if got := f.queuedFrames(job.ID); !slices.Equal(got, []int{2, 5, 6}) {
			t.Errorf("retry queued frames %v, want [2 5 6]", got)
		}
		if fr := f.Frames(job.ID)[1]; fr.Status != farm.FrameCompleted || fr.ObjectKey != "old-key" {
			t.Errorf("frame 1 = %+v; want untouched by a retry of other frames", fr)
		}
		if n := len(f.Tasks(job.ID, store.TaskRender)); n != 3+1+2 {
			t.Errorf("%d chunk tasks; want the 3 of the render, 1 of the first retry and 2 of the second", n)
		}
	})
}

// TestProgressSaysWhenEveryNodeIsSetAside: the job's blocked nodes are
// listed, and when no live node may take its chunks, waitingFor names
// them and why.
func TestProgressSaysWhenEveryNodeIsSetAside(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.liveWorker("node-a", "4.2.3")
		job := f.RenderingJob(f.api, 4, 2)
		err := f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
			if _, err := tx.CountChunkFailure(f.Ctx, job.ID, "node-a", "Error: boom"); err != nil {
				return err
			}
			return tx.BlockWorker(f.Ctx, job.ID, "node-a")
		})
		if err != nil {
			t.Fatal(err)
		}
		p, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.BlockedWorkers, []string{"node-a"}) || !strings.Contains(p.WaitingFor, "node-a is blocked on this job") {
			t.Errorf("progress: blockedWorkers %v, waitingFor %q; want node-a blocked, and the job waiting for another node", p.BlockedWorkers, p.WaitingFor)
		}
		running, err := f.api.RunningProgress(f.Ctx, f.P, farm.ProgressQuery{})
		if err != nil || len(running) != 1 || !slices.Equal(running[0].BlockedWorkers, p.BlockedWorkers) || running[0].WaitingFor != p.WaitingFor {
			t.Errorf("RunningProgress = %+v, %v; want what Progress says", running, err)
		}

		f.liveWorker("node-b", "4.2.3")
		if p, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{}); err != nil || p.WaitingFor != "" {
			t.Errorf("with node-b live: waitingFor %q, %v; want none", p.WaitingFor, err)
		}
	})
}

// A retry's removal of what it supersedes is queued as River jobs of at
// most maxRemovalEntries keys and prefixes each, the first alone also
// removing the job's zips and preview; nothing is lost or repeated.
func TestRemovalBatchesSplitALargeRemoval(t *testing.T) {
	t.Parallel()
	var a engine.DeleteObjectsArgs
	a.JobID, a.Outputs = "j", true
	for i := range 5 {
		a.Keys = append(a.Keys, fmt.Sprintf("k%d", i))
	}
	for i := range 4 {
		a.Prefixes = append(a.Prefixes, fmt.Sprintf("p%d/", i))
	}
	batches := removalBatches(a, 4)
	if len(batches) != 3 {
		t.Fatalf("%d batches of 9 entries at 4 a batch, want 3: %+v", len(batches), batches)
	}
	var keys, prefixes []string
	for i, b := range batches {
		if b.JobID != "j" || b.Outputs != (i == 0) || len(b.Keys)+len(b.Prefixes) > 4 {
			t.Errorf("batch %d = %+v; want job j, at most 4 entries, the outputs in the first alone", i, b)
		}
		keys, prefixes = append(keys, b.Keys...), append(prefixes, b.Prefixes...)
	}
	if !slices.Equal(keys, a.Keys) || !slices.Equal(prefixes, a.Prefixes) {
		t.Errorf("batches hold keys %q and prefixes %q; want %q and %q", keys, prefixes, a.Keys, a.Prefixes)
	}
	if one := removalBatches(engine.DeleteObjectsArgs{JobID: "j", Outputs: true}, 4); len(one) != 1 || !one[0].Outputs {
		t.Errorf("a removal of the outputs alone = %+v; want one batch with them", one)
	}
}
