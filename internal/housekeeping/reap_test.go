package housekeeping

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// spareNode records a live render node of the job's Blender (4.2.3) with
// free slots, which takes the chunks the reaper hands out again; its
// run's id is "run-spare".
func (f *fixture) spareNode() {
	f.T.Helper()
	now := time.Now()
	if err := f.Store.RegisterWorker(f.Ctx, store.Worker{ID: "run-spare", Name: "node-spare", StartedAt: now, HeartbeatAt: now,
		State: store.WorkerIdle, BlenderVersions: []string{"4.2.3"}, Slots: 4}); err != nil {
		f.T.Fatal(err)
	}
}

func TestReaperHandsOutAgainTheChunkOfAWorkerThatStoppedBeating(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 6, 3)
		f.Move(job.ID, farm.StatusRendering)
		tasks := f.Tasks(job.ID, store.TaskRender)
		held, untouched := tasks[0], tasks[1]

		// node-a took the first chunk, saved frame 1, was rendering frame 2,
		// and then stopped beating an hour ago.
		f.RegisterWorker("run-dead", "node-a", time.Now().Add(-time.Hour))
		f.ClaimAs("run-dead", held)
		f.SetFrame(job.ID, 1, func(fr *store.Frame) {
			fr.Status, fr.Worker, fr.Attempts, fr.RenderSeconds, fr.ObjectKey = farm.FrameCompleted, "node-a", 1, 4.5, farm.JobFramesPrefix(job.ID)+enginetest.FrameName(1)
		})
		f.SetFrame(job.ID, 2, func(fr *store.Frame) { fr.Status, fr.Worker, fr.Attempts = farm.FrameRendering, "node-a", 1 })
		// node-b, live, runs the job's Blender and has a slot free.
		now := time.Now()
		if err := f.Store.RegisterWorker(f.Ctx, store.Worker{ID: "run-b", Name: "node-b", StartedAt: now, HeartbeatAt: now,
			State: store.WorkerIdle, BlenderVersions: []string{"4.2.3"}, Slots: 1}); err != nil {
			t.Fatal(err)
		}

		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatalf("reapOrphans: %v", err)
		}

		// Handed out again under generation 2, and given to node-b's free
		// slot by the reaper's dispatch.
		got := f.Task(held.ID)
		if got.Status != store.TaskQueued || got.Generation != 2 || got.WorkerID != "run-b" {
			t.Errorf("reaped task = %s, generation %d, worker %q; want queued, generation 2, on run-b", got.Status, got.Generation, got.WorkerID)
		}
		wantFrames := map[int]farm.FrameStatus{
			1: farm.FrameCompleted, // rendered: kept, not rendered again
			2: farm.FrameQueued,    // was rendering on the dead worker
			3: farm.FrameQueued,
			4: farm.FrameQueued, 5: farm.FrameQueued, 6: farm.FrameQueued,
		}
		if frames := f.FrameStatuses(job.ID); !maps.Equal(frames, wantFrames) {
			t.Errorf("frames after reaping = %v, want %v", frames, wantFrames)
		}
		if fr := f.Frames(job.ID)[1]; fr.RenderSeconds != 4.5 || fr.ObjectKey == "" {
			t.Errorf("completed frame 1 = %+v; want its image and seconds kept", fr)
		}

		// The chunk has a new River job for generation 2, with every frame of
		// the chunk (the new holder skips those already completed) and the
		// engine's attempts.
		jobs := f.RiverJobs("render_chunk")
		if len(jobs) != 3 {
			t.Fatalf("%d render_chunk River jobs, want the 2 of the request and 1 for the handed-out chunk", len(jobs))
		}
		newest := jobs[2]
		args := f.RenderArgsOf(newest)
		want := engine.RenderArgs{TaskRef: engine.TaskRef{JobID: job.ID, TaskID: held.ID, Generation: 2}, Frames: []int{1, 2, 3}}
		if args.TaskRef != want.TaskRef || !slices.Equal(args.Frames, want.Frames) {
			t.Errorf("new River job args = %+v, want %+v", args, want)
		}
		// On node-b's own queue.
		if newest.State != "available" || newest.Queue != engine.RenderQueue("run-b") || newest.MaxAttempts != enginetest.RenderAttempts {
			t.Errorf("new River job = %s in queue %q with %d attempts; want available in %q with %d", newest.State, newest.Queue, newest.MaxAttempts, engine.RenderQueue("run-b"), enginetest.RenderAttempts)
		}
		if got.RiverJobID != newest.ID {
			t.Errorf("task's River job = %d, want the new one %d (so that Cancel cancels it)", got.RiverJobID, newest.ID)
		}

		if other := f.Task(untouched.ID); other.Status != store.TaskQueued || other.Generation != 1 {
			t.Errorf("the other chunk, never claimed = %s generation %d; want left queued at generation 1", other.Status, other.Generation)
		}
	})
}

