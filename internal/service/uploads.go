package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// maxFileNameBytes bounds an upload's file name, as file systems do.
const maxFileNameBytes = 255

// CreateUpload checks the file name and type and returns a presigned URL
// that the file is PUT to.
func (s *Service) CreateUpload(ctx context.Context, p farm.Principal, fileName, fileType string) (*farm.UploadTicket, error) {
	if err := checkFileName(fileName, fileType); err != nil {
		return nil, err
	}
	if err := s.checkRoomForNewUpload(ctx, p.WorkspaceID); err != nil {
		return nil, err
	}
	slug := uuid.NewString()
	key := farm.UploadKey(slug, fileName)
	if err := objstore.ValidateKey(key); err != nil {
		return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "fileName",
			Message: fmt.Sprintf("fileName %q cannot be stored: %v; rename the file", fileName, err)}
	}
	url, expires, err := s.objects.PresignPut(ctx, key, s.cfg.UploadURLTTL)
	if err != nil {
		return nil, fmt.Errorf("presign upload: %w", err)
	}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		// Uploads asked for at the same moment count the workspace's
		// unused uploads one after the other, each seeing those made
		// before it; without the lock, each could find the same room
		// under the limit and all be inserted.
		if err := tx.LockWorkspace(ctx, p.WorkspaceID); err != nil {
			return err
		}
		unused, err := tx.CountUnclaimedUploads(ctx, p.WorkspaceID, s.cfg.MaxUnusedUploads)
		if err != nil {
			return err
		}
		if unused >= s.cfg.MaxUnusedUploads {
			return tooManyUnusedUploads(s.cfg.MaxUnusedUploads)
		}
		return tx.InsertUpload(ctx, store.Upload{
			Slug: slug, WorkspaceID: p.WorkspaceID, FileName: fileName, FileType: fileType, ObjectKey: key,
			CreatedAt: time.Now().UTC(), ExpiresAt: expires.UTC(),
		})
	})
	if err != nil {
		return nil, err
	}
	return &farm.UploadTicket{UploadURL: url, Slug: slug, ExpiresAt: expires.UTC()}, nil
}

// tooManyUnusedUploads refuses a new upload to a workspace that holds max
// uploads no job was made from.
func tooManyUnusedUploads(max int) error {
	return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest,
		Message: fmt.Sprintf("this workspace holds %d uploads that no job was made from, the most it may; nothing was done. "+
			"Make jobs from those whose files you sent (POST /jobs with their slug), or wait: the farm removes an upload "+
			"no job was made from once it is older than its upload retention (24 h unless the operator set --upload-retention)", max)}
}

func checkFileName(fileName, fileType string) error {
	invalid := func(field, format string, args ...any) error {
		return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case fileName == "":
		return invalid("fileName", "fileName is required, for example \"scene.blend\"")
	case len(fileName) > maxFileNameBytes:
		return invalid("fileName", "fileName is %d bytes long; keep it under %d", len(fileName), maxFileNameBytes)
	case !utf8.ValidString(fileName) || strings.ContainsAny(fileName, "/\\\x00") || fileName == "." || fileName == "..":
		return invalid("fileName", "fileName %q must be a plain file name, without folders", fileName)
	}
	ext := strings.ToLower(path.Ext(fileName))
	switch fileType {
	case farm.FileTypeBlend, farm.FileTypeZip:
	case "":
		return invalid("fileType", "fileType is required: \"blend\" or \"zip\"")
	default:
		return invalid("fileType", "fileType must be \"blend\" or \"zip\", not %q", fileType)
	}
	if ext != "."+fileType {
		return invalid("fileType", "fileType %q does not match the extension of %q; a .blend file is \"blend\", a .zip project is \"zip\"", fileType, fileName)
	}
	return nil
}

// isSlug reports whether s is written as CreateUpload writes a slug: a
// UUID in its canonical lower-case form, 8-4-4-4-12 hex digits.
func isSlug(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

func uploadNotFound(slug string) error {
	return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeUploadNotFound, Field: "slug",
		Message: fmt.Sprintf("no upload with slug %q in this workspace; create one with POST /uploads and PUT the file to its uploadUrl", slug)}
}

// slugUsed refuses a slug a job was made from: job jobID, "" when not
// known.
func slugUsed(slug, jobID string) error {
	what := "a job made at the same moment"
	if jobID != "" {
		what = "job " + jobID
	}
	return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeSlugUsed, Field: "slug",
		Message: fmt.Sprintf("slug %q was already used for %s; upload the file again to make another job", slug, what)}
}

// uploadGone answers a request whose upload has no file in the store.
// Either the file never arrived, or a request for the same slug made it
// into a job a moment ago, which removes the upload's object once the
// job is made: the upload, read again, tells which.
func (s *Service) uploadGone(ctx context.Context, p farm.Principal, up store.Upload) error {
	current, err := s.store.GetUpload(ctx, p.WorkspaceID, up.Slug)
	switch {
	case err == nil && current.JobID != "":
		return slugUsed(up.Slug, current.JobID)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	return uploadMissing(up.Slug, up)
}

func uploadMissing(slug string, up store.Upload) error {
	return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeUploadMissing, Field: "slug",
		Message: fmt.Sprintf("the file for slug %q never arrived; PUT it to the uploadUrl (valid until %s) before creating the job", slug, up.ExpiresAt.Format(time.RFC3339))}
}

