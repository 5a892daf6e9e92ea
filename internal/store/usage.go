package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// CountTowardsBudget adds the render seconds of a task that ended at at
// (FinishTask, whose TaskEnd.At it is) to its workspace's total of that
// month, if the workspace has a render budget (see migration 0016),
// which the budget is checked against. A workspace without one is not
// written to, so that the chunks ending at once on a large farm do not
// queue for its row; a transaction that ends a task calls it last, since
// every transaction takes a workspace's row after the tasks it writes.
func (q *Queries) CountTowardsBudget(ctx context.Context, taskID string, at time.Time) error {
	month := at.UTC().Format(renderMonthLayout)
	_, err := q.exec(ctx, `UPDATE workspaces SET
			month_render_seconds = (SELECT t.worker_seconds + t.gpu_seconds FROM tasks t WHERE t.id = ?)
				+ CASE WHEN render_month = ? THEN month_render_seconds ELSE 0 END,
			render_month = ?
		WHERE id = (SELECT t.workspace_id FROM tasks t WHERE t.id = ? AND t.worker_seconds + t.gpu_seconds > 0)
			AND max_render_seconds_per_month IS NOT NULL`,
		taskID, month, month, taskID)
	if err != nil {
		return fmt.Errorf("add a chunk's render seconds to its workspace's month: %w", err)
	}
	return nil
}

// renderMonthLayout is how workspaces.render_month names a month (UTC).
const renderMonthLayout = "2006-01"

