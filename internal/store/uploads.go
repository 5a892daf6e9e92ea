package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Upload is a presigned upload slot and, once a job is made from it, where
// the job's input file is.
type Upload struct {
	Slug        string
	WorkspaceID string
	FileName    string
	FileType    string
	// ObjectKey is where the upload URL writes.
	ObjectKey string
	CreatedAt time.Time
	ExpiresAt time.Time
	JobID     string // "" until a job claims it
	// InputKey is the job's own copy of the file, which no URL can write;
	// "" until a job claims the upload, and for jobs made before inputs
	// were copied (see JobInputKey).
	InputKey string
}

// JobInputKey is the object the job made from this upload reads: its own
// copy, or, for a job made before inputs were copied, the upload's object.
func (u Upload) JobInputKey() string {
	if u.InputKey != "" {
		return u.InputKey
	}
	return u.ObjectKey
}

// InsertUpload records a new upload slot.
func (q *Queries) InsertUpload(ctx context.Context, u Upload) error {
	_, err := q.exec(ctx, `INSERT INTO uploads (slug, workspace_id, file_name, file_type, object_key, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.Slug, u.WorkspaceID, u.FileName, u.FileType, u.ObjectKey, u.CreatedAt, u.ExpiresAt)
	if err != nil {
		return fmt.Errorf("store upload: %w", err)
	}
	return nil
}

const uploadColumns = `u.slug, u.workspace_id, u.file_name, u.file_type, u.object_key, u.created_at, u.expires_at, u.job_id, u.input_key`

// scanUpload reads the uploadColumns of a row, then extra.
func scanUpload(row interface{ Scan(...any) error }, extra ...any) (Upload, error) {
	var u Upload
	var jobID, inputKey sql.NullString
	err := row.Scan(append([]any{&u.Slug, &u.WorkspaceID, &u.FileName, &u.FileType, &u.ObjectKey, &u.CreatedAt, &u.ExpiresAt, &jobID, &inputKey}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrNotFound
	}
	u.JobID, u.InputKey = jobID.String, inputKey.String
	u.CreatedAt, u.ExpiresAt = u.CreatedAt.UTC(), u.ExpiresAt.UTC()
	return u, err
}

// GetUpload finds a workspace's upload by slug.
func (q *Queries) GetUpload(ctx context.Context, workspaceID, slug string) (Upload, error) {
	return scanUpload(q.queryRow(ctx, `SELECT `+uploadColumns+` FROM uploads u WHERE u.slug = ? AND u.workspace_id = ?`, slug, workspaceID))
}

// UploadState is an upload as the farm's own checks see it, whatever the
// workspace: whether its URL may still write, and whether an object under
// its key belongs to anyone.
type UploadState struct {
	Upload
	// JobDeleted says the job made from the upload had its files deleted.
	JobDeleted bool
}

// GetUploadState finds an upload by slug alone, for the farm's own checks
// (an upload URL's PUT, the sweep of stray objects), never for a client's
// request, which is scoped to its workspace by GetUpload.
func (q *Queries) GetUploadState(ctx context.Context, slug string) (UploadState, error) {
	var deleted sql.NullBool
	u, err := scanUpload(q.queryRow(ctx, `SELECT `+uploadColumns+`, j.output_deleted FROM uploads u LEFT JOIN jobs j ON j.id = u.job_id WHERE u.slug = ?`, slug), &deleted)
	return UploadState{Upload: u, JobDeleted: deleted.Bool}, err
}

// ClaimUpload ties an upload to the job made from it, and records inputKey,
// the job's own copy of the file; a second claim returns ErrConflict, so a
// slug makes at most one job even under races.
func (q *Queries) ClaimUpload(ctx context.Context, slug, jobID, inputKey string) error {
	res, err := q.exec(ctx, `UPDATE uploads SET job_id = ?, input_key = ? WHERE slug = ? AND job_id IS NULL`, jobID, inputKey, slug)
	if err != nil {
		return fmt.Errorf("claim upload: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrConflict
	}
	return nil
}

// CountUnclaimedUploads counts the workspace's uploads that no job was
// made from, stopping at limit: the caller asks only whether there is
// room under it, so a count never reads more than limit rows.
func (q *Queries) CountUnclaimedUploads(ctx context.Context, workspaceID string, limit int) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE workspace_id = ? AND job_id IS NULL LIMIT ?) unclaimed`,
		workspaceID, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count unused uploads: %w", err)
	}
	return n, nil
}
