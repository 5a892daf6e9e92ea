package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TaskKind is what a task does; each kind is carried out by River jobs
// of one kind.
type TaskKind string

// Kinds of task.
const (
	TaskValidate TaskKind = "validate"
	TaskRender   TaskKind = "render"
	TaskFinalize TaskKind = "finalize"
)

// TaskStatus is where a task stands: queued until a worker claims it for
// its current generation, running while held, then done, failed or
// canceled. A running task may be released to queued (a passing failure,
// retried by River under the same generation) or requeued (its holder was
// given up on: a new generation).
//
// A render chunk starts waiting: it has no River job until the dispatcher
// gives it to a worker run (QueueChunks), which makes it queued, on that
// run's own River queue. Requeued, it waits again (ReturnToWaiting).
type TaskStatus string

// Task statuses.
const (
	TaskWaiting  TaskStatus = "waiting"
	TaskQueued   TaskStatus = "queued"
	TaskRunning  TaskStatus = "running"
	TaskDone     TaskStatus = "done"
	TaskCanceled TaskStatus = "canceled"
	TaskFailed   TaskStatus = "failed"
)

// Task is one unit of River work that the farm tracks: who holds it, and
// which generation of River job owns it.
type Task struct {
	ID         string
	JobID      string
	Kind       TaskKind
	Chunk      int
	Status     TaskStatus
	Generation int
	WorkerID   string
	RiverJobID int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// BlenderVersion is the full version of the Blender the task must run
	// on, such as "4.3.2": a validation's River jobs go to that version's
	// queue, which only render nodes with that Blender work, and a chunk
	// goes only to a worker that runs it (its Requirements say so too).
	// "" for a task any node takes (a validation not yet routed, a
	// finalizing).
	BlenderVersion string
	// WorkspaceID and Priority are the task's job's; Requirements is the
	// key of what a chunk needs of a worker (farm.Requirements.Key). The
	// dispatcher reads waiting chunks by them.
	WorkspaceID  string
	Priority     int
	Requirements string
	// FailedAttempts counts a chunk's attempts that failed, on whichever
	// worker (RetryLater): its next River job carries them, so that the
	// job's retry limit counts them all.
	FailedAttempts int
}

const taskColumns = `id, job_id, kind, chunk, status, generation, worker_id, river_job_id, created_at, updated_at, blender_version, workspace_id, priority, requirements, failed_attempts`

// InsertTask stores a new task.
func (q *Queries) InsertTask(ctx context.Context, t Task) error {
	_, err := q.exec(ctx, `INSERT INTO tasks (`+taskColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.JobID, t.Kind, t.Chunk, t.Status, t.Generation, t.WorkerID, nullInt(t.RiverJobID), t.CreatedAt.UTC(), t.UpdatedAt.UTC(), t.BlenderVersion,
		t.WorkspaceID, t.Priority, t.Requirements, t.FailedAttempts)
	if err != nil {
		return fmt.Errorf("store task: %w", err)
	}
	return nil
}

// SetTaskRiverJob records which River job carries a task, so that
// canceling the job can cancel it.
func (q *Queries) SetTaskRiverJob(ctx context.Context, taskID string, riverJobID int64) error {
	_, err := q.exec(ctx, `UPDATE tasks SET river_job_id = ? WHERE id = ?`, riverJobID, taskID)
	return err
}

// GetTask finds a task by id.
func (q *Queries) GetTask(ctx context.Context, id string) (Task, error) {
	return q.getTask(ctx, id, "")
}

// LockTask is GetTask for a transaction that acts on what it reads, such
// as a holder checking that the task is still its own before writing: the
// task's row stays locked until the transaction ends, so a requeue or a
// cancel cannot slip in between the check and the write. Within one
// transaction, lock the job (LockJob) before its tasks, never after.
func (q *Queries) LockTask(ctx context.Context, id string) (Task, error) {
	return q.getTask(ctx, id, q.dialect.rowLock("FOR NO KEY UPDATE"))
}

