package node

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

func TestTheLastChunkToEndQueuesFinalizingOnce(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		tests := []struct {
			name string
			end  func(f *fixture, refs []engine.TaskRef) []error
		}{
			{"chunks end in order", func(f *fixture, refs []engine.TaskRef) []error {
				return []error{f.node.endChunk(f.Ctx, refs[0], nil), f.node.endChunk(f.Ctx, refs[1], nil)}
			}},
			{"chunks end in reverse order", func(f *fixture, refs []engine.TaskRef) []error {
				return []error{f.node.endChunk(f.Ctx, refs[1], nil), f.node.endChunk(f.Ctx, refs[0], nil)}
			}},
			{"chunks end at the same moment", func(f *fixture, refs []engine.TaskRef) []error {
				errs := make([]error, len(refs))
				var wg sync.WaitGroup
				for i, ref := range refs {
					wg.Go(func() { errs[i] = f.node.endChunk(f.Ctx, ref, nil) })
				}
				wg.Wait()
				return errs
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.RenderingJob(f.api, 4, 2)
				var refs []engine.TaskRef
				// Both chunks saved every frame before either ends.
				for _, task := range f.Tasks(job.ID, store.TaskRender) {
					refs = append(refs, f.renderChunk(task))
				}

				for i, err := range tt.end(f, refs) {
					if err != nil {
						t.Errorf("endChunk %d: %v", i, err)
					}
				}

				if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
					t.Errorf("job = %s, want finalizing", st)
				}
				for _, task := range f.Tasks(job.ID, store.TaskRender) {
					if task.Status != store.TaskDone {
						t.Errorf("chunk %d = %s, want done", task.Chunk, task.Status)
					}
				}
				finalize := f.Tasks(job.ID, store.TaskFinalize)
				riverJobs := f.RiverJobs("finalize_outputs")
				if len(finalize) != 1 || len(riverJobs) != 1 {
					t.Fatalf("%d finalize tasks and %d finalize_outputs River jobs, want exactly one of each", len(finalize), len(riverJobs))
				}
				if finalize[0].Status != store.TaskQueued || finalize[0].RiverJobID != riverJobs[0].ID || riverJobs[0].Queue != engine.QueueControl {
					t.Errorf("finalize task = %+v, River job %+v; want queued, carried by that job in queue %q", finalize[0], riverJobs[0], engine.QueueControl)
				}
			})
		}
	})
}

