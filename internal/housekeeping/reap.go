package housekeeping

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
)

// reapWorker hands out again the tasks of workers that died. River rescues
// a running job only after a fixed delay, far too late for renders that
// may run for hours, so workers record heartbeats and this periodic job
// (on the leader) requeues the tasks of any worker whose heartbeat is
// stale. The task's generation goes up, so the dead worker, should it come
// back, can no longer write to it.
type reapWorker struct {
	river.WorkerDefaults[engine.ReapArgs]
	h *Housekeeping
}

func (w *reapWorker) Work(ctx context.Context, _ *river.Job[engine.ReapArgs]) error {
	return w.h.ReapOrphans(ctx)
}

// ReapOrphans hands out again, now, what the periodic job hands out every
// quarter of the worker timeout: the tasks of workers whose heartbeat is
// stale, and those whose River job was cancelled outside the farm.
func (h *Housekeeping) ReapOrphans(ctx context.Context) error {
	orphans, err := h.store.OrphanedTasks(ctx, time.Now().Add(-staleAfter(h.cfg.WorkerTimeout)))
	if err != nil {
		return err
	}
	for _, t := range orphans {
		if err := h.engine.Requeue(ctx, t, "worker stopped answering; its task is handed out again"); err != nil {
			h.log.Error("could not hand out task of a dead worker", "task", t.ID, "job", t.JobID, "err", err)
		}
	}
	// A River job cancelled by hand (in River's UI) would leave its task
	// queued for ever and its farm job unfinished. Canceling a farm job is
	// the API's cancel; so the work is handed out again.
	stray, err := h.store.TasksWithCancelledRiverJobs(ctx)
	if err != nil {
		return err
	}
	for _, t := range stray {
		if err := h.engine.Requeue(ctx, t, "its River job was cancelled outside the farm (cancel the farm's job instead); the task is handed out again"); err != nil {
			h.log.Error("could not hand out a task whose River job was cancelled", "task", t.ID, "job", t.JobID, "err", err)
		}
	}
	return nil
}

// reapInterval is how often the reaper looks for dead workers.
func reapInterval(workerTimeout time.Duration) time.Duration {
	return max(time.Second, workerTimeout/4)
}

// staleAfter is how long a worker may go without a heartbeat before it is
// taken for dead: the timeout less one reaper interval, so that a worker's
// work is handed out within --worker-timeout of its last heartbeat, however
// the reaper's runs fall. Workers beat every few seconds (at most a
// quarter of the timeout), so a live one is never this late.
func staleAfter(workerTimeout time.Duration) time.Duration {
	return workerTimeout - reapInterval(workerTimeout)
}
