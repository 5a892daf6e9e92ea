package store

import (
	"context"
	"fmt"
	"time"
)

// UnclaimedUploadsBefore lists up to limit uploads that no job was made
// from and that were created before cutoff, oldest first: the uploads
// that retention removes.
func (q *Queries) UnclaimedUploadsBefore(ctx context.Context, cutoff time.Time, limit int) ([]Upload, error) {
	rows, err := q.query(ctx, `SELECT slug, workspace_id, file_name, file_type, object_key, created_at, expires_at FROM uploads
		WHERE job_id IS NULL AND created_at < ? ORDER BY created_at, slug LIMIT ?`, cutoff, limit)
	if err != nil {
		return nil, fmt.Errorf("list expired uploads: %w", err)
	}
	defer rows.Close()
	var out []Upload
	for rows.Next() {
		var u Upload
		if err := rows.Scan(&u.Slug, &u.WorkspaceID, &u.FileName, &u.FileType, &u.ObjectKey, &u.CreatedAt, &u.ExpiresAt); err != nil {
			return nil, err
		}
		u.CreatedAt, u.ExpiresAt = u.CreatedAt.UTC(), u.ExpiresAt.UTC()
		out = append(out, u)
	}
	return out, rows.Err()
}

// DeleteUnclaimedUpload removes an upload's row if no job was made from it
// yet. A job made from it in the meantime wins: the row stays and the
// answer is ErrConflict, so that the caller leaves the job's input alone.
func (q *Queries) DeleteUnclaimedUpload(ctx context.Context, slug string) error {
	res, err := q.exec(ctx, `DELETE FROM uploads WHERE slug = ? AND job_id IS NULL`, slug)
	if err != nil {
		return fmt.Errorf("delete upload %s: %w", slug, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrConflict
	}
	return nil
}

// HeldUpload is an upload no job was made from whose recorded size holds
// room in its workspace's storage.
type HeldUpload struct {
	Slug, WorkspaceID, ObjectKey string
	SizeBytes                    int64
}

// UnclaimedUploadsHoldingRoom lists up to limit uploads that no job was
// made from and that record a size (a PUT to one of the farm's own upload
// URLs declared or stored it), in slug order after afterSlug.
func (q *Queries) UnclaimedUploadsHoldingRoom(ctx context.Context, afterSlug string, limit int) ([]HeldUpload, error) {
	rows, err := q.query(ctx, `SELECT slug, workspace_id, object_key, size_bytes FROM uploads
		WHERE job_id IS NULL AND size_bytes > 0 AND slug > ? ORDER BY slug LIMIT ?`, afterSlug, limit)
	if err != nil {
		return nil, fmt.Errorf("list the uploads holding room: %w", err)
	}
	defer rows.Close()
	var out []HeldUpload
	for rows.Next() {
		var u HeldUpload
		if err := rows.Scan(&u.Slug, &u.WorkspaceID, &u.ObjectKey, &u.SizeBytes); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
