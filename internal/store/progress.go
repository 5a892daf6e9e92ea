package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// Progress is what a progress report shows of a job: JobProgress's answer.
type Progress struct {
	JobID  string
	Status farm.Status
	// Frames are in frame order; nil when it was read without them.
	Frames []farm.FrameProgress
	// Counts counts its frames by status, whether they were read or not.
	Counts FrameCounts
	// WaitingFor is what one of the job's running tasks waits for while a
	// part of the farm is out (see SetTaskWaiting); "" when none waits.
	WaitingFor string
	// SuspendedReason is the job's, while it is suspended.
	SuspendedReason string
}

// FrameCounts counts a job's frames: in all, and completed, rendering or
// failed, with Blender's time on the completed ones.
type FrameCounts struct {
	Total, Completed, Rendering, Failed int
	CompletedSeconds                    float64
}

// add counts one frame.
func (c *FrameCounts) add(f farm.FrameProgress) {
	c.Total++
	switch f.Status {
	case farm.FrameCompleted:
		c.Completed++
		c.CompletedSeconds += f.RenderSeconds
	case farm.FrameRendering:
		c.Rendering++
	case farm.FrameFailed:
		c.Failed++
	}
}

// FramesRead says which of a job's frames a progress read lists: every
// one (AllFrames), none (NoFrames: their counts alone), or those of a
// span of frame numbers (FramesBetween). Each is counted in every case.
type FramesRead struct {
	list     bool
	from, to int
	span     bool
}

// AllFrames lists every frame of a job; NoFrames none.
var (
	AllFrames = FramesRead{list: true}
	NoFrames  = FramesRead{}
)

// FramesBetween lists the frames numbered from to to, both included.
func FramesBetween(from, to int) FramesRead {
	return FramesRead{list: true, span: true, from: from, to: to}
}

// progressReads are what a progress report reads of a job's frames
// after the job's own columns (the job being j), as read says:
//   - every frame: each frame's status, worker, render time and
//     attempts, a row each, from a join of the job's frames, which are
//     counted as they are read;
//   - no frame: their counts (FrameCounts), one row a job, summed by the
//     database in a join of the frames of the jobs jobIDs selects,
//     grouped by job, so that a job of 100,000 frames answers one row
//     rather than 100,000. (Grouped by job down the frames' primary key,
//     and joined to the jobs after: grouping the joined rows by the
//     job's columns made SQLite sort every frame, three times slower at
//     100,000.);
//   - a span of frames: the counts, then the frames of the span, each row
//     carrying the counts again, read down the primary key from the
//     span's first frame. The counts and the frames are of one
//     statement, so of the same moment.
//
// args are jobIDs' arguments, for the join.
func progressReads(read FramesRead, jobIDs string, args ...any) (columns, join string, joinArgs []any) {
	frameColumns := `f.frame, f.status, f.worker, f.render_seconds, f.attempts`
	if read.list && !read.span {
		return frameColumns, ` LEFT JOIN frames f ON f.job_id = j.id`, nil
	}
	count := func(status farm.FrameStatus, what string) string {
		return `SUM(CASE WHEN f.status = '` + string(status) + `' THEN ` + what + ` ELSE 0 END)`
	}
	columns = `COALESCE(c.total, 0), COALESCE(c.completed, 0), COALESCE(c.rendering, 0), COALESCE(c.failed, 0), COALESCE(c.seconds, 0)`
	join = ` LEFT JOIN (SELECT f.job_id, COUNT(*) AS total, ` + count(farm.FrameCompleted, "1") + ` AS completed, ` +
		count(farm.FrameRendering, "1") + ` AS rendering, ` + count(farm.FrameFailed, "1") + ` AS failed, ` +
		count(farm.FrameCompleted, "f.render_seconds") + ` AS seconds
			FROM frames f WHERE f.job_id IN (` + jobIDs + `) GROUP BY f.job_id) c ON c.job_id = j.id`
	if !read.span {
		return columns, join, args
	}
	return columns + `, ` + frameColumns, join + ` LEFT JOIN frames f ON f.job_id = j.id AND f.frame BETWEEN ? AND ?`,
		append(append([]any{}, args...), read.from, read.to)
}