// monthStart is the first instant of at's month, UTC.
func monthStart(at time.Time) time.Time {
	at = at.UTC()
	return time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// monthSecondsQuery sums the render seconds of the chunks of a workspace
// (the first ?) that ended since the second ?, down the tasks_finished
// index.
const monthSecondsQuery = `COALESCE((SELECT SUM(mt.worker_seconds + mt.gpu_seconds) FROM tasks mt
	WHERE mt.workspace_id = ? AND mt.finished_at >= ?), 0)`

// RecordDownload adds bytes served from one of a job's objects to the
// job's downloads of the day.
func (q *Queries) RecordDownload(ctx context.Context, jobID string, bytes int64) error {
	_, err := q.exec(ctx, `INSERT INTO downloads (workspace_id, job_id, day, bytes)
			SELECT j.workspace_id, j.id, ?, ? FROM jobs j WHERE j.id = ?
		ON CONFLICT (job_id, day) DO UPDATE SET bytes = downloads.bytes + excluded.bytes`,
		now().Format(time.DateOnly), bytes, jobID)
	if err != nil {
		return fmt.Errorf("record download: %w", err)
	}
	return nil
}

// WorkspaceUsage reports what workspaceID used in [from, to), grouped by
// day (UTC) or by job; workspaceID "" sums every workspace's. A row's
// amounts are those of farm.UsageRow, and the total is their sum.
func (q *Queries) WorkspaceUsage(ctx context.Context, workspaceID string, from, to time.Time, groupBy string) (farm.Usage, error) {
	u := farm.Usage{From: from.UTC(), To: to.UTC(), GroupBy: groupBy}
	rows := map[string]*farm.UsageRow{}
	row := func(jobID string, at time.Time) *farm.UsageRow {
		key := jobID
		if groupBy == farm.UsageByDay {
			key = at.UTC().Format(time.DateOnly)
		}
		r, ok := rows[key]
		if !ok {
			r = &farm.UsageRow{}
			if groupBy == farm.UsageByDay {
				r.Day = key
			} else {
				r.JobID = key
			}
			rows[key] = r
		}
		return r
	}
	scope, args := "", []any{from.UTC(), to.UTC()}
	if workspaceID != "" {
		scope, args = " AND j.workspace_id = ?", append(args, workspaceID)
	}
	type scanned struct {
		jobID string
		at    time.Time
		n     float64
		bytes int64
	}
	read := func(what, query string, add func(r *farm.UsageRow, s scanned)) error {
		rs, err := q.query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("usage: %s: %w", what, err)
		}
		defer rs.Close()
		for rs.Next() {
			var s scanned
			if err := rs.Scan(&s.jobID, &s.at, &s.n, &s.bytes); err != nil {
				return fmt.Errorf("usage: %s: %w", what, err)
			}
			add(row(s.jobID, s.at), s)
		}
		return rs.Err()
	}
	// Chunks ended in the period.
	err := read("chunks", `SELECT t.job_id, t.finished_at, t.worker_seconds, 0 FROM tasks t JOIN jobs j ON j.id = t.job_id
		WHERE t.finished_at >= ? AND t.finished_at < ? AND t.worker_seconds > 0`+scope,
		func(r *farm.UsageRow, s scanned) { r.RenderSeconds += s.n })
	if err != nil {
		return u, err
	}
	err = read("chunks on GPUs", `SELECT t.job_id, t.finished_at, t.gpu_seconds, 0 FROM tasks t JOIN jobs j ON j.id = t.job_id
		WHERE t.finished_at >= ? AND t.finished_at < ? AND t.gpu_seconds > 0`+scope,
		func(r *farm.UsageRow, s scanned) { r.GPUSeconds += s.n })
	if err != nil {
		return u, err
	}
	// Frames completed in the period, and the bytes their files hold.
	err = read("frames", `SELECT f.job_id, f.updated_at, 1, CASE WHEN j.output_deleted THEN 0 ELSE
			CAST(COALESCE((SELECT SUM(o.size_bytes) FROM frame_outputs o WHERE o.job_id = f.job_id AND o.frame = f.frame), f.size_bytes) AS BIGINT) END
		FROM frames f JOIN jobs j ON j.id = f.job_id
		WHERE f.updated_at >= ? AND f.updated_at < ? AND f.status = '`+string(farm.FrameCompleted)+`'`+scope,
		func(r *farm.UsageRow, s scanned) { r.Frames++; r.BytesStored += s.bytes })
	if err != nil {
		return u, err
	}
	// Jobs made in the period: their inputs, zips, preview videos and
	// logs (an upload that never became a job belongs to no job, and is in
	// the storage total only).
	err = read("inputs", `SELECT j.id, j.created_at, 0, CASE WHEN j.output_deleted THEN 0 ELSE COALESCE(up.size_bytes, 0) + j.files_bytes + j.log_bytes
			+ COALESCE((SELECT SUM(t.log_bytes) FROM tasks t WHERE t.job_id = j.id), 0) END
		FROM jobs j LEFT JOIN uploads up ON up.job_id = j.id
		WHERE j.created_at >= ? AND j.created_at < ?`+scope,
		func(r *farm.UsageRow, s scanned) { r.BytesStored += s.bytes })
	if err != nil {
		return u, err
	}
	// Downloads served in the period, by day.
	dayArgs := []any{from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly)}
	dscope := ""
	if workspaceID != "" {
		dscope, dayArgs = " AND d.workspace_id = ?", append(dayArgs, workspaceID)
	}
	ds, err := q.query(ctx, `SELECT d.job_id, d.day, d.bytes FROM downloads d WHERE d.day >= ? AND d.day <= ?`+dscope, dayArgs...)
	if err != nil {
		return u, fmt.Errorf("usage: downloads: %w", err)
	}
	defer ds.Close()
	for ds.Next() {
		var jobID, day string
		var bytes int64
		if err := ds.Scan(&jobID, &day, &bytes); err != nil {
			return u, fmt.Errorf("usage: downloads: %w", err)
		}
		at, err := time.Parse(time.DateOnly, day)
		if err != nil || at.Before(from.UTC().Truncate(24*time.Hour)) || !at.Before(to.UTC()) {
			continue
		}
		row(jobID, at).BytesTransferred += bytes
	}
	if err := ds.Err(); err != nil {
		return u, err
	}
	if err := q.usageHistory(ctx, workspaceID, from, to, row); err != nil {
		return u, fmt.Errorf("usage: %w", err)
	}
	u.Rows = make([]farm.UsageRow, 0, len(rows))
	for _, r := range rows {
		u.Rows = append(u.Rows, *r)
		u.Total.Add(*r)
	}
	sort.Slice(u.Rows, func(i, j int) bool {
		if u.Rows[i].Day != u.Rows[j].Day {
			return u.Rows[i].Day < u.Rows[j].Day
		}
		return u.Rows[i].JobID < u.Rows[j].JobID
	})
	return u, nil
}
