package node

import (
	"context"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// The decisions of the validate and render workers, with Blender played by
// fakeBlender: when a task goes back to River for another try, when it is
// handed back because the worker stops, when the job fails for good, and
// what Blender's word is worth.

// renderWork runs the render worker on a chunk's River job, on attempt of
// max.
func (f *fixture) renderWork(ctx context.Context, ref engine.TaskRef, attempt, max int) error {
	f.T.Helper()
	w := f.node.renderWorker()
	return w.Work(ctx, attemptOf(f.renderArgs(ref), attempt, max))
}

// validateWork runs the validate worker on a job's validation, on attempt
// of max.
func (f *fixture) validateWork(ctx context.Context, jobID string, attempt, max int) error {
	f.T.Helper()
	tasks := f.Tasks(jobID, store.TaskValidate)
	if len(tasks) != 1 {
		f.T.Fatalf("%d validate tasks, want 1", len(tasks))
	}
	w := f.node.validateWorker()
	return w.Work(ctx, attemptOf(engine.ValidateArgs{TaskRef: f.Ref(tasks[0])}, attempt, max))
}

// validatingJob is a job whose validation was requested.
func (f *fixture) validatingJob() *farm.Job {
	f.T.Helper()
	job := f.CreatedJob(f.api)
	if _, err := f.api.Validate(f.Ctx, f.P, job.ID); err != nil {
		f.T.Fatal(err)
	}
	return job
}

func TestARenderedChunkStoresEveryFrameAndQueuesFinalizing(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 3, 3)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		f.blender.willRender(fakeRender{saves: []int{1, 2, 3}})

		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work: %v", err)
		}

		if got := f.Task(ref.TaskID).Status; got != store.TaskDone {
			t.Errorf("task = %s, want done", got)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
		for n, fr := range f.Frames(job.ID) {
			if fr.Status != farm.FrameCompleted || f.Content(fr.ObjectKey) == "" || fr.Worker != "node-test" || fr.Attempts != 1 {
				t.Errorf("frame %d = %+v; want completed once by node-test, its image stored", n, fr)
			}
		}
		if n := len(f.Tasks(job.ID, store.TaskFinalize)); n != 1 {
			t.Errorf("%d finalize tasks, want 1", n)
		}
		if len(f.blender.rendered) != 1 || job.FinalConfig == nil || f.blender.rendered[0].Scene != job.FinalConfig.Scene {
			t.Errorf("Blender was asked for %+v; want one chunk of the job's scene", f.blender.rendered)
		}
	})
}

func TestAFailedChunkIsRetriedWhileAttemptsAreLeftAndFailsTheJobOnTheLast(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 3, 3)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		boom := &blender.RenderError{Frame: 2, Line: "Error: out of memory", ExitCode: 1}

		// Attempt 1: frame 1 is saved, Blender dies on frame 2.
		f.blender.willRender(fakeRender{saves: []int{1}, err: boom})
		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); !errors.As(err, new(*blender.RenderError)) {
			t.Fatalf("Work on attempt 1 = %v; want Blender's error, for River's record of the job", err)
		}
		task := f.Task(ref.TaskID)
		if task.Status != store.TaskWaiting || task.WorkerID != "" || task.Generation != ref.Generation+1 || task.FailedAttempts != 1 {
			t.Errorf("task after attempt 1 = %s on %q, generation %d, %d failed attempts; want waiting for a slot under generation %d, one attempt failed",
				task.Status, task.WorkerID, task.Generation, task.FailedAttempts, ref.Generation+1)
		}
		if fr := f.Frames(job.ID)[2]; fr.Status != farm.FrameQueued || fr.Error != boom.Line || fr.Attempts != 1 {
			t.Errorf("frame 2 after attempt 1 = %+v; want queued again, with Blender's line, after one attempt", fr)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusRendering {
			t.Errorf("job after attempt 1 = %s, want rendering", st)
		}

		// Attempt 2, once dispatched again, renders only what is left, and
		// fails the same way.
		f.RetryNow(job)
		ref = f.Ref(f.Task(ref.TaskID))
		f.blender.willRender(fakeRender{err: boom})
		if err := f.renderWork(f.Ctx, ref, 2, enginetest.RenderAttempts); err == nil {
			t.Fatal("Work on attempt 2 succeeded; want the error for River")
		}
		if got := f.blender.rendered[1].Frames; len(got) != 2 || got[0] != 2 || got[1] != 3 {
			t.Errorf("attempt 2 rendered frames %v; want only 2 and 3, frame 1 being stored", got)
		}

		// The last attempt fails the job, naming the frame.
		f.RetryNow(job)
		ref = f.Ref(f.Task(ref.TaskID))
		f.blender.willRender(fakeRender{err: boom})
		if err := f.renderWork(f.Ctx, ref, 3, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work on the last attempt = %v; want nil: the failure is recorded, not retried", err)
		}
		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed || after.FailedReason == nil || after.FailedReason.Name != "FRAME_FAILED" ||
			!strings.Contains(after.FailedReason.Message, "frame 2 failed after 3 attempts") {
			t.Errorf("job = %s, %+v; want failed naming frame 2 and the attempts", after.Status, after.FailedReason)
		}
		if got := f.Task(ref.TaskID).Status; got != store.TaskFailed {
			t.Errorf("task = %s, want failed", got)
		}
		want := map[int]farm.FrameStatus{1: farm.FrameCompleted, 2: farm.FrameFailed, 3: farm.FrameCanceled}
		if got := f.FrameStatuses(job.ID); !maps.Equal(got, want) {
			t.Errorf("frames = %v, want %v", got, want)
		}
	})
}

