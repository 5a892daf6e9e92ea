package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/renderfarm/renderfarm/internal/store"
)

// InputCopyWindow is how long POST /jobs has, from the moment it guards
// the copy of an upload it makes into a job's input (GuardInputCopy) to
// the commit that makes the job (KeepInputCopy): far longer than any
// copy takes, a bucket's of the largest input included.
const InputCopyWindow = time.Hour

// ErrInputCopyTooSlow is KeepInputCopy's answer when the window passed:
// the copy's removal has run or runs, so no job may be made with it.
var ErrInputCopyTooSlow = errors.New("the copy of the upload into the job's input took longer than " + InputCopyWindow.String() + "; no job was made, create it again")

// GuardInputCopy queues, in a transaction of its own, the removal of
// key, the input of a job jobID about to be made, to run once
// InputCopyWindow has passed, and answers the removal's River job. The
// copy is made after this commits, and the job in a later transaction: a
// process that dies in between leaves a copy no row names, which nothing
// else would ever find, and this removal takes it. The transaction that
// makes the job takes the removal back (KeepInputCopy); a request that
// makes no job and removes the copy itself drops it (DropInputCopyGuard).
func (e *Engine) GuardInputCopy(ctx context.Context, jobID, key string) (int64, error) {
	var guard int64
	err := e.store.InTx(ctx, func(tx *store.Tx) error {
		args := DeleteObjectsArgs{JobID: jobID, Keys: []string{key}}
		opts := e.insertOpts(args)
		opts.ScheduledAt = time.Now().Add(InputCopyWindow)
		res, err := e.River().InsertTx(ctx, tx.SQL(), args, opts)
		if err != nil {
			return fmt.Errorf("queue the removal of an input copy in case its job is not made: %w", err)
		}
		guard = res.Job.ID
		return nil
	})
	return guard, err
}

// KeepInputCopy takes back, in the transaction that makes the job, the
// removal GuardInputCopy queued, so that the job keeps its input. Should
// the removal no longer wait (the window passed: it runs or ran), it
// answers ErrInputCopyTooSlow, and the job must not be made.
func (e *Engine) KeepInputCopy(ctx context.Context, tx *store.Tx, guard int64) error {
	removal, err := e.River().JobDeleteTx(ctx, tx.SQL(), guard)
	switch {
	case errors.Is(err, rivertype.ErrJobRunning), errors.Is(err, river.ErrNotFound):
		return ErrInputCopyTooSlow
	case err != nil:
		return fmt.Errorf("keep the input copy: %w", err)
	case removal.State != rivertype.JobStateScheduled && removal.State != rivertype.JobStateAvailable:
		return ErrInputCopyTooSlow
	}
	return nil
}

// DropInputCopyGuard takes back the removal GuardInputCopy queued once
// the request that made no job removed the copy itself. Should this
// fail, the removal runs in its time and finds nothing to remove.
func (e *Engine) DropInputCopyGuard(ctx context.Context, guard int64) {
	if _, err := e.River().JobDelete(ctx, guard); err != nil && !errors.Is(err, river.ErrNotFound) {
		e.log.Warn("could not take back the removal of an input copy already removed; it runs and finds nothing", "riverJob", guard, "err", err)
	}
}
