package housekeeping

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// reapWorker hands out again the tasks of workers that died, and the tasks
// nothing carries out any more. River rescues a running job only after a
// fixed delay, far too late for renders that may run for hours, so workers
// record heartbeats and this periodic job (on the leader) requeues the
// tasks of any worker whose heartbeat is stale. The task's generation goes
// up, so the dead worker, should it come back, can no longer write to it.
type reapWorker struct {
	river.WorkerDefaults[engine.ReapArgs]
	h *Housekeeping
}

func (w *reapWorker) Work(ctx context.Context, _ *river.Job[engine.ReapArgs]) error {
	timeout := w.h.workerTimeout(ctx)
	// The periodic job comes at this process's pace; the farm's timeout
	// sets how often the reaping is worth doing.
	w.h.reapMu.Lock()
	due := time.Since(w.h.lastReap) >= reapInterval(timeout)-reapSlack
	if due {
		w.h.lastReap = time.Now()
	}
	w.h.reapMu.Unlock()
	if !due {
		return nil
	}
	return w.h.ReapOrphans(ctx)
}

// reapSlack lets a periodic run that comes a little early still reap.
const reapSlack = 250 * time.Millisecond

// maxReapPeriod is the longest the periodic reap job waits between runs,
// whatever this process's --worker-timeout, so that a farm timeout
// shorter than this process's is kept (the runs between are skipped
// cheaply when the farm's is longer).
const maxReapPeriod = 5 * time.Second

// workerTimeout is the farm's worker timeout, recorded by serve, or this
// process's own when none is recorded or it cannot be read.
func (h *Housekeeping) workerTimeout(ctx context.Context) time.Duration {
	d, ok, err := h.store.FarmWorkerTimeout(ctx)
	if err != nil {
		h.log.Warn("could not read the farm's worker timeout; going by this process's", "err", err)
	}
	if !ok {
		return h.cfg.WorkerTimeout
	}
	return d
}

// ReapOrphans hands out again, now, what the periodic job hands out every
// quarter of the worker timeout: the tasks of workers whose heartbeat is
// stale or that stopped (and the chunks given to them that they never
// started), and the tasks that have no live River job
// (RepairStrandedTasks). It moves on the rendering jobs whose chunks are
// all through and that were not moved on (settleRenderedJobs), and the
// validations and merges whose Blender left the farm
// (RouteFromGoneBlenders). Then it
// gives waiting chunks to the live
// workers' free slots: those it handed out, and any a dispatch missed (a
// process that died between committing a render request and dispatching
// its chunks, a workspace's quota raised).
func (h *Housekeeping) ReapOrphans(ctx context.Context) error {
	orphans, err := h.store.OrphanedTasks(ctx, time.Now().Add(-staleAfter(h.workerTimeout(ctx))))
	if err != nil {
		return err
	}
	for _, t := range orphans {
		if err := h.engine.Requeue(ctx, t, "worker stopped answering; its task is handed out again"); err != nil {
			h.log.Error("could not hand out task of a dead worker", "task", t.ID, "job", t.JobID, "err", err)
		}
	}
	if err := h.RepairStrandedTasks(ctx); err != nil {
		return err
	}
	if err := h.settleRenderedJobs(ctx); err != nil {
		return err
	}
	if err := h.RouteFromGoneBlenders(ctx); err != nil {
		return err
	}
	if n, err := h.store.GiveTasksTheirWorkspace(ctx); err != nil {
		return err
	} else if n > 0 {
		h.log.Info("tasks an older serve made without their workspace given it", "tasks", n)
	}
	if n, err := h.store.RaiseLongWaitingControlTasks(ctx, time.Now().Add(-engine.ControlPriorityAge)); err != nil {
		return err
	} else if n > 0 {
		h.log.Info("validations and merges that waited long given River's first priority", "tasks", n, "waited_over", engine.ControlPriorityAge)
	}
	if n, err := h.engine.DispatchIdle(ctx); err != nil {
		return err
	} else if n > 0 {
		h.log.Info("waiting chunks given to idle workers", "chunks", n)
	}
	return nil
}

