package node

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// errNotOurs stops work on a task that was handed to another worker.
var errNotOurs = errors.New("the task was handed to another worker")

// taskWorker is the River worker of one kind of task: for each River job
// it makes the attempt at the task (start) and runs it with runTask.
type taskWorker[A taskArgs] struct {
	river.WorkerDefaults[A]
	n     *Node
	start func(n *Node, args A) task
	// retryAfter, if set, is how long River waits before the next attempt
	// after attempt failed; unset, River's own backoff.
	retryAfter func(attempt int) time.Duration
}

// taskArgs are the arguments of the River jobs that carry out a task.
type taskArgs interface {
	river.JobArgs
	Task() engine.TaskRef
}

// Work runs one attempt at the task.
func (w *taskWorker[A]) Work(ctx context.Context, rj *river.Job[A]) error {
	t := w.start(w.n, rj.Args)
	recorded, err := w.n.runTask(ctx, rj.Args.Task(), rj.Attempt, rj.MaxAttempts, t)
	t.done(recorded)
	return err
}

// NextRetry is retryAfter's, or River's own (the zero time).
func (w *taskWorker[A]) NextRetry(rj *river.Job[A]) time.Time {
	if w.retryAfter == nil {
		return time.Time{}
	}
	return time.Now().Add(w.retryAfter(rj.Attempt))
}

// A task is one River job's attempt at a task of one kind (a validation,
// a chunk, a finalizing), as runTask carries it out: what it loads, the
// work it does, and what it records.
type task interface {
	// load reads what the work needs once the task is claimed; an error
	// hands the task back for River's retry.
	load(ctx context.Context) (*farm.Job, error)
	// work does the task's work, outside any transaction. An error is
	// retried while attempts are left; the last attempt's error is
	// recorded (see record). errNotOurs ends the task quietly.
	work(ctx context.Context, job *farm.Job) error
	// finishAs is the task's final status, given the work's error.
	finishAs(workErr error) store.TaskStatus
	// record writes the outcome in the transaction that finishes the task:
	// current is the job, locked. It is not called when the task is no
	// longer this holder's.
	record(ctx context.Context, tx *store.Tx, current *farm.Job, workErr error) error
	// done clears away what the node kept for the task, once runTask
	// returns; recorded says whether this holder recorded the outcome.
	done(recorded bool)
}

// runTask carries out one River job's attempt at a task, the same way for
// every kind: claim the task for the job's generation (a stale or
// duplicate River job ends here, quietly), count it as this node's busy
// task, load, work, then either hand the task back (the worker is
// stopping, or attempts are left: River retries) or finish it and record
// the outcome in one transaction, which is written even if the worker is
// stopping. recorded says whether this holder recorded the outcome: only
// then may it clear away what it kept for the task.
func (n *Node) runTask(ctx context.Context, ref engine.TaskRef, attempt, maxAttempts int, t task) (recorded bool, err error) {
	if ok, err := n.claim(ctx, ref); !ok {
		return false, err
	}
	defer n.markBusy(ref.TaskID, false)

	job, err := t.load(ctx)
	if err != nil {
		n.release(ref)
		return false, err
	}
	workErr := t.work(ctx, job)
	switch {
	case errors.Is(workErr, errNotOurs):
		n.log.Info("task was handed to another worker; stopped", "job", ref.JobID, "task", ref.TaskID)
		return false, nil
	case workErr != nil && ctx.Err() != nil:
		// Stopping, or canceled: Cancel already marked the task, or the
		// reaper will hand it out again.
		n.release(ref)
		return false, workErr
	case workErr != nil && attempt < maxAttempts:
		n.log.Warn("task failed; River retries it", "job", ref.JobID, "task", ref.TaskID, "attempt", attempt, "err", workErr)
		n.release(ref)
		return false, workErr
	}
	err = n.finishTask(ctx, ref, t.finishAs(workErr), func(ctx context.Context, tx *store.Tx, current *farm.Job) error {
		recorded = true
		return t.record(ctx, tx, current, workErr)
	})
	return recorded && err == nil, err
}

// finishTask ends a task as status and records its outcome with record,
// in one transaction that is written even if ctx is canceled. The job is
// locked first, then the task: the order every transaction takes them in,
// so that none waits on another in a cycle; the job's lock also makes the
// last two chunks to end take turns. record is not called when the task
// is no longer this holder's.
func (n *Node) finishTask(ctx context.Context, ref engine.TaskRef, status store.TaskStatus, record func(ctx context.Context, tx *store.Tx, current *farm.Job) error) error {
	ctx = context.WithoutCancel(ctx)
	return n.store.InTx(ctx, func(tx *store.Tx) error {
		current, err := tx.LockJob(ctx, "", ref.JobID)
		if err != nil {
			return err
		}
		if ok, err := n.finish(ctx, tx, ref, status); !ok {
			return err
		}
		return record(ctx, tx, current)
	})
}

// claim takes a task for this worker. It answers false, with no error,
// when the River job is a stale or duplicate holder of the task: such a
// job must end quietly without touching anything.
func (n *Node) claim(ctx context.Context, ref engine.TaskRef) (bool, error) {
	err := n.store.ClaimTask(ctx, ref.TaskID, ref.Generation, n.workerID)
	if errors.Is(err, store.ErrConflict) {
		n.log.Info("task no longer ours; skipping", "task", ref.TaskID, "job", ref.JobID, "generation", ref.Generation)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	n.markBusy(ref.TaskID, true)
	return true, nil
}

// release hands a task back after a passing failure, so River's retry of
// the same job can claim it again.
func (n *Node) release(ref engine.TaskRef) {
	n.markBusy(ref.TaskID, false)
	if err := n.store.ReleaseTask(context.Background(), ref.TaskID, ref.Generation); err != nil {
		n.log.Warn("could not release task", "task", ref.TaskID, "err", err)
	}
}

// finish ends a task in the caller's transaction. It answers false when
// the task is no longer this holder's, and then nothing else may be
// written.
func (n *Node) finish(ctx context.Context, tx *store.Tx, ref engine.TaskRef, status store.TaskStatus) (bool, error) {
	err := tx.FinishTask(ctx, ref.TaskID, ref.Generation, status)
	if errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	return err == nil, err
}