// refuseTooLarge drops an upload over the limit (a bucket takes any size
// through a presigned PUT) and says so; size is 0 when unknown.
func (s *Service) refuseTooLarge(ctx context.Context, up store.Upload, size, max int64) error {
	s.removeRefusedUpload(ctx, up, "could not remove an upload over the size limit")
	what := "the uploaded file is"
	if size > 0 {
		what = fmt.Sprintf("the uploaded file is %d bytes,", size)
	}
	return &farm.Error{Kind: farm.KindTooLarge, Code: farm.CodeTooLarge, Field: "slug",
		Message: fmt.Sprintf("%s over this farm's limit of %d bytes; it was removed", what, max)}
}

// Codes of the refusals an upload URL answers once its upload is closed.
const (
	codeUploadUsed     = "UPLOAD_USED"
	codeUploadDeleted  = "UPLOAD_DELETED"
	codeUploadNotFound = farm.CodeUploadNotFound
)

// AcceptUploadPut answers, for the local store's upload URLs
// (objstore.LocalConfig.AcceptPut), whether key may still be written: only
// while its upload exists and no job was made from it. A job renders its
// own copy of the file, so writing the upload afterwards would change
// nothing the farm uses; refusing it tells the client so, and keeps a
// deleted job's file from coming back. It also refuses a file of size
// bytes that its workspace's storage quota has no room for (413
// STORAGE_QUOTA_EXCEEDED), and records the size of one that fits, then
// stores it (storeFile, on the last call). A bucket's presigned URLs cannot
// be asked; there the sweep of stray uploads removes what arrives late,
// and CreateJob checks the quota.
func AcceptUploadPut(st *store.Store) func(ctx context.Context, key string, size int64, storeFile func() error) error {
	return func(ctx context.Context, key string, size int64, storeFile func() error) error {
		slug, ok := farm.UploadSlug(key)
		if !ok {
			return &objstore.PutRefusal{Status: http.StatusForbidden, Code: codeUploadNotFound,
				Message: "this URL does not take uploads; request an upload URL with POST /uploads"}
		}
		up, err := st.GetUploadState(ctx, slug)
		switch {
		case errors.Is(err, store.ErrNotFound), err == nil && up.ObjectKey != key:
			return &objstore.PutRefusal{Status: http.StatusNotFound, Code: codeUploadNotFound,
				Message: "this upload no longer exists: it expired and was removed; request a new upload URL with POST /uploads and send the file there"}
		case err != nil:
			return err
		case up.JobID != "" && up.JobDeleted:
			return &objstore.PutRefusal{Status: http.StatusConflict, Code: codeUploadDeleted,
				Message: fmt.Sprintf("this upload belongs to job %s, which was deleted, so nothing can be sent to it any more; to render a file, request a new upload URL with POST /uploads, send the file there and create a job from its slug", up.JobID)}
		case up.JobID != "":
			return &objstore.PutRefusal{Status: http.StatusConflict, Code: codeUploadUsed,
				Message: fmt.Sprintf("this upload was used to create job %s, which renders the file as it was then and cannot be changed; to render another file, request a new upload URL with POST /uploads, send the file there and create a job from its slug", up.JobID)}
		}
		return checkPutFits(ctx, st, up, size, storeFile)
	}
}

// UploadPutFailed is the local store's PutFailed hook for upload URLs. A
// PUT records its file's declared size as it begins (checkPutFits), to
// hold its workspace's room while the body comes in; one that then
// stores nothing (the artist's connection dropped, say) would leave that
// size counted until the upload expires, a day later, and a new upload
// of the file refused for room it does not use. The record is set back
// to what the upload holds now, an earlier PUT's file or nothing, under
// the workspace's lock, under which a PUT records and stores. An upload
// made into a job meanwhile is left alone: its size counts the job's
// input.
func UploadPutFailed(st *store.Store) func(ctx context.Context, key string, stored func() (int64, error)) error {
	return func(ctx context.Context, key string, stored func() (int64, error)) error {
		slug, ok := farm.UploadSlug(key)
		if !ok {
			return nil
		}
		up, err := st.GetUploadState(ctx, slug)
		if errors.Is(err, store.ErrNotFound) || err == nil && (up.JobID != "" || up.ObjectKey != key) {
			return nil
		}
		if err != nil {
			return err
		}
		return st.InTx(ctx, func(tx *store.Tx) error {
			if unclaimed, err := lockUnclaimedUpload(ctx, tx, up.WorkspaceID, slug); !unclaimed || err != nil {
				return err
			}
			size, err := stored()
			if err != nil {
				return err
			}
			return tx.RecordUploadSize(ctx, slug, size)
		})
	}
}
