package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/renderfarm/renderfarm/internal/farm"
)

const jobColumns = `id, workspace_id, user_id, slug, status, created_at, updated_at, normalized_seconds,
	failed_reason, requested_config, final_config, analysis, analysis_id, scene_file, output_deleted, files, suspended_reason, priority`

// InsertJob stores a new job.
func (q *Queries) InsertJob(ctx context.Context, j *farm.Job) error {
	cols, err := jobValues(j)
	if err != nil {
		return err
	}
	_, err = q.exec(ctx, `INSERT INTO jobs (`+jobColumns+`, files_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		append(cols, filesBytes(j.Files))...)
	if err != nil {
		return fmt.Errorf("store job: %w", err)
	}
	return nil
}

// UpdateJob writes every changeable column of a job and stamps updated_at.
func (q *Queries) UpdateJob(ctx context.Context, j *farm.Job) error {
	j.UpdatedAt = now()
	cols, err := jobValues(j)
	if err != nil {
		return err
	}
	// cols[4:] are status onwards; id goes last for the WHERE.
	args := append(cols[4:], filesBytes(j.Files), j.ID)
	res, err := q.exec(ctx, `UPDATE jobs SET status = ?, created_at = ?, updated_at = ?, normalized_seconds = ?,
		failed_reason = ?, requested_config = ?, final_config = ?, analysis = ?, analysis_id = ?, scene_file = ?, output_deleted = ?, files = ?, suspended_reason = ?, priority = ?,
		files_bytes = ?
		WHERE id = ?`, args...)
	if err != nil {
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RecordSceneFile records what the node that routed a job's validation to
// another Blender read of its file (the header's version above all),
// while the job still validates: should that Blender's nodes all leave,
// the reaper routes the validation again by the file's version without
// reading the file. Only the scene_file column is written; a job that
// moved on is left as it is.
func (q *Queries) RecordSceneFile(ctx context.Context, jobID string, sf *farm.SceneFile) error {
	scene, err := jsonOrNull(sf)
	if err != nil {
		return err
	}
	if _, err := q.exec(ctx, `UPDATE jobs SET scene_file = ? WHERE id = ? AND status = ?`, scene, jobID, farm.StatusValidating); err != nil {
		return fmt.Errorf("record the scene file of job %s: %w", jobID, err)
	}
	return nil
}

// JobFilesDeleted reports whether job id's files were deleted (DELETE
// /jobs/{id}, job.Output.IsDeletedForClient): one column of the job's
// row, for a render node that asks it once a chunk, after storing the
// chunk's log. ErrNotFound for no such job.
func (q *Queries) JobFilesDeleted(ctx context.Context, id string) (bool, error) {
	var deleted bool
	err := q.queryRow(ctx, `SELECT output_deleted FROM jobs WHERE id = ?`, id).Scan(&deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("read whether job %s's files were deleted: %w", id, err)
	}
	return deleted, nil
}

// GetJob finds a job of a workspace. An empty workspaceID finds any job,
// which only the farm's own workers may do.
func (q *Queries) GetJob(ctx context.Context, workspaceID, id string) (*farm.Job, error) {
	return q.getJob(ctx, workspaceID, id, "")
}

// LockJob is GetJob for a transaction that will write the job back: the
// job's row stays locked until the transaction ends, so another
// transaction that locks it waits and then reads what this one wrote. On
// PostgreSQL, without it, two transactions could both read the job,
// decide, and the later write would silently undo the earlier one (a
// cancel overwritten by a chunk that moved the job to rendering, or two
// last chunks both queuing the finalize work). Take it before locking or
// writing any of the job's tasks, so that two transactions never each
// wait for the other (a deadlock, which PostgreSQL breaks by failing one).
//
// The lock is FOR NO KEY UPDATE: it excludes every other LockJob and
// write of the job, but not the foreign key checks of rows being added
// to the job (its tasks and frames), which need not wait.
func (q *Queries) LockJob(ctx context.Context, workspaceID, id string) (*farm.Job, error) {
	return q.getJob(ctx, workspaceID, id, q.dialect.rowLock("FOR NO KEY UPDATE"))
}

// jobTurnLock is the first key of the two-key advisory locks, one a job
// (the second a hash of its ID), that FirstToMoveJob takes.
const jobTurnLock int32 = 0x6a6f6273 // "jobs"

// FirstToMoveJob elects, among the transactions that would each move
// the same job on at once, the one that does: the first chunks of a
// booting job, all starting together, each of which would move it to
// rendering. It answers true to the first, which then locks the job
// (LockJob) and moves it. The others wait for that one to end, all
// together, and answer false: they read the job as it left it, without
// its lock, and take the lock only if it is still to be moved (the
// first failed). Taking the job's lock each, they would instead take it
// in turn, each waiting for the one before it to end (PostgreSQL keeps a
// row's lock to the end of a transaction even where the row, read again
// once the lock was free, no longer matched what was asked for). On
// SQLite, where transactions run one at a time, every one is first.
func (tx *Tx) FirstToMoveJob(ctx context.Context, jobID string) (bool, error) {
	if tx.dialect != DialectPostgres {
		return true, nil
	}
	var first bool
	if err := tx.queryRow(ctx, `SELECT pg_try_advisory_xact_lock(CAST(? AS INTEGER), hashtext(?))`, jobTurnLock, jobID).Scan(&first); err != nil {
		return false, fmt.Errorf("take job %s's turn: %w", jobID, err)
	}
	if first {
		return true, nil
	}
	if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock_shared(CAST(? AS INTEGER), hashtext(?))`, jobTurnLock, jobID); err != nil {
		return false, fmt.Errorf("wait for job %s's turn: %w", jobID, err)
	}
	return false, nil
}

