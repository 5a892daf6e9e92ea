package engine_test

import (
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

func TestReaperDoesNotReviveATaskThatEndedAfterItWasListed(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		tests := []struct {
			name string
			// end ends the task after the reaper listed it.
			end        func(f *fixture, job *farm.Job, task store.Task)
			wantStatus store.TaskStatus
			wantGen    int
		}{
			{
				name: "finished by its holder, which was only slow",
				end: func(f *fixture, _ *farm.Job, task store.Task) {
					if err := f.Store.FinishTask(f.Ctx, task.ID, task.Generation, store.TaskEnd{Status: store.TaskDone}); err != nil {
						f.T.Fatal(err)
					}
				},
				wantStatus: store.TaskDone, wantGen: 1,
			},
			{
				name: "failed by its holder",
				end: func(f *fixture, _ *farm.Job, task store.Task) {
					if err := f.Store.FinishTask(f.Ctx, task.ID, task.Generation, store.TaskEnd{Status: store.TaskFailed}); err != nil {
						f.T.Fatal(err)
					}
				},
				wantStatus: store.TaskFailed, wantGen: 1,
			},
			{
				name: "canceled with its job",
				end: func(f *fixture, job *farm.Job, _ store.Task) {
					if _, err := f.api.Cancel(f.Ctx, f.P, job.ID); err != nil {
						f.T.Fatal(err)
					}
				},
				wantStatus: store.TaskCanceled, wantGen: 1,
			},
			{
				name: "handed out already by another reaper",
				end: func(f *fixture, _ *farm.Job, task store.Task) {
					if err := f.Engine.Requeue(f.Ctx, task, "test"); err != nil {
						f.T.Fatal(err)
					}
				},
				// A chunk handed out again waits for the dispatcher.
				wantStatus: store.TaskWaiting, wantGen: 2,
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.RenderingJob(f.api, 2, 2)
				f.RegisterWorker("run-slow", "node-a", time.Now().Add(-time.Hour))
				f.ClaimAs("run-slow", f.Tasks(job.ID, store.TaskRender)[0])

				listed, err := f.Store.OrphanedTasks(f.Ctx, time.Now().Add(-enginetest.WorkerTimeout))
				if err != nil || len(listed) != 1 {
					t.Fatalf("OrphanedTasks = %d tasks, %v; want the one held by the silent run", len(listed), err)
				}
				tt.end(f, job, listed[0])
				before := len(f.RiverJobs("render_chunk"))

				if err := f.Engine.Requeue(f.Ctx, listed[0], "test"); err != nil {
					t.Fatalf("requeue of a task that moved on = %v, want nil (nothing to do)", err)
				}

				if got := f.Task(listed[0].ID); got.Status != tt.wantStatus || got.Generation != tt.wantGen {
					t.Errorf("task = %s generation %d, want %s generation %d", got.Status, got.Generation, tt.wantStatus, tt.wantGen)
				}
				if after := len(f.RiverJobs("render_chunk")); after != before {
					t.Errorf("requeue inserted %d River jobs, want none", after-before)
				}
			})
		}
	})
}
