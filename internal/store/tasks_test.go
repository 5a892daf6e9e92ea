package store_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// jobWithTasks makes a job and returns a function that adds tasks to it.
func jobWithTasks(t *testing.T, s *store.Store, jobID string) func(task store.Task) store.Task {
	t.Helper()
	ws := ensureWorkspace(t, s, "studio")
	insertJob(t, s, newJob(jobID, ws.ID, at(0)))
	return func(task store.Task) store.Task {
		t.Helper()
		task.JobID = jobID
		if task.Kind == "" {
			task.Kind = store.TaskRender
		}
		if task.Status == "" {
			task.Status = store.TaskQueued
		}
		if task.Generation == 0 {
			task.Generation = 1
		}
		if task.CreatedAt.IsZero() {
			task.CreatedAt = at(0)
		}
		task.UpdatedAt = task.CreatedAt
		if err := s.InsertTask(t.Context(), task); err != nil {
			t.Fatalf("InsertTask(%s): %v", task.ID, err)
		}
		return task
	}
}

func getTask(t *testing.T, s *store.Store, id string) store.Task {
	t.Helper()
	task, err := s.GetTask(t.Context(), id)
	if err != nil {
		t.Fatalf("GetTask(%s): %v", id, err)
	}
	return task
}

func TestTaskRoundTrip(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		want := add(store.Task{ID: "task-1", Kind: store.TaskRender, Chunk: 3, Status: store.TaskQueued, Generation: 2, WorkerID: "", RiverJobID: 0})
		got := getTask(t, s, "task-1")
		if got.ID != want.ID || got.JobID != want.JobID || got.Kind != want.Kind || got.Chunk != want.Chunk || got.Status != want.Status ||
			got.Generation != want.Generation || got.WorkerID != want.WorkerID || got.RiverJobID != 0 ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("GetTask = %+v, want %+v", got, want)
		}

		if err := s.SetTaskRiverJob(t.Context(), "task-1", 4711); err != nil {
			t.Fatal(err)
		}
		if got := getTask(t, s, "task-1"); got.RiverJobID != 4711 {
			t.Errorf("RiverJobID = %d after SetTaskRiverJob, want 4711", got.RiverJobID)
		}
		if _, err := s.GetTask(t.Context(), "no-such-task"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetTask of an unknown task: error %v, want ErrNotFound", err)
		}
	})
}

func TestATaskBelongsToAJobThatExists(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		err := s.InsertTask(t.Context(), store.Task{ID: "task-1", JobID: "no-such-job", Kind: store.TaskRender, Status: store.TaskQueued, Generation: 1})
		if err == nil {
			t.Error("a task of a job that does not exist was stored")
		}
	})
}

func TestClaimTask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		task       store.Task
		generation int
		wantErr    error
	}{
		{"a queued task of the caller's generation is claimed", store.Task{Status: store.TaskQueued, Generation: 1}, 1, nil},
		{"a later generation claims its own requeued task", store.Task{Status: store.TaskQueued, Generation: 3}, 3, nil},
		{"an older generation is refused", store.Task{Status: store.TaskQueued, Generation: 2}, 1, store.ErrConflict},
		{"a generation from the future is refused", store.Task{Status: store.TaskQueued, Generation: 1}, 2, store.ErrConflict},
		{"a task running elsewhere is refused", store.Task{Status: store.TaskRunning, Generation: 1, WorkerID: "w-other"}, 1, store.ErrConflict},
		{"a finished task is refused", store.Task{Status: store.TaskDone, Generation: 1}, 1, store.ErrConflict},
		{"a failed task is refused", store.Task{Status: store.TaskFailed, Generation: 1}, 1, store.ErrConflict},
		{"a canceled task is refused", store.Task{Status: store.TaskCanceled, Generation: 1}, 1, store.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			forEachStore(t, func(t *testing.T, s *store.Store) {
				add := jobWithTasks(t, s, "job-1")
				task := tt.task // shared by both databases' runs
				task.ID = "task-1"
				before := add(task)

				err := s.ClaimTask(t.Context(), "task-1", tt.generation, "w-1", 1)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ClaimTask error = %v, want %v", err, tt.wantErr)
				}
				got := getTask(t, s, "task-1")
				if tt.wantErr == nil {
					if got.Status != store.TaskRunning || got.WorkerID != "w-1" || got.Generation != tt.generation || !got.UpdatedAt.After(before.UpdatedAt) {
						t.Errorf("after the claim: %+v, want running on w-1 in generation %d with a new updated_at", got, tt.generation)
					}
					return
				}
				if got.Status != before.Status || got.WorkerID != before.WorkerID || got.Generation != before.Generation {
					t.Errorf("a refused claim changed the task: %+v, was %+v", got, before)
				}
			})
		})
	}
}