// settleRenderedJobs moves on the rendering jobs whose chunks are all
// through (engine.SettleRendering): a chunk's end settles its job right
// after it commits, and a process that died in between left that to
// this.
func (h *Housekeeping) settleRenderedJobs(ctx context.Context) error {
	ids, err := h.store.RenderingJobsThrough(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		moved, err := h.engine.SettleRendering(ctx, id)
		if err != nil {
			h.log.Error("could not move on a job whose chunks are through", "job", id, "err", err)
			continue
		}
		if moved {
			h.log.Warn("moved on a job whose chunks were all through: its last chunk's end had not (its process may have died just after it)", "job", id)
		}
	}
	return nil
}

// RepairStrandedTasks keeps the farm's invariant: every unfinished task
// has exactly one live River job, the one of its current generation
// (docs/architecture.md). It finds the tasks that break it, whoever holds
// them: a queued task whose River job ended (completed, discarded, or
// cancelled in River's UI), or a running one whose River job ended and
// whose holder has not touched it for the stale time (its holder's last
// attempt could not hand it back, its database being down). Each is
// counted (renderfarm_stranded_tasks_total), logged, and handed out again
// under a new generation; except a task whose River job River gave up on
// after it panicked on every attempt, which fails its job with the panic
// as the reason rather than panicking again and again.
func (h *Housekeeping) RepairStrandedTasks(ctx context.Context) error {
	stranded, err := h.store.StrandedTasks(ctx, time.Now().Add(-staleAfter(h.workerTimeout(ctx))))
	if err != nil {
		return err
	}
	for _, st := range stranded {
		h.cfg.Metrics.Stranded(st.RiverState)
		if st.RiverState == "cancelled" {
			// An operator cancelled it in River's UI; canceling a farm job
			// is the API's cancel, so the work is handed out again.
			h.log.Warn("a task's River job was cancelled outside the farm", "task", st.ID, "job", st.JobID, "kind", st.Kind)
			if err := h.engine.Requeue(ctx, st.Task, "its River job was cancelled outside the farm (cancel the farm's job instead); the task is handed out again"); err != nil {
				h.log.Error("could not hand out a task whose River job was cancelled", "task", st.ID, "job", st.JobID, "err", err)
			}
			continue
		}
		if st.RiverState == "discarded" {
			if panicked := h.panicOf(ctx, st.RiverJobID); panicked != "" {
				h.log.Error("a task panicked on every attempt; its job fails", "task", st.ID, "job", st.JobID, "kind", st.Kind, "panic", panicked)
				if err := h.failForPanic(ctx, st.Task, panicked); err != nil {
					h.log.Error("could not fail the job of a task that panicked", "task", st.ID, "job", st.JobID, "err", err)
				}
				continue
			}
		}
		h.log.Error("a task had no live River job to carry it out (every unfinished task must have one); it is handed out again",
			"task", st.ID, "job", st.JobID, "kind", st.Kind, "status", st.Status, "holder", st.WorkerID,
			"riverJob", st.RiverJobID, "riverState", cmp.Or(st.RiverState, "gone"))
		if err := h.engine.Requeue(ctx, st.Task, "a task with no live River job is handed out again"); err != nil {
			h.log.Error("could not hand out a task with no live River job", "task", st.ID, "job", st.JobID, "err", err)
		}
	}
	return nil
}

// panicOf is what River's job panicked with on its last attempt, "" if it
// did not panic (or River no longer has it).
func (h *Housekeeping) panicOf(ctx context.Context, riverJobID int64) string {
	row, err := h.engine.River().JobGet(ctx, riverJobID)
	if err != nil || len(row.Errors) == 0 {
		return ""
	}
	last := row.Errors[len(row.Errors)-1]
	if last.Trace == "" {
		return ""
	}
	msg, _, _ := strings.Cut(last.Error, "\n")
	const maxPanicText = 300
	if len(msg) > maxPanicText {
		msg = msg[:maxPanicText] + "…"
	}
	return msg
}