// TestAJobsChunksEndWithoutWaitingForItsLock: a chunk of whole frames
// that rendered ends without locking its job, so that a job's chunks end
// side by side rather than in turn: here one ends while another
// transaction holds the job's lock. The job moves on once its last chunk
// has ended, the lock released.
func TestAJobsChunksEndWithoutWaitingForItsLock(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		if db.Dialect != store.DialectPostgres {
			t.Skip("SQLite runs one transaction at a time: no row lock to find taken")
		}
		f := newFixture(t, db)
		job := f.RenderingJob(f.api, 4, 2)
		tasks := f.Tasks(job.ID, store.TaskRender)
		first := f.renderChunk(tasks[0])

		holding, release := make(chan struct{}), make(chan struct{})
		holder := make(chan error, 1)
		go func() {
			holder <- f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
				if _, err := tx.LockJob(f.Ctx, "", job.ID); err != nil {
					return err
				}
				close(holding)
				<-release
				return nil
			})
		}()
		<-holding
		released := false
		defer func() {
			if !released {
				close(release)
			}
		}()

		ended := make(chan error, 1)
		go func() { ended <- f.node.endChunk(f.Ctx, first, nil) }()
		select {
		case err := <-ended:
			if err != nil {
				t.Fatalf("endChunk: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a chunk's end waited 20 s for its job's lock, which another transaction held; want it to end at once")
		}
		if st := f.Task(first.TaskID).Status; st != store.TaskDone {
			t.Fatalf("chunk 0 = %s after its end, want done", st)
		}

		released = true
		close(release)
		if err := <-holder; err != nil {
			t.Fatal(err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusRendering {
			t.Fatalf("job = %s with a chunk left, want rendering", st)
		}
		if err := f.node.endChunk(f.Ctx, f.renderChunk(tasks[1]), nil); err != nil {
			t.Fatal(err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s after its last chunk, want finalizing", st)
		}
	})
}

// TestTheReaperMovesOnAJobWhoseLastChunksEndWasCutShort: a chunk's end
// commits, then moves its job on in a transaction of its own; a process
// that dies in between leaves a rendering job with every chunk done. The
// reaper's next run moves it on to finalizing, with one finalizing task.
func TestTheReaperMovesOnAJobWhoseLastChunksEndWasCutShort(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 4, 2)
		for _, task := range f.Tasks(job.ID, store.TaskRender) {
			ref := f.renderChunk(task)
			started := f.Job(job.ID)
			// The chunk's end as a render node writes it, and no more: the
			// process is gone before it settles the job.
			err := f.node.finishTask(f.Ctx, store.TaskRender, ref, store.TaskDone, 0, started, func(ctx context.Context, tx *store.Tx, current *farm.Job) error {
				return f.node.recordChunk(ctx, tx, ref, current, nil)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if st := f.Job(job.ID).Status; st != farm.StatusRendering {
			t.Fatalf("job = %s before the reaper ran, want rendering (nothing settled it)", st)
		}

		for range 2 {
			if err := f.hk.ReapOrphans(f.Ctx); err != nil {
				t.Fatal(err)
			}
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s after the reaper ran, want finalizing", st)
		}
		if finalize := f.Tasks(job.ID, store.TaskFinalize); len(finalize) != 1 {
			t.Errorf("%d finalize tasks, want 1", len(finalize))
		}
	})
}

func TestAChunkThatEndsBeforeTheOthersLeavesTheJobRendering(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 6, 2)
		tasks := f.Tasks(job.ID, store.TaskRender)
		first := f.renderChunk(tasks[0])
		// Chunk 1 is under way: one of its frames is saved.
		second := f.Ref(tasks[1])
		f.claim(second)
		if err := f.saveFrame(second, 3, 1); err != nil {
			t.Fatal(err)
		}

		if err := f.node.endChunk(f.Ctx, first, nil); err != nil {
			t.Fatalf("endChunk: %v", err)
		}

		if st := f.Job(job.ID).Status; st != farm.StatusRendering {
			t.Errorf("job = %s, want rendering", st)
		}
		if got := f.Task(tasks[0].ID).Status; got != store.TaskDone {
			t.Errorf("ended chunk = %s, want done", got)
		}
		if n := len(f.Tasks(job.ID, store.TaskFinalize)); n != 0 {
			t.Errorf("%d finalize tasks, want none while frames are left", n)
		}
		if n := len(f.RiverJobs("finalize_outputs")); n != 0 {
			t.Errorf("%d finalize_outputs River jobs, want none", n)
		}
	})
}

