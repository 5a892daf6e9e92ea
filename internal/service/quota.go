package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// CodeStorageQuotaExceeded is the code of a refusal (413) of a file that
// its workspace's storage quota has no room for.
const CodeStorageQuotaExceeded = "STORAGE_QUOTA_EXCEEDED"

// quotaMessage says a workspace's quota, its use, and what to do; size
// is the refused file's, 0 when a new upload is refused because the
// quota is already reached.
func quotaMessage(st store.WorkspaceStorage, size int64, removed bool) string {
	what := fmt.Sprintf("this workspace's storage quota is %s and its files take %s", bytesText(st.MaxBytes), bytesText(st.UsedBytes))
	if size > 0 {
		what += fmt.Sprintf(", so the %s file does not fit", bytesText(size))
	} else {
		what += ", so no new upload is taken"
	}
	if removed {
		what += "; the file was removed"
	} else {
		what += "; nothing was stored"
	}
	return what + ". Delete jobs whose files you no longer need (DELETE /jobs/{id}), or ask the farm's operator to raise the quota (renderfarm workspaces set NAME --max-storage-bytes N)"
}

// bytesText shows a byte count exactly, and in MiB or GiB when large.
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%d bytes (%.1f GiB)", n, float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d bytes (%.1f MiB)", n, float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// checkRoomForNewUpload refuses a new upload once the workspace's objects
// hold its quota or more.
func (s *Service) checkRoomForNewUpload(ctx context.Context, workspaceID string) error {
	st, err := s.store.GetWorkspaceStorage(ctx, workspaceID, "")
	if err != nil {
		return err
	}
	if st.Left() <= 0 {
		return &farm.Error{Kind: farm.KindTooLarge, Code: CodeStorageQuotaExceeded, Message: quotaMessage(st, 0, false)}
	}
	return nil
}

// checkRoomForUploadedFile refuses, at job creation, an uploaded file the
// quota has no room for, and removes it: a bucket's presigned PUT takes
// any file, and this is the first the farm hears of it. It reads the room
// outside any transaction, so jobs made at the same moment may each find
// it: CreateJob counts it again under the workspace's lock, and this
// early look only spares the copy of a file that plainly does not fit.
func (s *Service) checkRoomForUploadedFile(ctx context.Context, up store.Upload, size int64) error {
	st, err := s.store.GetWorkspaceStorage(ctx, up.WorkspaceID, up.Slug)
	if err != nil {
		return err
	}
	if size <= st.Left() {
		return nil
	}
	s.removeUploadOverQuota(ctx, up)
	return uploadOverQuota(st, size)
}

// uploadOverQuota is the refusal of an uploaded file of size bytes that
// the room st leaves cannot take; the caller removes the file.
func uploadOverQuota(st store.WorkspaceStorage, size int64) error {
	return &farm.Error{Kind: farm.KindTooLarge, Code: CodeStorageQuotaExceeded, Field: "slug", Message: quotaMessage(st, size, true)}
}

// removeUploadOverQuota removes the object of an upload refused for the
// quota; should that fail, the sweep of stray uploads removes it later.
func (s *Service) removeUploadOverQuota(ctx context.Context, up store.Upload) {
	s.removeRefusedUpload(ctx, up, "could not remove an upload over its workspace's storage quota")
}

// removeRefusedUpload removes the file of an upload that POST /jobs
// refused, and then the size recorded for it (a local upload URL's PUT
// records it), which the workspace's storage would count until the
// upload is swept: the upload holds nothing now. Should the removal fail,
// the size stays, as the file does, until the sweep of stray uploads.
//
// Both are done under the workspace's lock, under which a PUT to the
// upload URL records its file's size and stores the file (checkPutFits):
// a PUT that stored its file before the refusal took the lock has the
// file removed with its size, and one that comes after records and
// stores its own, so that the size recorded is that of what is stored.
// Without the lock, a PUT that recorded its size before the refusal and
// stored its file after the removal had that size forgotten, its file
// still stored. An upload that a job was made from meanwhile (another
// request for the slug) is left to the job, whose input its size counts.
func (s *Service) removeRefusedUpload(ctx context.Context, up store.Upload, warning string) {
	ctx = context.WithoutCancel(ctx)
	var removeErr error
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		if unclaimed, err := lockUnclaimedUpload(ctx, tx, up.WorkspaceID, up.Slug); !unclaimed || err != nil {
			return err // swept, with its file; or made into a job
		}
		if removeErr = s.objects.Delete(ctx, up.ObjectKey); removeErr != nil {
			return removeErr
		}
		return tx.RecordUploadSize(ctx, up.Slug, 0)
	})
	switch {
	case removeErr != nil:
		s.log.Warn(warning, "key", up.ObjectKey, "err", removeErr)
	case err != nil:
		s.log.Warn("could not forget the size of a refused upload", "slug", up.Slug, "err", err)
	}
}