// progressRow scans what progressReads reads of a row into p: a frame
// appended to p.Frames (and counted, when the database does not count
// them), and the counts.
type progressRow struct {
	read FramesRead
	// Declared once, not per row: Scan takes their addresses, which would
	// otherwise put new variables on the heap per frame.
	frame         sql.NullInt64
	frameStatus   sql.NullString
	worker        sql.NullString
	renderSeconds sql.NullFloat64
	attempts      sql.NullInt64
	counts        FrameCounts
}

// dest is where Scan puts progressReads' columns.
func (r *progressRow) dest() []any {
	frame := []any{&r.frame, &r.frameStatus, &r.worker, &r.renderSeconds, &r.attempts}
	c := &r.counts
	counts := []any{&c.Total, &c.Completed, &c.Rendering, &c.Failed, &c.CompletedSeconds}
	switch {
	case r.read.span:
		return append(counts, frame...)
	case r.read.list:
		return frame
	}
	return counts
}

// addTo adds the row just scanned to p.
func (r *progressRow) addTo(p *Progress) {
	if !r.read.list || r.read.span {
		p.Counts = r.counts
	}
	if !r.read.list || !r.frame.Valid {
		return // counts alone, or the job's row alone: no frames (in the span) yet
	}
	f := farm.FrameProgress{Frame: int(r.frame.Int64), Status: farm.FrameStatus(r.frameStatus.String),
		Worker: r.worker.String, RenderSeconds: r.renderSeconds.Float64, Attempts: int(r.attempts.Int64)}
	p.Frames = append(p.Frames, f)
	if !r.read.span {
		p.Counts.add(f)
	}
}

// JobProgress reads what a progress report shows of a job of a workspace:
// its status, its frames counted and, as read says, those of them it
// lists in frame order with their status, worker, render time and
// attempts, and what its work waits for. Clients poll it, so it reads
// only that: not the job's JSON columns (analysis, configuration), which
// cost more to decode than the rest of the answer, nor the frames' other
// columns. One statement reads them all, so they are of the same moment.
// A job of another workspace is ErrNotFound.
func (q *Queries) JobProgress(ctx context.Context, workspaceID, jobID string, read FramesRead) (Progress, error) {
	// The LEFT JOIN keeps the job's row when it has no frames yet: one
	// row whose frame columns are NULL. The subquery depends on no row,
	// so both databases compute it once for the statement. The task's
	// status is written in the statement, not bound: SQLite prepares a
	// statement again at each run when a parameter meets a partial
	// index's condition (those of tasks are on their status and kind).
	columns, join, joinArgs := progressReads(read, `?`, jobID)
	orderBy := ""
	if read.list {
		orderBy = ` ORDER BY f.frame`
	}
	args := append(append([]any{jobID}, joinArgs...), jobID, workspaceID)
	rows, err := q.query(ctx, `SELECT j.status, j.suspended_reason,
			(SELECT COALESCE(MAX(t.waiting_for), '') FROM tasks t WHERE t.job_id = ? AND t.status = '`+string(TaskRunning)+`'),
			`+columns+`
		FROM jobs j`+join+`
		WHERE j.id = ? AND j.workspace_id = ?`+orderBy, args...)
	if err != nil {
		return Progress{}, fmt.Errorf("read progress of job %s: %w", jobID, err)
	}
	defer rows.Close()
	p := Progress{JobID: jobID}
	if read.list {
		// Room for a short job's frames, which saves growing the slice
		// five times over for each one; a longer job grows it as usual.
		p.Frames = make([]farm.FrameProgress, 0, 64)
	}
	row := &progressRow{read: read}
	dest := append([]any{&p.Status, &p.SuspendedReason, &p.WaitingFor}, row.dest()...)
	found := false
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return Progress{}, fmt.Errorf("read progress of job %s: %w", jobID, err)
		}
		found = true
		row.addTo(&p)
	}
	if err := rows.Err(); err != nil {
		return Progress{}, fmt.Errorf("read progress of job %s: %w", jobID, err)
	}
	if !found {
		return Progress{}, ErrNotFound
	}
	return p, nil
}

