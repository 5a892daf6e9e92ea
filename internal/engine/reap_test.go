package engine

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

func TestReaperHandsOutAgainTheChunkOfAWorkerThatStoppedBeating(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job := f.renderingJob(6, 3)
	f.move(job.ID, farm.StatusRendering)
	tasks := f.tasks(job.ID, store.TaskRender)
	held, untouched := tasks[0], tasks[1]

	// node-a took the first chunk, saved frame 1, was rendering frame 2,
	// and then stopped beating an hour ago.
	f.registerWorker("run-dead", "node-a", time.Now().Add(-time.Hour))
	f.claimAs("run-dead", held)
	f.setFrame(job.ID, 1, func(fr *store.Frame) {
		fr.Status, fr.Worker, fr.Attempts, fr.RenderSeconds, fr.ObjectKey = farm.FrameCompleted, "node-a", 1, 4.5, farm.JobFramesPrefix(job.ID)+frameName(1)
	})
	f.setFrame(job.ID, 2, func(fr *store.Frame) { fr.Status, fr.Worker, fr.Attempts = farm.FrameRendering, "node-a", 1 })

	if err := f.engine.reapOrphans(f.ctx); err != nil {
		t.Fatalf("reapOrphans: %v", err)
	}

	got := f.task(held.ID)
	if got.Status != store.TaskQueued || got.Generation != 2 || got.WorkerID != "" {
		t.Errorf("reaped task = %s, generation %d, worker %q; want queued, generation 2, no worker", got.Status, got.Generation, got.WorkerID)
	}
	wantFrames := map[int]farm.FrameStatus{
		1: farm.FrameCompleted, // rendered: kept, not rendered again
		2: farm.FrameQueued,    // was rendering on the dead worker
		3: farm.FrameQueued,
		4: farm.FrameQueued, 5: farm.FrameQueued, 6: farm.FrameQueued,
	}
	if frames := f.frameStatuses(job.ID); !maps.Equal(frames, wantFrames) {
		t.Errorf("frames after reaping = %v, want %v", frames, wantFrames)
	}
	if fr := f.frames(job.ID)[1]; fr.RenderSeconds != 4.5 || fr.ObjectKey == "" {
		t.Errorf("completed frame 1 = %+v; want its image and seconds kept", fr)
	}

	// The chunk has a new River job for generation 2, with every frame of
	// the chunk (the new holder skips those already completed) and the
	// engine's attempts.
	jobs := f.riverJobs("render_chunk")
	if len(jobs) != 3 {
		t.Fatalf("%d render_chunk River jobs, want the 2 of the request and 1 for the handed-out chunk", len(jobs))
	}
	newest := jobs[2]
	args := f.renderArgsOf(newest)
	want := renderArgs{taskRef: taskRef{JobID: job.ID, TaskID: held.ID, Generation: 2}, Frames: []int{1, 2, 3}}
	if args.taskRef != want.taskRef || !slices.Equal(args.Frames, want.Frames) {
		t.Errorf("new River job args = %+v, want %+v", args, want)
	}
	if newest.State != "available" || newest.Queue != queueRender || newest.MaxAttempts != fixtureRenderAttempts {
		t.Errorf("new River job = %s in queue %q with %d attempts; want available in %q with %d", newest.State, newest.Queue, newest.MaxAttempts, queueRender, fixtureRenderAttempts)
	}
	if got.RiverJobID != newest.ID {
		t.Errorf("task's River job = %d, want the new one %d (so that Cancel cancels it)", got.RiverJobID, newest.ID)
	}

	if other := f.task(untouched.ID); other.Status != store.TaskQueued || other.Generation != 1 {
		t.Errorf("the other chunk, never claimed = %s generation %d; want left queued at generation 1", other.Status, other.Generation)
	}
}