// lockUnclaimedUpload takes the lock of workspaceID's row, under which
// a PUT to a local upload URL records its file's size and stores it, and
// answers whether the upload of slug is still there with no job made
// from it: one swept is gone with its file, and the size of one made into
// a job counts the job's input, neither to be touched.
func lockUnclaimedUpload(ctx context.Context, tx *store.Tx, workspaceID, slug string) (bool, error) {
	if err := tx.LockWorkspace(ctx, workspaceID); err != nil {
		return false, err
	}
	up, err := tx.GetUpload(ctx, workspaceID, slug)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return up.JobID == "", nil
}

// checkPutFits refuses, for the local store's upload URLs, a file of size
// bytes (-1: not yet known) that its workspace's quota has no room for,
// and records the size of one that fits, which is how the farm learns an
// upload's size before a job is made from it; storeFile, once the whole
// file has arrived, stores it. The record holds the room while the body
// comes in; the room is counted and recorded under the workspace's lock,
// so that PUTs arriving together take it one after the other rather than
// each finding it free. The file is stored under the lock too, with its
// size, so that a refusal of the upload (removeRefusedUpload) finds both
// or neither.
func checkPutFits(ctx context.Context, st *store.Store, up store.UploadState, size int64, storeFile func() error) error {
	if size < 0 {
		return nil
	}
	return st.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.LockWorkspace(ctx, up.WorkspaceID); err != nil {
			return err
		}
		room, err := tx.GetWorkspaceStorage(ctx, up.WorkspaceID, up.Slug)
		if err != nil {
			return err
		}
		if size > room.Left() {
			return &objstore.PutRefusal{Status: http.StatusRequestEntityTooLarge, Code: CodeStorageQuotaExceeded, Message: quotaMessage(room, size, false)}
		}
		if err := tx.RecordUploadSize(ctx, up.Slug, size); err != nil || storeFile == nil {
			return err
		}
		return storeFile()
	})
}

// SettleUploadSizes sets the size recorded for each upload no job was
// made from back to what the local store holds of it: the size of its
// file, or 0 for none. A PUT to one of the farm's own upload URLs records
// its file's declared size before the body comes in (checkPutFits); one
// whose process was killed mid-body stored nothing, and its size would
// hold its workspace's room until the upload expired, a day later. serve
// runs it as it starts on the local store, before it takes requests: no
// PUT of the process killed can still be going. (API replicas share a
// bucket, not a data directory; a second serve started on the same data
// directory could have one going, and that upload would then hold no
// room until its PUT ends, which checks the quota again before it
// stores.) It answers how many uploads it set back.
func SettleUploadSizes(ctx context.Context, st *store.Store, objects objstore.Store) (int, error) {
	settled, after := 0, ""
	for {
		held, err := st.UnclaimedUploadsHoldingRoom(ctx, after, settleBatch)
		if err != nil {
			return settled, err
		}
		for _, up := range held {
			after = up.Slug
			// Most hold what they record: only those that do not are
			// looked at again under their workspace's lock.
			if info, err := objects.Stat(ctx, up.ObjectKey); err == nil && info.Size == up.SizeBytes {
				continue
			}
			err := st.InTx(ctx, func(tx *store.Tx) error {
				if unclaimed, err := lockUnclaimedUpload(ctx, tx, up.WorkspaceID, up.Slug); !unclaimed || err != nil {
					return err
				}
				var size int64
				info, err := objects.Stat(ctx, up.ObjectKey)
				switch {
				case err == nil:
					size = info.Size
				case !errors.Is(err, objstore.ErrNotFound):
					return err
				}
				if size == up.SizeBytes {
					return nil
				}
				settled++
				return tx.RecordUploadSize(ctx, up.Slug, size)
			})
			if err != nil {
				return settled, err
			}
		}
		if len(held) < settleBatch {
			return settled, nil
		}
	}
}

// settleBatch is how many uploads SettleUploadSizes reads at a time.
const settleBatch = 500