func TestARenderErrorOnTheLastAttemptFailsTheJobNamingTheFrame(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.CreateWebhook(f.api, webhook.EventRenderFail)
		job := f.RenderingJob(f.api, 6, 3)
		tasks := f.Tasks(job.ID, store.TaskRender)

		// Chunk 0 saves frames 1 and 2, then Blender dies on frame 3 for the
		// last time; chunk 1 waits in the queue.
		ref := f.startedChunk(tasks[0])
		for _, n := range []int{1, 2} {
			if err := f.saveFrame(ref, n, 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.node.frameStarted(f.Ctx, ref, 3); err != nil {
			t.Fatal(err)
		}
		renderErr := &blender.RenderError{Frame: 3, Line: "Error: boom", ExitCode: 1}
		f.node.frameFailed(f.Ctx, ref, 3, renderErr.Line)

		if err := f.node.endChunk(f.Ctx, ref, renderErr); err != nil {
			t.Fatalf("endChunk: %v", err)
		}

		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed {
			t.Fatalf("job = %s, want failed", after.Status)
		}
		want := farm.FailedReason{Name: "FRAME_FAILED", Type: farm.FailRender, Message: "frame 3 failed after 3 attempts: Error: boom"}
		if after.FailedReason == nil || *after.FailedReason != want {
			t.Errorf("failedReason = %+v, want %+v", after.FailedReason, want)
		}
		if got := f.Task(tasks[0].ID).Status; got != store.TaskFailed {
			t.Errorf("failed chunk = %s, want failed", got)
		}
		other := f.Task(tasks[1].ID)
		if other.Status != store.TaskCanceled || f.RiverJobByID(other.RiverJobID).State != "cancelled" {
			t.Errorf("other chunk = %s, River job %s; want canceled and cancelled", other.Status, f.RiverJobByID(other.RiverJobID).State)
		}
		frames := f.Frames(job.ID)
		for _, n := range []int{1, 2} {
			if frames[n].Status != farm.FrameCompleted {
				t.Errorf("frame %d = %s, want completed and kept", n, frames[n].Status)
			}
		}
		if fr := frames[3]; fr.Status != farm.FrameFailed || fr.Error != "Error: boom" || fr.Attempts != 1 {
			t.Errorf("frame 3 = %s with error %q after %d attempts; want failed with Blender's line after 1", fr.Status, fr.Error, fr.Attempts)
		}
		for n := 4; n <= 6; n++ {
			if st := frames[n].Status; st == farm.FrameQueued || st == farm.FrameRendering {
				t.Errorf("frame %d of the other chunk = %s, want it stopped", n, st)
			}
		}
		if n := len(f.Tasks(job.ID, store.TaskFinalize)); n != 0 {
			t.Errorf("%d finalize tasks, want none", n)
		}

		events := f.WebhookEvents(job.ID)
		if len(events) != 1 || events[0].Event != webhook.EventRenderFail || !events[0].Queued {
			t.Fatalf("webhook events = %+v, want one onRenderFail queued", events)
		}
		reason, _ := events[0].Body["failedReason"].(map[string]any)
		if reason["message"] != want.Message {
			t.Errorf("onRenderFail failedReason = %v, want the job's", reason)
		}
	})
}

func TestAFailureThatNamesNoFrameFailsTheJobAsRenderFailed(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 4, 2)
		tasks := f.Tasks(job.ID, store.TaskRender)
		ref := f.startedChunk(tasks[0])

		if err := f.node.endChunk(f.Ctx, ref, errors.New("prepare input: no space left on device")); err != nil {
			t.Fatalf("endChunk: %v", err)
		}

		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed || after.FailedReason == nil || after.FailedReason.Name != "RENDER_FAILED" ||
			!strings.Contains(after.FailedReason.Message, "after 3 attempts: prepare input: no space left on device") {
			t.Errorf("job = %s, reason %+v; want failed RENDER_FAILED naming the attempts and the error", after.Status, after.FailedReason)
		}
		// No frame is to blame: the frames left are canceled, none failed.
		want := map[int]farm.FrameStatus{1: farm.FrameCanceled, 2: farm.FrameCanceled, 3: farm.FrameCanceled, 4: farm.FrameCanceled}
		if frames := f.FrameStatuses(job.ID); !maps.Equal(frames, want) {
			t.Errorf("frames = %v, want %v", frames, want)
		}
		if got := f.Task(tasks[1].ID).Status; got != store.TaskCanceled {
			t.Errorf("other chunk = %s, want canceled", got)
		}
	})
}

func TestAChunkThatEndsAfterItsJobEndedChangesNothing(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		for _, renderErr := range []error{nil, &blender.RenderError{Frame: 1, Line: "Error: late"}} {
			name := "success"
			if renderErr != nil {
				name = "failure"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.RenderingJob(f.api, 2, 2)
				ref := f.renderChunk(f.Tasks(job.ID, store.TaskRender)[0])
				// The job ended while the chunk ran, and the chunk's task was
				// left to it: its end must not move the job again.
				f.Move(job.ID, farm.StatusFailed)
				before := f.Job(job.ID)

				if err := f.node.endChunk(f.Ctx, ref, renderErr); err != nil {
					t.Fatalf("endChunk: %v", err)
				}

				if after := f.Job(job.ID); after.Status != farm.StatusFailed || !after.UpdatedAt.Equal(before.UpdatedAt) {
					t.Errorf("job = %s, want untouched failed", after.Status)
				}
				if n := len(f.Tasks(job.ID, store.TaskFinalize)); n != 0 {
					t.Errorf("%d finalize tasks, want none", n)
				}
			})
		}
	})
}