func TestClaimTaskAtTheSameTimeHasExactlyOneWinner(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "task-1"})

		const workers = 32
		errs := make([]error, workers)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range workers {
			wg.Go(func() {
				start.Wait()
				errs[i] = s.ClaimTask(t.Context(), "task-1", 1, fmt.Sprintf("w-%d", i), 1)
			})
		}
		start.Done()
		wg.Wait()

		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("workers %d and %d both claimed the task", winner, i)
				}
				winner = i
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("worker %d: %v, want nil or ErrConflict", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no worker claimed the task")
		}
		if got := getTask(t, s, "task-1"); got.WorkerID != fmt.Sprintf("w-%d", winner) {
			t.Errorf("the task is held by %q, but worker %d won", got.WorkerID, winner)
		}
	})
}

func TestFinishTask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		task       store.Task
		generation int
		status     store.TaskStatus
		wantErr    error
	}{
		{"the holder finishes its running task", store.Task{Status: store.TaskRunning, Generation: 1, WorkerID: "w-1"}, 1, store.TaskDone, nil},
		{"the holder can end it failed", store.Task{Status: store.TaskRunning, Generation: 1, WorkerID: "w-1"}, 1, store.TaskFailed, nil},
		{"a holder of an older generation is refused", store.Task{Status: store.TaskRunning, Generation: 2, WorkerID: "w-2"}, 1, store.TaskDone, store.ErrConflict},
		{"a task not yet claimed is refused", store.Task{Status: store.TaskQueued, Generation: 1}, 1, store.TaskDone, store.ErrConflict},
		{"a canceled task stays canceled", store.Task{Status: store.TaskCanceled, Generation: 1, WorkerID: "w-1"}, 1, store.TaskDone, store.ErrConflict},
		{"a task is finished once", store.Task{Status: store.TaskDone, Generation: 1, WorkerID: "w-1"}, 1, store.TaskFailed, store.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			forEachStore(t, func(t *testing.T, s *store.Store) {
				add := jobWithTasks(t, s, "job-1")
				task := tt.task // shared by both databases' runs
				task.ID = "task-1"
				before := add(task)

				err := s.InsertFrame(t.Context(), store.Frame{JobID: "job-1", Frame: 1, TaskID: "task-1", Status: farm.FrameCompleted,
					RenderSeconds: 2.5, UpdatedAt: time.Now().UTC()})
				if err != nil {
					t.Fatal(err)
				}

				err = s.FinishTask(t.Context(), "task-1", tt.generation, store.TaskEnd{Status: tt.status, Threads: 4, LogBytes: 300})
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("FinishTask error = %v, want %v", err, tt.wantErr)
				}
				want := before.Status
				// What the end writes with the status, in the same
				// statement: its frames' 2.5 s times 4 threads, the log's
				// bytes, when it ended. A refused end writes none of it.
				wantSeconds, wantLog, wantEnded := 0.0, int64(0), false
				if tt.wantErr == nil {
					want, wantSeconds, wantLog, wantEnded = tt.status, 10, 300, true
				}
				if got := getTask(t, s, "task-1"); got.Status != want {
					t.Errorf("status = %s, want %s", got.Status, want)
				}
				var seconds float64
				var logBytes int64
				var ended bool
				err = s.DB().QueryRowContext(t.Context(), `SELECT worker_seconds, log_bytes, finished_at IS NOT NULL FROM tasks WHERE id = 'task-1'`).
					Scan(&seconds, &logBytes, &ended)
				if err != nil {
					t.Fatal(err)
				}
				if seconds != wantSeconds || logBytes != wantLog || ended != wantEnded {
					t.Errorf("worker seconds, log bytes, ended = %g, %d, %v; want %g, %d, %v", seconds, logBytes, ended, wantSeconds, wantLog, wantEnded)
				}
			})
		})
	}
}

