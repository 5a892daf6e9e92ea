package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// The dispatcher's reads and writes (package engine decides with them).
// A render chunk waits in tasks until it is given to a worker run; each
// read here is a few steps down one of the indexes of migration 0011,
// however many chunks wait, and the statuses in the queries are written
// out as those indexes' conditions are, so that both databases use them.

// InDispatchTx runs fn in a transaction that may give chunks to workers
// (package engine's dispatch): on PostgreSQL it takes the dispatcher's
// lock first, so that no two replicas or workers count the same free
// slot or take the same waiting chunk at once; on SQLite every
// transaction already runs alone. The lock is taken before any row lock,
// and every transaction that dispatches takes it first, so that none
// waits for a row while holding it against another that waits for it.
// It is released when the transaction ends.
//
// The lock is LOCK TABLE on a table that holds nothing (dispatch_lock,
// migration 0020), not an advisory lock: LOCK TABLE is one of the few
// statements PostgreSQL runs without a snapshot. A transaction waiting
// in SELECT pg_advisory_xact_lock held that SELECT's snapshot while it
// waited, and with it the horizon below which PostgreSQL may clean up
// dead rows: with a dispatch or two always waiting, a farm's busiest
// tables (tasks, River's jobs) and their indexes kept every dead row of
// the last second or more, which every read of them went over again.
func (s *Store) InDispatchTx(ctx context.Context, fn func(tx *Tx) error) error {
	return s.InTx(ctx, func(tx *Tx) error {
		if s.dialect == DialectPostgres {
			if _, err := tx.exec(ctx, `LOCK TABLE dispatch_lock IN EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("take the dispatcher's lock: %w", err)
			}
		}
		return fn(tx)
	})
}

// WorkerSlots is a worker run with how many of its render slots are free:
// its slots less the chunks given to it, started or not.
type WorkerSlots struct {
	Worker
	Free int
}

// dispatchedTo counts the chunks given to a worker run and not ended.
const dispatchedTo = `(SELECT COUNT(*) FROM tasks d WHERE d.worker_id = w.id AND d.kind = 'render' AND d.status IN ('queued', 'running'))`

// FreeSlotsOf reads a worker run and its free slots. A run that is not
// idle or busy (stopping, stopped, gone) has none.
func (q *Queries) FreeSlotsOf(ctx context.Context, workerID string) (WorkerSlots, error) {
	cols := "w." + strings.ReplaceAll(workerColumns, ", ", ", w.")
	var ws WorkerSlots
	var dispatched int
	row := q.queryRow(ctx, `SELECT `+cols+`, `+dispatchedTo+` FROM workers w WHERE w.id = ?`, workerID)
	w, err := scanWorker(scanAlso{row, &dispatched})
	if errors.Is(err, sql.ErrNoRows) {
		return ws, ErrNotFound
	}
	if err != nil {
		return ws, fmt.Errorf("free slots of worker %s: %w", workerID, err)
	}
	ws.Worker = w
	if w.State == WorkerIdle || w.State == WorkerBusy {
		ws.Free = max(0, w.Slots-dispatched)
	}
	return ws, nil
}

// WorkersWithFreeSlots lists the live worker runs (idle or busy, a
// heartbeat since liveSince) that have a free render slot.
func (q *Queries) WorkersWithFreeSlots(ctx context.Context, liveSince time.Time) ([]WorkerSlots, error) {
	cols := "w." + strings.ReplaceAll(workerColumns, ", ", ", w.")
	rows, err := q.query(ctx, `SELECT `+cols+`, `+dispatchedTo+` FROM workers w
		WHERE w.state IN (?, ?) AND w.heartbeat_at >= ? AND w.slots > 0 ORDER BY w.id`, WorkerIdle, WorkerBusy, liveSince.UTC())
	if err != nil {
		return nil, fmt.Errorf("list workers with free slots: %w", err)
	}
	defer rows.Close()
	var out []WorkerSlots
	for rows.Next() {
		var dispatched int
		w, err := scanWorker(scanAlso{rows, &dispatched})
		if err != nil {
			return nil, fmt.Errorf("list workers with free slots: %w", err)
		}
		if free := w.Slots - dispatched; free > 0 {
			out = append(out, WorkerSlots{Worker: w, Free: free})
		}
	}
	return out, rows.Err()
}

// scanAlso scans a row's first columns with the scanner that asks for
// them, and the columns after them into extra.
type scanAlso struct {
	row   rowScanner
	extra *int
}

func (s scanAlso) Scan(dest ...any) error { return s.row.Scan(append(dest, s.extra)...) }

// EnsureRequirements records a set of requirements chunks are queued
// with, if it is new.
func (q *Queries) EnsureRequirements(ctx context.Context, r farm.Requirements) error {
	_, err := q.exec(ctx, `INSERT INTO requirements (key, blender_version, gpu_type, gpu_count, minimum_ram_gib, tags) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO NOTHING`, r.Key(), r.BlenderVersion, r.GPUType, r.GPUCount, r.MinimumRAMGiB, strings.Join(r.Tags, ","))
	if err != nil {
		return fmt.Errorf("record requirements %q: %w", r.Key(), err)
	}
	return nil
}

// AllRequirements lists every set of requirements chunks were ever queued
// with: a few rows.
func (q *Queries) AllRequirements(ctx context.Context) ([]farm.Requirements, error) {
	rows, err := q.query(ctx, `SELECT blender_version, gpu_type, gpu_count, minimum_ram_gib, tags FROM requirements`)
	if err != nil {
		return nil, fmt.Errorf("list requirements: %w", err)
	}
	defer rows.Close()
	var out []farm.Requirements
	for rows.Next() {
		var r farm.Requirements
		var tags string
		if err := rows.Scan(&r.BlenderVersion, &r.GPUType, &r.GPUCount, &r.MinimumRAMGiB, &tags); err != nil {
			return nil, fmt.Errorf("list requirements: %w", err)
		}
		if r.Tags, err = farm.ParseTags(tags); err != nil {
			return nil, fmt.Errorf("list requirements: %w", err)
		}
		if len(r.Tags) == 0 {
			r.Tags = nil
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// WaitingShares lists the workspaces that have chunks waiting with one of
// the requirements of keys (and not waiting after a failed attempt), each with its share of the farm as
// farm.NextWorkspace weighs it.
func (q *Queries) WaitingShares(ctx context.Context, keys []string) ([]farm.WorkspaceShare, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	at := now()
	rows, err := q.query(ctx, q.waitingSharesQuery(), at.Format(renderMonthLayout), list(q.dialect, keys), at)
	if err != nil {
		return nil, fmt.Errorf("list workspaces with waiting chunks: %w", err)
	}
	defer rows.Close()
	var out []farm.WorkspaceShare
	for rows.Next() {
		var s farm.WorkspaceShare
		var lastServed, oldestWaiting anyTime
		if err := rows.Scan(&s.ID, &s.Weight, &s.MaxRunning, &lastServed, &s.Budget, &s.MonthSeconds, &s.Running, &oldestWaiting); err != nil {
			return nil, fmt.Errorf("list workspaces with waiting chunks: %w", err)
		}
		// It has waited since it was last served (a chunk of its started
		// or ended), or since its oldest chunk began waiting if that was
		// later.
		s.WaitingSince = oldestWaiting.Time
		if lastServed.Time.After(s.WaitingSince) {
			s.WaitingSince = lastServed.Time
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// waitingSharesQuery is WaitingShares': the requirements a node offers
// are one list parameter (Dialect.oneOf), one statement text whatever
// their number.
func (q *Queries) waitingSharesQuery() string {
	return `SELECT ws.id, ws.weight, COALESCE(ws.max_running_chunks, 0), ws.last_served_at,
			COALESCE(ws.max_render_seconds_per_month, 0), CASE WHEN ws.render_month = ? THEN ws.month_render_seconds ELSE 0 END,
			(SELECT COUNT(*) FROM tasks r WHERE r.workspace_id = ws.id AND r.kind = 'render' AND r.status IN ('queued', 'running')),
			(SELECT MIN(o.updated_at) FROM tasks o WHERE o.workspace_id = ws.id AND o.status = 'waiting')
		FROM workspaces ws
		WHERE EXISTS (SELECT 1 FROM tasks t WHERE t.workspace_id = ws.id AND t.status = 'waiting' AND ` + q.dialect.oneOf("t.requirements") + `
			AND (t.retry_at IS NULL OR t.retry_at <= ?))`
}

// anyTime scans a time that SQLite returns as text where the column's
// type is lost (an aggregate's), and PostgreSQL as a time; NULL is the
// zero time.
type anyTime struct{ time.Time }

// sqliteTimeLayouts are how the SQLite driver writes times (Time.String)
// and the layouts it reads.
var sqliteTimeLayouts = []string{"2006-01-02 15:04:05.999999999 -0700 MST", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02T15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999"}

func (t *anyTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		t.Time = time.Time{}
		return nil
	case time.Time:
		t.Time = v.UTC()
		return nil
	case []byte:
		return t.Scan(string(v))
	case string:
		for _, layout := range sqliteTimeLayouts {
			if p, err := time.Parse(layout, v); err == nil {
				t.Time = p.UTC()
				return nil
			}
		}
		return fmt.Errorf("%q is not a time", v)
	}
	return fmt.Errorf("%T is not a time", v)
}

// NextWaitingChunk finds a workspace's waiting chunk to give a worker
// that meets the requirements of keys, and whose wait after a failed
// attempt (RetryLater) is over: of the highest priority, then of
// the job whose render was requested first, then the lowest chunk, of no
// job in passOver. Each set of requirements is one read down the waiting
// chunks' index. ErrNotFound when there is none.
func (q *Queries) NextWaitingChunk(ctx context.Context, workspaceID string, keys, passOver []string) (Task, error) {
	tasks, err := q.NextWaitingChunks(ctx, workspaceID, keys, passOver, nil, 1)
	if err != nil {
		return Task{}, err
	}
	if len(tasks) == 0 {
		return Task{}, ErrNotFound
	}
	return tasks[0], nil
}

// NextWaitingChunks is NextWaitingChunk for the next limit chunks, in
// that order, leaving out the chunks of skip (ids): a dispatch reads
// the chunks it will give a batch at a time, and the chunks it gave are
// still waiting in the database until it ends (engine's dispatch). Fewer
// than limit means there are no more.
func (q *Queries) NextWaitingChunks(ctx context.Context, workspaceID string, keys, passOver, skip []string, limit int) ([]Task, error) {
	if limit < 1 {
		return nil, nil
	}
	at := now()
	var all []Task
	for _, key := range keys {
		tasks, err := q.queryTasks(ctx, `SELECT `+taskColumns+` FROM tasks
			WHERE status = 'waiting' AND workspace_id = ? AND requirements = ? AND (retry_at IS NULL OR retry_at <= ?)
				AND `+q.dialect.noneOf("job_id")+` AND `+q.dialect.noneOf("id")+`
			ORDER BY priority DESC, created_at, job_id, chunk LIMIT ?`,
			workspaceID, key, at, list(q.dialect, passOver), list(q.dialect, skip), limit)
		if err != nil {
			return nil, fmt.Errorf("next waiting chunks: %w", err)
		}
		all = append(all, tasks...)
	}
	if len(keys) > 1 {
		slices.SortFunc(all, func(a, b Task) int {
			switch {
			case before(a, b):
				return -1
			case before(b, a):
				return 1
			}
			return 0
		})
	}
	return all[:min(len(all), limit)], nil
}

// before is the order of waiting chunks: NextWaitingChunk's.
func before(a, b Task) bool {
	switch {
	case a.Priority != b.Priority:
		return a.Priority > b.Priority
	case !a.CreatedAt.Equal(b.CreatedAt):
		return a.CreatedAt.Before(b.CreatedAt)
	case a.JobID != b.JobID:
		return a.JobID < b.JobID
	}
	return a.Chunk < b.Chunk
}

// QueuedChunk is a waiting chunk a dispatch gives a worker run, with the
// River job it inserted for it on that run's queue.
type QueuedChunk struct {
	TaskID     string
	Generation int
	WorkerID   string
	RiverJobID int64
}

// LockWaitingChunks answers, of chunks a dispatch gave, those that still
// wait at their generation, and locks them for the rest of the
// transaction, so that they stay so until it queues them (QueueChunks).
// A dispatch reads the waiting chunks without locking them; on
// PostgreSQL another transaction may cancel one, or hand it a new
// generation, before the dispatch ends, and that chunk must get no River
// job. The rows are locked in the order of their ids, as every
// transaction that writes many waiting chunks locks them
// (CancelTasksOfJob, SetWaitingPriority), so that two such transactions
// never each wait for the other. On SQLite the dispatch's transaction is
// the only writer from its start, and the read alone answers.
func (q *Queries) LockWaitingChunks(ctx context.Context, chunks []QueuedChunk) ([]QueuedChunk, error) {
	if len(chunks) == 0 {
		return nil, nil
	}
	ids := make([]string, len(chunks))
	for i, c := range chunks {
		ids[i] = c.TaskID
	}
	rows, err := q.query(ctx, q.lockWaitingChunksQuery(), TaskWaiting, list(q.dialect, ids))
	if err != nil {
		return nil, fmt.Errorf("lock %d waiting chunks: %w", len(chunks), err)
	}
	defer rows.Close()
	generation := make(map[string]int, len(chunks))
	for rows.Next() {
		var id string
		var g int
		if err := rows.Scan(&id, &g); err != nil {
			return nil, fmt.Errorf("lock %d waiting chunks: %w", len(chunks), err)
		}
		generation[id] = g
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock %d waiting chunks: %w", len(chunks), err)
	}
	var waiting []QueuedChunk
	for _, c := range chunks {
		if g, ok := generation[c.TaskID]; ok && g == c.Generation {
			waiting = append(waiting, c)
		}
	}
	return waiting, nil
}

// lockTasksInOrder locks, on PostgreSQL, the tasks a transaction is about
// to write many of (those of where, a condition on tasks with its
// arguments), in the order of their ids: see LockWaitingChunks. On SQLite
// the transaction is the only writer already.
func (q *Queries) lockTasksInOrder(ctx context.Context, where string, args ...any) error {
	if q.dialect != DialectPostgres {
		return nil
	}
	rows, err := q.query(ctx, `SELECT id FROM tasks WHERE `+where+` ORDER BY id FOR UPDATE`, args...)
	if err != nil {
		return fmt.Errorf("lock tasks: %w", err)
	}
	// Each row is locked as it is read: read them all.
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fmt.Errorf("lock tasks: %w", err)
	}
	return rows.Close()
}

// QueueChunks gives waiting chunks to worker runs, in one statement
// however many: each queued, for its worker run and River job. The
// dispatch locked them first (LockWaitingChunks), and inserted River
// jobs only for those still waiting; a chunk that no longer waits at its
// generation is left as it is all the same. It answers how many it
// queued.
func (q *Queries) QueueChunks(ctx context.Context, chunks []QueuedChunk) (int, error) {
	if len(chunks) == 0 {
		return 0, nil
	}
	ids, workers, riverJobs, generations := make([]string, len(chunks)), make([]string, len(chunks)), make([]int64, len(chunks)), make([]int, len(chunks))
	for i, c := range chunks {
		ids[i], workers[i], riverJobs[i], generations[i] = c.TaskID, c.WorkerID, c.RiverJobID, c.Generation
	}
	at := now()
	res, err := q.exec(ctx, q.queueChunksQuery(),
		TaskQueued, at, at, list(q.dialect, ids), list(q.dialect, workers), list(q.dialect, riverJobs), list(q.dialect, generations), TaskWaiting)
	if err != nil {
		return 0, fmt.Errorf("queue %d chunks: %w", len(chunks), err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// lockWaitingChunksQuery is LockWaitingChunks' statement: the status,
// the ids (a list), the chunks' ids and generations back. Each chunk is
// looked up by its id (Dialect.unindexed).
func (q *Queries) lockWaitingChunksQuery() string {
	return `SELECT id, generation FROM tasks WHERE ` + q.dialect.unindexed("status") + ` = ? AND ` + q.dialect.oneOf("id") + `
		ORDER BY id` + q.dialect.rowLock("FOR UPDATE")
}

// queueChunksQuery is QueueChunks' statement: the status queued, when,
// twice, the rows of the chunks (ids, worker runs, River jobs,
// generations: lists), and the status waiting. Each chunk is looked up
// by its id (Dialect.unindexed).
func (q *Queries) queueChunksQuery() string {
	return `UPDATE tasks SET status = ?, worker_id = given.worker_id, river_job_id = given.river_job_id,
			updated_at = ?, dispatched_at = ?
		FROM ` + q.dialect.rows("id text", "worker_id text", "river_job_id bigint", "generation integer") + ` AS given
		WHERE tasks.id = given.id AND ` + q.dialect.unindexed("tasks.status") + ` = ? AND tasks.generation = given.generation`
}

// MarkServed records that a workspace was served at at: one of its
// chunks was given a worker, or ended. It waits from then on
// (farm.WorkspaceShare.WaitingSince), so that of two workspaces with
// as few running chunks per weight, a slot freed by one's chunk goes to
// the other.
func (q *Queries) MarkServed(ctx context.Context, workspaceID string, at time.Time) error {
	if _, err := q.exec(ctx, `UPDATE workspaces SET last_served_at = ? WHERE id = ?`, at.UTC(), workspaceID); err != nil {
		return fmt.Errorf("record a dispatch: %w", err)
	}
	return nil
}

// QueuedOn lists the chunks given to a worker run that it has not
// started: what it hands back as it stops.
func (q *Queries) QueuedOn(ctx context.Context, workerID string) ([]Task, error) {
	return q.queryTasks(ctx, `SELECT `+taskColumns+` FROM tasks WHERE status = ? AND worker_id = ? AND kind = ?`, TaskQueued, workerID, TaskRender)
}

// SetWaitingPriority gives a job's waiting chunks its new priority; those
// given to workers keep running. The chunks are locked in the order of
// their ids first (see LockWaitingChunks).
func (q *Queries) SetWaitingPriority(ctx context.Context, jobID string, priority int) error {
	if err := q.lockTasksInOrder(ctx, `job_id = ? AND status = ?`, jobID, TaskWaiting); err != nil {
		return fmt.Errorf("set the priority of job %s's chunks: %w", jobID, err)
	}
	if _, err := q.exec(ctx, `UPDATE tasks SET priority = ? WHERE job_id = ? AND status = ?`, priority, jobID, TaskWaiting); err != nil {
		return fmt.Errorf("set the priority of job %s's chunks: %w", jobID, err)
	}
	return nil
}

// ManyChunks is how many chunks one render request may add before the
// planner's statistics are gathered again (RefreshPlannerStats).
const ManyChunks = 500

// RefreshPlannerStats has PostgreSQL gather its statistics of the tasks
// and frames tables now, rather than at autovacuum's next round, up to a
// minute away: after a render request of thousands of chunks the planner
// would otherwise take the waiting chunks to be as few as before, and
// plan the dispatcher's read of the workspaces with chunks waiting to
// read every waiting chunk (2 to 5 ms at 3,000, under the dispatcher's
// lock) instead of one a workspace (0.3 ms). It takes some 30 ms at
// 5,000 chunks. SQLite plans without such statistics: nothing to do.
func (s *Store) RefreshPlannerStats(ctx context.Context) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `ANALYZE tasks, frames`); err != nil {
		return fmt.Errorf("gather the planner's statistics of tasks and frames: %w", err)
	}
	return nil
}
