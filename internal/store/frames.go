package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// Frame is one frame of a job: which task renders it, how it went, and
// where its image is.
type Frame struct {
	JobID         string
	Frame         int
	TaskID        string
	Status        farm.FrameStatus
	Worker        string // the name of the worker that rendered it
	RenderSeconds float64
	Attempts      int
	ObjectKey     string
	SizeBytes     int64
	Error         string
	UpdatedAt     time.Time
}

const frameColumns = `job_id, frame, task_id, status, worker, render_seconds, attempts, object_key, size_bytes, error, updated_at`

// InsertFrame stores a frame row.
func (q *Queries) InsertFrame(ctx context.Context, f Frame) error {
	_, err := q.exec(ctx, `INSERT INTO frames (`+frameColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.JobID, f.Frame, f.TaskID, f.Status, f.Worker, f.RenderSeconds, f.Attempts, f.ObjectKey, f.SizeBytes, f.Error, f.UpdatedAt.UTC())
	if err != nil {
		return fmt.Errorf("store frame %d: %w", f.Frame, err)
	}
	return nil
}

// UpdateFrame writes a frame's progress, whoever holds its task: for the
// farm's own bookkeeping (a reaped task's frames go back to queued). A
// worker writes with UpdateFrameOwned. Like every write of a frame's
// status, it checks in the statement that the frame's status may move to
// f.Status (farm.CanMoveFrame); when it may not, or there is no such
// frame, nothing is written and the error is ErrConflict.
func (q *Queries) UpdateFrame(ctx context.Context, f Frame) error {
	from, marks := frameStatusesBefore(f.Status)
	res, err := q.exec(ctx, `UPDATE frames SET status = ?, worker = ?, render_seconds = ?, attempts = ?, object_key = ?, size_bytes = ?, error = ?, updated_at = ?
		WHERE job_id = ? AND frame = ? AND status IN (`+marks+`)`,
		append([]any{f.Status, f.Worker, f.RenderSeconds, f.Attempts, f.ObjectKey, f.SizeBytes, f.Error, now(), f.JobID, f.Frame}, from...)...)
	if err != nil {
		return fmt.Errorf("update frame %d: %w", f.Frame, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("frame %d of job %s cannot move to %s: %w", f.Frame, f.JobID, f.Status, ErrConflict)
	}
	return nil
}

// frameStatusesBefore is the statuses a frame may move to `to` from, as
// query arguments and their placeholders.
func frameStatusesBefore(to farm.FrameStatus) (args []any, marks string) {
	for _, s := range farm.FrameStatusesBefore(to) {
		args = append(args, s)
	}
	if len(args) == 0 {
		// Nothing moves to this status: a condition no row meets.
		return []any{""}, "?"
	}
	return args, placeholders(len(args))
}

// placeholders is n placeholders, comma-separated, for a list of n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// UpdateFrameOwned writes a frame's progress only if the writer still
// holds the frame's task: the task is f.TaskID, running, on workerID, in
// taskGeneration, and the frame may move to f.Status. Otherwise (the task
// was handed to another worker, canceled or finished, or the frame is not
// the task's, or has ended) nothing is written and the error is
// ErrConflict. The check and the write are one
// statement, so a stale holder cannot write even outside a transaction;
// on PostgreSQL the task's row is read with FOR SHARE, so a requeue that
// is not yet committed makes the write wait for it and then be refused,
// rather than land on a task that was just handed out again.
func (q *Queries) UpdateFrameOwned(ctx context.Context, f Frame, taskGeneration int, workerID string) error {
	from, marks := frameStatusesBefore(f.Status)
	res, err := q.exec(ctx, `UPDATE frames SET status = ?, worker = ?, render_seconds = ?, attempts = ?, object_key = ?, size_bytes = ?, error = ?, updated_at = ?
		WHERE job_id = ? AND frame = ? AND task_id = ? AND status IN (`+marks+`) AND EXISTS (
			SELECT 1 FROM tasks WHERE tasks.id = frames.task_id AND tasks.generation = ? AND tasks.worker_id = ? AND tasks.status = ?`+
		q.dialect.rowLock("FOR SHARE")+`)`,
		append(append([]any{f.Status, f.Worker, f.RenderSeconds, f.Attempts, f.ObjectKey, f.SizeBytes, f.Error, now(), f.JobID, f.Frame, f.TaskID}, from...),
			taskGeneration, workerID, TaskRunning)...)
	if err != nil {
		return fmt.Errorf("update frame %d: %w", f.Frame, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrConflict
	}
	return nil
}

// MoveFramesOfJob moves every frame of a job that may move to `to`
// (farm.CanMoveFrame) there, and leaves the others as they are: canceling
// a job cancels its queued and rendering frames and keeps those that
// ended.
func (q *Queries) MoveFramesOfJob(ctx context.Context, jobID string, to farm.FrameStatus) error {
	from, marks := frameStatusesBefore(to)
	_, err := q.exec(ctx, `UPDATE frames SET status = ?, updated_at = ? WHERE job_id = ? AND status IN (`+marks+`)`,
		append([]any{to, now(), jobID}, from...)...)
	if err != nil {
		return fmt.Errorf("update frames: %w", err)
	}
	return nil
}

// FramesOfJob lists a job's frames in frame order.
func (q *Queries) FramesOfJob(ctx context.Context, jobID string) ([]Frame, error) {
	return q.queryFrames(ctx, `SELECT `+frameColumns+` FROM frames WHERE job_id = ? ORDER BY frame`, jobID)
}

// FramesOfJobBetween lists a job's frames numbered from to to, both
// included, in frame order: a page of a large job's frames, read down the
// primary key.
func (q *Queries) FramesOfJobBetween(ctx context.Context, jobID string, from, to int) ([]Frame, error) {
	return q.queryFrames(ctx, `SELECT `+frameColumns+` FROM frames WHERE job_id = ? AND frame BETWEEN ? AND ? ORDER BY frame`, jobID, from, to)
}

// FramesOfTask lists a task's frames in frame order.
func (q *Queries) FramesOfTask(ctx context.Context, taskID string) ([]Frame, error) {
	return q.queryFrames(ctx, `SELECT `+frameColumns+` FROM frames WHERE task_id = ? ORDER BY frame`, taskID)
}

// FrameOfTask reads frame frame of job jobID, if it is task taskID's;
// ErrNotFound when the task has no such frame.
func (q *Queries) FrameOfTask(ctx context.Context, jobID, taskID string, frame int) (Frame, error) {
	frames, err := q.queryFrames(ctx, `SELECT `+frameColumns+` FROM frames WHERE job_id = ? AND frame = ? AND task_id = ?`, jobID, frame, taskID)
	if err != nil {
		return Frame{}, err
	}
	if len(frames) == 0 {
		return Frame{}, ErrNotFound
	}
	return frames[0], nil
}

// FramesOfTasks lists the frame numbers of each of the tasks ids, in
// order, in one query (a dispatch that gives many chunks reads their
// frames together).
func (q *Queries) FramesOfTasks(ctx context.Context, ids []string) (map[string][]int, error) {
	out := make(map[string][]int, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.query(ctx, `SELECT task_id, frame FROM frames WHERE `+q.dialect.oneOf("task_id")+` ORDER BY task_id, frame`, list(q.dialect, ids))
	if err != nil {
		return nil, fmt.Errorf("frames of %d tasks: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var frame int
		if err := rows.Scan(&id, &frame); err != nil {
			return nil, err
		}
		out[id] = append(out[id], frame)
	}
	return out, rows.Err()
}

// EveryFrameCompleted reports whether every frame of a job is completed
// (true for a job without frames): a step or two down the
// frames_unfinished index however many frames the job has, where
// CountFrames reads them all.
func (q *Queries) EveryFrameCompleted(ctx context.Context, jobID string) (bool, error) {
	var unfinished bool
	err := q.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM frames WHERE job_id = ? AND status <> 'completed')`, jobID).Scan(&unfinished)
	if err != nil {
		return false, fmt.Errorf("are job %s's frames completed: %w", jobID, err)
	}
	return !unfinished, nil
}

// CountFrames counts a job's frames by status.
func (q *Queries) CountFrames(ctx context.Context, jobID string) (map[farm.FrameStatus]int, error) {
	rows, err := q.query(ctx, `SELECT status, COUNT(*) FROM frames WHERE job_id = ? GROUP BY status`, jobID)
	if err != nil {
		return nil, fmt.Errorf("count frames: %w", err)
	}
	defer rows.Close()
	counts := map[farm.FrameStatus]int{}
	for rows.Next() {
		var st farm.FrameStatus
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		counts[st] = n
	}
	return counts, rows.Err()
}

func (q *Queries) queryFrames(ctx context.Context, query string, args ...any) ([]Frame, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list frames: %w", err)
	}
	defer rows.Close()
	var frames []Frame
	for rows.Next() {
		var f Frame
		if err := rows.Scan(&f.JobID, &f.Frame, &f.TaskID, &f.Status, &f.Worker, &f.RenderSeconds, &f.Attempts, &f.ObjectKey, &f.SizeBytes, &f.Error, &f.UpdatedAt); err != nil {
			return nil, err
		}
		f.UpdatedAt = f.UpdatedAt.UTC()
		frames = append(frames, f)
	}
	return frames, rows.Err()
}

// InsertFrameOutputs records the files a frame made, in their order (the
// frame's own image first). The caller writes them in the transaction that
// completes the frame, after UpdateFrameOwned, so that they are written by
// the task's holder, once: a frame's files recorded twice are an error.
func (q *Queries) InsertFrameOutputs(ctx context.Context, jobID string, frame int, outputs []farm.FrameOutput) error {
	for i, o := range outputs {
		_, err := q.exec(ctx, `INSERT INTO frame_outputs (job_id, frame, position, kind, view, composite_node_name, file_name, relative_path, object_key, size_bytes)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			jobID, frame, i, string(o.Kind), o.View, o.CompositeNodeName, o.FileName, o.RelativePath, o.ObjectKey, o.SizeBytes)
		if err != nil {
			return fmt.Errorf("record file %d of frame %d: %w", i, frame, err)
		}
	}
	return nil
}

// FrameOutputsOfJob lists the files each of a job's frames made, by frame,
// each frame's in their order. Frames completed before files were recorded
// one by one have none: their image is the frame's ObjectKey.
func (q *Queries) FrameOutputsOfJob(ctx context.Context, jobID string) (map[int][]farm.FrameOutput, error) {
	return q.frameOutputs(ctx, ``, jobID)
}

// FrameOutputsOfJobBetween is FrameOutputsOfJob for the frames numbered
// from to to, both included.
func (q *Queries) FrameOutputsOfJobBetween(ctx context.Context, jobID string, from, to int) (map[int][]farm.FrameOutput, error) {
	return q.frameOutputs(ctx, ` AND frame BETWEEN ? AND ?`, jobID, from, to)
}

// frameOutputs lists the files of a job's frames (the job's id first in
// args) that the condition and arguments after it select.
func (q *Queries) frameOutputs(ctx context.Context, and string, args ...any) (map[int][]farm.FrameOutput, error) {
	rows, err := q.query(ctx, `SELECT frame, kind, view, composite_node_name, file_name, relative_path, object_key, size_bytes
		FROM frame_outputs WHERE job_id = ?`+and+` ORDER BY frame, position`, args...)
	if err != nil {
		return nil, fmt.Errorf("list frame outputs: %w", err)
	}
	defer rows.Close()
	out := map[int][]farm.FrameOutput{}
	for rows.Next() {
		var frame int
		var o farm.FrameOutput
		var kind string
		if err := rows.Scan(&frame, &kind, &o.View, &o.CompositeNodeName, &o.FileName, &o.RelativePath, &o.ObjectKey, &o.SizeBytes); err != nil {
			return nil, err
		}
		o.Kind = farm.OutputKind(kind)
		out[frame] = append(out[frame], o)
	}
	return out, rows.Err()
}

// CountFramesOfJobsWithStatus counts the frames of the workspace's jobs in
// one of statuses, and the parts of their split frames (each a task as a
// chunk is), stopping at limit of each: the caller asks only whether
// there is room under it, so a count never reads more than twice limit
// rows.
func (q *Queries) CountFramesOfJobsWithStatus(ctx context.Context, workspaceID string, limit int, statuses ...farm.Status) (int, error) {
	if len(statuses) == 0 {
		return 0, nil
	}
	of := func(table string) string {
		return `(SELECT COUNT(*) FROM (SELECT 1 FROM ` + table + ` x JOIN jobs j ON j.id = x.job_id
			WHERE j.workspace_id = ? AND j.status IN (?` + strings.Repeat(", ?", len(statuses)-1) + `) LIMIT ?) counted)`
	}
	var args []any
	for range 2 {
		args = append(args, workspaceID)
		for _, s := range statuses {
			args = append(args, s)
		}
		args = append(args, limit)
	}
	var n int
	err := q.queryRow(ctx, `SELECT `+of("frames")+` + `+of("frame_parts"), args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count frames of jobs in progress: %w", err)
	}
	return n, nil
}