func TestReleaseTaskLetsTheSameGenerationClaimAgain(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "task-1"})
		if err := s.ClaimTask(t.Context(), "task-1", 1, "w-1", 1); err != nil {
			t.Fatal(err)
		}
		if err := s.ReleaseTask(t.Context(), "task-1", 1); err != nil {
			t.Fatal(err)
		}
		got := getTask(t, s, "task-1")
		// The chunk stays with its worker: River's retry is on that
		// worker's own queue, and the slot stays taken until then.
		if got.Status != store.TaskQueued || got.WorkerID != "w-1" || got.Generation != 1 {
			t.Errorf("after release: %+v, want queued, on w-1, generation 1", got)
		}
		if err := s.ClaimTask(t.Context(), "task-1", 1, "w-1", 1); err != nil {
			t.Errorf("River's retry of the same job could not claim the released task: %v", err)
		}
	})
}

func TestReleaseTaskOfAnotherGenerationChangesNothing(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "task-1", Status: store.TaskRunning, Generation: 2, WorkerID: "w-2"})
		if err := s.ReleaseTask(t.Context(), "task-1", 1); err != nil {
			t.Fatal(err)
		}
		if got := getTask(t, s, "task-1"); got.Status != store.TaskRunning || got.WorkerID != "w-2" {
			t.Errorf("a stale release changed the task: %+v", got)
		}
	})
}

func TestRequeueTaskBumpsTheGenerationAndRefusesTheOldHolder(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "task-1"})
		if err := s.ClaimTask(t.Context(), "task-1", 1, "w-dead", 1); err != nil {
			t.Fatal(err)
		}

		gen, err := s.RequeueTask(t.Context(), "task-1", 1)
		if err != nil || gen != 2 {
			t.Fatalf("RequeueTask = %d, %v; want generation 2", gen, err)
		}
		got := getTask(t, s, "task-1")
		if got.Status != store.TaskQueued || got.WorkerID != "" || got.Generation != 2 {
			t.Errorf("after requeue: %+v, want queued, no worker, generation 2", got)
		}

		// The old holder comes back: every write it tries is refused.
		if err := s.FinishTask(t.Context(), "task-1", 1, store.TaskEnd{Status: store.TaskDone}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("the old holder finishing: error %v, want ErrConflict", err)
		}
		if err := s.ClaimTask(t.Context(), "task-1", 1, "w-dead", 1); !errors.Is(err, store.ErrConflict) {
			t.Errorf("the old River job claiming: error %v, want ErrConflict", err)
		}
		if _, err := s.RequeueTask(t.Context(), "task-1", 1); !errors.Is(err, store.ErrConflict) {
			t.Errorf("requeueing from the old generation again: error %v, want ErrConflict", err)
		}
		// The new generation's River job takes it.
		if err := s.ClaimTask(t.Context(), "task-1", 2, "w-new", 1); err != nil {
			t.Errorf("the new generation could not claim: %v", err)
		}
	})
}

func TestRequeueTaskLeavesAnEndedTaskAlone(t *testing.T) {
	t.Parallel()
	// The reaper lists orphans and requeues them one by one; a task that
	// ended in between must stay ended, not be rendered again.
	for _, status := range []store.TaskStatus{store.TaskDone, store.TaskFailed, store.TaskCanceled} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			forEachStore(t, func(t *testing.T, s *store.Store) {
				add := jobWithTasks(t, s, "job-1")
				add(store.Task{ID: "task-1", Status: status, WorkerID: "w-1"})
				if _, err := s.RequeueTask(t.Context(), "task-1", 1); !errors.Is(err, store.ErrConflict) {
					t.Errorf("RequeueTask of a %s task: error %v, want ErrConflict", status, err)
				}
				if got := getTask(t, s, "task-1"); got.Status != status || got.Generation != 1 {
					t.Errorf("after requeue: %+v, want it still %s in generation 1", got, status)
				}
			})
		})
	}
}

func TestTasksOfJob(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "render-2", Kind: store.TaskRender, Chunk: 2})
		add(store.Task{ID: "validate", Kind: store.TaskValidate})
		add(store.Task{ID: "render-0", Kind: store.TaskRender, Chunk: 0})
		add(store.Task{ID: "render-1", Kind: store.TaskRender, Chunk: 1})
		other := jobWithTasks(t, s, "job-2")
		other(store.Task{ID: "other-render", Kind: store.TaskRender})

		tests := []struct {
			name string
			kind store.TaskKind
			want []string
		}{
			{"all kinds, by kind then chunk", "", []string{"render-0", "render-1", "render-2", "validate"}},
			{"one kind, by chunk", store.TaskRender, []string{"render-0", "render-1", "render-2"}},
			{"a kind the job has none of", store.TaskFinalize, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tasks, err := s.TasksOfJob(t.Context(), "job-1", tt.kind)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, task := range tasks {
					ids = append(ids, task.ID)
				}
				if !slices.Equal(ids, tt.want) {
					t.Errorf("TasksOfJob(%q) = %q, want %q", tt.kind, ids, tt.want)
				}
			})
		}
	})
}

