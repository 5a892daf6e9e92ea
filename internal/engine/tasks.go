package engine

import (
	"context"
	"errors"

	"github.com/renderfarm/renderfarm/internal/store"
)

// claim takes a task for this worker. It answers false, with no error,
// when the River job is a stale or duplicate holder of the task: such a
// job must end quietly without touching anything.
func (e *Engine) claim(ctx context.Context, ref taskRef) (bool, error) {
	err := e.store.ClaimTask(ctx, ref.TaskID, ref.Generation, e.workerID)
	if errors.Is(err, store.ErrConflict) {
		e.log.Info("task no longer ours; skipping", "task", ref.TaskID, "job", ref.JobID, "generation", ref.Generation)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	e.markBusy(ref.TaskID, true)
	return true, nil
}

// release hands a task back after a passing failure, so River's retry of
// the same job can claim it again.
func (e *Engine) release(ref taskRef) {
	e.markBusy(ref.TaskID, false)
	if err := e.store.ReleaseTask(context.Background(), ref.TaskID, ref.Generation); err != nil {
		e.log.Warn("could not release task", "task", ref.TaskID, "err", err)
	}
}

// finish ends a task in the caller's transaction. It answers false when
// the task is no longer this holder's, and then nothing else may be
// written.
func (e *Engine) finish(ctx context.Context, tx *store.Tx, ref taskRef, status store.TaskStatus) (bool, error) {
	err := tx.FinishTask(ctx, ref.TaskID, ref.Generation, status)
	if errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	return err == nil, err
}
