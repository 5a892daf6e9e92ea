package engine

import (
	"context"
	"fmt"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// MoveJob is the one place a job changes status: it enforces the
// transition rules (farm.CanMove), writes the job with whatever else the
// caller changed on it, and queues the webhook events the change causes,
// all in the caller's transaction. A job moved to suspended says why in
// job.SuspendedReason, which the caller sets; a move anywhere else clears
// it.
func (e *Engine) MoveJob(ctx context.Context, tx *store.Tx, job *farm.Job, to farm.Status) error {
	if !farm.CanMove(job.Status, to) {
		return fmt.Errorf("job %s cannot move from %s to %s", job.ID, job.Status, to)
	}
	from, reason := job.Status, job.SuspendedReason
	job.Status = to
	if to != farm.StatusSuspended {
		// Only a suspended job says why it waits.
		job.SuspendedReason = ""
	}
	if err := tx.UpdateJob(ctx, job); err != nil {
		job.Status, job.SuspendedReason = from, reason
		return err
	}
	e.log.Info("job status changed", "job", job.ID, "from", from, "to", to)
	return e.enqueueWebhooks(ctx, tx, job, from)
}