func TestCancelTasksOfJobCancelsOnlyUnfinishedTasks(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "queued", Chunk: 0, Status: store.TaskQueued, RiverJobID: 10})
		add(store.Task{ID: "running", Chunk: 1, Status: store.TaskRunning, WorkerID: "w-1", RiverJobID: 11})
		add(store.Task{ID: "done", Chunk: 2, Status: store.TaskDone})
		add(store.Task{ID: "failed", Chunk: 3, Status: store.TaskFailed})
		other := jobWithTasks(t, s, "job-2")
		other(store.Task{ID: "other-queued", Status: store.TaskQueued})

		canceled, _, err := s.CancelTasksOfJob(t.Context(), "job-1")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		var riverJobs []int64
		for _, task := range canceled {
			ids = append(ids, task.ID)
			riverJobs = append(riverJobs, task.RiverJobID)
		}
		slices.Sort(ids)
		slices.Sort(riverJobs)
		if !slices.Equal(ids, []string{"queued", "running"}) || !slices.Equal(riverJobs, []int64{10, 11}) {
			t.Errorf("CancelTasksOfJob returned %q with River jobs %v; want queued and running, with 10 and 11", ids, riverJobs)
		}
		want := map[string]store.TaskStatus{
			"queued": store.TaskCanceled, "running": store.TaskCanceled,
			"done": store.TaskDone, "failed": store.TaskFailed, "other-queued": store.TaskQueued,
		}
		for id, status := range want {
			if got := getTask(t, s, id); got.Status != status {
				t.Errorf("task %s is %s, want %s", id, got.Status, status)
			}
		}
		if again, _, err := s.CancelTasksOfJob(t.Context(), "job-1"); err != nil || len(again) != 0 {
			t.Errorf("canceling again = %d tasks, %v; want none", len(again), err)
		}
	})
}

func registerWorker(t *testing.T, s *store.Store, id, name string, heartbeat time.Time) {
	t.Helper()
	w := store.Worker{ID: id, Name: name, StartedAt: heartbeat, HeartbeatAt: heartbeat, State: store.WorkerBusy}
	if err := s.RegisterWorker(t.Context(), w); err != nil {
		t.Fatalf("RegisterWorker(%s): %v", id, err)
	}
}

// TestOrphanedTasksAreRunningTasksWhoseWorkerIsGone: the tasks held by a
// worker run that is gone, and the chunks given to one that it never
// started (their River jobs wait on its own queue, which nobody else
// works).
func TestOrphanedTasksAreRunningTasksWhoseWorkerIsGone(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		now := time.Now()
		staleBefore := now.Add(-time.Minute)

		registerWorker(t, s, "run-fresh", "node-a", now)
		registerWorker(t, s, "run-stale", "node-b", now.Add(-10*time.Minute))
		registerWorker(t, s, "run-old", "node-c", now)
		registerWorker(t, s, "run-new", "node-c", now) // node-c restarted: its old run is gone
		registerWorker(t, s, "run-just-stale", "node-d", staleBefore.Add(-time.Millisecond))
		registerWorker(t, s, "run-just-fresh", "node-e", staleBefore.Add(time.Millisecond))

		add := jobWithTasks(t, s, "job-1")
		running := func(id, worker string) {
			add(store.Task{ID: id, Status: store.TaskQueued})
			if err := s.ClaimTask(t.Context(), id, 1, worker, 1); err != nil {
				t.Fatalf("ClaimTask(%s): %v", id, err)
			}
		}
		running("on-fresh", "run-fresh")
		running("on-stale", "run-stale")
		running("on-old-run", "run-old")
		running("on-new-run", "run-new")
		running("on-just-stale", "run-just-stale")
		running("on-just-fresh", "run-just-fresh")
		running("on-unknown", "run-never-registered")
		add(store.Task{ID: "queued-was-stale", Status: store.TaskQueued, WorkerID: "run-stale"})
		add(store.Task{ID: "done-on-stale", Status: store.TaskDone, WorkerID: "run-stale"})

		orphans := func() []string {
			tasks, err := s.OrphanedTasks(t.Context(), staleBefore)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, task := range tasks {
				ids = append(ids, task.ID)
			}
			slices.Sort(ids)
			return ids
		}
		want := []string{"on-just-stale", "on-old-run", "on-stale", "on-unknown", "queued-was-stale"}
		if got := orphans(); !slices.Equal(got, want) {
			t.Errorf("OrphanedTasks = %q, want %q", got, want)
		}

		// A stale worker that beats again vouches for its task again; a run
		// declared gone cannot.
		if err := s.Heartbeat(t.Context(), "run-stale", store.WorkerBusy, "on-stale"); err != nil {
			t.Fatal(err)
		}
		if err := s.Heartbeat(t.Context(), "run-old", store.WorkerBusy, "on-old-run"); err != nil {
			t.Fatal(err)
		}
		want = []string{"on-just-stale", "on-old-run", "on-unknown"}
		if got := orphans(); !slices.Equal(got, want) {
			t.Errorf("after heartbeats, OrphanedTasks = %q, want %q", got, want)
		}
	})
}