// TestBlenderReportingSuccessWithAFrameMissingIsAFailure: Blender's word is
// not enough. A chunk whose Blender exits without error but never saved a
// frame is not done: left so, the job would wait for that frame for ever.
func TestBlenderReportingSuccessWithAFrameMissingIsAFailure(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])

		f.blender.willRender(fakeRender{saves: []int{1}})
		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); err == nil {
			t.Fatal("Work = nil after Blender saved 1 of 2 frames; want an error, for River's record of the job")
		}
		if got := f.Task(ref.TaskID).Status; got != store.TaskWaiting {
			t.Errorf("task = %s, want waiting for its retry", got)
		}
		if fr := f.Frames(job.ID)[2]; fr.Status != farm.FrameQueued || !strings.Contains(fr.Error, "frame 2 was never saved") {
			t.Errorf("frame 2 = %s with error %q; want queued, saying Blender never saved it", fr.Status, fr.Error)
		}

		f.RetryNow(job)
		ref = f.Ref(f.Task(ref.TaskID))
		f.blender.willRender(fakeRender{})
		if err := f.renderWork(f.Ctx, ref, enginetest.RenderAttempts, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work on the last attempt = %v, want the failure recorded", err)
		}
		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed || after.FailedReason == nil || !strings.Contains(after.FailedReason.Message, "frame 2") {
			t.Errorf("job = %s, %+v; want failed naming frame 2", after.Status, after.FailedReason)
		}
	})
}

// TestAChunkWhoseBlenderFailsAfterSavingEveryFrameIsDone: a crash on the
// way out, once every frame is stored, costs nothing.
func TestAChunkWhoseBlenderFailsAfterSavingEveryFrameIsDone(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		f.blender.willRender(fakeRender{saves: []int{1, 2}, err: &blender.RenderError{Frame: -1, Line: "Segmentation fault", ExitCode: -1}})

		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work = %v, want the chunk done", err)
		}
		if got := f.Task(ref.TaskID).Status; got != store.TaskDone {
			t.Errorf("task = %s, want done", got)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
	})
}

// TestAStoppingWorkerHandsItsChunkBack: a render cut short by the worker
// stopping (or the job canceled) is never recorded as the job's failure,
// even on its last attempt; the frames it stored stay, and the chunk goes
// to the dispatcher at once: a new generation, so nothing the stopping
// holder still writes counts, waiting for another worker's free slot,
// where it gets a new River job with every attempt.
func TestAStoppingWorkerHandsItsChunkBack(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 3, 3)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		ctx, stop := context.WithCancel(f.Ctx)
		f.blender.willRender(fakeRender{saves: []int{1}, hang: true})

		done := make(chan error, 1)
		go func() { done <- f.renderWork(ctx, ref, enginetest.RenderAttempts, enginetest.RenderAttempts) }()
		// Frame 1 stored means Blender is running the chunk now.
		waitFor(t, func() bool { return f.Frames(job.ID)[1].Status == farm.FrameCompleted })
		stop()

		if err := <-done; err != nil {
			t.Fatalf("Work = %v, want nil: the chunk is handed back, nothing is left for this River job", err)
		}
		task := f.Task(ref.TaskID)
		if task.Status != store.TaskWaiting || task.WorkerID != "" || task.RiverJobID != 0 || task.Generation != ref.Generation+1 {
			t.Errorf("task = %s held by %q (River job %d) at generation %d; want waiting, handed back at generation %d", task.Status, task.WorkerID, task.RiverJobID, task.Generation, ref.Generation+1)
		}
		other := f.DispatchAll(job)
		task = f.Task(ref.TaskID)
		if rj := f.RiverJobByID(task.RiverJobID); rj.State != "available" || rj.Queue != engine.RenderQueue(other) || f.RenderArgsOf(rj).Generation != task.Generation {
			t.Errorf("the chunk's River job = %+v; want a new one, available, for the new generation", rj)
		}
		if after := f.Job(job.ID); after.Status != farm.StatusRendering || after.FailedReason != nil {
			t.Errorf("job = %s, %+v; want still rendering", after.Status, after.FailedReason)
		}
		if fr := f.Frames(job.ID)[1]; fr.Status != farm.FrameCompleted {
			t.Errorf("frame 1 = %s, want kept", fr.Status)
		}
	})
}