func TestALastAttemptFailureLeavesTheOtherChunksFramesCanceled(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 6, 3)
		ref := f.startedChunk(f.Tasks(job.ID, store.TaskRender)[0])
		if err := f.saveFrame(ref, 1, 1); err != nil {
			t.Fatal(err)
		}
		f.node.frameFailed(f.Ctx, ref, 2, "Error: boom")

		if err := f.node.endChunk(f.Ctx, ref, &blender.RenderError{Frame: 2, Line: "Error: boom"}); err != nil {
			t.Fatalf("endChunk: %v", err)
		}

		// Frame 2 failed; frame 3 (same chunk, after the failure) and frames
		// 4 to 6 (another chunk, never started) were stopped, not failed.
		want := map[int]farm.FrameStatus{
			1: farm.FrameCompleted, 2: farm.FrameFailed, 3: farm.FrameCanceled,
			4: farm.FrameCanceled, 5: farm.FrameCanceled, 6: farm.FrameCanceled,
		}
		if frames := f.FrameStatuses(job.ID); !maps.Equal(frames, want) {
			t.Errorf("frames = %v, want %v", frames, want)
		}
		pr, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if pr.FramesFailed != 1 {
			t.Errorf("framesFailed = %d, want 1: the frame named in failedReason", pr.FramesFailed)
		}
	})
}

func TestALastAttemptThatFailsAfterSavingEveryFrameCompletesTheChunk(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.renderChunk(f.Tasks(job.ID, store.TaskRender)[0])

		// What renderFrames returns when Blender crashed on exit after its
		// last "Saved:"; an earlier attempt would be retried and find nothing
		// left to render.
		exitCrash := &blender.RenderError{Frame: -1, Line: "Segmentation fault", ExitCode: -1}
		if err := f.node.endChunk(f.Ctx, ref, exitCrash); err != nil {
			t.Fatalf("endChunk: %v", err)
		}

		if after := f.Job(job.ID); after.Status != farm.StatusFinalizing {
			t.Errorf("job = %s (%+v), want finalizing: every frame was saved", after.Status, after.FailedReason)
		}
	})
}

func TestStartChunkListsTheFramesLeftWhileTheJobWantsThem(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		tests := []struct {
			name      string
			status    farm.Status
			completed []int // frames of the chunk already rendered (a retry)
			want      farm.Status
			wantTodo  []int
			wantNoJob bool
		}{
			{name: "the first chunk to start moves the job to rendering", status: farm.StatusBooting, want: farm.StatusRendering, wantTodo: []int{1, 2, 3}},
			{name: "a retry renders only the frames left", status: farm.StatusRendering, completed: []int{1, 3}, want: farm.StatusRendering, wantTodo: []int{2}},
			{name: "a chunk with every frame rendered has nothing to do", status: farm.StatusRendering, completed: []int{1, 2, 3}, want: farm.StatusRendering},
			{name: "a finalizing job no longer wants the chunk", status: farm.StatusFinalizing, want: farm.StatusFinalizing, wantNoJob: true},
			{name: "a failed job no longer wants the chunk", status: farm.StatusFailed, want: farm.StatusFailed, wantNoJob: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.RenderingJob(f.api, 3, 3)
				for _, n := range tt.completed {
					f.SetFrame(job.ID, n, func(fr *store.Frame) { fr.Status = farm.FrameCompleted })
				}
				if tt.status != farm.StatusBooting {
					job := f.Job(job.ID)
					job.Status = tt.status
					if err := f.Store.UpdateJob(f.Ctx, job); err != nil {
						t.Fatal(err)
					}
				}
				ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
				f.claim(ref)

				got, todo, err := f.node.startChunk(f.Ctx, ref)

				if err != nil {
					t.Fatalf("startChunk: %v", err)
				}
				if (got == nil) != tt.wantNoJob {
					t.Errorf("startChunk answered job %v, want a job: %v", got, !tt.wantNoJob)
				}
				if !slices.Equal(todo, tt.wantTodo) {
					t.Errorf("frames to render = %v, want %v", todo, tt.wantTodo)
				}
				if st := f.Job(job.ID).Status; st != tt.want {
					t.Errorf("job = %s, want %s", st, tt.want)
				}
			})
		}
	})
}