// JobsProgress reads JobProgress of each of a workspace's jobs in any of
// statuses, oldest first: one statement, whatever the number of jobs.
func (q *Queries) JobsProgress(ctx context.Context, workspaceID string, withFrames bool, statuses ...farm.Status) ([]Progress, error) {
	// What the jobs' running tasks wait for is read once for them all
	// (the workspace's running tasks, a few per render slot), not once for
	// each frame's row.
	inStatuses := list(q.dialect, statusStrings(statuses))
	read := NoFrames
	if withFrames {
		read = AllFrames
	}
	columns, join, joinArgs := progressReads(read,
		`SELECT cj.id FROM jobs cj WHERE cj.workspace_id = ? AND `+q.dialect.oneOf("cj.status"), workspaceID, inStatuses)
	orderBy := ` ORDER BY j.created_at, j.id`
	if withFrames {
		orderBy += `, f.frame`
	}
	args := append(joinArgs, workspaceID, workspaceID, inStatuses)
	rows, err := q.query(ctx, `SELECT j.id, j.status, j.suspended_reason, COALESCE(w.waiting_for, ''), `+columns+`
		FROM jobs j`+join+`
			LEFT JOIN (SELECT t.job_id, MAX(t.waiting_for) AS waiting_for FROM tasks t
				WHERE t.workspace_id = ? AND t.status = '`+string(TaskRunning)+`' GROUP BY t.job_id) w ON w.job_id = j.id
		WHERE j.workspace_id = ? AND `+q.dialect.oneOf("j.status")+orderBy, args...)
	if err != nil {
		return nil, fmt.Errorf("read progress of the jobs in progress: %w", err)
	}
	defer rows.Close()
	var (
		out        []Progress
		job        Progress
		row        = &progressRow{read: read}
		waitingFor string
	)
	dest := append([]any{&job.JobID, &job.Status, &job.SuspendedReason, &waitingFor}, row.dest()...)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read progress of the jobs in progress: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].JobID != job.JobID {
			p := Progress{JobID: job.JobID, Status: job.Status, WaitingFor: waitingFor, SuspendedReason: job.SuspendedReason}
			if withFrames {
				p.Frames = []farm.FrameProgress{}
			}
			out = append(out, p)
		}
		row.addTo(&out[len(out)-1])
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read progress of the jobs in progress: %w", err)
	}
	return out, nil
}

func statusStrings(statuses []farm.Status) []string {
	out := make([]string, len(statuses))
	for i, s := range statuses {
		out[i] = string(s)
	}
	return out
}

// JobWork is how a job's work stands, beyond its frames: what its
// progress says it waits for is made of it.
type JobWork struct {
	// Parts counts each split frame's parts, by frame; empty for a job
	// without split frames.
	Parts map[int]PartCount
	// BlenderVersionsAwaited are the Blender versions its work still to do
	// needs (its waiting, queued and running tasks'), oldest first.
	BlenderVersionsAwaited []string
	// HasChunks is false for a job without chunks; then Need and
	// ChunkWaiting say nothing.
	HasChunks bool
	// Need is what its chunks need of a worker (all of a job's chunks
	// need the same).
	Need farm.Requirements
	// ChunkWaiting says whether one of its chunks waits for a render slot.
	ChunkWaiting bool
	// RetryUntil is, when nothing of the job renders or may be given a
	// render slot now and its chunks that failed wait for their next
	// attempt, when the first of those waits ends, and
	// RetryFailedAttempts the most attempts one of them failed; the zero
	// time when a chunk is queued or running, or waits with no wait to sit
	// out, or none is in a retry wait.
	RetryUntil          time.Time
	RetryFailedAttempts int
	// BlockedWorkers are the render nodes blocked on the job, by name.
	BlockedWorkers []string
}

