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

// DefaultUploadRetention is how long an upload that no job was made from
// is kept: long enough to make a job of it the next working day.
const DefaultUploadRetention = 24 * time.Hour

// expireBatch is how many expired uploads one transaction removes, so that
// a large backlog neither holds the database for long nor is read at once.
const expireBatch = 100

// deleteObjectsWorker removes objects for DeleteJob, for retention, for
// a merge (the merged frame's parts) and for a retry (the files it
// supersedes). Removing what is already gone succeeds, so a retry after a
// crash, or a second run, is harmless.
type deleteObjectsWorker struct {
	river.WorkerDefaults[engine.DeleteObjectsArgs]
	h *Housekeeping
}

func (w *deleteObjectsWorker) Work(ctx context.Context, rj *river.Job[engine.DeleteObjectsArgs]) error {
	return w.h.DeleteObjects(ctx, rj.Args)
}

// DeleteObjects does now what a delete_objects job does: it removes the
// objects a names.
func (h *Housekeeping) DeleteObjects(ctx context.Context, a engine.DeleteObjectsArgs) error {
	for _, key := range a.Keys {
		if err := h.objects.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	for _, prefix := range a.Prefixes {
		if err := h.objects.DeletePrefix(ctx, prefix); err != nil {
			return fmt.Errorf("delete %s: %w", prefix, err)
		}
	}
	if a.Outputs && a.JobID != "" {
		if _, err := h.engine.RemoveUnkeptOutputs(ctx, a.JobID); err != nil {
			return fmt.Errorf("delete the zips and preview of job %s: %w", a.JobID, err)
		}
	}
	if a.OrphanFrames && a.JobID != "" {
		n, err := h.engine.RemoveOrphanFrames(ctx, a.JobID)
		if err != nil {
			return fmt.Errorf("delete the orphan frames of job %s: %w", a.JobID, err)
		}
		if n > 0 {
			h.log.Info("removed frame files no frame records, stored by workers given up on", "job", a.JobID, "count", n)
		}
	}
	return nil
}

// expireUploadsWorker is the periodic job (on the leader) that removes
// uploads no job was made from once they are older than the retention,
// and objects sent to upload URLs that were already used or deleted.
type expireUploadsWorker struct {
	river.WorkerDefaults[engine.ExpireUploadsArgs]
	h *Housekeeping
}

func (w *expireUploadsWorker) Work(ctx context.Context, _ *river.Job[engine.ExpireUploadsArgs]) error {
	return w.h.ExpireUploads(ctx)
}

// ExpireUploads does now what the periodic job does every quarter of the
// shorter of the upload retention and the upload URLs' lifetime: it
// removes the uploads no job was made from that are older than the
// retention, the files sent to upload URLs too late, and the parts of
// the bucket's uploads (or the local store's temp files) that processes
// killed while storing left behind.
func (h *Housekeeping) ExpireUploads(ctx context.Context) error {
	if _, err := h.expireUploads(ctx, time.Now().Add(-h.cfg.UploadRetention)); err != nil {
		return err
	}
	if _, err := h.sweepStrayUploads(ctx); err != nil {
		return err
	}
	h.abortStaleUploads(ctx)
	h.removeAbandonedWrites()
	return nil
}

// abandonedWriteAge is how long a local store's temp file of a Put may go
// unwritten before it is taken for a killed process's: far longer than a
// live upload's body may stall (the idle timeout cuts it off first).
const abandonedWriteAge = time.Hour

// abandonedWriteRemover is a store whose Puts write temp files that a
// killed process leaves behind (objstore.Local).
type abandonedWriteRemover interface {
	RemoveAbandonedWrites(untouchedSince time.Time) (int, error)
}

// removeAbandonedWrites removes the temp files of Puts that processes
// killed while they stored a file left in the local store: a serve killed
// in the middle of an upload's body would otherwise keep its part of the
// file, up to the upload limit, until a restart a day later. A failure is
// only logged: the next run tries again.
func (h *Housekeeping) removeAbandonedWrites() {
	remover, ok := h.objects.(abandonedWriteRemover)
	if !ok {
		return
	}
	n, err := remover.RemoveAbandonedWrites(time.Now().Add(-abandonedWriteAge))
	if err != nil {
		h.log.Warn("could not remove the temp files killed processes left in the local store; trying again at the next run", "err", err)
	}
	if n > 0 {
		h.log.Info("removed the temp files killed processes left in the local store", "count", n, "untouched_for", abandonedWriteAge)
	}
}

// staleUploadAge is how long after it began a multipart upload of the
// farm's is taken for one whose process was killed: far longer than any
// store of an object takes, the largest included (a job's frames zipped
// as they are read; one upload holds at most 10,000 parts, 160 GiB at
// the default part size, hours even on a slow link).
const staleUploadAge = 24 * time.Hour

// staleUploadAborter is a store whose writes of large objects go up in
// parts that a killed process leaves behind (objstore.S3).
type staleUploadAborter interface {
	AbortStaleUploads(ctx context.Context, prefix string, startedBefore time.Time) (int, error)
}

// abortStaleUploads aborts the multipart uploads under jobs/ that began
// more than staleUploadAge ago: a render node or a serve killed while it
// stored a frame, a part, a zip or an input never aborted its upload, and
// its parts would stay in the bucket for ever, unlisted yet taking space.
// A failure is only logged: the next run tries again.
func (h *Housekeeping) abortStaleUploads(ctx context.Context) {
	aborter, ok := h.objects.(staleUploadAborter)
	if !ok {
		return
	}
	n, err := aborter.AbortStaleUploads(ctx, farm.JobsPrefix, time.Now().Add(-staleUploadAge))
	if err != nil {
		h.log.Warn("could not abort the bucket's uploads that killed processes left unfinished; trying again at the next run", "err", err)
	}
	if n > 0 {
		h.log.Info("aborted the bucket's uploads that killed processes left unfinished", "count", n, "older_than", staleUploadAge)
	}
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
func (h *Housekeeping) sweepStrayUploads(ctx context.Context) (int, error) {
	objects, err := h.objects.List(ctx, farm.UploadsPrefix)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, o := range objects {
		slug, _ := farm.UploadSlug(o.Key)
		up, err := h.store.GetUploadState(ctx, slug)
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
		if err := h.objects.Delete(ctx, o.Key); err != nil {
			return removed, fmt.Errorf("remove stray upload %s: %w", o.Key, err)
		}
		removed++
		h.log.Info("removed a file sent to an upload URL after its upload was used, deleted or removed", "key", o.Key, "job", up.JobID)
	}
	return removed, nil
}

// expireUploads removes every upload created before cutoff that no job was
// made from, and answers how many. Each upload's row is deleted in the same
// transaction that queues the removal of its object, so an upload is either
// still there (and can still become a job) or on its way out; a job made
// from it at the last moment keeps it.
func (h *Housekeeping) expireUploads(ctx context.Context, cutoff time.Time) (int, error) {
	removed := 0
	for {
		batch, err := h.store.UnclaimedUploadsBefore(ctx, cutoff, expireBatch)
		if err != nil {
			return removed, err
		}
		err = h.store.InTx(ctx, func(tx *store.Tx) error {
			for _, up := range batch {
				err := tx.DeleteUnclaimedUpload(ctx, up.Slug)
				if errors.Is(err, store.ErrConflict) {
					continue // made into a job since it was listed
				}
				if err != nil {
					return err
				}
				if err := h.engine.Insert(ctx, tx, engine.DeleteObjectsArgs{Keys: []string{up.ObjectKey}}); err != nil {
					return fmt.Errorf("removal of upload %s: %w", up.Slug, err)
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
		h.log.Info("expired uploads that no job was made from", "count", removed, "created_before", cutoff.UTC().Format(time.RFC3339))
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
