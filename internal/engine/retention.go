package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// DefaultUploadRetention is how long an upload that no job was made from
// is kept: long enough to make a job of it the next working day.
const DefaultUploadRetention = 24 * time.Hour

// expireBatch is how many expired uploads one transaction removes, so that
// a large backlog neither holds the database for long nor is read at once.
const expireBatch = 100

// DeleteJob removes a finished job's input (the uploaded file) and outputs
// (frames, zip, preview, logs) and marks its output deleted. The job's row
// stays, so the workspace keeps its history. The objects are removed by a
// River job inserted in the same transaction as the mark: a crash leaves
// either nothing done or the removal queued, and the removal may run any
// number of times. Deleting a job again answers it as it is.
func (e *Engine) DeleteJob(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	var job *farm.Job
	err := e.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = e.lockJob(ctx, tx, p, id); err != nil {
			return err
		}
		if !job.Status.IsFinal() {
			return farm.InvalidState("delete", job.Status, "cancel it first with POST /jobs/"+id+"/cancel")
		}
		if job.Output.IsDeletedForClient {
			return nil
		}
		removal := deleteObjectsArgs{JobID: job.ID, Prefixes: []string{farm.JobPrefix(job.ID)}}
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
		if _, err := e.river.InsertTx(ctx, tx.SQL(), removal, nil); err != nil {
			return fmt.Errorf("queue removal of job %s's files: %w", job.ID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.log.Info("job's files deleted at the client's request", "job", job.ID)
	return e.present(ctx, job), nil
}

// queueCleanup runs the removal of objects, beside the other queues so
// that removing a large job's thousands of frames delays no other work.
const queueCleanup = "cleanup"

// deleteObjectsArgs names objects to remove: exact keys, and prefixes
// that hold a whole folder. JobID, when set, is the job they belonged to.
type deleteObjectsArgs struct {
	JobID    string   `json:"jobId,omitempty"`
	Keys     []string `json:"keys,omitempty"`
	Prefixes []string `json:"prefixes,omitempty"`
}

func (deleteObjectsArgs) Kind() string { return "delete_objects" }
func (deleteObjectsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueCleanup}
}

type expireUploadsArgs struct{}

func (expireUploadsArgs) Kind() string { return "expire_uploads" }
func (expireUploadsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueMaintenance, MaxAttempts: 1}
}

// deleteObjectsWorker removes objects for DeleteJob and for retention.
// Removing what is already gone succeeds, so a retry after a crash, or a
// second run, is harmless.
type deleteObjectsWorker struct {
	river.WorkerDefaults[deleteObjectsArgs]
	e *Engine
}

func (w *deleteObjectsWorker) Work(ctx context.Context, rj *river.Job[deleteObjectsArgs]) error {
	e, a := w.e, rj.Args
	for _, key := range a.Keys {
		if err := e.objects.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	for _, prefix := range a.Prefixes {
		if err := e.objects.DeletePrefix(ctx, prefix); err != nil {
			return fmt.Errorf("delete %s: %w", prefix, err)
		}
	}
	if a.JobID != "" && e.cfg.WorkDir != "" {
		// Whatever this machine still kept of the job goes too.
		e.forgetJobFiles(a.JobID)
	}
	return nil
}

// expireUploadsWorker is the periodic job (on the leader) that removes
// uploads no job was made from once they are older than the retention,
// and objects sent to upload URLs that were already used or deleted.
type expireUploadsWorker struct {
	river.WorkerDefaults[expireUploadsArgs]
	e *Engine
}

func (w *expireUploadsWorker) Work(ctx context.Context, _ *river.Job[expireUploadsArgs]) error {
	if _, err := w.e.expireUploads(ctx, time.Now().Add(-w.e.cfg.UploadRetention)); err != nil {
		return err
	}
	_, err := w.e.sweepStrayUploads(ctx)
	return err
}

// sweepStrayUploads removes the objects under uploads/ that no upload may
// hold any more, and answers how many. A bucket's presigned PUT cannot be
// revoked: until its URL expires (--upload-url-ttl), a client can still
// send a file to the upload a job was made from, or to one whose job was
// deleted, or whose expired upload was removed. The farm never reads such
// a file (a job reads its own copy), and this is what keeps it from
// staying in the bucket. The local store refuses those PUTs outright, so
// there this finds only what raced with a job's creation.
//
// Kept: the file of an upload no job was made from yet (retention removes
// it in time), and that of a job made before inputs were copied, which
// still reads it (unless the job was deleted).
func (e *Engine) sweepStrayUploads(ctx context.Context) (int, error) {
	objects, err := e.objects.List(ctx, farm.UploadsPrefix)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, o := range objects {
		slug, _ := farm.UploadSlug(o.Key)
		up, err := e.store.GetUploadState(ctx, slug)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return removed, err
		case up.ObjectKey != o.Key:
		case up.JobID == "":
			continue // an upload waiting to become a job
		case up.InputKey == "" && !up.JobDeleted:
			continue // the input of a job made before inputs were copied
		}
		if err := e.objects.Delete(ctx, o.Key); err != nil {
			return removed, fmt.Errorf("remove stray upload %s: %w", o.Key, err)
		}
		removed++
		e.log.Info("removed a file sent to an upload URL after its upload was used, deleted or removed", "key", o.Key, "job", up.JobID)
	}
	return removed, nil
}

// expireUploads removes every upload created before cutoff that no job was
// made from, and answers how many. Each upload's row is deleted in the same
// transaction that queues the removal of its object, so an upload is either
// still there (and can still become a job) or on its way out; a job made
// from it at the last moment keeps it.
func (e *Engine) expireUploads(ctx context.Context, cutoff time.Time) (int, error) {
	removed := 0
	for {
		batch, err := e.store.UnclaimedUploadsBefore(ctx, cutoff, expireBatch)
		if err != nil {
			return removed, err
		}
		err = e.store.InTx(ctx, func(tx *store.Tx) error {
			for _, up := range batch {
				err := tx.DeleteUnclaimedUpload(ctx, up.Slug)
				if errors.Is(err, store.ErrConflict) {
					continue // made into a job since it was listed
				}
				if err != nil {
					return err
				}
				if _, err := e.river.InsertTx(ctx, tx.SQL(), deleteObjectsArgs{Keys: []string{up.ObjectKey}}, nil); err != nil {
					return fmt.Errorf("queue removal of upload %s: %w", up.Slug, err)
				}
				removed++
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		if len(batch) < expireBatch {
			break
		}
	}
	if removed > 0 {
		e.log.Info("expired uploads that no job was made from", "count", removed, "created_before", cutoff.UTC().Format(time.RFC3339))
	}
	return removed, nil
}

// expireEvery is how often the periodic job looks for expired uploads and
// stray upload files: a fraction of the retention, so an upload outlives it
// by little, and of the upload URLs' lifetime, so a file sent to a used
// upload's URL does not stay much longer than the URL could send it; but
// not more often than once a second nor less than once an hour.
func expireEvery(retention, uploadURLTTL time.Duration) time.Duration {
	return min(max(min(retention, uploadURLTTL)/4, time.Second), time.Hour)
}
