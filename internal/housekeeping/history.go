package housekeeping

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// MinHistoryRetention is the shortest history retention a farm may have.
// Far longer than anything that still reads or writes an ended job: its
// webhook event's retries (about a day), the second removal of its files
// and the sweeps of a late frame (an hour). And a job that ended more
// than 31 days ago had every chunk end before the current month began, so
// the month's render seconds a budget is checked against (read from the
// chunks) lose nothing when it goes.
const MinHistoryRetention = 31 * 24 * time.Hour

// removeHistoryEvery is how often the jobs past the retention are looked
// for: a job outlives the retention by at most that.
const removeHistoryEvery = time.Hour

// removeHistoryBatch is how many jobs one read lists; each is removed in
// a transaction of its own, so a job of a million chunks holds no lock on
// the others.
const removeHistoryBatch = 100

type removeHistoryWorker struct {
	river.WorkerDefaults[engine.RemoveHistoryArgs]
	h *Housekeeping
}

func (w *removeHistoryWorker) Work(ctx context.Context, _ *river.Job[engine.RemoveHistoryArgs]) error {
	_, err := w.h.RemoveHistory(ctx)
	return err
}

// RemoveHistory removes, with their files and every record of them, the
// jobs that ended longer ago than the farm's history retention (recorded
// by serve from --history-retention; 0 keeps every job), and the records
// of worker runs silent as long, and answers how many jobs it removed.
// What a removed job used stays in the usage reports, by day.
func (h *Housekeeping) RemoveHistory(ctx context.Context) (int, error) {
	retention, err := h.store.FarmHistoryRetention(ctx)
	if err != nil || retention == 0 {
		return 0, err
	}
	// A retention recorded by an older serve, or written by hand, is held
	// to the same floor as the flag.
	retention = max(retention, MinHistoryRetention)
	cutoff := time.Now().Add(-retention)
	removed := 0
	for {
		ids, err := h.store.JobsEndedBefore(ctx, cutoff, removeHistoryBatch)
		if err != nil {
			return removed, err
		}
		for _, id := range ids {
			gone, err := h.removeJobFromHistory(ctx, id, cutoff)
			if err != nil {
				return removed, err
			}
			if gone {
				removed++
			}
		}
		if len(ids) < removeHistoryBatch {
			break
		}
	}
	workers, err := h.store.RemoveWorkersSilentSince(ctx, cutoff)
	if err != nil {
		return removed, err
	}
	if removed > 0 || workers > 0 {
		h.log.Info("removed from the history the jobs that ended, and the worker runs that went silent, before the retention",
			"jobs", removed, "worker_runs", workers, "before", cutoff.UTC().Format(time.RFC3339), "retention", retention)
	}
	return removed, nil
}

// removeJobFromHistory removes one job that ended before cutoff, and
// queues the removal of its files in the same transaction, so the job is either still whole or gone with its
// files on their way out. It answers false for a job that changed since
// it was listed (a retry, or a deletion of its files), which a later run
// looks at again.
func (h *Housekeeping) removeJobFromHistory(ctx context.Context, id string, cutoff time.Time) (bool, error) {
	removed := false
	err := h.store.InTx(ctx, func(tx *store.Tx) error {
		job, err := tx.LockJob(ctx, "", id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !job.Status.IsFinal() || !job.UpdatedAt.Before(cutoff) {
			return nil
		}
		// Queued even when a client deleted the files: that removal may
		// have been given up on after failing every attempt, and this is
		// the last time anything knows of the job's folder.
		files := engine.DeleteObjectsArgs{Prefixes: []string{farm.JobPrefix(job.ID)}}
		up, err := tx.GetUpload(ctx, job.WorkspaceID, job.Slug)
		switch {
		case err == nil:
			files.Keys = []string{up.ObjectKey}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := h.engine.Insert(ctx, tx, files); err != nil {
			return fmt.Errorf("removal of job %s's files: %w", job.ID, err)
		}
		if err := tx.RemoveJobFromHistory(ctx, job); err != nil {
			return err
		}
		removed = true
		return nil
	})
	return removed, err
}
