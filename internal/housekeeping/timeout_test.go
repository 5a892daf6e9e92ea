package housekeeping

import (
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestTheReaperGoesByTheFarmsWorkerTimeout: the reaper takes a worker for
// dead after the worker timeout serve recorded in the database, not after
// the one of the process that runs it (here 1 minute): a farm timeout of
// 8 s hands out the chunk of a worker silent for 20 s, and one of an hour
// leaves a worker silent for 10 minutes be.
func TestTheReaperGoesByTheFarmsWorkerTimeout(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		if f.hk.cfg.WorkerTimeout != time.Minute {
			t.Fatalf("the fixture's own timeout is %v; this test needs 1m", f.hk.cfg.WorkerTimeout)
		}
		job := f.RenderingJob(f.api, 6, 3)
		f.Move(job.ID, farm.StatusRendering)
		tasks := f.Tasks(job.ID, store.TaskRender)
		f.RegisterWorker("run-quiet", "node-quiet", time.Now().Add(-20*time.Second))
		f.ClaimAs("run-quiet", tasks[0])
		f.RegisterWorker("run-slow", "node-slow", time.Now().Add(-10*time.Minute))
		f.ClaimAs("run-slow", tasks[1])

		// The farm's timeout is an hour: the process's own minute would
		// have reaped run-slow; the farm's does not.
		if err := f.Store.SetFarmWorkerTimeout(f.Ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks[:2] {
			if got := f.Task(task.ID); got.Generation != 1 {
				t.Errorf("with a farm timeout of 1h, task %s went to generation %d; want it left with its worker", task.ID, got.Generation)
			}
		}

		// 8 s: both are past it, run-quiet's 20 s too, which the
		// process's own minute would have left be.
		if err := f.Store.SetFarmWorkerTimeout(f.Ctx, 8*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks[:2] {
			if got := f.Task(task.ID); got.Generation != 2 {
				t.Errorf("with a farm timeout of 8s, task %s is at generation %d; want it handed out again (2)", task.ID, got.Generation)
			}
		}
	})
}