// WorkOfJobs reads how the work of each of jobIDs stands, for their
// progress: their split frames' parts and the nodes blocked on them, and,
// of those of them in waiting (whose progress says what their work waits
// for), the Blender versions and chunks of their work left. Four
// statements whatever the number of jobs, two when waiting is empty. A
// job with no tasks, parts or blocks has the zero JobWork.
func (q *Queries) WorkOfJobs(ctx context.Context, jobIDs, waiting []string) (map[string]JobWork, error) {
	work := make(map[string]*JobWork, len(jobIDs))
	of := func(id string) *JobWork {
		w, ok := work[id]
		if !ok {
			w = &JobWork{}
			work[id] = w
		}
		return w
	}
	ids, waitingIDs := list(q.dialect, jobIDs), list(q.dialect, waiting)
	reads := []func() error{
		func() error { return q.partsOfJobs(ctx, ids, of) },
		func() error { return q.blockedOnJobs(ctx, ids, of) },
	}
	if len(waiting) > 0 {
		reads = append(reads,
			func() error { return q.versionsAwaitedOfJobs(ctx, waitingIDs, of) },
			func() error { return q.chunksOfJobs(ctx, waitingIDs, of) })
	}
	for _, read := range reads {
		if err := read(); err != nil {
			return nil, err
		}
	}
	out := make(map[string]JobWork, len(work))
	for id, w := range work {
		out[id] = *w
	}
	return out, nil
}

