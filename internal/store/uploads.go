package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Upload is a presigned upload slot and, once a job is made from it, the
// job's input file.
type Upload struct {
	Slug        string
	WorkspaceID string
	FileName    string
	FileType    string
	ObjectKey   string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	JobID       string // "" until a job claims it
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

// GetUpload finds a workspace's upload by slug.
func (q *Queries) GetUpload(ctx context.Context, workspaceID, slug string) (Upload, error) {
	var u Upload
	var jobID sql.NullString
	err := q.queryRow(ctx, `SELECT slug, workspace_id, file_name, file_type, object_key, created_at, expires_at, job_id FROM uploads WHERE slug = ? AND workspace_id = ?`, slug, workspaceID).
		Scan(&u.Slug, &u.WorkspaceID, &u.FileName, &u.FileType, &u.ObjectKey, &u.CreatedAt, &u.ExpiresAt, &jobID)
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrNotFound
	}
	u.JobID = jobID.String
	u.CreatedAt, u.ExpiresAt = u.CreatedAt.UTC(), u.ExpiresAt.UTC()
	return u, err
}

// ClaimUpload ties an upload to the job made from it; a second claim
// returns ErrConflict, so a slug makes at most one job even under races.
func (q *Queries) ClaimUpload(ctx context.Context, slug, jobID string) error {
	res, err := q.exec(ctx, `UPDATE uploads SET job_id = ? WHERE slug = ? AND job_id IS NULL`, jobID, slug)
	if err != nil {
		return fmt.Errorf("claim upload: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrConflict
	}
	return nil
}