func (q *Queries) getTask(ctx context.Context, id, lock string) (Task, error) {
	t, err := scanTask(q.queryRow(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`+lock, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	return t, err
}

// ClaimTask marks a queued task as running on a worker, but only for the
// River job of its current generation. ErrConflict means the caller is a
// stale or duplicate holder (the task moved on, is held by another, or was
// finished or canceled) and must do nothing. threads is how many threads
// the worker gives each Blender (TaskEnd.Threads), recorded for a stop
// that charges the chunk's completed frames without its holder
// (CancelTasksOfJob).
func (q *Queries) ClaimTask(ctx context.Context, id string, generation int, workerID string, threads int) error {
	at := now()
	res, err := q.exec(ctx, `UPDATE tasks SET status = ?, worker_id = ?, threads = ?, waiting_for = '', updated_at = ?, started_at = ? WHERE id = ? AND generation = ? AND status = ?`,
		TaskRunning, workerID, threads, at, at, id, generation, TaskQueued)
	if err != nil {
		return fmt.Errorf("claim task: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrConflict
	}
	return nil
}

// TaskEnd is how a task's holder ends it: its final status, and what
// its attempt used, written with the status in one statement (a chunk's
// end is one of the farm's most frequent writes).
type TaskEnd struct {
	Status TaskStatus
	// Threads is how many threads the node gave each Blender: a chunk's
	// worker-seconds are its frames' render seconds times this.
	Threads int
	// LogBytes is the size of the Blender logs this attempt kept under
	// the job's logs/ prefix, which the workspace's storage counts
	// (AddTaskLogBytes).
	LogBytes int64
	// At is when the task ended (zero: now): the month a render budget
	// counts it in (CountTowardsBudget) is the month of this instant.
	At time.Time
}

// FinishTask ends a task as end says if the caller still holds it: the
// task is running at generation. ErrConflict otherwise, and nothing is
// written. With the status it records when the task ended and its render
// seconds: its frames' Blender render time times end.Threads
// (worker_seconds), or, for a chunk rendered on GPUs, times the GPUs it
// rendered with (gpu_seconds); for a task with no frames (a validation,
// a finalizing) both are 0. A workspace with a render budget counts them
// once the transaction calls CountTowardsBudget with the same end.At.
func (q *Queries) FinishTask(ctx context.Context, id string, generation int, end TaskEnd) error {
	at := end.At
	if at.IsZero() {
		at = now()
	}
	res, err := q.exec(ctx, `UPDATE tasks SET status = ?, waiting_for = '', updated_at = ?, finished_at = ?,
			worker_seconds = CASE WHEN `+taskGPUs+` > 0 THEN 0 ELSE ? * `+taskRendered+` END,
			gpu_seconds = `+taskGPUs+` * `+taskRendered+`,
			log_bytes = log_bytes + ?
		WHERE id = ? AND generation = ? AND status = ?`,
		end.Status, at, at, end.Threads, end.LogBytes, id, generation, TaskRunning)
	if err != nil {
		return fmt.Errorf("finish task: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrConflict
	}
	return nil
}

// taskGPUs is, in a statement on tasks, how many GPUs a chunk renders
// with (0 on CPUs): its requirements'.
const taskGPUs = `COALESCE((SELECT r.gpu_count FROM requirements r WHERE r.key = tasks.requirements AND r.gpu_type <> ''), 0)`

// taskRendered is, in a statement on tasks, the Blender render seconds of
// the frames the task holds: a frame queued again (a resume, a retry)
// starts again from none (QueueFrame), so they are what the task itself
// rendered.
const taskRendered = `(SELECT COALESCE(SUM(f.render_seconds), 0) FROM frames f WHERE f.task_id = tasks.id)`

// stoppedTaskThreads is, in a statement on tasks, the threads a stopped
// chunk's completed frames are charged at: those its last claim recorded
// (ClaimTask). A node of a version before migration 0023 records none
// (0), and in a farm upgraded one process at a time such nodes still
// claim chunks. A chunk one of them holds is charged at the threads that
// node's own ends were charged at: FinishTask wrote each end's
// worker_seconds as its frames' render seconds times the node's threads,
// which are the same for every chunk of a node's run, so that their
// ratio is those threads. The smallest ratio is taken: a frame a retry
// has since taken from an ended chunk can only make its ratio larger. A
// chunk that is no longer held (its node handed it back) or whose node
// ended none on the CPU has nothing to go by, and is charged nothing
// (see UnchargedStop).
const stoppedTaskThreads = `CASE WHEN tasks.threads > 0 THEN tasks.threads
	WHEN tasks.status = '` + string(TaskRunning) + `' AND tasks.worker_id <> '' THEN COALESCE((SELECT ROUND(MIN(ended.worker_seconds /
			NULLIF((SELECT SUM(f.render_seconds) FROM frames f WHERE f.task_id = ended.id), 0)))
		FROM tasks ended WHERE ended.worker_id = tasks.worker_id AND ended.status IN ('` + string(TaskDone) + `', '` + string(TaskFailed) + `')
			AND ended.worker_seconds > 0), 0)
	ELSE 0 END`

// UnchargedStop is a chunk that CancelTasksOfJob stopped with completed
// frames and charged nothing for, having no threads to charge them at
// (see stoppedTaskThreads): the farm's usage and budgets leave out its
// frames' render seconds.
type UnchargedStop struct {
	TaskID string
	// RenderSeconds is the Blender render time of its completed frames.
	RenderSeconds float64
}

// EndedBy reports whether task id ended as status at generation, held by
// the worker run workerID: whether FinishTask wrote that end (status is
// the holder's, done or failed, which only FinishTask writes with when
// the task ended; a cancel writes canceled). A holder
// whose end was refused (ErrConflict) asks it to tell an end it wrote
// itself, whose commit's reply it never got, from a task handed to
// another meanwhile.
func (q *Queries) EndedBy(ctx context.Context, id string, generation int, workerID string, status TaskStatus) (bool, error) {
	var ended bool
	err := q.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tasks
		WHERE id = ? AND generation = ? AND worker_id = ? AND status = ? AND finished_at IS NOT NULL)`,
		id, generation, workerID, status).Scan(&ended)
	if err != nil {
		return false, fmt.Errorf("look for a task's end: %w", err)
	}
	return ended, nil
}

// ReleaseTask puts a running task back in the queue under the same
// generation, so that River's retry of the same job can claim it again.
// A task that is no longer running at that generation is left as it is.
// A chunk stays with its worker (worker_id): its River job is on that
// worker's own queue, and its slot stays taken until the retry. Any node
// may retry a validation or a finalizing, so those are held by none.
func (q *Queries) ReleaseTask(ctx context.Context, id string, generation int) error {
	_, err := q.exec(ctx, `UPDATE tasks SET status = ?, worker_id = CASE WHEN kind = ? THEN worker_id ELSE '' END, waiting_for = '', updated_at = ?
		WHERE id = ? AND generation = ? AND status = ?`,
		TaskQueued, TaskRender, now(), id, generation, TaskRunning)
	if err != nil {
		return fmt.Errorf("release task: %w", err)
	}
	return nil
}

// RequeueTask hands a task out again under a new generation, so that
// whatever the old holder still writes is refused. A task that ended
// (done, failed, canceled) since the caller looked stays ended: ErrConflict.
func (q *Queries) RequeueTask(ctx context.Context, id string, fromGeneration int) (int, error) {
	res, err := q.exec(ctx, `UPDATE tasks SET status = ?, worker_id = '', waiting_for = '', generation = generation + 1, updated_at = ? WHERE id = ? AND generation = ? AND status IN (?, ?)`,
		TaskQueued, now(), id, fromGeneration, TaskQueued, TaskRunning)
	if err != nil {
		return 0, fmt.Errorf("requeue task: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, ErrConflict
	}
	return fromGeneration + 1, nil
}

// ReturnToWaiting hands a chunk out again as RequeueTask does, under a
// new generation, but to the dispatcher: it waits, with no worker and no
// River job, for a worker with a free slot. A task that ended since the
// caller looked stays ended: ErrConflict.
func (q *Queries) ReturnToWaiting(ctx context.Context, id string, fromGeneration int) (int, error) {
	res, err := q.exec(ctx, `UPDATE tasks SET status = ?, worker_id = '', waiting_for = '', river_job_id = NULL, generation = generation + 1, updated_at = ?
		WHERE id = ? AND generation = ? AND status IN (?, ?, ?)`,
		TaskWaiting, now(), id, fromGeneration, TaskWaiting, TaskQueued, TaskRunning)
	if err != nil {
		return 0, fmt.Errorf("return task to waiting: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, ErrConflict
	}
	return fromGeneration + 1, nil
}

// RetryLater returns a chunk whose attempt failed, with attempts left, to
// waiting: its worker's slot is free at once, and the dispatcher gives the
// chunk to a worker (this one or another) from retryAt on. Its failed
// attempts go up by one and its generation too, so that nothing the
// failed attempt still writes counts. ErrConflict if the chunk is no
// longer running at that generation.
func (q *Queries) RetryLater(ctx context.Context, id string, fromGeneration int, retryAt time.Time) (int, error) {
	res, err := q.exec(ctx, `UPDATE tasks SET status = ?, worker_id = '', waiting_for = '', river_job_id = NULL, generation = generation + 1,
			failed_attempts = failed_attempts + 1, retry_at = ?, updated_at = ?
		WHERE id = ? AND generation = ? AND status = ? AND kind = ?`,
		TaskWaiting, retryAt.UTC().Truncate(time.Microsecond), now(), id, fromGeneration, TaskRunning, TaskRender)
	if err != nil {
		return 0, fmt.Errorf("return a failed chunk to waiting: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, ErrConflict
	}
	return fromGeneration + 1, nil
}

// RouteTask hands a task to the render nodes of another Blender version:
// like RequeueTask, under a new generation, and from now on (also when it
// is handed out again) on blenderVersion's queue. A node that took a task
// it cannot run, because the task needs a Blender it lacks, routes it so.
// A task that ended since the caller looked stays ended: ErrConflict.
func (q *Queries) RouteTask(ctx context.Context, id string, fromGeneration int, blenderVersion string) (int, error) {
	res, err := q.exec(ctx, `UPDATE tasks SET status = ?, worker_id = '', generation = generation + 1, blender_version = ?, updated_at = ? WHERE id = ? AND generation = ? AND status IN (?, ?)`,
		TaskQueued, blenderVersion, now(), id, fromGeneration, TaskQueued, TaskRunning)
	if err != nil {
		return 0, fmt.Errorf("route task: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, ErrConflict
	}
	return fromGeneration + 1, nil
}

// TasksOnBlenderQueues lists the validations and merges that are queued
// on the control queue of a Blender version (blender_version set) other
// than those of heard, and not running, whose queue has not changed since
// before: the ones whose Blender the reaper takes for gone. Oldest first.
// The tasks waiting on a version still heard of, however many, are not
// read.
func (q *Queries) TasksOnBlenderQueues(ctx context.Context, before time.Time, heard []string) ([]Task, error) {
	return q.queryTasks(ctx, `SELECT `+taskColumns+` FROM tasks
		WHERE kind IN (?, ?) AND status = ? AND blender_version <> '' AND updated_at < ? AND `+q.dialect.noneOf("blender_version")+`
		ORDER BY created_at`, TaskValidate, TaskMerge, TaskQueued, before.UTC(), list(q.dialect, heard))
}

// MergesAwaiting counts a job's merges queued for Blender version and not
// yet running.
func (q *Queries) MergesAwaiting(ctx context.Context, jobID, version string) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM tasks WHERE job_id = ? AND kind = ? AND status = ? AND blender_version = ?`,
		jobID, TaskMerge, TaskQueued, version).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count the merges of job %s waiting for Blender %s: %w", jobID, version, err)
	}
	return n, nil
}

// RaiseLongWaitingControlTasks gives River's first priority to the River
// jobs of the validations and merges made before before that still wait
// to run, and answers how many it raised. A task's priority is taken when
// its River job is inserted (engine.controlPriority): without this, a
// workspace's 33rd waiting validation would wait for as long as other
// workspaces keep queueing their first few, for ever on a farm never
// idle. Raised, it runs in the order it was queued among the first
// priority's.
func (q *Queries) RaiseLongWaitingControlTasks(ctx context.Context, before time.Time) (int64, error) {
	res, err := q.exec(ctx, `UPDATE river_job SET priority = 1
		WHERE priority > 1 AND state = 'available' AND id IN (SELECT t.river_job_id FROM tasks t
			WHERE t.kind IN (?, ?) AND t.status = ? AND t.created_at < ? AND t.river_job_id IS NOT NULL)`,
		TaskValidate, TaskMerge, TaskQueued, before.UTC())
	if err != nil {
		return 0, fmt.Errorf("raise the priority of validations and merges waiting since before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return res.RowsAffected()
}

// GiveTasksTheirWorkspace records, on the validations, merges and
// finalizings queued or running without a workspace, their job's: an older serve, running
// beside newer ones through a rolling upgrade, makes them so (migration
// 0027 gave the workspace to those made before it). Until then their
// workspace's priority count (ControlTasksAhead) and its running work
// (the batched progress) would miss them. Answers how many it gave.
func (q *Queries) GiveTasksTheirWorkspace(ctx context.Context) (int64, error) {
	res, err := q.exec(ctx, `UPDATE tasks SET workspace_id = (SELECT j.workspace_id FROM jobs j WHERE j.id = tasks.job_id)
		WHERE workspace_id = '' AND kind <> ? AND status IN (?, ?)
			AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = tasks.job_id AND j.workspace_id <> '')`,
		TaskRender, TaskQueued, TaskRunning)
	if err != nil {
		return 0, fmt.Errorf("give tasks without a workspace their job's: %w", err)
	}
	return res.RowsAffected()
}

// ControlTasksAhead counts, up to limit, the validations and merges of
// t's workspace made before t that are queued and not yet running: the
// River priority t's River job is given follows it. The count reads the
// tasks_control_queued index, never more than limit entries of it.
func (q *Queries) ControlTasksAhead(ctx context.Context, t Task, limit int) (int, error) {
	var n int
	// Made before t, or in the same microsecond with a smaller id: tasks
	// stamped alike (made together, then ranked) count one another that
	// way rather than all take the first rank. A task is ranked as it is
	// queued, so one stamped alike with a smaller id but queued after it
	// is not counted: the farm stamps each with its own time.Now().
	created := t.CreatedAt.UTC()
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM tasks
			WHERE workspace_id = ? AND kind IN (?, ?) AND status = ? AND created_at <= ?
				AND (created_at < ? OR id < ?)
			LIMIT ?) ahead`,
		t.WorkspaceID, TaskValidate, TaskMerge, TaskQueued, created, created, t.ID, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count the validations and merges ahead of task %s: %w", t.ID, err)
	}
	return n, nil
}

// TasksOfJob lists a job's tasks, optionally of one kind.
func (q *Queries) TasksOfJob(ctx context.Context, jobID string, kind TaskKind) ([]Task, error) {
	query := `SELECT ` + taskColumns + ` FROM tasks WHERE job_id = ?`
	args := []any{jobID}
	if kind != "" {
		query += ` AND kind = ?`
		args = append(args, kind)
	}
	return q.queryTasks(ctx, query+` ORDER BY kind, chunk`, args...)
}

// CancelTasksOfJob marks every unfinished task of a job canceled and
// returns them, so their River jobs can be canceled too. On PostgreSQL it
// locks them first, in the order of their ids (see LockWaitingChunks): a
// chunk that a dispatch queues meanwhile is read as that dispatch wrote
// it, with the River job to cancel.
//
// A chunk stopped with frames it completed is charged for them here, at
// the threads its claim recorded (see stoppedTaskThreads), as FinishTask
// charges a chunk that ends: those frames stay completed (a
// resume renders only the others), and no end of their chunk will come.
// Its render seconds are written with when it was stopped (finished_at),
// which usage reports by, and added to its workspace's month if the
// workspace has a render budget (as CountTowardsBudget adds an ended
// chunk's), after the tasks are locked, as every transaction takes a
// workspace's row after the tasks it writes. The chunks on the CPU it
// has no threads to charge at are returned as uncharged, for the caller
// to make known.
func (q *Queries) CancelTasksOfJob(ctx context.Context, jobID string) ([]Task, []UnchargedStop, error) {
	tasks, err := q.queryTasks(ctx, `SELECT `+taskColumns+` FROM tasks WHERE job_id = ? AND status IN (?, ?, ?) ORDER BY id`+q.dialect.rowLock("FOR UPDATE"),
		jobID, TaskWaiting, TaskQueued, TaskRunning)
	if err != nil {
		return nil, nil, err
	}
	uncharged, err := q.unchargedStops(ctx, jobID)
	if err != nil {
		return nil, nil, err
	}
	at := now()
	month := at.Format(renderMonthLayout)
	stopped := `(SELECT COALESCE(SUM(CASE WHEN ` + taskGPUs + ` > 0 THEN ` + taskGPUs + ` ELSE ` + stoppedTaskThreads + ` END * ` + taskRendered + `), 0)
		FROM tasks WHERE tasks.job_id = ? AND tasks.status IN (?, ?, ?))`
	_, err = q.exec(ctx, `UPDATE workspaces SET
			month_render_seconds = `+stopped+` + CASE WHEN render_month = ? THEN month_render_seconds ELSE 0 END,
			render_month = ?
		WHERE id = (SELECT j.workspace_id FROM jobs j WHERE j.id = ?) AND max_render_seconds_per_month IS NOT NULL
			AND `+stopped+` > 0`,
		jobID, TaskWaiting, TaskQueued, TaskRunning, month, month, jobID, jobID, TaskWaiting, TaskQueued, TaskRunning)
	if err != nil {
		return nil, nil, fmt.Errorf("add stopped chunks' render seconds to their workspace's month: %w", err)
	}
	_, err = q.exec(ctx, `UPDATE tasks SET status = ?, waiting_for = '', updated_at = ?,
			worker_seconds = CASE WHEN `+taskGPUs+` > 0 THEN 0 ELSE `+stoppedTaskThreads+` * `+taskRendered+` END,
			gpu_seconds = `+taskGPUs+` * `+taskRendered+`,
			finished_at = CASE WHEN `+taskRendered+` > 0 THEN ? ELSE finished_at END
		WHERE job_id = ? AND status IN (?, ?, ?)`,
		TaskCanceled, at, at, jobID, TaskWaiting, TaskQueued, TaskRunning)
	if err != nil {
		return nil, nil, fmt.Errorf("cancel tasks: %w", err)
	}
	return tasks, uncharged, nil
}

// unchargedStops lists the unfinished chunks of a job on the CPU that
// have completed frames and no threads to charge them at, as
// CancelTasksOfJob is about to stop them.
func (q *Queries) unchargedStops(ctx context.Context, jobID string) ([]UnchargedStop, error) {
	rows, err := q.query(ctx, `SELECT id, `+taskRendered+` FROM tasks
		WHERE job_id = ? AND status IN (?, ?, ?) AND `+taskGPUs+` = 0 AND `+stoppedTaskThreads+` = 0 AND `+taskRendered+` > 0
		ORDER BY id`, jobID, TaskWaiting, TaskQueued, TaskRunning)
	if err != nil {
		return nil, fmt.Errorf("look for stopped chunks with no threads to charge: %w", err)
	}
	defer rows.Close()
	var out []UnchargedStop
	for rows.Next() {
		var u UnchargedStop
		if err := rows.Scan(&u.TaskID, &u.RenderSeconds); err != nil {
			return nil, fmt.Errorf("look for stopped chunks with no threads to charge: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// OrphanedTasks lists the tasks held by, or given to, a worker that is
// gone: its heartbeat is older than staleBefore, it stopped, or it was
// declared gone. Those are the running tasks and the chunks dispatched to
// it that it had not started (their River jobs are on its own queue,
// which nobody else works). A worker that stops hands back what it holds;
// what it could not (its database was down as it stopped) is found here
// at once.
func (q *Queries) OrphanedTasks(ctx context.Context, staleBefore time.Time) ([]Task, error) {
	cols := "t." + strings.ReplaceAll(taskColumns, ", ", ", t.")
	return q.queryTasks(ctx, `SELECT `+cols+` FROM tasks t LEFT JOIN workers w ON w.id = t.worker_id
		WHERE (t.status = ? OR (t.status = ? AND t.kind = ? AND t.worker_id <> ''))
		AND (w.id IS NULL OR w.state IN (?, ?) OR w.heartbeat_at < ?)`, TaskRunning, TaskQueued, TaskRender, WorkerGone, WorkerStopped, staleBefore.UTC())
}

// TouchTasks records that a worker run is working on the tasks it holds
// of ids, now: their updated_at is how StrandedTasks tells a task its
// holder is working on from one it holds but no longer works on.
func (q *Queries) TouchTasks(ctx context.Context, workerID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := q.exec(ctx, `UPDATE tasks SET updated_at = ? WHERE worker_id = ? AND status = ? AND `+q.dialect.oneOf("id"),
		now(), workerID, TaskRunning, list(q.dialect, ids))
	if err != nil {
		return fmt.Errorf("touch tasks: %w", err)
	}
	return nil
}

// SetTaskWaiting records what the holder of a task's generation waits
// for ("" when it waits no more), for the job's progress. A task that
// moved on is left as it is.
func (q *Queries) SetTaskWaiting(ctx context.Context, id string, generation int, waitingFor string) error {
	_, err := q.exec(ctx, `UPDATE tasks SET waiting_for = ? WHERE id = ? AND generation = ? AND status = ?`,
		waitingFor, id, generation, TaskRunning)
	if err != nil {
		return fmt.Errorf("record what task %s waits for: %w", id, err)
	}
	return nil
}

// StrandedTask is an unfinished task whose River job (the job of its
// current generation) has ended, or is gone: nothing will carry it out.
type StrandedTask struct {
	Task
	// RiverState is the River job's state (completed, discarded,
	// cancelled), "" when River no longer has the job.
	RiverState string
}

// StrandedTasks lists the unfinished tasks with no live River job: a
// queued task whose River job ended, or a running one whose River job
// ended and that no holder has touched (TouchTasks) since idleSince. The
// farm keeps every unfinished task carried by one live River job; these
// break that rule, and are handed out again (or, when River gave up on
// the job after it panicked, fail their job).
func (q *Queries) StrandedTasks(ctx context.Context, idleSince time.Time) ([]StrandedTask, error) {
	cols := "t." + strings.ReplaceAll(taskColumns, ", ", ", t.")
	rows, err := q.query(ctx, `SELECT `+cols+`, COALESCE(CAST(r.state AS TEXT), '') FROM tasks t LEFT JOIN river_job r ON r.id = t.river_job_id
		WHERE (t.status = ? OR (t.status = ? AND t.updated_at < ?))
		AND (r.id IS NULL OR r.state IN ('completed', 'discarded', 'cancelled'))
		ORDER BY t.created_at`, TaskQueued, TaskRunning, idleSince.UTC())
	if err != nil {
		return nil, fmt.Errorf("list stranded tasks: %w", err)
	}
	defer rows.Close()
	var out []StrandedTask
	for rows.Next() {
		var st StrandedTask
		var river sql.NullInt64
		t := &st.Task
		if err := rows.Scan(&t.ID, &t.JobID, &t.Kind, &t.Chunk, &t.Status, &t.Generation, &t.WorkerID, &river, &t.CreatedAt, &t.UpdatedAt, &t.BlenderVersion,
			&t.WorkspaceID, &t.Priority, &t.Requirements, &t.FailedAttempts, &st.RiverState); err != nil {
			return nil, fmt.Errorf("list stranded tasks: %w", err)
		}
		t.RiverJobID = river.Int64
		t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
		out = append(out, st)
	}
	return out, rows.Err()
}

func (q *Queries) queryTasks(ctx context.Context, query string, args ...any) ([]Task, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	defer rows.Close()
	var tasks []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, t)
	}
	return tasks, rows.Err()
}

func scanTask(row rowScanner) (Task, error) {
	var t Task
	var river sql.NullInt64
	err := row.Scan(&t.ID, &t.JobID, &t.Kind, &t.Chunk, &t.Status, &t.Generation, &t.WorkerID, &river, &t.CreatedAt, &t.UpdatedAt, &t.BlenderVersion,
		&t.WorkspaceID, &t.Priority, &t.Requirements, &t.FailedAttempts)
	t.RiverJobID = river.Int64
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, err
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

// TaskTimes are the moments of a task's latest generation: the render
// request that made it, its dispatch to a worker run (QueueChunks), that
// run's claim (ClaimTask) and its end; a zero time for a moment that has
// not come.
type TaskTimes struct {
	Created, Dispatched, Started, Finished time.Time
}

// TimesOfTask reads a task's TaskTimes; ErrNotFound when there is no such
// task.
func (q *Queries) TimesOfTask(ctx context.Context, id string) (TaskTimes, error) {
	var t TaskTimes
	var created, dispatched, started, finished anyTime
	err := q.queryRow(ctx, `SELECT created_at, dispatched_at, started_at, finished_at FROM tasks WHERE id = ?`, id).
		Scan(&created, &dispatched, &started, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("times of task %s: %w", id, err)
	}
	return TaskTimes{Created: created.Time, Dispatched: dispatched.Time, Started: started.Time, Finished: finished.Time}, nil
}