func TestReaperDecidesByTheHoldersHeartbeat(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		tests := []struct {
			name string
			// hold registers worker runs, given the time now, and returns the
			// one holding the task.
			hold        func(f *fixture, now time.Time) string
			wantHandout bool
		}{
			{
				name: "a fresh heartbeat keeps the task",
				hold: func(f *fixture, now time.Time) string {
					f.RegisterWorker("run-1", "node-a", now)
					return "run-1"
				},
			},
			{
				name: "a heartbeat a little younger than the timeout keeps the task",
				hold: func(f *fixture, now time.Time) string {
					f.RegisterWorker("run-1", "node-a", now.Add(-enginetest.WorkerTimeout+20*time.Second))
					return "run-1"
				},
			},
			{
				name: "a heartbeat older than the timeout loses the task",
				hold: func(f *fixture, now time.Time) string {
					f.RegisterWorker("run-1", "node-a", now.Add(-enginetest.WorkerTimeout-20*time.Second))
					return "run-1"
				},
				wantHandout: true,
			},
			{
				name: "a fresh run that was replaced by a new run of the same name loses the task at once",
				hold: func(f *fixture, now time.Time) string {
					f.RegisterWorker("run-1", "node-a", now)
					f.RegisterWorker("run-2", "node-a", now) // node-a restarted
					return "run-1"
				},
				wantHandout: true,
			},
			{
				name: "a new run of another name changes nothing",
				hold: func(f *fixture, now time.Time) string {
					f.RegisterWorker("run-1", "node-a", now)
					f.RegisterWorker("run-2", "node-b", now)
					return "run-1"
				},
			},
			{
				name: "a run the farm never heard of loses the task",
				hold: func(f *fixture, now time.Time) string {
					return "run-unknown"
				},
				wantHandout: true,
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.RenderingJob(f.api, 2, 2)
				task := f.Tasks(job.ID, store.TaskRender)[0]
				f.ClaimAs(tt.hold(f, time.Now()), task)
				f.SetFrame(job.ID, 1, func(fr *store.Frame) { fr.Status = farm.FrameRendering })
				f.spareNode()

				if err := f.hk.ReapOrphans(f.Ctx); err != nil {
					t.Fatalf("reapOrphans: %v", err)
				}

				got := f.Task(task.ID)
				riverJobs := len(f.RiverJobs("render_chunk"))
				frame1 := f.Frames(job.ID)[1].Status
				if tt.wantHandout {
					if got.Status != store.TaskQueued || got.WorkerID != "run-spare" || got.Generation != 2 || riverJobs != 2 || frame1 != farm.FrameQueued {
						t.Errorf("task %s on %q generation %d, %d River jobs, frame 1 %s; want handed out to the spare node: queued, generation 2, a second River job, frame 1 queued",
							got.Status, got.WorkerID, got.Generation, riverJobs, frame1)
					}
					return
				}
				if got.Status != store.TaskRunning || got.Generation != 1 || riverJobs != 1 || frame1 != farm.FrameRendering {
					t.Errorf("task %s generation %d, %d River jobs, frame 1 %s; want left alone: running, generation 1, one River job, frame 1 rendering",
						got.Status, got.Generation, riverJobs, frame1)
				}
			})
		}
	})
}

func TestReaperHandsOutValidatingAndFinalizingToo(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		tests := []struct {
			kind      store.TaskKind
			riverKind string
		}{
			{store.TaskValidate, "validate_file"},
			{store.TaskFinalize, "finalize_outputs"},
		}
		for _, tt := range tests {
			t.Run(string(tt.kind), func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.CreatedJob(f.api)
				var taskID string
				err := f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
					var err error
					taskID, err = f.Engine.Enqueue(f.Ctx, tx, job, tt.kind)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				f.RegisterWorker("run-dead", "node-a", time.Now().Add(-time.Hour))
				f.ClaimAs("run-dead", f.Task(taskID))

				if err := f.hk.ReapOrphans(f.Ctx); err != nil {
					t.Fatalf("reapOrphans: %v", err)
				}

				if got := f.Task(taskID); got.Status != store.TaskQueued || got.Generation != 2 {
					t.Errorf("task = %s generation %d, want queued at generation 2", got.Status, got.Generation)
				}
				jobs := f.RiverJobs(tt.riverKind)
				if len(jobs) != 2 {
					t.Fatalf("%d %s River jobs, want the first and the one for generation 2", len(jobs), tt.riverKind)
				}
				var ref engine.TaskRef
				if err := json.Unmarshal(jobs[1].Args, &ref); err != nil {
					t.Fatal(err)
				}
				if want := (engine.TaskRef{JobID: job.ID, TaskID: taskID, Generation: 2}); ref != want {
					t.Errorf("new River job carries %+v, want %+v", ref, want)
				}
			})
		}
	})
}

// A River job cancelled by hand, in River's UI, would leave its task queued
// for ever and the job unfinished: the reaper hands the task out again, under
// a new generation and a new River job, and leaves the other chunks alone.
func TestReaperHandsOutATaskWhoseRiverJobWasCancelledByHand(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 4, 2)
		tasks := f.Tasks(job.ID, store.TaskRender)
		cancelled, untouched := tasks[0], tasks[1]
		if _, err := f.Engine.River().JobCancel(f.Ctx, cancelled.RiverJobID); err != nil {
			t.Fatal(err)
		}
		f.spareNode()

		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatalf("reapOrphans: %v", err)
		}

		got := f.Task(cancelled.ID)
		if got.Status != store.TaskQueued || got.Generation != 2 || got.RiverJobID == cancelled.RiverJobID {
			t.Errorf("task = %s, generation %d, River job %d; want queued, generation 2, a new River job", got.Status, got.Generation, got.RiverJobID)
		}
		jobs := f.RiverJobs("render_chunk")
		states := map[int64]string{}
		for _, rj := range jobs {
			states[rj.ID] = rj.State
		}
		if states[cancelled.RiverJobID] != "cancelled" || states[got.RiverJobID] != "available" || states[untouched.RiverJobID] != "available" {
			t.Errorf("River jobs = %v; want the cancelled one left, a new one available, the other chunk's untouched", states)
		}
		if other := f.Task(untouched.ID); other.Generation != 1 || other.RiverJobID != untouched.RiverJobID {
			t.Errorf("the other chunk = generation %d, River job %d; want untouched", other.Generation, other.RiverJobID)
		}

		// Reaping again finds nothing more to do.
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		if again := f.Task(cancelled.ID); again.Generation != 2 {
			t.Errorf("a second reaping moved the task to generation %d", again.Generation)
		}
	})
}
