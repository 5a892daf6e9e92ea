package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// secondRemovalAfter is how long after a job's deletion its files are
// removed a second time: far longer than a render node takes to learn of
// a cancel and end a Put it had begun (a frame is at most 8 GiB).
const secondRemovalAfter = time.Hour

// DeleteJob removes a finished job's input (the uploaded file) and outputs
// (frames, zip, preview, logs) and marks its output deleted. The job's row
// stays, so the workspace keeps its history. The objects are removed by a
// River job inserted in the same transaction as the mark: a crash leaves
// either nothing done or the removal queued, and the removal may run any
// number of times. Deleting a job again answers it as it is.
//
// The removal is queued twice: now, and again secondRemovalAfter later.
// A job is deleted once it ended, but a render node that has not yet
// learnt of the cancel may be storing a frame or a log for it as the
// first removal runs; it removes what it stored once it finds the job
// gone, unless it is killed first. The second removal takes such a file.
func (s *Service) DeleteJob(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	var job *farm.Job
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = s.loadJob(ctx, p, id, tx.LockJob); err != nil {
			return err
		}
		if !job.Status.IsFinal() {
			return farm.InvalidState("delete", job.Status, "cancel it first with POST /jobs/"+id+"/cancel")
		}
		if job.Output.IsDeletedForClient {
			return nil
		}
		removal := engine.DeleteObjectsArgs{JobID: job.ID, Prefixes: []string{farm.JobPrefix(job.ID)}}
		up, err := tx.GetUpload(ctx, job.WorkspaceID, job.Slug)
		switch {
		case err == nil:
			removal.Keys = []string{up.ObjectKey}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		job.Output.IsDeletedForClient = true
		if err := tx.UpdateJob(ctx, job); err != nil {
			return err
		}
		if err := s.engine.Insert(ctx, tx, removal); err != nil {
			return fmt.Errorf("removal of job %s's files: %w", job.ID, err)
		}
		if err := s.engine.InsertLater(ctx, tx, removal, time.Now().Add(secondRemovalAfter)); err != nil {
			return fmt.Errorf("second removal of job %s's files: %w", job.ID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("job's files deleted at the client's request", "job", job.ID)
	return s.present(ctx, job), nil
}