// partsOfJobs counts each split frame's parts: Completed of Total stored,
// their render seconds, and those a render node holds now; and whether
// the frame itself is completed (merged).
func (q *Queries) partsOfJobs(ctx context.Context, ids any, of func(string) *JobWork) error {
	rows, err := q.query(ctx, `SELECT p.job_id, p.frame, COUNT(*),
			COALESCE(SUM(CASE WHEN p.object_key <> '' THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(p.render_seconds), 0),
			COALESCE(SUM(CASE WHEN p.object_key = '' AND t.status = ? THEN 1 ELSE 0 END), 0),
			MAX(CASE WHEN f.status = ? THEN 1 ELSE 0 END)
		FROM frame_parts p LEFT JOIN tasks t ON t.id = p.task_id
			LEFT JOIN frames f ON f.job_id = p.job_id AND f.frame = p.frame
		WHERE `+q.dialect.oneOf("p.job_id")+` GROUP BY p.job_id, p.frame`, TaskRunning, farm.FrameCompleted, ids)
	if err != nil {
		return fmt.Errorf("count the parts of split frames: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var job string
		var frame, merged int
		var c PartCount
		if err := rows.Scan(&job, &frame, &c.Total, &c.Completed, &c.Seconds, &c.Rendering, &merged); err != nil {
			return fmt.Errorf("count the parts of split frames: %w", err)
		}
		c.FrameCompleted = merged == 1
		w := of(job)
		if w.Parts == nil {
			w.Parts = map[int]PartCount{}
		}
		w.Parts[frame] = c
	}
	return rows.Err()
}

// versionsAwaitedOfJobs lists the Blender versions the jobs' work still
// to do needs, so that progress can say when no live node has one.
func (q *Queries) versionsAwaitedOfJobs(ctx context.Context, ids any, of func(string) *JobWork) error {
	rows, err := q.query(ctx, `SELECT DISTINCT job_id, blender_version FROM tasks
		WHERE `+q.dialect.oneOf("job_id")+` AND `+q.dialect.unindexed("status")+` IN ('`+string(TaskWaiting)+`', '`+string(TaskQueued)+`', '`+string(TaskRunning)+`')
			AND blender_version <> ''`, ids)
	if err != nil {
		return fmt.Errorf("the blender versions of jobs' work left: %w", err)
	}
	defer rows.Close()
	var jobs []string
	for rows.Next() {
		var job, version string
		if err := rows.Scan(&job, &version); err != nil {
			return fmt.Errorf("the blender versions of jobs' work left: %w", err)
		}
		w := of(job)
		if w.BlenderVersionsAwaited == nil {
			jobs = append(jobs, job)
		}
		w.BlenderVersionsAwaited = append(w.BlenderVersionsAwaited, version)
	}
	for _, job := range jobs {
		w := of(job)
		w.BlenderVersionsAwaited = farm.SortBlenderVersions(w.BlenderVersionsAwaited)
	}
	return rows.Err()
}

// chunksOfJobs reads what the jobs' chunks need, whether one waits, and
// the wait of those whose render failed (see JobWork.RetryUntil).
func (q *Queries) chunksOfJobs(ctx context.Context, ids any, of func(string) *JobWork) error {
	at := now()
	// The kind and statuses are written in the statement, not bound: a
	// parameter that SQLite compares with a partial index's condition
	// (tasks_dispatched_by_workspace's kind = 'render') has it prepare
	// the statement again at each run, which cost more than the run.
	// A chunk is in a retry wait while it waits with a retry_at to come;
	// busy is one that renders, is given a slot, or may be given one.
	inRetryWait := `t.status = '` + string(TaskWaiting) + `' AND t.retry_at > ?`
	busy := `t.status IN ('` + string(TaskQueued) + `', '` + string(TaskRunning) + `') OR t.status = '` + string(TaskWaiting) + `' AND (t.retry_at IS NULL OR t.retry_at <= ?)`
	rows, err := q.query(ctx, `SELECT c.job_id, r.blender_version, r.gpu_type, r.gpu_count, r.minimum_ram_gib, r.tags,
			c.waiting, c.busy, c.retry_until, c.retry_failed
		FROM (SELECT t.job_id, MAX(t.requirements) AS requirements,
				MAX(CASE WHEN t.status = '`+string(TaskWaiting)+`' THEN 1 ELSE 0 END) AS waiting,
				MAX(CASE WHEN `+busy+` THEN 1 ELSE 0 END) AS busy,
				MIN(CASE WHEN `+inRetryWait+` THEN t.retry_at END) AS retry_until,
				MAX(CASE WHEN `+inRetryWait+` THEN t.failed_attempts END) AS retry_failed
			FROM tasks t WHERE `+q.dialect.oneOf("t.job_id")+` AND t.kind = '`+string(TaskRender)+`' GROUP BY t.job_id) c
		JOIN requirements r ON r.key = c.requirements`,
		at, at, at, ids)
	if err != nil {
		return fmt.Errorf("what jobs' chunks need: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			job, tags     string
			need          farm.Requirements
			waiting, busy int
			until         anyTime
			failed        sql.NullInt64
		)
		if err := rows.Scan(&job, &need.BlenderVersion, &need.GPUType, &need.GPUCount, &need.MinimumRAMGiB, &tags, &waiting, &busy, &until, &failed); err != nil {
			return fmt.Errorf("what jobs' chunks need: %w", err)
		}
		if need.Tags, err = farm.ParseTags(tags); err != nil {
			return err
		}
		w := of(job)
		w.HasChunks, w.Need, w.ChunkWaiting = true, need, waiting == 1
		if busy == 0 && !until.IsZero() {
			w.RetryUntil, w.RetryFailedAttempts = until.Time, int(failed.Int64)
		}
	}
	return rows.Err()
}

// blockedOnJobs lists, by name, the render nodes blocked on each job.
func (q *Queries) blockedOnJobs(ctx context.Context, ids any, of func(string) *JobWork) error {
	rows, err := q.query(ctx, `SELECT job_id, worker_name FROM job_workers WHERE `+q.dialect.oneOf("job_id")+` AND blocked_at IS NOT NULL
		ORDER BY job_id, worker_name`, ids)
	if err != nil {
		return fmt.Errorf("list the workers blocked on jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var job, name string
		if err := rows.Scan(&job, &name); err != nil {
			return fmt.Errorf("list the workers blocked on jobs: %w", err)
		}
		w := of(job)
		w.BlockedWorkers = append(w.BlockedWorkers, name)
	}
	return rows.Err()
}