func (q *Queries) getJob(ctx context.Context, workspaceID, id, lock string) (*farm.Job, error) {
	query := `SELECT ` + jobColumns + ` FROM jobs WHERE id = ?`
	args := []any{id}
	if workspaceID != "" {
		query += ` AND workspace_id = ?`
		args = append(args, workspaceID)
	}
	j, err := scanJob(q.queryRow(ctx, query+lock, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return j, err
}

// ListJobs returns one page of a workspace's jobs, newest first, and how
// many there are in all.
func (q *Queries) ListJobs(ctx context.Context, workspaceID string, status farm.Status, limit, offset int) ([]farm.Job, int, error) {
	where := ` WHERE workspace_id = ?`
	args := []any{workspaceID}
	if status != "" {
		where += ` AND status = ?`
		args = append(args, status)
	}
	var total int
	if err := q.queryRow(ctx, `SELECT COUNT(*) FROM jobs`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count jobs: %w", err)
	}
	rows, err := q.query(ctx, `SELECT `+jobColumns+` FROM jobs`+where+` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, append(args, limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	jobs := []farm.Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, 0, err
		}
		jobs = append(jobs, *j)
	}
	return jobs, total, rows.Err()
}

// filesBytes is what a job's finalizing stored besides its frames (the
// zips and the preview video): jobs.files_bytes, which the workspace's
// storage counts.
func filesBytes(f farm.JobFiles) int64 {
	return f.FramesZipSize + f.CompositeNodesZipSize + f.VideoSize
}

// endedJobStatuses are the statuses of a job that has ended
// (farm.Status.IsFinal), the arguments of a status IN (?, ?, ?).
var endedJobStatuses = []any{farm.StatusCompleted, farm.StatusFailed, farm.StatusCanceled}

// AddTaskLogBytes adds a Blender log of size bytes, kept for task taskID
// under its job's logs/ prefix, to what the job's files hold. It is
// counted on the task's row (tasks.log_bytes), not the job's: the job's
// row is one that each of its chunks would otherwise lock in turn.
//
// Once the job has ended, the log is not added here: CountJobLogs counts
// an ended job's logs from what its logs/ prefix holds, and a size added
// after it had (an attempt that ended after its job, a holder given up
// on) would count the log twice. The job is marked to be counted again
// instead, so that a log stored after its last count is counted too.
func (q *Queries) AddTaskLogBytes(ctx context.Context, taskID string, size int64) error {
	res, err := q.exec(ctx, `UPDATE tasks SET log_bytes = log_bytes + ? WHERE id = ?
		AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = tasks.job_id AND j.status IN (?, ?, ?))`,
		append([]any{size, taskID}, endedJobStatuses...)...)
	if err != nil {
		return fmt.Errorf("record a log's size: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	_, err = q.exec(ctx, `UPDATE jobs SET logs_counted_for = NULL, late_logs = late_logs + 1
		WHERE id = (SELECT t.job_id FROM tasks t WHERE t.id = ?) AND status IN (?, ?, ?)`,
		append([]any{taskID}, endedJobStatuses...)...)
	if err != nil {
		return fmt.Errorf("mark an ended job's logs to be counted again: %w", err)
	}
	return nil
}

// JobLogsToCount is a job whose kept logs are to be counted, as
// JobsWithLogsToCount found it.
type JobLogsToCount struct {
	ID string
	// LateLogs is how many of the job's logs had their sizes recorded
	// after it had ended, when it was found (jobs.late_logs). CountJobLogs
	// takes it back, to know whether one was recorded since.
	LateLogs int64
}

// JobsWithLogsToCount lists, in the order of their ids and after the id
// after ("" for the first), up to limit jobs whose kept logs CountJobLogs
// should count: jobs that have ended (completed, failed or canceled) and
// have changed since their logs were last counted. An index holds just
// the jobs not counted as they are (jobs_logs_to_count), so this reads
// neither the farm's many counted jobs nor all of them again for each
// batch.
func (q *Queries) JobsWithLogsToCount(ctx context.Context, after string, limit int) ([]JobLogsToCount, error) {
	rows, err := q.query(ctx, jobsWithLogsToCountQuery, append(append([]any{after}, endedJobStatuses...), limit)...)
	if err != nil {
		return nil, fmt.Errorf("list jobs whose logs are to be counted: %w", err)
	}
	defer rows.Close()
	var jobs []JobLogsToCount
	for rows.Next() {
		var j JobLogsToCount
		if err := rows.Scan(&j.ID, &j.LateLogs); err != nil {
			return nil, fmt.Errorf("list jobs whose logs are to be counted: %w", err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs whose logs are to be counted: %w", err)
	}
	return jobs, nil
}

// jobsWithLogsToCountQuery is JobsWithLogsToCount's: its first term is
// the predicate of the index jobs_logs_to_count (migration 0021) as it is
// written there, which is what lets either database use the index.
const jobsWithLogsToCountQuery = `SELECT id, late_logs FROM jobs WHERE (logs_counted_for IS NULL OR logs_counted_for <> updated_at)
	AND id > ? AND status IN (?, ?, ?) ORDER BY id LIMIT ?`

// CountJobLogs counts the Blender logs of job, found by
// JobsWithLogsToCount and since ended, as listed bytes, what its logs/
// prefix held when listed after it was found, and reports whether it did.
// Each attempt's logs are counted on its task's row (tasks.log_bytes) as
// the attempt ends, while the job has not ended (AddTaskLogBytes); the
// job's own row counts what those miss (a log stored by a node killed
// before its attempt's end was written), never less than nothing.
//
// The count is recorded as made for the job as it is now
// (logs_counted_for), unless a log's size was recorded late since the job
// was found: that log may have been stored after the listing, so the job
// stays to be counted again at the next run. A job that has not ended
// (retried since it was found) is left as it is, and counted once it ends
// again.
func (q *Queries) CountJobLogs(ctx context.Context, job JobLogsToCount, listed int64) (bool, error) {
	counted := `(SELECT CAST(COALESCE(SUM(t.log_bytes), 0) AS BIGINT) FROM tasks t WHERE t.job_id = jobs.id)`
	res, err := q.exec(ctx, `UPDATE jobs SET
			log_bytes = CASE WHEN CAST(? AS BIGINT) > `+counted+` THEN CAST(? AS BIGINT) - `+counted+` ELSE 0 END,
			logs_counted_for = CASE WHEN late_logs = ? THEN updated_at ELSE NULL END
		WHERE id = ? AND status IN (?, ?, ?)`,
		append([]any{listed, listed, job.LateLogs, job.ID}, endedJobStatuses...)...)
	if err != nil {
		return false, fmt.Errorf("count the logs of job %s: %w", job.ID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func jobValues(j *farm.Job) ([]any, error) {
	var files any
	if j.Files != (farm.JobFiles{}) {
		b, err := json.Marshal(j.Files)
		if err != nil {
			return nil, err
		}
		files = string(b)
	}
	failed, err := jsonOrNull(j.FailedReason)
	if err != nil {
		return nil, err
	}
	requested, err := jsonOrNull(j.RequestedConfig)
	if err != nil {
		return nil, err
	}
	final, err := jsonOrNull(j.FinalConfig)
	if err != nil {
		return nil, err
	}
	analysis, err := jsonOrNull(j.Analysis)
	if err != nil {
		return nil, err
	}
	scene, err := jsonOrNull(j.SceneFile)
	if err != nil {
		return nil, err
	}
	var analysisID any
	if j.AnalysisID != nil {
		analysisID = *j.AnalysisID
	}
	return []any{j.ID, j.WorkspaceID, j.UserID, j.Slug, string(j.Status), j.CreatedAt.UTC(), j.UpdatedAt.UTC(), j.NormalizedSeconds,
		failed, requested, final, analysis, analysisID, scene, j.Output.IsDeletedForClient, files, j.SuspendedReason, j.Priority}, nil
}

// jsonOrNull encodes a pointer as JSON text, or NULL when it is nil. It
// writes <, > and & as they are, as the API does, so that a name of them
// takes no more room stored than the API's bounds say (json.Marshal
// would write each as six bytes).
func jsonOrNull[T any](v *T) (any, error) {
	if v == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

func decodeJSON[T any](s sql.NullString, dst **T) error {
	if !s.Valid {
		*dst = nil
		return nil
	}
	v := new(T)
	if err := json.Unmarshal([]byte(s.String), v); err != nil {
		return err
	}
	*dst = v
	return nil
}

type rowScanner interface {
	Scan(dest ...any) error
}

func scanJob(row rowScanner) (*farm.Job, error) {
	var (
		j                                                            farm.Job
		status                                                       string
		failed, requested, final, analysis, analysisID, scene, files sql.NullString
	)
	err := row.Scan(&j.ID, &j.WorkspaceID, &j.UserID, &j.Slug, &status, &j.CreatedAt, &j.UpdatedAt, &j.NormalizedSeconds,
		&failed, &requested, &final, &analysis, &analysisID, &scene, &j.Output.IsDeletedForClient, &files, &j.SuspendedReason, &j.Priority)
	if err != nil {
		return nil, err
	}
	j.Status = farm.Status(status)
	j.CreatedAt, j.UpdatedAt = j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	if analysisID.Valid {
		j.AnalysisID = &analysisID.String
	}
	if err := errors.Join(decodeJSON(failed, &j.FailedReason), decodeJSON(requested, &j.RequestedConfig),
		decodeJSON(final, &j.FinalConfig), decodeJSON(analysis, &j.Analysis), decodeJSON(scene, &j.SceneFile)); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", j.ID, err)
	}
	if j.Analysis != nil && len(analysis.String) > farm.MaxAnalysisBytes {
		// Stored before analyses had bounds: shown within them.
		farm.BoundAnalysis(j.Analysis)
	}
	if files.Valid {
		if err := json.Unmarshal([]byte(files.String), &j.Files); err != nil {
			return nil, fmt.Errorf("decode job %s files: %w", j.ID, err)
		}
	}
	return &j, nil
}
