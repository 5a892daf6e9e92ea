package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// reapWorker hands out again the tasks of workers that died. River rescues
// a running job only after a fixed delay, far too late for renders that
// may run for hours, so workers record heartbeats and this periodic job
// (on the leader) requeues the tasks of any worker whose heartbeat is
// stale. The task's generation goes up, so the dead worker, should it come
// back, can no longer write to it.
type reapWorker struct {
	river.WorkerDefaults[reapArgs]
	e *Engine
}

func (w *reapWorker) Work(ctx context.Context, _ *river.Job[reapArgs]) error {
	return w.e.reapOrphans(ctx)
}

func (e *Engine) reapOrphans(ctx context.Context) error {
	orphans, err := e.store.OrphanedTasks(ctx, time.Now().Add(-staleAfter(e.cfg.WorkerTimeout)))
	if err != nil {
		return err
	}
	for _, t := range orphans {
		if err := e.requeue(ctx, t, "worker stopped answering; its task is handed out again"); err != nil {
			e.log.Error("could not hand out task of a dead worker", "task", t.ID, "job", t.JobID, "err", err)
		}
	}
	// A River job cancelled by hand (in River's UI) would leave its task
	// queued for ever and its farm job unfinished. Canceling a farm job is
	// the API's cancel; so the work is handed out again.
	stray, err := e.store.TasksWithCancelledRiverJobs(ctx)
	if err != nil {
		return err
	}
	for _, t := range stray {
		if err := e.requeue(ctx, t, "its River job was cancelled outside the farm (cancel the farm's job instead); the task is handed out again"); err != nil {
			e.log.Error("could not hand out a task whose River job was cancelled", "task", t.ID, "job", t.JobID, "err", err)
		}
	}
	return nil
}

// requeue gives a task a new generation and a new River job; why is logged.
func (e *Engine) requeue(ctx context.Context, t store.Task, why string) error {
	return e.store.InTx(ctx, func(tx *store.Tx) error {
		gen, err := tx.RequeueTask(ctx, t.ID, t.Generation)
		if errors.Is(err, store.ErrConflict) {
			return nil // someone else moved it on
		}
		if err != nil {
			return err
		}
		ref := taskRef{JobID: t.JobID, TaskID: t.ID, Generation: gen}
		var args river.JobArgs
		var opts *river.InsertOpts
		switch t.Kind {
		case store.TaskValidate:
			args = validateArgs{ref}
		case store.TaskFinalize:
			args = finalizeArgs{ref}
		case store.TaskRender:
			frames, err := tx.FramesOfTask(ctx, t.ID)
			if err != nil {
				return err
			}
			var numbers []int
			for _, f := range frames {
				numbers = append(numbers, f.Frame)
				if f.Status == farm.FrameRendering {
					f.Status = farm.FrameQueued
					if err := tx.UpdateFrame(ctx, f); err != nil {
						return err
					}
				}
			}
			args = renderArgs{taskRef: ref, Frames: numbers}
			opts = &river.InsertOpts{MaxAttempts: e.cfg.RenderAttempts}
		default:
			return fmt.Errorf("unknown task kind %q", t.Kind)
		}
		t.Generation = gen
		detail, _ := json.Marshal(ref)
		e.log.Warn(why, "task", t.ID, "kind", t.Kind, "job", t.JobID, "ref", string(detail))
		return e.insertRiverJob(ctx, tx, t, args, opts)
	})
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
