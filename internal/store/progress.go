package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// Progress is what a progress report shows of a job: JobProgress's answer.
type Progress struct {
	Status farm.Status
	// Frames are in frame order.
	Frames []farm.FrameProgress
	// WaitingFor is what one of the job's running tasks waits for while a
	// part of the farm is out (see SetTaskWaiting); "" when none waits.
	WaitingFor string
	// SuspendedReason is the job's, while it is suspended.
	SuspendedReason string
}

// JobProgress reads what a progress report shows of a job of a workspace:
// its status, its frames in frame order, each with its status, worker,
// render time and attempts, and what its work waits for. Clients poll it,
// so it reads only that: not the job's JSON columns (analysis,
// configuration), which cost more to decode than the rest of the answer,
// nor the frames' other columns. One statement reads them all, so they
// are of the same moment. A job of another workspace is ErrNotFound.
func (q *Queries) JobProgress(ctx context.Context, workspaceID, jobID string) (Progress, error) {
	// The LEFT JOIN keeps the job's row when it has no frames yet: one
	// row whose frame columns are NULL. The subquery depends on no row,
	// so both databases compute it once for the statement.
	rows, err := q.query(ctx, `SELECT j.status, j.suspended_reason, f.frame, f.status, f.worker, f.render_seconds, f.attempts,
			(SELECT COALESCE(MAX(t.waiting_for), '') FROM tasks t WHERE t.job_id = ? AND t.status = ?)
		FROM jobs j LEFT JOIN frames f ON f.job_id = j.id
		WHERE j.id = ? AND j.workspace_id = ?
		ORDER BY f.frame`, jobID, TaskRunning, jobID, workspaceID)
	if err != nil {
		return Progress{}, fmt.Errorf("read progress of job %s: %w", jobID, err)
	}
	defer rows.Close()
	var (
		status farm.Status
		reason string
		found  bool
		// Room for a short job's frames, which saves growing the slice
		// five times over for each one; a longer job grows it as usual.
		frames = make([]farm.FrameProgress, 0, 64)
		// Declared once, not per row: Scan takes their addresses, which
		// would otherwise put six new variables on the heap per frame.
		frame         sql.NullInt64
		frameStatus   sql.NullString
		worker        sql.NullString
		renderSeconds sql.NullFloat64
		attempts      sql.NullInt64
		waitingFor    string
	)
	for rows.Next() {
		if err := rows.Scan(&status, &reason, &frame, &frameStatus, &worker, &renderSeconds, &attempts, &waitingFor); err != nil {
			return Progress{}, fmt.Errorf("read progress of job %s: %w", jobID, err)
		}
		found = true
		if frame.Valid {
			frames = append(frames, farm.FrameProgress{Frame: int(frame.Int64), Status: farm.FrameStatus(frameStatus.String),
				Worker: worker.String, RenderSeconds: renderSeconds.Float64, Attempts: int(attempts.Int64)})
		}
	}
	if err := rows.Err(); err != nil {
		return Progress{}, fmt.Errorf("read progress of job %s: %w", jobID, err)
	}
	if !found {
		return Progress{}, ErrNotFound
	}
	return Progress{Status: status, Frames: frames, WaitingFor: waitingFor, SuspendedReason: reason}, nil
}

// WaitingFor is what one of a job's running tasks waits for, "" when none
// waits: JobProgress's WaitingFor, for a job already read.
func (q *Queries) WaitingFor(ctx context.Context, jobID string) (string, error) {
	var w string
	err := q.queryRow(ctx, `SELECT COALESCE(MAX(waiting_for), '') FROM tasks WHERE job_id = ? AND status = ?`, jobID, TaskRunning).Scan(&w)
	if err != nil {
		return "", fmt.Errorf("read what job %s waits for: %w", jobID, err)
	}
	return w, nil
}

// FrameProgressOfJob lists a job's frames as a progress report shows
// them, in frame order: JobProgress's frames, for a job already read.
func (q *Queries) FrameProgressOfJob(ctx context.Context, jobID string) ([]farm.FrameProgress, error) {
	rows, err := q.query(ctx, `SELECT frame, status, worker, render_seconds, attempts FROM frames WHERE job_id = ? ORDER BY frame`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list frames: %w", err)
	}
	defer rows.Close()
	var frames []farm.FrameProgress
	for rows.Next() {
		var f farm.FrameProgress
		if err := rows.Scan(&f.Frame, &f.Status, &f.Worker, &f.RenderSeconds, &f.Attempts); err != nil {
			return nil, err
		}
		frames = append(frames, f)
	}
	return frames, rows.Err()
}
