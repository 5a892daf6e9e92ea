package store

import (
	"context"
	"fmt"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// TaskMerge is the task that merges a split frame's parts into the frame,
// once every part is stored (see docs/split-frame.md). Its Chunk is the
// frame it merges.
const TaskMerge TaskKind = "merge"

// FramePart is one part of a split frame: the render task that renders
// it, and once stored, its file's object and render time.
type FramePart struct {
	JobID         string
	Frame         int
	Part          int
	TaskID        string
	ObjectKey     string // "" until the part is stored
	RenderSeconds float64
}

// Stored reports whether the part's file is stored.
func (p FramePart) Stored() bool { return p.ObjectKey != "" }

const partColumns = `job_id, frame, part, task_id, object_key, render_seconds`

// QueuePart records that p.TaskID renders part p.Part of a frame. A part
// queued again (a resume, a retry) gets its new task, unless it is stored
// already: a stored part keeps its file, and is not rendered again.
func (q *Queries) QueuePart(ctx context.Context, p FramePart) error {
	_, err := q.exec(ctx, `INSERT INTO frame_parts (`+partColumns+`) VALUES (?, ?, ?, ?, '', 0)
		ON CONFLICT (job_id, frame, part) DO UPDATE SET task_id = excluded.task_id WHERE frame_parts.object_key = ''`,
		p.JobID, p.Frame, p.Part, p.TaskID)
	if err != nil {
		return fmt.Errorf("queue part %d of frame %d: %w", p.Part, p.Frame, err)
	}
	return nil
}

// PartOfTask finds the part a render task renders; ok is false for a
// task that renders whole frames.
func (q *Queries) PartOfTask(ctx context.Context, taskID string) (p FramePart, ok bool, err error) {
	parts, err := q.queryParts(ctx, `SELECT `+partColumns+` FROM frame_parts WHERE task_id = ?`, taskID)
	if err != nil || len(parts) == 0 {
		return p, false, err
	}
	return parts[0], true, nil
}

// PartsOfFrame lists a frame's parts, by number.
func (q *Queries) PartsOfFrame(ctx context.Context, jobID string, frame int) ([]FramePart, error) {
	return q.queryParts(ctx, `SELECT `+partColumns+` FROM frame_parts WHERE job_id = ? AND frame = ? ORDER BY part`, jobID, frame)
}

// StorePart records part p's file, stored at key by p.TaskID's holder.
// The first part stored is the one used: a part already stored, or now
// another task's, is left as it is (ErrConflict).
func (q *Queries) StorePart(ctx context.Context, p FramePart) error {
	res, err := q.exec(ctx, `UPDATE frame_parts SET object_key = ?, render_seconds = ?
		WHERE job_id = ? AND frame = ? AND part = ? AND task_id = ? AND object_key = ''`,
		p.ObjectKey, p.RenderSeconds, p.JobID, p.Frame, p.Part, p.TaskID)
	if err != nil {
		return fmt.Errorf("record part %d of frame %d: %w", p.Part, p.Frame, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrConflict
	}
	return nil
}

// PartCount is how a split frame's parts stand: Completed of Total
// stored, in Seconds of rendering in all, and Rendering of them held by a
// render node now; FrameCompleted once the frame is merged.
type PartCount struct {
	farm.PartsProgress
	Seconds        float64
	Rendering      int
	FrameCompleted bool
}

// MergeOfFrame reports whether a merge of a job's frame is queued,
// running or done: a frame is merged once.
func (q *Queries) MergeOfFrame(ctx context.Context, jobID string, frame int) (bool, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM tasks WHERE job_id = ? AND kind = ? AND chunk = ? AND status IN (?, ?, ?)`,
		jobID, TaskMerge, frame, TaskQueued, TaskRunning, TaskDone).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look for the merge of frame %d: %w", frame, err)
	}
	return n > 0, nil
}

// ForgetParts forgets the files of a frame's parts, once the frame is
// merged and they are removed: the parts are rendered again if the frame
// is (a retry).
func (q *Queries) ForgetParts(ctx context.Context, jobID string, frame int) error {
	_, err := q.exec(ctx, `UPDATE frame_parts SET object_key = '', render_seconds = 0 WHERE job_id = ? AND frame = ?`, jobID, frame)
	if err != nil {
		return fmt.Errorf("forget the parts of frame %d: %w", frame, err)
	}
	return nil
}

// StartSplitFrame marks a queued split frame rendering, on worker, as its
// first part begins.
func (q *Queries) StartSplitFrame(ctx context.Context, jobID string, frame int, worker string) error {
	_, err := q.exec(ctx, `UPDATE frames SET status = ?, worker = ?, attempts = attempts + 1, updated_at = ? WHERE job_id = ? AND frame = ? AND status = ?`,
		farm.FrameRendering, worker, now(), jobID, frame, farm.FrameQueued)
	if err != nil {
		return fmt.Errorf("start frame %d: %w", frame, err)
	}
	return nil
}

// SetFrameTask makes taskID the frame's task: the merge task, once every
// part of a split frame is stored, which then stores the frame as a
// render task does.
func (q *Queries) SetFrameTask(ctx context.Context, jobID string, frame int, taskID string) error {
	_, err := q.exec(ctx, `UPDATE frames SET task_id = ?, updated_at = ? WHERE job_id = ? AND frame = ?`, taskID, now(), jobID, frame)
	if err != nil {
		return fmt.Errorf("give frame %d to task %s: %w", frame, taskID, err)
	}
	return nil
}

func (q *Queries) queryParts(ctx context.Context, query string, args ...any) ([]FramePart, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list parts: %w", err)
	}
	defer rows.Close()
	var parts []FramePart
	for rows.Next() {
		var p FramePart
		if err := rows.Scan(&p.JobID, &p.Frame, &p.Part, &p.TaskID, &p.ObjectKey, &p.RenderSeconds); err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, rows.Err()
}