func TestRegisterWorkerDeclaresEarlierRunsOfTheSameNameGone(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		now := time.Now()
		registerWorker(t, s, "run-1", "node-a", now)
		registerWorker(t, s, "run-other", "node-b", now)
		if n, err := s.LiveWorkers(t.Context(), now.Add(-time.Minute)); err != nil || n != 2 {
			t.Fatalf("LiveWorkers = %d, %v; want 2", n, err)
		}
		registerWorker(t, s, "run-2", "node-a", now)
		if n, err := s.LiveWorkers(t.Context(), now.Add(-time.Minute)); err != nil || n != 2 {
			t.Errorf("after node-a restarted, LiveWorkers = %d, %v; want 2 (its old run is gone)", n, err)
		}
		var state string
		if err := s.DB().QueryRowContext(t.Context(), `SELECT state FROM workers WHERE id = 'run-1'`).Scan(&state); err != nil || state != store.WorkerGone {
			t.Errorf("the earlier run's state = %q, %v; want %s", state, err, store.WorkerGone)
		}
	})
}

func TestLiveWorkersCountsRecentRunsThatAreNotStoppedOrGone(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		now := time.Now()
		registerWorker(t, s, "busy", "node-a", now)
		registerWorker(t, s, "stale", "node-b", now.Add(-time.Hour))
		registerWorker(t, s, "stopping", "node-c", now)
		if err := s.Heartbeat(t.Context(), "stopping", store.WorkerStopped, ""); err != nil {
			t.Fatal(err)
		}
		registerWorker(t, s, "idle", "node-d", now)
		if err := s.Heartbeat(t.Context(), "idle", store.WorkerIdle, ""); err != nil {
			t.Fatal(err)
		}
		if n, err := s.LiveWorkers(t.Context(), now.Add(-time.Minute)); err != nil || n != 2 {
			t.Errorf("LiveWorkers = %d, %v; want 2 (busy and idle)", n, err)
		}
	})
}

func TestLockTaskKeepsARequeueWaitingUntilTheHolderCommits(t *testing.T) {
	t.Parallel()
	// A holder checks that the task is still its own and writes; the
	// reaper's requeue must come wholly before or wholly after that.
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "task-1"})
		if err := s.ClaimTask(t.Context(), "task-1", 1, "w-1", 1); err != nil {
			t.Fatal(err)
		}

		blocked := awaitBlocked(t, s)
		requeued := make(chan error, 1)
		err := s.InTx(t.Context(), func(tx *store.Tx) error {
			task, err := tx.LockTask(t.Context(), "task-1")
			if err != nil {
				return err
			}
			if task.Generation != 1 || task.WorkerID != "w-1" || task.Status != store.TaskRunning {
				t.Fatalf("LockTask = %+v, want running on w-1 in generation 1", task)
			}
			go func() {
				_, err := s.RequeueTask(t.Context(), "task-1", 1)
				requeued <- err
			}()
			blocked()
			select {
			case err := <-requeued:
				t.Errorf("the requeue went through while the holder had the task locked (error %v)", err)
			default:
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-requeued; err != nil {
			t.Fatalf("the requeue after the holder committed: %v", err)
		}
		if got := getTask(t, s, "task-1"); got.Generation != 2 || got.Status != store.TaskQueued {
			t.Errorf("after the requeue: %+v, want queued in generation 2", got)
		}
	})
}

