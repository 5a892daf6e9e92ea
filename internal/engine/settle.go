package engine

import (
	"context"
	"errors"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// SettleRendering moves a rendering job on once its chunks are through:
// to finalizing, its finalizing queued, when every frame is completed;
// to suspended when its scout frames are rendered and its other frames
// are held for a person to approve them (POST /resume renders those).
// A job in any other state, or with frames or chunks left, stays as it
// is. It answers whether the job moved.
//
// It runs in a transaction of its own that locks the job, and checks
// again under that lock, so whoever may have ended a job's last chunk may
// call it, at once and more than once: each chunk of whole frames calls
// it right after the transaction that ended it commits (that transaction
// does not lock the job, so that a job's chunks end side by side; of two
// last chunks ending at once, the one that looks last sees both), and the
// reaper calls it for a job whose last chunk's process died in between.
func (e *Engine) SettleRendering(ctx context.Context, jobID string) (bool, error) {
	moved := false
	err := e.store.InTx(ctx, func(tx *store.Tx) error {
		moved = false
		job, err := tx.LockJob(ctx, "", jobID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		moved, err = e.SettleRenderingIn(ctx, tx, job)
		return err
	})
	return moved, err
}

// SettleRenderingIn is SettleRendering in the caller's transaction, which
// has locked job.
func (e *Engine) SettleRenderingIn(ctx context.Context, tx *store.Tx, job *farm.Job) (bool, error) {
	if job.Status != farm.StatusRendering {
		return false, nil
	}
	done, err := tx.EveryFrameCompleted(ctx, job.ID)
	if err != nil {
		return false, err
	}
	if done {
		if err := e.MoveJob(ctx, tx, job, farm.StatusFinalizing); err != nil {
			return false, err
		}
		_, err = e.Enqueue(ctx, tx, job, store.TaskFinalize)
		return err == nil, err
	}
	return e.suspendIfScoutsDone(ctx, tx, job)
}

// suspendIfScoutsDone suspends a job whose scout frames are all
// rendered, its other frames held for a person to approve them: its
// chunks are done, and frames wait with no chunk.
func (e *Engine) suspendIfScoutsDone(ctx context.Context, tx *store.Tx, job *farm.Job) (bool, error) {
	if len(job.FinalConfig.Scouts()) == 0 {
		return false, nil
	}
	left, err := tx.UnfinishedTasks(ctx, job.ID, store.TaskRender)
	if err != nil || left > 0 {
		return false, err
	}
	held, err := tx.HeldFrames(ctx, job.ID)
	if err != nil || len(held) == 0 {
		return false, err
	}
	job.SuspendedReason = farm.SuspendedScoutFramesReady
	return true, e.MoveJob(ctx, tx, job, farm.StatusSuspended)
}