// TestAChunkTheJobNoLongerWantsRendersNothing: a chunk of a job that ended,
// or whose frames are all stored, ends without starting Blender.
func TestAChunkTheJobNoLongerWantsRendersNothing(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		canceled := f.RenderingJob(f.api, 2, 2)
		if _, err := f.api.Cancel(f.Ctx, f.P, canceled.ID); err != nil {
			t.Fatal(err)
		}
		failed := f.RenderingJob(f.api, 2, 2)
		failedRef := f.Ref(f.Tasks(failed.ID, store.TaskRender)[0])
		f.SetStatus(failed.ID, farm.StatusFailed)

		if err := f.renderWork(f.Ctx, f.Ref(f.Tasks(canceled.ID, store.TaskRender)[0]), 1, 3); err != nil {
			t.Errorf("Work on a canceled job's chunk = %v, want nil", err)
		}
		if err := f.renderWork(f.Ctx, failedRef, 1, 3); err != nil {
			t.Errorf("Work on a failed job's chunk = %v, want nil", err)
		}
		if len(f.blender.rendered) != 0 {
			t.Errorf("Blender rendered %+v for jobs that ended", f.blender.rendered)
		}
		if got := f.Task(failedRef.TaskID).Status; got != store.TaskDone {
			t.Errorf("the failed job's chunk = %s, want done", got)
		}
		if st := f.Job(failed.ID).Status; st != farm.StatusFailed {
			t.Errorf("failed job = %s, want left failed", st)
		}
	})
}

func TestValidationRecordsTheAnalysis(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.validatingJob()
		inspection := enginetest.Analysis(24).Inspection
		inspection.Scenes[0].DenoisingEnabled = true
		f.blender.willInspect(fakeInspect{inspection: &inspection})

		if err := f.validateWork(f.Ctx, job.ID, 1, 3); err != nil {
			t.Fatalf("Work: %v", err)
		}

		after := f.Job(job.ID)
		if after.Status != farm.StatusValidated || after.Analysis == nil || after.AnalysisID == nil {
			t.Fatalf("job = %s, analysis %+v; want validated with the analysis", after.Status, after.Analysis)
		}
		// The worker has no denoiser: the analysis says so.
		if w := after.Analysis.Warnings; len(w) != 1 || w[0].Code != farm.WarnDenoiserUnavailable {
			t.Errorf("warnings = %+v, want the missing denoiser", w)
		}
		if sf := after.SceneFile; sf == nil || sf.SHA256 == "" || sf.Version != "4.2" {
			t.Errorf("sceneFile = %+v, want the checked file's checksum and version", sf)
		}
		if got := f.Tasks(job.ID, store.TaskValidate)[0].Status; got != store.TaskDone {
			t.Errorf("task = %s, want done", got)
		}
	})
}

