package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// Job control: frames queued again by a resume or a retry, and the
// record the farm keeps of render nodes that fail (job_workers,
// worker_health; see migrations 0011).

// queuedAgainFrom are the statuses a frame is queued again from by a
// resume or a retry: every one but rendering, which a holder still
// works on.
var queuedAgainFrom = []farm.FrameStatus{farm.FrameQueued, farm.FrameCompleted, farm.FrameFailed, farm.FrameCanceled}

// QueueFrame records that a frame of a job is rendered by the task
// f.TaskID: a new frame row, or an existing frame of the job queued
// again (a resume, a retry), which keeps its attempts, worker and last
// error, and has no image until it completes anew. Its render seconds
// start again from none: they were charged to the chunk that rendered
// them, and the new chunk is charged only for what it renders
// (FinishTask). A frame that a holder renders right now is not taken from
// it: ErrConflict.
func (q *Queries) QueueFrame(ctx context.Context, f Frame) error {
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(queuedAgainFrom)), ", ")
	args := []any{f.JobID, f.Frame, f.TaskID, farm.FrameQueued, f.Worker, f.RenderSeconds, f.Attempts, "", 0, f.Error, f.UpdatedAt.UTC()}
	for _, s := range queuedAgainFrom {
		args = append(args, s)
	}
	res, err := q.exec(ctx, `INSERT INTO frames (`+frameColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (job_id, frame) DO UPDATE SET task_id = excluded.task_id, status = excluded.status,
			object_key = '', size_bytes = 0, render_seconds = 0, updated_at = excluded.updated_at
		WHERE frames.status IN (`+marks+`)`, args...)
	if err != nil {
		return fmt.Errorf("queue frame %d: %w", f.Frame, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("frame %d of job %s is being rendered and cannot be queued again: %w", f.Frame, f.JobID, ErrConflict)
	}
	return nil
}

// ForgetFrameFiles removes the record of the files the given frames of a
// job made, as a retry queues them again: each frame records its files
// anew when it completes. The objects themselves are the caller's to
// remove, in the same transaction (the retry queues their removal).
func (q *Queries) ForgetFrameFiles(ctx context.Context, jobID string, frames []int) error {
	if len(frames) == 0 {
		return nil
	}
	if _, err := q.exec(ctx, `DELETE FROM frame_outputs WHERE job_id = ? AND `+q.dialect.oneOf("frame"), jobID, list(q.dialect, frames)); err != nil {
		return fmt.Errorf("forget the files of %d frames: %w", len(frames), err)
	}
	return nil
}

// MoveUnfinishedFramesOfJob sends a job's rendering frames back to the
// queue, as a suspend stops their chunks: they render again on resume.
func (q *Queries) MoveUnfinishedFramesOfJob(ctx context.Context, jobID string) error {
	_, err := q.exec(ctx, `UPDATE frames SET status = ?, updated_at = ? WHERE job_id = ? AND status = ?`,
		farm.FrameQueued, now(), jobID, farm.FrameRendering)
	if err != nil {
		return fmt.Errorf("queue the rendering frames of job %s again: %w", jobID, err)
	}
	return nil
}

// HeldFrames lists the frames of a job that no task renders yet: the
// frames held back behind a job's scout frames until it is resumed.
func (q *Queries) HeldFrames(ctx context.Context, jobID string) ([]int, error) {
	rows, err := q.query(ctx, `SELECT frame FROM frames WHERE job_id = ? AND task_id = '' ORDER BY frame`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list held frames of job %s: %w", jobID, err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var f int
		if err := rows.Scan(&f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// RenderingJobsThrough lists the rendering jobs none of whose chunks or
// merges is left to do (waiting, queued or running): jobs that should
// have moved on to finalizing or been suspended for their scout frames
// (see engine.SettleRendering), and were not, as the process that ended
// their last chunk died before it could move them.
func (q *Queries) RenderingJobsThrough(ctx context.Context) ([]string, error) {
	ids, err := q.queryStrings(ctx, `SELECT j.id FROM jobs j WHERE j.status = ?
		AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.kind IN (?, ?) AND t.status IN (?, ?, ?))
		ORDER BY j.id`,
		farm.StatusRendering, TaskRender, TaskMerge, TaskWaiting, TaskQueued, TaskRunning)
	if err != nil {
		return nil, fmt.Errorf("list rendering jobs whose chunks are through: %w", err)
	}
	return ids, nil
}

// UnfinishedTasks counts a job's tasks of kind that are not over: waiting
// for a slot (a chunk not yet dispatched, or in its retry wait), queued
// or running.
func (q *Queries) UnfinishedTasks(ctx context.Context, jobID string, kind TaskKind) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM tasks WHERE job_id = ? AND kind = ? AND status IN (?, ?, ?)`,
		jobID, kind, TaskWaiting, TaskQueued, TaskRunning).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count unfinished tasks of job %s: %w", jobID, err)
	}
	return n, nil
}