func TestReaperDecidesByTheHoldersHeartbeat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// hold registers worker runs, given the time now, and returns the
		// one holding the task.
		hold        func(f *farmFixture, now time.Time) string
		wantHandout bool
	}{
		{
			name: "a fresh heartbeat keeps the task",
			hold: func(f *farmFixture, now time.Time) string {
				f.registerWorker("run-1", "node-a", now)
				return "run-1"
			},
		},
		{
			name: "a heartbeat a little younger than the timeout keeps the task",
			hold: func(f *farmFixture, now time.Time) string {
				f.registerWorker("run-1", "node-a", now.Add(-fixtureWorkerTimeout+20*time.Second))
				return "run-1"
			},
		},
		{
			name: "a heartbeat older than the timeout loses the task",
			hold: func(f *farmFixture, now time.Time) string {
				f.registerWorker("run-1", "node-a", now.Add(-fixtureWorkerTimeout-20*time.Second))
				return "run-1"
			},
			wantHandout: true,
		},
		{
			name: "a fresh run that was replaced by a new run of the same name loses the task at once",
			hold: func(f *farmFixture, now time.Time) string {
				f.registerWorker("run-1", "node-a", now)
				f.registerWorker("run-2", "node-a", now) // node-a restarted
				return "run-1"
			},
			wantHandout: true,
		},
		{
			name: "a new run of another name changes nothing",
			hold: func(f *farmFixture, now time.Time) string {
				f.registerWorker("run-1", "node-a", now)
				f.registerWorker("run-2", "node-b", now)
				return "run-1"
			},
		},
		{
			name: "a run the farm never heard of loses the task",
			hold: func(f *farmFixture, now time.Time) string {
				return "run-unknown"
			},
			wantHandout: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFarmFixture(t)
			job := f.renderingJob(2, 2)
			task := f.tasks(job.ID, store.TaskRender)[0]
			f.claimAs(tt.hold(f, time.Now()), task)
			f.setFrame(job.ID, 1, func(fr *store.Frame) { fr.Status = farm.FrameRendering })

			if err := f.engine.reapOrphans(f.ctx); err != nil {
				t.Fatalf("reapOrphans: %v", err)
			}

			got := f.task(task.ID)
			riverJobs := len(f.riverJobs("render_chunk"))
			frame1 := f.frames(job.ID)[1].Status
			if tt.wantHandout {
				if got.Status != store.TaskQueued || got.Generation != 2 || riverJobs != 2 || frame1 != farm.FrameQueued {
					t.Errorf("task %s generation %d, %d River jobs, frame 1 %s; want handed out: queued, generation 2, a second River job, frame 1 queued",
						got.Status, got.Generation, riverJobs, frame1)
				}
				return
			}
			if got.Status != store.TaskRunning || got.Generation != 1 || riverJobs != 1 || frame1 != farm.FrameRendering {
				t.Errorf("task %s generation %d, %d River jobs, frame 1 %s; want left alone: running, generation 1, one River job, frame 1 rendering",
					got.Status, got.Generation, riverJobs, frame1)
			}
		})
	}
}

func TestReaperHandsOutValidatingAndFinalizingToo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind      store.TaskKind
		riverKind string
		args      func(taskRef) river.JobArgs
	}{
		{store.TaskValidate, "validate_file", func(r taskRef) river.JobArgs { return validateArgs{r} }},
		{store.TaskFinalize, "finalize_outputs", func(r taskRef) river.JobArgs { return finalizeArgs{r} }},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			t.Parallel()
			f := newFarmFixture(t)
			job := f.createdJob()
			var taskID string
			err := f.store.InTx(f.ctx, func(tx *store.Tx) error {
				var err error
				taskID, err = f.engine.enqueue(f.ctx, tx, job.ID, tt.kind, 0, tt.args, nil)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			f.registerWorker("run-dead", "node-a", time.Now().Add(-time.Hour))
			f.claimAs("run-dead", f.task(taskID))

			if err := f.engine.reapOrphans(f.ctx); err != nil {
				t.Fatalf("reapOrphans: %v", err)
			}

			if got := f.task(taskID); got.Status != store.TaskQueued || got.Generation != 2 {
				t.Errorf("task = %s generation %d, want queued at generation 2", got.Status, got.Generation)
			}
			jobs := f.riverJobs(tt.riverKind)
			if len(jobs) != 2 {
				t.Fatalf("%d %s River jobs, want the first and the one for generation 2", len(jobs), tt.riverKind)
			}
			var ref taskRef
			if err := json.Unmarshal(jobs[1].Args, &ref); err != nil {
				t.Fatal(err)
			}
			if want := (taskRef{JobID: job.ID, TaskID: taskID, Generation: 2}); ref != want {
				t.Errorf("new River job carries %+v, want %+v", ref, want)
			}
		})
	}
}