func TestAFileBlenderCannotOpenFailsValidationAtOnce(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.validatingJob()
		work := f.node.jobDir(job.ID)
		f.blender.willInspect(fakeInspect{err: &blender.InspectError{Path: work + "/input/source.blend",
			Line: "Error: cannot read " + work + "/input/source.blend", LogTail: []string{"read " + work}}})

		// On the first of three attempts: a bad file is not worth a retry.
		if err := f.validateWork(f.Ctx, job.ID, 1, 3); err != nil {
			t.Fatalf("Work = %v, want the failure recorded", err)
		}

		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed || after.FailedReason == nil || after.FailedReason.Name != "BLENDER_CANNOT_OPEN_FILE" {
			t.Fatalf("job = %s, %+v; want failed BLENDER_CANNOT_OPEN_FILE", after.Status, after.FailedReason)
		}
		if strings.Contains(after.FailedReason.Message, work) || !strings.Contains(after.FailedReason.Message, "Blender 4.2.3 could not open the file") {
			t.Errorf("failedReason %q names the farm's directory, or not the Blender to open the file in", after.FailedReason.Message)
		}
		logs, err := f.api.JobLog(f.Ctx, f.P, job.ID)
		if err != nil || len(logs.Lines) != 1 || strings.Contains(logs.Lines[0], work) {
			t.Errorf("kept log = %+v, %v; want Blender's lines without the farm's paths", logs, err)
		}
		if _, err := os.Stat(work); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the refused file's work directory is still there: %v", err)
		}
	})
}

// TestValidationIsRetriedWhileAttemptsAreLeft: a fault of the farm (here,
// the job's input missing from the object store) hands the task back while
// attempts are left, and only the last attempt fails the job, without
// telling the client the farm's internals.
func TestValidationIsRetriedWhileAttemptsAreLeft(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.validatingJob()
		up, err := f.Store.GetUpload(f.Ctx, f.P.WorkspaceID, job.Slug)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Objects.Delete(f.Ctx, up.InputKey); err != nil {
			t.Fatal(err)
		}
		task := f.Tasks(job.ID, store.TaskValidate)[0]

		if err := f.validateWork(f.Ctx, job.ID, 1, 3); err == nil {
			t.Fatal("Work = nil with the input missing; want the error for River's retry")
		}
		if got := f.Task(task.ID); got.Status != store.TaskQueued || got.WorkerID != "" {
			t.Errorf("task = %s held by %q; want handed back", got.Status, got.WorkerID)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusValidating {
			t.Errorf("job = %s, want still validating", st)
		}

		if err := f.validateWork(f.Ctx, job.ID, 3, 3); err != nil {
			t.Fatalf("Work on the last attempt = %v, want the failure recorded", err)
		}
		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed || after.FailedReason == nil || after.FailedReason.Name != "VALIDATION_ERROR" ||
			strings.Contains(after.FailedReason.Message, up.InputKey) {
			t.Errorf("job = %s, %+v; want failed VALIDATION_ERROR, naming nothing of the farm", after.Status, after.FailedReason)
		}
	})
}

// TestAValidationOfACanceledJobChangesNothing: the task of a job canceled
// before its validation ran ends canceled, and Blender is not started.
func TestAValidationOfACanceledJobChangesNothing(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.validatingJob()
		task := f.Tasks(job.ID, store.TaskValidate)[0]
		// Canceled by hand, so that the task stays queued as a River job
		// that started all the same would find it.
		f.SetStatus(job.ID, farm.StatusCanceled)

		if err := f.validateWork(f.Ctx, job.ID, 1, 3); err != nil {
			t.Fatalf("Work = %v", err)
		}
		if got := f.Task(task.ID).Status; got != store.TaskCanceled {
			t.Errorf("task = %s, want canceled", got)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusCanceled {
			t.Errorf("job = %s, want left canceled", st)
		}
	})
}

// TestAFailedChunkIsRetriedWithinSeconds: River retries a chunk after 2 s,
// then 4 s, rather than its own minutes; validation and finalizing keep
// River's backoff.
func TestAFailedChunkIsRetriedWithinSeconds(t *testing.T) {
	n := &Node{}
	for attempt, want := range map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second} {
		before := time.Now()
		next := n.renderWorker().NextRetry(attemptOf(engine.RenderArgs{}, attempt, 3))
		if wait := next.Sub(before); wait < want || wait > want+time.Second {
			t.Errorf("chunk retried %v after attempt %d, want %v", wait, attempt, want)
		}
	}
	if next := n.validateWorker().NextRetry(attemptOf(engine.ValidateArgs{}, 1, 3)); !next.IsZero() {
		t.Errorf("validation retried at %v, want River's own backoff (the zero time)", next)
	}
	if next := n.finalizeWorker().NextRetry(attemptOf(engine.FinalizeArgs{}, 1, 3)); !next.IsZero() {
		t.Errorf("finalizing retried at %v, want River's own backoff (the zero time)", next)
	}
}
