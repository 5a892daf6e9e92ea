package store

import (
	"context"
	"fmt"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// endedStatuses are the statuses of a job that ended, as a list in SQL:
// the jobs_ended index (migration 0026) has them as its condition.
const endedStatuses = "('" + string(farm.StatusCompleted) + "', '" + string(farm.StatusFailed) + "', '" + string(farm.StatusCanceled) + "')"

// JobsEndedBefore lists up to limit jobs that ended (completed, failed or
// canceled) and have not changed since cutoff, those that ended first
// first: the jobs the history's retention removes (serve
// --history-retention).
func (q *Queries) JobsEndedBefore(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	rows, err := q.query(ctx, `SELECT id FROM jobs
		WHERE status IN `+endedStatuses+` AND updated_at < ?
		ORDER BY updated_at, id LIMIT ?`, cutoff.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("list the jobs that ended before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// usageOfDay is what a job used on one day (UTC), as usage_history keeps
// it.
type usageOfDay struct {
	renderSeconds, gpuSeconds float64
	frames, bytesDownloaded   int64
}

// RemoveJobFromHistory removes a job and everything recorded of it (its
// tasks, frames, split parts, outputs, workers' failures, webhook events
// and their attempts, downloads and its upload's row), keeping only what
// it used, by day, in usage_history: a usage report over a period that
// held the job answers the same render seconds, GPU seconds, frames and
// bytes served (bytes stored are 0 for it, as for any job whose files are
// deleted). The caller holds the job's lock (LockJob) in the same
// transaction, has checked it ended, and removes its files.
func (tx *Tx) RemoveJobFromHistory(ctx context.Context, job *farm.Job) error {
	// FOR UPDATE, as the job's removal will take at its end anyway: a
	// download whose count ends meanwhile waits for the removal to end
	// (RecordDownload reads the job FOR KEY SHARE), rather than add a row
	// to downloads after the removal read them.
	if _, err := tx.exec(ctx, `SELECT 1 FROM jobs WHERE id = ?`+tx.dialect.rowLock("FOR UPDATE"), job.ID); err != nil {
		return fmt.Errorf("lock job %s for its removal from the history: %w", job.ID, err)
	}
	days := map[string]*usageOfDay{}
	day := func(at time.Time) *usageOfDay {
		key := at.UTC().Format(time.DateOnly)
		d, ok := days[key]
		if !ok {
			d = &usageOfDay{}
			days[key] = d
		}
		return d
	}
	err := tx.scanEach(ctx, "its chunks' seconds", func(scan func(...any) error) error {
		var at time.Time
		var seconds, gpuSeconds float64
		if err := scan(&at, &seconds, &gpuSeconds); err != nil {
			return err
		}
		d := day(at)
		d.renderSeconds += seconds
		d.gpuSeconds += gpuSeconds
		return nil
	}, `SELECT finished_at, worker_seconds, gpu_seconds FROM tasks
		WHERE job_id = ? AND finished_at IS NOT NULL AND worker_seconds + gpu_seconds > 0`, job.ID)
	if err != nil {
		return err
	}
	err = tx.scanEach(ctx, "its frames", func(scan func(...any) error) error {
		var at time.Time
		if err := scan(&at); err != nil {
			return err
		}
		day(at).frames++
		return nil
	}, `SELECT updated_at FROM frames WHERE job_id = ? AND status = '`+string(farm.FrameCompleted)+`'`, job.ID)
	if err != nil {
		return err
	}
	// Its downloads are removed as they are read: a download counted
	// meanwhile, into a row this reads, waits for that row's lock and is
	// in what it reads once it goes on, rather than added after the read
	// and removed with the row unkept (RecordDownload, on PostgreSQL).
	err = tx.scanEach(ctx, "its downloads", func(scan func(...any) error) error {
		var on string
		var bytes int64
		if err := scan(&on, &bytes); err != nil {
			return err
		}
		at, err := time.Parse(time.DateOnly, on)
		if err != nil {
			return fmt.Errorf("a download's day %q: %w", on, err)
		}
		day(at).bytesDownloaded += bytes
		return nil
	}, `DELETE FROM downloads WHERE job_id = ? RETURNING day, bytes`, job.ID)
	if err != nil {
		return err
	}
	for on, d := range days {
		if d.renderSeconds == 0 && d.gpuSeconds == 0 && d.frames == 0 && d.bytesDownloaded == 0 {
			continue
		}
		// Added to, not written: a job removed once already (by a
		// transaction whose answer was lost) has nothing left to add.
		_, err := tx.exec(ctx, `INSERT INTO usage_history (workspace_id, job_id, day, render_seconds, gpu_seconds, frames, bytes_downloaded)
				VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (job_id, day) DO UPDATE SET render_seconds = usage_history.render_seconds + excluded.render_seconds,
				gpu_seconds = usage_history.gpu_seconds + excluded.gpu_seconds, frames = usage_history.frames + excluded.frames,
				bytes_downloaded = usage_history.bytes_downloaded + excluded.bytes_downloaded`,
			job.WorkspaceID, job.ID, on, d.renderSeconds, d.gpuSeconds, d.frames, d.bytesDownloaded)
		if err != nil {
			return fmt.Errorf("keep job %s's usage of %s: %w", job.ID, on, err)
		}
	}
	// Children before their parents: the foreign keys hold to the end.
	for _, del := range []struct{ what, query string }{
		{"its webhook events' attempts", `DELETE FROM webhook_attempts WHERE event_id IN (SELECT id FROM webhook_events WHERE job_id = ?)`},
		{"its webhook events", `DELETE FROM webhook_events WHERE job_id = ?`},
		{"its split frames' parts", `DELETE FROM frame_parts WHERE job_id = ?`},
		{"its frames' outputs", `DELETE FROM frame_outputs WHERE job_id = ?`},
		{"its frames", `DELETE FROM frames WHERE job_id = ?`},
		{"its tasks", `DELETE FROM tasks WHERE job_id = ?`},
		{"its workers' failures", `DELETE FROM job_workers WHERE job_id = ?`},
		{"its upload", `DELETE FROM uploads WHERE job_id = ?`},
		{"the job", `DELETE FROM jobs WHERE id = ?`},
	} {
		if _, err := tx.exec(ctx, del.query, job.ID); err != nil {
			return fmt.Errorf("remove job %s from the history: %s: %w", job.ID, del.what, err)
		}
	}
	return nil
}

// scanEach runs query and hands each row to each, naming what it reads
// in an error.
func (q *Queries) scanEach(ctx context.Context, what string, each func(scan func(...any) error) error, query string, args ...any) error {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}

// RemoveWorkersSilentSince removes the records of worker runs that have
// sent no heartbeat since cutoff, and answers how many: runs long over,
// which a farm whose workers come and go with its queue makes every day.
// No task is theirs any more: the reaper hands a silent run's tasks to
// others within the worker timeout.
func (q *Queries) RemoveWorkersSilentSince(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := q.exec(ctx, `DELETE FROM workers WHERE heartbeat_at < ?`, cutoff.UTC())
	if err != nil {
		return 0, fmt.Errorf("remove the worker runs silent since %s: %w", cutoff.UTC().Format(time.RFC3339), err)
	}
	return res.RowsAffected()
}