// NextChunk is the number the job's next chunk task gets: chunks queued
// by a resume or a retry are numbered after the job's earlier ones.
func (q *Queries) NextChunk(ctx context.Context, jobID string) (int, error) {
	var n sql.NullInt64
	err := q.queryRow(ctx, `SELECT MAX(chunk) FROM tasks WHERE job_id = ? AND kind = ?`, jobID, TaskRender).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("number the chunks of job %s: %w", jobID, err)
	}
	if !n.Valid {
		return 0, nil
	}
	return int(n.Int64) + 1, nil
}

// mayTakeCondition is farm.MayTake in SQL, for a worker name (the first
// and second arguments) and a job id (the third): the worker is not sick,
// nor blocked on the job. A query that hands out a job's chunks adds it
// to its WHERE clause.
const mayTakeCondition = `NOT EXISTS (SELECT 1 FROM worker_health h WHERE h.name = ? AND h.sick_since IS NOT NULL)
	AND NOT EXISTS (SELECT 1 FROM job_workers b WHERE b.worker_name = ? AND b.job_id = ? AND b.blocked_at IS NOT NULL)`

// Standing reads what the farm holds against the render node named
// worker for jobID (any job's chunks when jobID is ""): farm.MayTake's
// data.
func (q *Queries) Standing(ctx context.Context, worker, jobID string) (farm.WorkerStanding, error) {
	var s farm.WorkerStanding
	err := q.queryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM worker_health WHERE name = ? AND sick_since IS NOT NULL),
			EXISTS (SELECT 1 FROM job_workers WHERE worker_name = ? AND job_id = ? AND blocked_at IS NOT NULL)`,
		worker, worker, jobID).Scan(&s.Sick, &s.BlockedOnJob)
	if err != nil {
		return s, fmt.Errorf("read the standing of worker %s: %w", worker, err)
	}
	return s, nil
}

// MayTake reports whether the render node named worker may take a task
// of jobID: farm.MayTake, read in one statement.
func (q *Queries) MayTake(ctx context.Context, worker, jobID string) (bool, error) {
	var ok bool
	err := q.queryRow(ctx, `SELECT CASE WHEN `+mayTakeCondition+` THEN 1 ELSE 0 END`, worker, worker, jobID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("may worker %s take job %s: %w", worker, jobID, err)
	}
	return ok, nil
}

// ChunkFailure is what the farm learns from a chunk that failed on a
// render node: CountChunkFailure's answer.
type ChunkFailure struct {
	// JobFailures is how many of the job's chunks failed, on any node.
	JobFailures int
	// WorkerFailures is how many failed on this node.
	WorkerFailures int
}

// CountFailureOnce marks, in the caller's transaction, which has locked
// the task, that the failure of the chunk's attempt at generation is
// being counted (CountChunkFailure), and answers false if it was already:
// a count tried again after its commit went through and its answer was
// lost. attempt tells apart a generation's attempts, which River runs
// again after a passing failure.
func (q *Queries) CountFailureOnce(ctx context.Context, taskID string, generation, attempt int) (bool, error) {
	key := strconv.Itoa(generation) + "." + strconv.Itoa(attempt)
	res, err := q.exec(ctx, `UPDATE tasks SET counted_failure = ? WHERE id = ? AND counted_failure <> ?`, key, taskID, key)
	if err != nil {
		return false, fmt.Errorf("mark the failure of task %s's attempt %s counted: %w", taskID, key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// CountChunkFailure records, in the caller's transaction, that one of a
// job's chunks failed on the render node named worker with message.
func (q *Queries) CountChunkFailure(ctx context.Context, jobID, worker, message string) (ChunkFailure, error) {
	var cf ChunkFailure
	_, err := q.exec(ctx, `INSERT INTO job_workers (job_id, worker_name, failed_chunks, last_error) VALUES (?, ?, 1, ?)
		ON CONFLICT (job_id, worker_name) DO UPDATE SET failed_chunks = job_workers.failed_chunks + 1, last_error = excluded.last_error`,
		jobID, worker, message)
	if err != nil {
		return cf, fmt.Errorf("count a failed chunk of job %s on %s: %w", jobID, worker, err)
	}
	err = q.queryRow(ctx, `SELECT COALESCE(SUM(failed_chunks), 0), COALESCE(SUM(CASE WHEN worker_name = ? THEN failed_chunks ELSE 0 END), 0)
		FROM job_workers WHERE job_id = ?`, worker, jobID).Scan(&cf.JobFailures, &cf.WorkerFailures)
	if err != nil {
		return cf, fmt.Errorf("count the failed chunks of job %s: %w", jobID, err)
	}
	return cf, nil
}

// JobChunkFailures counts the job's chunks that failed on the render
// nodes not blocked on it: what --max-failed-chunks bounds. A blocked
// node's failures were its own fault, not the job's.
func (q *Queries) JobChunkFailures(ctx context.Context, jobID string) (int, error) {
	var n int
	if err := q.queryRow(ctx, `SELECT COALESCE(SUM(failed_chunks), 0) FROM job_workers WHERE job_id = ? AND blocked_at IS NULL`, jobID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the failed chunks of job %s: %w", jobID, err)
	}
	return n, nil
}

// BlockWorker records that the render node named worker takes no more of
// the job's chunks.
func (q *Queries) BlockWorker(ctx context.Context, jobID, worker string) error {
	_, err := q.exec(ctx, `UPDATE job_workers SET blocked_at = ? WHERE job_id = ? AND worker_name = ? AND blocked_at IS NULL`, now(), jobID, worker)
	if err != nil {
		return fmt.Errorf("block worker %s on job %s: %w", worker, jobID, err)
	}
	return nil
}

// BlockedWorkers lists, by name, the render nodes blocked on a job.
func (q *Queries) BlockedWorkers(ctx context.Context, jobID string) ([]string, error) {
	names, err := q.queryStrings(ctx, `SELECT worker_name FROM job_workers WHERE job_id = ? AND blocked_at IS NOT NULL ORDER BY worker_name`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list the workers blocked on job %s: %w", jobID, err)
	}
	return names, nil
}

// ForgetJobFailures clears a job's record with every render node, as a
// retry starts it afresh: no node is blocked on it, and none of its
// chunks has failed.
func (q *Queries) ForgetJobFailures(ctx context.Context, jobID string) error {
	if _, err := q.exec(ctx, `DELETE FROM job_workers WHERE job_id = ?`, jobID); err != nil {
		return fmt.Errorf("forget the failures of job %s: %w", jobID, err)
	}
	return nil
}

// TakersOf lists, by name, the live render nodes other than worker that
// may take a chunk of the job on its Blender blenderVersion: their run's
// heartbeat is newer than liveSince and they are not stopping or stopped
// (a stopping node takes nothing new), they run that Blender ("" for
// any), and farm.MayTake holds for them.
func (q *Queries) TakersOf(ctx context.Context, jobID, worker, blenderVersion string, liveSince time.Time) ([]string, error) {
	rows, err := q.query(ctx, `SELECT DISTINCT w.name, w.blender_versions FROM workers w
		WHERE w.heartbeat_at >= ? AND w.state NOT IN (?, ?, ?) AND w.name <> ?
		AND NOT EXISTS (SELECT 1 FROM worker_health h WHERE h.name = w.name AND h.sick_since IS NOT NULL)
		AND NOT EXISTS (SELECT 1 FROM job_workers b WHERE b.worker_name = w.name AND b.job_id = ? AND b.blocked_at IS NOT NULL)
		ORDER BY w.name`, liveSince.UTC(), WorkerGone, WorkerStopping, WorkerStopped, worker, jobID)
	if err != nil {
		return nil, fmt.Errorf("list the workers that may take job %s: %w", jobID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, versions string
		if err := rows.Scan(&name, &versions); err != nil {
			return nil, err
		}
		if blenderVersion == "" || slices.Contains(splitVersions(versions), blenderVersion) {
			out = append(out, name)
		}
	}
	return out, rows.Err()
}

// Taker is a live render node that may take the chunks of a job it is
// not blocked on (TakersOf, for every job at once): its name and the
// Blender versions it runs.
type Taker struct {
	Name            string
	BlenderVersions []string
}

// Takes reports whether the node may take a chunk of a job on Blender
// blenderVersion ("" for any) of which blocked are the nodes blocked on
// it: TakersOf's rule.
func (t Taker) Takes(blenderVersion string, blocked []string) bool {
	return !slices.Contains(blocked, t.Name) && (blenderVersion == "" || slices.Contains(t.BlenderVersions, blenderVersion))
}

// LiveTakers lists, by name, the live render nodes that may take chunks
// of jobs they are not blocked on: their run's heartbeat is newer than
// liveSince, they are not stopping or stopped, and they are not sick.
func (q *Queries) LiveTakers(ctx context.Context, liveSince time.Time) ([]Taker, error) {
	rows, err := q.query(ctx, `SELECT DISTINCT w.name, w.blender_versions FROM workers w
		WHERE w.heartbeat_at >= ? AND w.state NOT IN (?, ?, ?) AND w.name <> ''
		AND NOT EXISTS (SELECT 1 FROM worker_health h WHERE h.name = w.name AND h.sick_since IS NOT NULL)
		ORDER BY w.name`, liveSince.UTC(), WorkerGone, WorkerStopping, WorkerStopped)
	if err != nil {
		return nil, fmt.Errorf("list the workers that may take chunks: %w", err)
	}
	defer rows.Close()
	var out []Taker
	for rows.Next() {
		var name, versions string
		if err := rows.Scan(&name, &versions); err != nil {
			return nil, err
		}
		out = append(out, Taker{Name: name, BlenderVersions: splitVersions(versions)})
	}
	return out, rows.Err()
}

// WorkerHealth is a render node's health, by name.
type WorkerHealth struct {
	Name string
	// FailedJobs are the jobs whose chunks failed on the node since its
	// last chunk that succeeded, oldest first.
	FailedJobs []string
	// SickSince is when the node was found sick; zero when it is not.
	SickSince  time.Time
	SickReason string
}

// Sick reports whether the node takes nothing until it is enabled again.
func (h WorkerHealth) Sick() bool { return !h.SickSince.IsZero() }

// ChunkFailedOn adds jobID to the jobs whose chunks failed on the render
// node named worker since its last success, and marks the node sick when
// they reach farm.SickAfterJobs (with why, naming them). It answers the
// node's health as it now is.
func (q *Queries) ChunkFailedOn(ctx context.Context, worker, jobID string) (WorkerHealth, error) {
	h, err := q.workerHealth(ctx, worker)
	if err != nil {
		return h, err
	}
	if !slices.Contains(h.FailedJobs, jobID) {
		h.FailedJobs = append(h.FailedJobs, jobID)
	}
	var sickSince any
	if h.Sick() {
		sickSince = h.SickSince.UTC()
	} else if len(h.FailedJobs) >= farm.SickAfterJobs {
		h.SickSince = now()
		sickSince = h.SickSince
		h.SickReason = fmt.Sprintf("chunks of %d different jobs failed on it in a row, none succeeding between (jobs %s)",
			len(h.FailedJobs), strings.Join(h.FailedJobs, ", "))
	}
	_, err = q.exec(ctx, `INSERT INTO worker_health (name, failed_jobs, sick_since, sick_reason) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET failed_jobs = excluded.failed_jobs, sick_since = excluded.sick_since, sick_reason = excluded.sick_reason`,
		worker, strings.Join(h.FailedJobs, ","), sickSince, h.SickReason)
	if err != nil {
		return h, fmt.Errorf("record a failed chunk on worker %s: %w", worker, err)
	}
	return h, nil
}

// ChunkSucceededOn ends the render node's run of failures: the jobs that
// failed on it before no longer count toward its being sick.
func (q *Queries) ChunkSucceededOn(ctx context.Context, worker string) error {
	_, err := q.exec(ctx, `UPDATE worker_health SET failed_jobs = '' WHERE name = ? AND failed_jobs <> ''`, worker)
	if err != nil {
		return fmt.Errorf("record a chunk done on worker %s: %w", worker, err)
	}
	return nil
}

// AbsolveWorkers takes a job that failed for its own fault (its file
// fails on every node) off every render node's run of failures: those
// failures were not the nodes'.
func (q *Queries) AbsolveWorkers(ctx context.Context, jobID string) error {
	rows, err := q.query(ctx, `SELECT name, failed_jobs FROM worker_health WHERE failed_jobs LIKE ?`, "%"+jobID+"%")
	if err != nil {
		return fmt.Errorf("list the workers job %s failed on: %w", jobID, err)
	}
	lists := map[string][]string{}
	for rows.Next() {
		var name, jobs string
		if err := rows.Scan(&name, &jobs); err != nil {
			rows.Close()
			return err
		}
		lists[name] = splitList(jobs)
	}
	if err := errorsOf(rows); err != nil {
		return err
	}
	// In the order of their names: two jobs failing at once on the same
	// nodes would otherwise each hold one node's row while waiting for the
	// other's.
	for _, name := range slices.Sorted(maps.Keys(lists)) {
		jobs := slices.DeleteFunc(lists[name], func(j string) bool { return j == jobID })
		if _, err := q.exec(ctx, `UPDATE worker_health SET failed_jobs = ? WHERE name = ?`, strings.Join(jobs, ","), name); err != nil {
			return fmt.Errorf("absolve worker %s of job %s: %w", name, jobID, err)
		}
	}
	return nil
}

// EnableWorker makes a sick render node take work again, with a clean
// run: `renderfarm workers enable NAME`. It answers ErrNotFound when the
// farm never heard of a node of that name.
func (q *Queries) EnableWorker(ctx context.Context, worker string) (wasSick bool, err error) {
	var known int
	if err := q.queryRow(ctx, `SELECT COUNT(*) FROM workers WHERE name = ?`, worker).Scan(&known); err != nil {
		return false, fmt.Errorf("find worker %s: %w", worker, err)
	}
	h, err := q.workerHealth(ctx, worker)
	if err != nil {
		return false, err
	}
	if known == 0 && h.FailedJobs == nil && !h.Sick() {
		return false, ErrNotFound
	}
	if _, err := q.exec(ctx, `UPDATE worker_health SET failed_jobs = '', sick_since = NULL, sick_reason = '' WHERE name = ?`, worker); err != nil {
		return false, fmt.Errorf("enable worker %s: %w", worker, err)
	}
	return h.Sick(), nil
}

// SickWorkerNames lists the names of the render nodes that are sick, for
// /metrics.
func (q *Queries) SickWorkerNames(ctx context.Context) ([]string, error) {
	sick, err := q.SickWorkers(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(sick))
	for _, h := range sick {
		names = append(names, h.Name)
	}
	return names, nil
}

// SickWorkers lists the render nodes that are sick, by name.
func (q *Queries) SickWorkers(ctx context.Context) ([]WorkerHealth, error) {
	rows, err := q.query(ctx, `SELECT name, failed_jobs, sick_since, sick_reason FROM worker_health WHERE sick_since IS NOT NULL ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list sick workers: %w", err)
	}
	defer rows.Close()
	var out []WorkerHealth
	for rows.Next() {
		h, err := scanHealth(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func (q *Queries) workerHealth(ctx context.Context, worker string) (WorkerHealth, error) {
	h, err := scanHealth(q.queryRow(ctx, `SELECT name, failed_jobs, sick_since, sick_reason FROM worker_health WHERE name = ?`, worker))
	if errors.Is(err, sql.ErrNoRows) {
		return WorkerHealth{Name: worker}, nil
	}
	if err != nil {
		return h, fmt.Errorf("read the health of worker %s: %w", worker, err)
	}
	return h, nil
}

func scanHealth(row rowScanner) (WorkerHealth, error) {
	var h WorkerHealth
	var jobs string
	var since sql.NullTime
	if err := row.Scan(&h.Name, &jobs, &since, &h.SickReason); err != nil {
		return h, err
	}
	h.FailedJobs = splitList(jobs)
	if since.Valid {
		h.SickSince = since.Time.UTC()
	}
	return h, nil
}

// splitList reads a comma-separated column.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// errorsOf closes rows and answers the error that ended them, if any.
func errorsOf(rows *sql.Rows) error {
	err := rows.Err()
	rows.Close()
	return err
}