func TestReaperDoesNotReviveATaskThatEndedAfterItWasListed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// end ends the task after the reaper listed it.
		end        func(f *farmFixture, job *farm.Job, task store.Task)
		wantStatus store.TaskStatus
		wantGen    int
	}{
		{
			name: "finished by its holder, which was only slow",
			end: func(f *farmFixture, _ *farm.Job, task store.Task) {
				if err := f.store.FinishTask(f.ctx, task.ID, task.Generation, store.TaskDone); err != nil {
					f.t.Fatal(err)
				}
			},
			wantStatus: store.TaskDone, wantGen: 1,
		},
		{
			name: "failed by its holder",
			end: func(f *farmFixture, _ *farm.Job, task store.Task) {
				if err := f.store.FinishTask(f.ctx, task.ID, task.Generation, store.TaskFailed); err != nil {
					f.t.Fatal(err)
				}
			},
			wantStatus: store.TaskFailed, wantGen: 1,
		},
		{
			name: "canceled with its job",
			end: func(f *farmFixture, job *farm.Job, _ store.Task) {
				if _, err := f.engine.Cancel(f.ctx, f.p, job.ID); err != nil {
					f.t.Fatal(err)
				}
			},
			wantStatus: store.TaskCanceled, wantGen: 1,
		},
		{
			name: "handed out already by another reaper",
			end: func(f *farmFixture, _ *farm.Job, task store.Task) {
				if err := f.engine.requeue(f.ctx, task, "test"); err != nil {
					f.t.Fatal(err)
				}
			},
			wantStatus: store.TaskQueued, wantGen: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFarmFixture(t)
			job := f.renderingJob(2, 2)
			f.registerWorker("run-slow", "node-a", time.Now().Add(-time.Hour))
			f.claimAs("run-slow", f.tasks(job.ID, store.TaskRender)[0])

			listed, err := f.store.OrphanedTasks(f.ctx, time.Now().Add(-fixtureWorkerTimeout))
			if err != nil || len(listed) != 1 {
				t.Fatalf("OrphanedTasks = %d tasks, %v; want the one held by the silent run", len(listed), err)
			}
			tt.end(f, job, listed[0])
			before := len(f.riverJobs("render_chunk"))

			if err := f.engine.requeue(f.ctx, listed[0], "test"); err != nil {
				t.Fatalf("requeue of a task that moved on = %v, want nil (nothing to do)", err)
			}

			if got := f.task(listed[0].ID); got.Status != tt.wantStatus || got.Generation != tt.wantGen {
				t.Errorf("task = %s generation %d, want %s generation %d", got.Status, got.Generation, tt.wantStatus, tt.wantGen)
			}
			if after := len(f.riverJobs("render_chunk")); after != before {
				t.Errorf("requeue inserted %d River jobs, want none", after-before)
			}
		})
	}
}