func TestLockTaskOfAnUnknownTaskIsNotFound(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		err := s.InTx(t.Context(), func(tx *store.Tx) error {
			_, err := tx.LockTask(t.Context(), "no-such-task")
			return err
		})
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LockTask of an unknown task: error %v, want ErrNotFound", err)
		}
	})
}

// TestTaskTimesRecordTheDispatchAndTheClaim: a chunk's dispatch to a
// worker run and that run's claim each leave their moment, which is what
// the time from queued to started is measured with.
func TestTaskTimesRecordTheDispatchAndTheClaim(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "task-1", Status: store.TaskWaiting})
		times, err := s.TimesOfTask(t.Context(), "task-1")
		if err != nil {
			t.Fatal(err)
		}
		if !times.Created.Equal(at(0)) || !times.Dispatched.IsZero() || !times.Started.IsZero() || !times.Finished.IsZero() {
			t.Fatalf("a waiting chunk's times = %+v, want only its creation at %v", times, at(0))
		}

		beforeDispatch := time.Now().Add(-time.Millisecond)
		if n, err := s.QueueChunks(t.Context(), []store.QueuedChunk{{TaskID: "task-1", Generation: 1, WorkerID: "w-1", RiverJobID: 7}}); err != nil || n != 1 {
			t.Fatalf("QueueChunks = %d, %v", n, err)
		}
		if times, err = s.TimesOfTask(t.Context(), "task-1"); err != nil {
			t.Fatal(err)
		}
		if times.Dispatched.Before(beforeDispatch) || !times.Started.IsZero() {
			t.Fatalf("after the dispatch: %+v, want dispatched after %v and not started", times, beforeDispatch)
		}

		if err := s.ClaimTask(t.Context(), "task-1", 1, "w-1", 1); err != nil {
			t.Fatal(err)
		}
		claimed, err := s.TimesOfTask(t.Context(), "task-1")
		if err != nil {
			t.Fatal(err)
		}
		if !claimed.Dispatched.Equal(times.Dispatched) || claimed.Started.Before(times.Dispatched) {
			t.Fatalf("after the claim: %+v, want the dispatch kept (%v) and a start at or after it", claimed, times.Dispatched)
		}

		if _, err := s.TimesOfTask(t.Context(), "no-such-task"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TimesOfTask of no task: %v, want ErrNotFound", err)
		}
	})
}

// A chunk claimed by a node of a version before migration 0023 has no
// threads recorded. Stopped while its node holds it, it is charged at the
// threads that node's ended chunks were charged at; handed back by its
// node, or held by a node that ended none, it has nothing to go by: it is
// charged nothing, and the stop says so.
func TestCancelTasksOfJobChargesChunksClaimedWithoutThreadsWhereTheirNodeTells(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		frame := 0
		claimAndComplete := func(id, worker string, threads int, seconds float64) {
			t.Helper()
			add(store.Task{ID: id, Chunk: frame})
			if err := s.ClaimTask(t.Context(), id, 1, worker, threads); err != nil {
				t.Fatal(err)
			}
			frame++
			err := s.InsertFrame(t.Context(), store.Frame{JobID: "job-1", Frame: frame, TaskID: id, Status: farm.FrameCompleted,
				RenderSeconds: seconds, UpdatedAt: at(0)})
			if err != nil {
				t.Fatal(err)
			}
		}
		claimAndComplete("ended-by-old-node", "old-node", 0, 5)
		if err := s.FinishTask(t.Context(), "ended-by-old-node", 1, store.TaskEnd{Status: store.TaskDone, Threads: 4}); err != nil {
			t.Fatal(err)
		}
		claimAndComplete("held-by-old-node", "old-node", 0, 10)
		claimAndComplete("handed-back-by-old-node", "old-node", 0, 7)
		if _, err := s.ReturnToWaiting(t.Context(), "handed-back-by-old-node", 1); err != nil {
			t.Fatal(err)
		}
		claimAndComplete("held-by-old-node-that-ended-none", "other-old-node", 0, 8)
		claimAndComplete("held-by-new-node", "new-node", 2, 3)

		_, uncharged, err := s.CancelTasksOfJob(t.Context(), "job-1")
		if err != nil {
			t.Fatal(err)
		}

		want := map[string]float64{
			"ended-by-old-node":                20, // its own end's
			"held-by-old-node":                 40, // 10 s at the 4 threads its node's end was charged at
			"handed-back-by-old-node":          0,
			"held-by-old-node-that-ended-none": 0,
			"held-by-new-node":                 6, // 3 s at the 2 threads its claim recorded
		}
		for id, seconds := range want {
			var got float64
			if err := s.DB().QueryRowContext(t.Context(), `SELECT worker_seconds FROM tasks WHERE id = '`+id+`'`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-seconds) > 1e-9 {
				t.Errorf("%s: %g worker-seconds, want %g", id, got, seconds)
			}
		}
		wantUncharged := []store.UnchargedStop{{TaskID: "handed-back-by-old-node", RenderSeconds: 7}, {TaskID: "held-by-old-node-that-ended-none", RenderSeconds: 8}}
		if !slices.Equal(uncharged, wantUncharged) {
			t.Errorf("uncharged stops = %+v, want %+v", uncharged, wantUncharged)
		}
	})
}

