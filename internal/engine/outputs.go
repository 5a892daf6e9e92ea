package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// RemoveJobOutputs removes job jobID's zips and preview video
// (farm.JobOutputKeys) when the job keeps none: its files were deleted, or
// it is neither finalizing nor completed, so its record names none
// (farm.JobFiles is empty: a retry forgets them, and only a finalizing
// that completes the job records them). It answers whether it removed
// them.
//
// Those keys are the same for every finalizing of the job, so what is
// stored there is not always what the caller meant to remove: while the
// job is finalizing, its finalizing stores them again and records them,
// and once it completed they are its files. Both are left alone. That is
// what lets a removal run late (a retry's, queued long before it runs),
// or a finalizing that lost its task clean up after itself, without
// taking the files of the finalizing that followed. A finalizing of the
// job cannot begin between the look at the job and the removal unless
// the job went from not finalizing to finalizing, with its frames
// rendered, in that moment.
func (e *Engine) RemoveJobOutputs(ctx context.Context, jobID string) (bool, error) {
	job, err := e.store.GetJob(ctx, "", jobID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !job.Output.IsDeletedForClient && (job.Status == farm.StatusFinalizing || job.Status == farm.StatusCompleted) {
		return false, nil
	}
	for _, key := range farm.JobOutputKeys(jobID) {
		if err := e.objects.Delete(ctx, key); err != nil {
			return false, fmt.Errorf("remove %s: %w", key, err)
		}
	}
	return true, nil
}
