package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
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
// job's downloads of the day. A download is counted once it ends, and
// may end after its job was removed from the history (a large file read
// from an object already open): its bytes then go to what the job's
// usage keeps by day (usage_history), whose rows name its workspace. A
// job of which nothing is kept, or never made, counts nothing.
//
// On PostgreSQL the job's row is read FOR KEY SHARE, which waits only
// for a transaction that deletes it or holds it FOR UPDATE, as a removal
// from the history does from its start (RemoveJobFromHistory): one that
// has already read and removed the job's downloads, and not yet
// committed, would otherwise leave a row added meanwhile in downloads for
// good, of a job no longer there. Once that removal commits, the job is
// gone and the bytes go to usage_history. The transactions that only
// move a job on (LockJob's FOR NO KEY UPDATE) do not hold a download's
// count up, nor does it hold them.
func (q *Queries) RecordDownload(ctx context.Context, jobID string, bytes int64) error {
	day := now().Format(time.DateOnly)
	res, err := q.exec(ctx, `INSERT INTO downloads (workspace_id, job_id, day, bytes)
			SELECT j.workspace_id, j.id, ?, ? FROM jobs j WHERE j.id = ?`+q.dialect.rowLock("FOR KEY SHARE")+`
		ON CONFLICT (job_id, day) DO UPDATE SET bytes = downloads.bytes + excluded.bytes`,
		day, bytes, jobID)
	if err != nil {
		return fmt.Errorf("record download: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	_, err = q.exec(ctx, `INSERT INTO usage_history (workspace_id, job_id, day, bytes_downloaded)
			SELECT h.workspace_id, h.job_id, ?, ? FROM usage_history h WHERE h.job_id = ? LIMIT 1
		ON CONFLICT (job_id, day) DO UPDATE SET bytes_downloaded = usage_history.bytes_downloaded + excluded.bytes_downloaded`,
		day, bytes, jobID)
	if err != nil {
		return fmt.Errorf("record download of job %s, removed from the history: %w", jobID, err)
	}
	return nil
}

// endedJobFramesMargin is how long before a usage period a job may have
// ended and still have a frame completed in the period counted: frames
// are stamped by the worker that stored them, jobs by the process that
// ended them.
const endedJobFramesMargin = 24 * time.Hour

// WorkspaceUsage reports what workspaceID used in [from, to), grouped by
// day (UTC) or by job; workspaceID "" sums every workspace's. A row's
// amounts are those of farm.UsageRow, and the total is their sum.
//
// The database sums: one statement answers a row per day or job, however
// many chunks, frames and jobs the period holds (a month of a busy
// workspace is hundreds of thousands of them), each source's rows
// grouped by the same key and added up across the sources.
func (q *Queries) WorkspaceUsage(ctx context.Context, workspaceID string, from, to time.Time, groupBy string) (farm.Usage, error) {
	from, to = from.UTC(), to.UTC()
	u := farm.Usage{From: from, To: to, GroupBy: groupBy}
	byDay := groupBy == farm.UsageByDay
	// key is what a source's row is grouped by: its job, or the UTC day
	// of when it happened.
	key := func(job, at string) string {
		if byDay {
			return q.dialect.utcDay(at)
		}
		return job
	}
	scope := func(column string) string {
		if workspaceID == "" {
			return ""
		}
		return " AND " + column + " = ?"
	}
	var args []any
	period := func() {
		args = append(args, from, to)
		if workspaceID != "" {
			args = append(args, workspaceID)
		}
	}
	// Downloads are kept by day (YYYY-MM-DD, UTC): a period counts those
	// of every day it touches, from from's day to the day of its last
	// instant (to itself is not in it).
	firstDay, lastDay := from.Format(time.DateOnly), to.Add(-time.Nanosecond).Format(time.DateOnly)
	// Each source gives its rows as (key, worker-seconds, GPU-seconds,
	// frames, bytes stored, bytes served).
	var sources []string
	// Chunks ended in the period (the tasks_finished index, for one
	// workspace).
	sources = append(sources, `SELECT `+key("t.job_id", "t.finished_at")+` AS k,
			CASE WHEN t.worker_seconds > 0 THEN t.worker_seconds ELSE 0 END AS cpu,
			CASE WHEN t.gpu_seconds > 0 THEN t.gpu_seconds ELSE 0 END AS gpu,
			0 AS frames, 0 AS stored, 0 AS served
		FROM tasks t
		WHERE t.finished_at >= ? AND t.finished_at < ? AND (t.worker_seconds > 0 OR t.gpu_seconds > 0)`+scope("t.workspace_id"))
	period()
	// Frames completed in the period, and the bytes their files hold.
	// Only the frames of jobs that could have completed one in it are
	// read: made before its end, and not ended long before it starts (a
	// job's row changes as it ends, after its last frame; the margin
	// covers a frame stored a moment after its job was canceled, and the
	// clocks of the processes that wrote them). A report of the last
	// month then reads the frames of that month's jobs, not those of
	// every job the workspace ever ran.
	sources = append(sources, `SELECT `+key("f.job_id", "f.updated_at")+`, 0, 0, 1,
			CASE WHEN j.output_deleted THEN 0 ELSE CAST(COALESCE((SELECT SUM(o.size_bytes) FROM frame_outputs o
				WHERE o.job_id = f.job_id AND o.frame = f.frame), f.size_bytes) AS BIGINT) END,
			0
		FROM jobs j JOIN frames f ON f.job_id = j.id
		WHERE f.updated_at >= ? AND f.updated_at < ? AND f.status = '`+string(farm.FrameCompleted)+`'`+scope("j.workspace_id")+`
			AND j.created_at < ? AND (j.status NOT IN `+endedStatuses+` OR j.updated_at >= ?)`)
	period()
	args = append(args, to, from.Add(-endedJobFramesMargin))
	// Jobs made in the period: their inputs, zips, preview videos and
	// logs (an upload that never became a job belongs to no job, and is in
	// the storage total only).
	sources = append(sources, `SELECT `+key("j.id", "j.created_at")+`, 0, 0, 0,
			CASE WHEN j.output_deleted THEN 0 ELSE COALESCE(up.size_bytes, 0) + j.files_bytes + j.log_bytes
				+ COALESCE((SELECT SUM(lt.log_bytes) FROM tasks lt WHERE lt.job_id = j.id), 0) END,
			0
		FROM jobs j LEFT JOIN uploads up ON up.job_id = j.id
		WHERE j.created_at >= ? AND j.created_at < ?`+scope("j.workspace_id"))
	period()
	// Downloads served in the period's days.
	day := "d.job_id"
	if byDay {
		day = "d.day"
	}
	sources = append(sources, `SELECT `+day+`, 0, 0, 0, 0, d.bytes
		FROM downloads d
		WHERE d.day >= ? AND d.day <= ?`+scope("d.workspace_id"))
	args = append(args, firstDay, lastDay)
	if workspaceID != "" {
		args = append(args, workspaceID)
	}
	// What the jobs removed from the history used (--history-retention),
	// kept by day: counted, like downloads, on every day the period
	// touches.
	kept := "h.job_id"
	if byDay {
		kept = "h.day"
	}
	sources = append(sources, `SELECT `+kept+`, h.render_seconds, h.gpu_seconds, h.frames, 0, h.bytes_downloaded
		FROM usage_history h
		WHERE h.day >= ? AND h.day <= ?`+scope("h.workspace_id"))
	args = append(args, firstDay, lastDay)
	if workspaceID != "" {
		args = append(args, workspaceID)
	}
	rs, err := q.query(ctx, `SELECT k, SUM(cpu), SUM(gpu), CAST(SUM(frames) AS BIGINT), CAST(SUM(stored) AS BIGINT), CAST(SUM(served) AS BIGINT)
		FROM (`+strings.Join(sources, "\n\t\tUNION ALL ")+`) AS used
		GROUP BY k`, args...)
	if err != nil {
		return u, fmt.Errorf("usage: %w", err)
	}
	defer rs.Close()
	u.Rows = []farm.UsageRow{}
	for rs.Next() {
		var k string
		var r farm.UsageRow
		if err := rs.Scan(&k, &r.RenderSeconds, &r.GPUSeconds, &r.Frames, &r.BytesStored, &r.BytesTransferred); err != nil {
			return u, fmt.Errorf("usage: %w", err)
		}
		if byDay {
			r.Day = k
		} else {
			r.JobID = k
		}
		u.Rows = append(u.Rows, r)
		u.Total.Add(r)
	}
	if err := rs.Err(); err != nil {
		return u, fmt.Errorf("usage: %w", err)
	}
	// Sorted here, byte by byte: PostgreSQL would sort by its collation.
	sort.Slice(u.Rows, func(i, j int) bool {
		if u.Rows[i].Day != u.Rows[j].Day {
			return u.Rows[i].Day < u.Rows[j].Day
		}
		return u.Rows[i].JobID < u.Rows[j].JobID
	})
	return u, nil
}