// A validation or merge counts those of its workspace queued before it;
// of tasks made in the same microsecond (a transaction that queues a
// split job's merges together), each counts those with a smaller id, so
// that they do not all take the first rank.
func TestControlTasksAheadRanksTasksMadeAtTheSameInstantByID(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		ws := ensureWorkspace(t, s, "studio")
		var made []store.Task
		for _, id := range []string{"merge-a", "merge-b", "merge-c"} {
			made = append(made, add(store.Task{ID: id, Kind: store.TaskMerge, WorkspaceID: ws.ID}))
		}
		later := add(store.Task{ID: "validate-0", Kind: store.TaskValidate, WorkspaceID: ws.ID, CreatedAt: at(0).Add(time.Microsecond)})
		add(store.Task{ID: "merge-running", Kind: store.TaskMerge, WorkspaceID: ws.ID, Status: store.TaskRunning})
		for i, task := range append(made, later) {
			n, err := s.ControlTasksAhead(t.Context(), task, 32)
			if err != nil {
				t.Fatal(err)
			}
			if n != i {
				t.Errorf("ControlTasksAhead(%s) = %d, want %d", task.ID, n, i)
			}
		}
		if n, err := s.ControlTasksAhead(t.Context(), later, 2); err != nil || n != 2 {
			t.Errorf("ControlTasksAhead with a limit of 2 = %d, %v; want 2", n, err)
		}
	})
}

// Validations and merges an older serve queued without their workspace
// (a rolling upgrade past migration 0027) are given their job's, and
// then count for it; chunks and ended tasks are left as they are.
func TestTasksAnOlderServeMadeWithoutAWorkspaceAreGivenTheirJobs(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		ws := ensureWorkspace(t, s, "studio")
		add(store.Task{ID: "validate", Kind: store.TaskValidate})
		add(store.Task{ID: "merge", Kind: store.TaskMerge, Status: store.TaskRunning})
		add(store.Task{ID: "finalize-done", Kind: store.TaskFinalize, Status: store.TaskDone})
		add(store.Task{ID: "render", Kind: store.TaskRender})
		newer := add(store.Task{ID: "validate-newer", Kind: store.TaskValidate, WorkspaceID: ws.ID, CreatedAt: at(1)})
		if n, err := s.ControlTasksAhead(t.Context(), newer, 32); err != nil || n != 0 {
			t.Fatalf("before: ControlTasksAhead = %d, %v; want 0, the older serve's validation not counted", n, err)
		}
		n, err := s.GiveTasksTheirWorkspace(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("GiveTasksTheirWorkspace gave %d tasks their workspace, want 2 (the queued validation, the running merge)", n)
		}
		for id, want := range map[string]string{"validate": ws.ID, "merge": ws.ID, "finalize-done": "", "render": ""} {
			if got := getTask(t, s, id).WorkspaceID; got != want {
				t.Errorf("task %s's workspace = %q, want %q", id, got, want)
			}
		}
		if n, err := s.ControlTasksAhead(t.Context(), newer, 32); err != nil || n != 1 {
			t.Errorf("after: ControlTasksAhead = %d, %v; want 1, the older serve's validation", n, err)
		}
		if n, err := s.GiveTasksTheirWorkspace(t.Context()); err != nil || n != 0 {
			t.Errorf("a second pass gave %d, %v; want 0", n, err)
		}
	})
}