// TestAHolderGivenUpOnCanNoLongerWrite plays a worker that the reaper gave
// up on but that was only slow: whatever it does with its old generation is
// refused and changes nothing, before and after the new generation is
// claimed, even by the same worker run.
func TestAHolderGivenUpOnCanNoLongerWrite(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job := f.renderingJob(3, 3)
	task := f.tasks(job.ID, store.TaskRender)[0]
	old := f.ref(task)

	// This engine's own run holds generation 1 and renders frame 1, then
	// its heartbeat goes stale.
	f.registerWorker(f.engine.workerID, "node-test", time.Now().Add(-time.Hour))
	f.claim(old)
	f.startChunk(old)
	if err := f.engine.frameStarted(f.ctx, old, 1); err != nil {
		t.Fatalf("frameStarted by the holder: %v", err)
	}
	if err := f.engine.reapOrphans(f.ctx); err != nil {
		t.Fatal(err)
	}
	current := f.ref(f.task(task.ID))
	if current.Generation != 2 {
		t.Fatalf("generation after reaping = %d, want 2", current.Generation)
	}

	staleWrites := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"updateFrame marking a frame completed", func(t *testing.T) {
			err := f.engine.updateFrame(f.ctx, old, 1, func(fr *store.Frame) { fr.Status = farm.FrameCompleted })
			if !errors.Is(err, errNotOurs) {
				t.Errorf("updateFrame = %v, want errNotOurs", err)
			}
		}},
		{"frameStarted announcing a frame", func(t *testing.T) {
			if err := f.engine.frameStarted(f.ctx, old, 2); !errors.Is(err, errNotOurs) {
				t.Errorf("frameStarted = %v, want errNotOurs", err)
			}
		}},
		{"frameSaved recording an image", func(t *testing.T) {
			if err := f.saveFrame(old, 3, 1); !errors.Is(err, errNotOurs) {
				t.Errorf("frameSaved = %v, want errNotOurs", err)
			}
		}},
		{"frameFailed recording an error", func(t *testing.T) {
			f.engine.frameFailed(f.ctx, old, 1, "Error: late")
		}},
		{"claim taking the task again", func(t *testing.T) {
			ok, err := f.engine.claim(f.ctx, old)
			if ok || err != nil {
				t.Errorf("claim = %v, %v; want false, nil (a stale holder ends quietly)", ok, err)
			}
		}},
		{"finish ending the task", func(t *testing.T) {
			err := f.store.InTx(f.ctx, func(tx *store.Tx) error {
				ok, err := f.engine.finish(f.ctx, tx, old, store.TaskDone)
				if ok || err != nil {
					t.Errorf("finish = %v, %v; want false, nil", ok, err)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}},
		{"endChunk closing the chunk", func(t *testing.T) {
			if err := f.engine.endChunk(f.ctx, old, nil); err != nil {
				t.Errorf("endChunk = %v, want nil", err)
			}
		}},
	}

	check := func(t *testing.T, wantTask store.Task, wantFrames map[int]store.Frame) {
		t.Helper()
		for _, w := range staleWrites {
			w.do(t)
			got := f.task(task.ID)
			if got.Status != wantTask.Status || got.Generation != wantTask.Generation || got.WorkerID != wantTask.WorkerID {
				t.Errorf("after a stale %s, task = %s gen %d worker %q; want %s gen %d worker %q",
					w.name, got.Status, got.Generation, got.WorkerID, wantTask.Status, wantTask.Generation, wantTask.WorkerID)
			}
			if frames := f.frames(job.ID); !sameFrames(frames, wantFrames) {
				t.Errorf("after a stale %s, frames = %+v; want unchanged %+v", w.name, frames, wantFrames)
			}
		}
		if st := f.job(job.ID).Status; st != farm.StatusRendering {
			t.Errorf("job = %s, want still rendering", st)
		}
		if n := len(f.tasks(job.ID, store.TaskFinalize)); n != 0 {
			t.Errorf("%d finalize tasks, want none", n)
		}
	}

	t.Run("while generation 2 waits in the queue", func(t *testing.T) {
		check(t, f.task(task.ID), f.frames(job.ID))
	})
	t.Run("once the same run claimed generation 2", func(t *testing.T) {
		f.claim(current)
		check(t, f.task(task.ID), f.frames(job.ID))
		// The new generation writes as usual.
		if err := f.engine.frameStarted(f.ctx, current, 1); err != nil {
			t.Errorf("frameStarted by generation 2: %v", err)
		}
		if fr := f.frames(job.ID)[1]; fr.Status != farm.FrameRendering || fr.Attempts != 2 {
			t.Errorf("frame 1 = %s after %d attempts, want rendering on its second attempt", fr.Status, fr.Attempts)
		}
	})
}

// sameFrames compares frames by what a worker writes, ignoring when.
func sameFrames(a, b map[int]store.Frame) bool {
	if len(a) != len(b) {
		return false
	}
	for n, fa := range a {
		fb, ok := b[n]
		if !ok {
			return false
		}
		fa.UpdatedAt, fb.UpdatedAt = time.Time{}, time.Time{}
		if fa != fb {
			return false
		}
	}
	return true
}

func TestAHolderGivenUpOnCannotReplaceTheImageOfAFrame(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job := f.renderingJob(1, 1)
	task := f.tasks(job.ID, store.TaskRender)[0]
	old := f.ref(task)
	f.registerWorker(f.engine.workerID, "node-test", time.Now().Add(-time.Hour))
	f.claim(old)
	f.startChunk(old)
	if err := f.engine.reapOrphans(f.ctx); err != nil {
		t.Fatal(err)
	}
	current := f.ref(f.task(task.ID))
	f.claim(current)
	if err := f.saveFrameImage(current, 1, 2, "image of generation 2"); err != nil {
		t.Fatal(err)
	}

	if err := f.saveFrameImage(old, 1, 2, "late image of generation 1, of another size"); !errors.Is(err, errNotOurs) {
		t.Fatalf("stale frameSaved = %v, want errNotOurs", err)
	}

	fr := f.frames(job.ID)[1]
	r, err := f.objects.Get(f.ctx, fr.ObjectKey)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stored, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(stored) != "image of generation 2" || int64(len(stored)) != fr.SizeBytes {
		t.Errorf("stored image = %q (%d bytes, row says %d); want generation 2's, as recorded", stored, len(stored), fr.SizeBytes)
	}
}

// A River job cancelled by hand, in River's UI, would leave its task queued
// for ever and the job unfinished: the reaper hands the task out again, under
// a new generation and a new River job, and leaves the other chunks alone.
func TestReaperHandsOutATaskWhoseRiverJobWasCancelledByHand(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job := f.renderingJob(4, 2)
	tasks := f.tasks(job.ID, store.TaskRender)
	cancelled, untouched := tasks[0], tasks[1]
	if _, err := f.engine.River().JobCancel(f.ctx, cancelled.RiverJobID); err != nil {
		t.Fatal(err)
	}

	if err := f.engine.reapOrphans(f.ctx); err != nil {
		t.Fatalf("reapOrphans: %v", err)
	}

	got := f.task(cancelled.ID)
	if got.Status != store.TaskQueued || got.Generation != 2 || got.RiverJobID == cancelled.RiverJobID {
		t.Errorf("task = %s, generation %d, River job %d; want queued, generation 2, a new River job", got.Status, got.Generation, got.RiverJobID)
	}
	jobs := f.riverJobs("render_chunk")
	states := map[int64]string{}
	for _, rj := range jobs {
		states[rj.ID] = rj.State
	}
	if states[cancelled.RiverJobID] != "cancelled" || states[got.RiverJobID] != "available" || states[untouched.RiverJobID] != "available" {
		t.Errorf("River jobs = %v; want the cancelled one left, a new one available, the other chunk's untouched", states)
	}
	if other := f.task(untouched.ID); other.Generation != 1 || other.RiverJobID != untouched.RiverJobID {
		t.Errorf("the other chunk = generation %d, River job %d; want untouched", other.Generation, other.RiverJobID)
	}

	// Reaping again finds nothing more to do.
	if err := f.engine.reapOrphans(f.ctx); err != nil {
		t.Fatal(err)
	}
	if again := f.task(cancelled.ID); again.Generation != 2 {
		t.Errorf("a second reaping moved the task to generation %d", again.Generation)
	}
}