// failForPanic fails the job of a task whose every attempt panicked, with
// the panic as the reason, and cancels the job's other work. A job that
// ended meanwhile only has its work canceled. A finalizing job's
// attempts may have stored zips or a preview before they panicked, and
// an attempt that panics removes nothing as it ends: their removal is
// queued, as a cancel's is (engine.RemoveUnkeptOutputs).
func (h *Housekeeping) failForPanic(ctx context.Context, t store.Task, panicked string) error {
	stage := map[store.TaskKind]string{store.TaskValidate: farm.FailValidation, store.TaskRender: farm.FailRender, store.TaskMerge: farm.FailRender, store.TaskFinalize: farm.FailFinalize}[t.Kind]
	return h.store.InTx(ctx, func(tx *store.Tx) error {
		job, err := tx.LockJob(ctx, "", t.JobID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return h.failJobIn(ctx, tx, job, &farm.FailedReason{Name: "INTERNAL_ERROR", Type: stage,
			Message: fmt.Sprintf("the farm failed on this job's %s on every attempt (%s); this is a fault of the farm, logged on the server: report it to the farm's operator", t.Kind, panicked)})
	})
}

// failJobIn fails job, which tx has locked, for reason, and cancels its
// work. A job that ended meanwhile only has its work canceled. A
// finalizing job's attempts may have stored zips or a preview: their
// removal is queued, as a cancel's is (engine.RemoveUnkeptOutputs).
func (h *Housekeeping) failJobIn(ctx context.Context, tx *store.Tx, job *farm.Job, reason *farm.FailedReason) error {
	if job.Status == farm.StatusFinalizing {
		if err := h.engine.Insert(ctx, tx, engine.DeleteObjectsArgs{JobID: job.ID, Outputs: true}); err != nil {
			return err
		}
	}
	if farm.CanMove(job.Status, farm.StatusFailed) {
		job.FailedReason = reason
		if err := h.engine.MoveJob(ctx, tx, job, farm.StatusFailed); err != nil {
			return err
		}
	}
	return h.engine.CancelWork(ctx, tx, job.ID)
}

// reapInterval is how often the reaper looks for dead workers.
func reapInterval(workerTimeout time.Duration) time.Duration {
	return max(time.Second, workerTimeout/4)
}

// staleAfter is how long a worker may go without a heartbeat before it is
// taken for dead: the timeout less one reaper interval, so that a worker's
// work is handed out within --worker-timeout of its last heartbeat, however
// the reaper's runs fall. Workers beat every few seconds (at most a
// quarter of the timeout), so a live one is never this late. A task a
// live worker works on is touched at each heartbeat too, so one untouched
// for as long is one its holder no longer works on.
func staleAfter(workerTimeout time.Duration) time.Duration {
	return workerTimeout - reapInterval(workerTimeout)
}

// WatchWorkers hands out the tasks of dead workers from this process,
// leader or not, every quarter of the farm's worker timeout, until ctx
// ends. River's periodic job runs on its leader alone, and when the dead
// worker was that leader, River elects another only once the old one's
// term runs out (15 s in River 0.51, not configurable), so a timeout of a
// few seconds would be kept only by luck. Every process watching keeps it
// whichever dies; two processes handing out one task at once are told
// apart by its generation (the second finds it moved on and does
// nothing). The repair of stranded tasks stays with the leader's periodic
// job, which reads River's own state.
func (h *Housekeeping) WatchWorkers(ctx context.Context) {
	for {
		timeout := h.workerTimeout(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(reapInterval(timeout)):
		}
		if err := h.handOutDeadWorkersTasks(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("could not look for dead workers' tasks; trying again", "err", err)
		}
	}
}

// handOutDeadWorkersTasks is ReapOrphans's first part: the tasks of
// workers silent for longer than the farm's worker timeout, or stopped,
// handed out again and given to free slots.
func (h *Housekeeping) handOutDeadWorkersTasks(ctx context.Context) error {
	orphans, err := h.store.OrphanedTasks(ctx, time.Now().Add(-staleAfter(h.workerTimeout(ctx))))
	if err != nil || len(orphans) == 0 {
		return err
	}
	for _, t := range orphans {
		if err := h.engine.Requeue(ctx, t, "worker stopped answering; its task is handed out again"); err != nil {
			h.log.Error("could not hand out task of a dead worker", "task", t.ID, "job", t.JobID, "err", err)
		}
	}
	_, err = h.engine.DispatchIdle(ctx)
	return err
}