func TestAReleasedChunkCanBeClaimedAgainByItsGenerationOnly(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		task := f.Tasks(job.ID, store.TaskRender)[0]
		ref := f.Ref(task)
		f.claim(ref)

		// A passing failure: the chunk goes back to the queue for River's retry
		// of the same job.
		f.node.release(f.Ctx, ref)

		// It stays on this node, whose queue River's retry is on.
		if got := f.Task(task.ID); got.Status != store.TaskQueued || got.WorkerID != f.node.workerID || got.Generation != 1 {
			t.Errorf("released task = %s worker %q generation %d; want queued, on this node, generation 1", got.Status, got.WorkerID, got.Generation)
		}
		f.node.busy.Lock()
		busy := f.node.busyTasks[task.ID]
		f.node.busy.Unlock()
		if busy {
			t.Error("the released task still counts as this worker's current task")
		}
		stale := ref
		stale.Generation = 0
		if ok, err := f.node.claim(f.Ctx, stale); ok || err != nil {
			t.Errorf("claim by another generation = %v, %v; want false, nil", ok, err)
		}
		f.claim(ref) // River's retry
		// Releasing on behalf of a generation that is not the task's does nothing.
		f.node.release(f.Ctx, stale)
		if got := f.Task(task.ID); got.Status != store.TaskRunning || got.WorkerID != f.node.workerID {
			t.Errorf("task after a stale release = %s worker %q; want still running here", got.Status, got.WorkerID)
		}
	})
}

// A chunk's end whose transaction committed, but whose reply never came
// (the connection dropped as the database answered), is tried again as
// an outage. The try finds the end this node wrote, at its generation,
// and says so: the attempt counts its outcome as recorded, nothing is
// recorded twice, and the slot that end freed takes its next chunk at
// once, not at the reaper's next round.
func TestAnEndTriedAgainAfterItsCommitFindsItAndFillsTheSlot(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := sharingFixture(t, db, 1)
		job := f.renderIn(f.P, 2, 0)
		running := f.onNode()
		if len(running) != 1 {
			t.Fatalf("%d chunks on a node of one slot, want 1", len(running))
		}
		ref := f.renderChunk(running[0])
		// What the first try's transaction wrote before its reply was lost.
		err := f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
			if err := tx.FinishTask(f.Ctx, ref.TaskID, ref.Generation, store.TaskEnd{Status: store.TaskDone, Threads: 1}); err != nil {
				return err
			}
			return f.node.recordChunk(f.Ctx, tx, ref, f.Job(job.ID), nil)
		})
		if err != nil {
			t.Fatal(err)
		}
		if next := f.onNode(); len(next) != 0 {
			t.Fatalf("the slot took %d chunks before the end was tried again; want none yet", len(next))
		}

		err = f.node.finishTask(f.Ctx, store.TaskRender, ref, store.TaskDone, 0, nil, func(context.Context, *store.Tx, *farm.Job) error {
			t.Error("the outcome was recorded a second time")
			return nil
		})
		if !errors.Is(err, errEndedEarlier) {
			t.Errorf("the end tried again = %v, want errEndedEarlier", err)
		}
		if next := f.onNode(); len(next) != 1 || next[0].ID == ref.TaskID {
			t.Errorf("after the end was tried again, the node holds %+v; want the job's other chunk", next)
		}

		// A holder whose task was handed to another meanwhile is told it
		// is not its own, as before: its generation ended nothing.
		other := f.Ref(f.onNode()[0])
		if _, err := f.Store.RequeueTask(f.Ctx, other.TaskID, other.Generation); err != nil {
			t.Fatal(err)
		}
		err = f.node.finishTask(f.Ctx, store.TaskRender, other, store.TaskDone, 0, nil, func(context.Context, *store.Tx, *farm.Job) error {
			t.Error("a stale holder recorded an outcome")
			return nil
		})
		if err != nil {
			t.Errorf("a stale holder's end = %v, want nil (nothing written)", err)
		}
	})
}
