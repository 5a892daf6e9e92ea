package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// Worker states.
const (
	WorkerIdle = "idle"
	WorkerBusy = "busy"
	// WorkerStopping marks a run that received a stop: it finishes what
	// it runs, and the dispatcher gives it nothing new.
	WorkerStopping = "stopping"
	WorkerStopped  = "stopped"
	// WorkerGone marks a run that is known to be over (a newer run of the
	// same name started), so its tasks are handed out at once.
	WorkerGone = "gone"
)

// Worker is one run of a worker process.
type Worker struct {
	ID          string
	Name        string
	StartedAt   time.Time
	HeartbeatAt time.Time
	State       string
	CurrentTask string
	// BlenderVersions are the full versions of the Blenders the run
	// offers, such as 3.4.1 and 4.3.2.
	BlenderVersions []string
	// Slots is how many chunks the run renders at once; Tags, GPUs and
	// MemoryBytes are what else it offers the chunks it takes.
	Slots       int
	Tags        []string
	GPUs        []farm.GPU
	MemoryBytes int64
	// Process is where the run's process runs; its zero value where that
	// is not known.
	Process WorkerProcess
}

// WorkerProcess says where a worker run's process runs, so that a run
// started under its name on the same machine can tell whether that
// process is still alive.
type WorkerProcess struct {
	// Host is the machine's host name, for messages.
	Host string
	// Machine is the kernel's boot id and the process's PID namespace:
	// process ids compare only between processes of the same Machine.
	// Empty where they could not be read.
	Machine string
	// PID is the process id, and PIDStart when the process started
	// (clock ticks after boot), which tells the run's own process from
	// another given the same id later.
	PID      int
	PIDStart int64
}

// Offer is what the run offers the farm's chunks.
func (w Worker) Offer() farm.WorkerOffer {
	return farm.WorkerOffer{Name: w.Name, BlenderVersions: w.BlenderVersions, GPUs: w.GPUs, MemoryBytes: w.MemoryBytes, Tags: w.Tags}
}

const workerColumns = `id, name, started_at, heartbeat_at, state, current_task, blender_versions, slots, tags, gpus, memory_bytes, host, machine, pid, pid_start`

func scanWorker(row rowScanner) (Worker, error) {
	var w Worker
	var versions, tags, gpus string
	if err := row.Scan(&w.ID, &w.Name, &w.StartedAt, &w.HeartbeatAt, &w.State, &w.CurrentTask, &versions, &w.Slots, &tags, &gpus, &w.MemoryBytes,
		&w.Process.Host, &w.Process.Machine, &w.Process.PID, &w.Process.PIDStart); err != nil {
		return w, err
	}
	w.BlenderVersions = splitVersions(versions)
	var err error
	if w.Tags, err = farm.ParseTags(tags); err != nil {
		return w, fmt.Errorf("worker %s: %w", w.ID, err)
	}
	if w.GPUs, err = farm.ParseGPUs(gpus); err != nil {
		return w, fmt.Errorf("worker %s: %w", w.ID, err)
	}
	if len(w.Tags) == 0 {
		w.Tags = nil
	}
	w.StartedAt, w.HeartbeatAt = w.StartedAt.UTC(), w.HeartbeatAt.UTC()
	return w, nil
}

// RegisterWorker records a new worker run and declares earlier runs of the
// same name gone: a node that restarts does not hold what it held before.
func (q *Queries) RegisterWorker(ctx context.Context, w Worker) error {
	if _, err := q.exec(ctx, `UPDATE workers SET state = ? WHERE name = ? AND id <> ? AND state <> ?`, WorkerGone, w.Name, w.ID, WorkerGone); err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	for _, v := range w.BlenderVersions {
		if _, ok := farm.ParseBlenderVersion(v); !ok {
			return fmt.Errorf("register worker: %q is not a Blender version", v)
		}
	}
	tags, err := farm.NormalizeTags(w.Tags)
	if err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	gpus := farm.FormatGPUs(w.GPUs)
	if _, err := farm.ParseGPUs(gpus); err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	_, err = q.exec(ctx, `INSERT INTO workers (`+workerColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID, w.Name, w.StartedAt.UTC(), w.HeartbeatAt.UTC(), w.State, w.CurrentTask, strings.Join(w.BlenderVersions, ","),
		w.Slots, strings.Join(tags, ","), gpus, w.MemoryBytes, w.Process.Host, w.Process.Machine, w.Process.PID, w.Process.PIDStart)
	if err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	return nil
}

// Heartbeat records that a worker run is alive and what it is doing.
func (q *Queries) Heartbeat(ctx context.Context, id, state, currentTask string) error {
	_, err := q.exec(ctx, `UPDATE workers SET heartbeat_at = ?, state = ?, current_task = ? WHERE id = ? AND state <> ?`,
		now(), state, currentTask, id, WorkerGone)
	return err
}

// LiveWorkers counts worker runs whose heartbeat is newer than since.
func (q *Queries) LiveWorkers(ctx context.Context, since time.Time) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM workers WHERE heartbeat_at >= ? AND state NOT IN (?, ?)`, since.UTC(), WorkerGone, WorkerStopped).Scan(&n)
	return n, err
}

// ListWorkers lists the worker runs seen since the given time, newest
// heartbeat first: what `renderfarm workers` shows.
func (q *Queries) ListWorkers(ctx context.Context, since time.Time) ([]Worker, error) {
	return q.queryWorkers(ctx, `SELECT `+workerColumns+` FROM workers WHERE heartbeat_at >= ? ORDER BY heartbeat_at DESC, name`, since.UTC())
}

// GetWorker finds a worker run by id.
func (q *Queries) GetWorker(ctx context.Context, id string) (Worker, error) {
	w, err := scanWorker(q.queryRow(ctx, `SELECT `+workerColumns+` FROM workers WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return w, ErrNotFound
	}
	return w, err
}

// RegisteredWorkers are the worker runs the farm knows of, online or not,
// but for those a newer run of the same name replaced: what a render
// request is checked against (farm.CheckSomeWorkerMeets).
func (q *Queries) RegisteredWorkers(ctx context.Context) ([]farm.WorkerOffer, error) {
	workers, err := q.queryWorkers(ctx, `SELECT `+workerColumns+` FROM workers WHERE state <> ?`, WorkerGone)
	offers := make([]farm.WorkerOffer, len(workers))
	for i, w := range workers {
		offers[i] = w.Offer()
	}
	return offers, err
}

// LiveWorkerOffers are what the worker runs whose heartbeat is newer than
// since offer: what a waiting chunk can be rendered by now.
func (q *Queries) LiveWorkerOffers(ctx context.Context, since time.Time) ([]farm.WorkerOffer, error) {
	workers, err := q.queryWorkers(ctx, `SELECT `+workerColumns+` FROM workers WHERE heartbeat_at >= ? AND state NOT IN (?, ?)`, since.UTC(), WorkerGone, WorkerStopped)
	offers := make([]farm.WorkerOffer, len(workers))
	for i, w := range workers {
		offers[i] = w.Offer()
	}
	return offers, err
}

func (q *Queries) queryWorkers(ctx context.Context, query string, args ...any) ([]Worker, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	defer rows.Close()
	var out []Worker
	for rows.Next() {
		w, err := scanWorker(rows)
		if err != nil {
			return nil, fmt.Errorf("list workers: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// LiveBlenderVersions lists the Blender versions that the worker runs
// whose heartbeat is newer than since offer, with how many offer each,
// oldest version first: what the farm can render with now.
func (q *Queries) LiveBlenderVersions(ctx context.Context, since time.Time) ([]farm.BlenderOffer, error) {
	rows, err := q.query(ctx, `SELECT blender_versions FROM workers WHERE heartbeat_at >= ? AND state NOT IN (?, ?)`, since.UTC(), WorkerGone, WorkerStopped)
	if err != nil {
		return nil, fmt.Errorf("list blender versions: %w", err)
	}
	defer rows.Close()
	workers := map[string]int{}
	for rows.Next() {
		var versions string
		if err := rows.Scan(&versions); err != nil {
			return nil, err
		}
		for _, v := range splitVersions(versions) {
			workers[v]++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	offers := []farm.BlenderOffer{}
	for _, v := range farm.SortBlenderVersions(slices.Collect(maps.Keys(workers))) {
		offers = append(offers, farm.BlenderOffer{Version: v, Workers: workers[v]})
	}
	return offers, nil
}

// BlenderLastBeats answers, for each Blender version offered by a worker
// run that beat its heart since since, the newest such heartbeat: how
// recently a node of that version was last heard of. A version absent
// was offered by no run heard of since then.
func (q *Queries) BlenderLastBeats(ctx context.Context, since time.Time) (map[string]time.Time, error) {
	rows, err := q.query(ctx, `SELECT blender_versions, heartbeat_at FROM workers WHERE heartbeat_at >= ?`, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("read when each Blender was last offered: %w", err)
	}
	defer rows.Close()
	last := map[string]time.Time{}
	for rows.Next() {
		var versions string
		var beat time.Time
		if err := rows.Scan(&versions, &beat); err != nil {
			return nil, fmt.Errorf("read when each Blender was last offered: %w", err)
		}
		for _, v := range splitVersions(versions) {
			if beat.After(last[v]) {
				last[v] = beat.UTC()
			}
		}
	}
	return last, rows.Err()
}

// splitVersions reads a blender_versions column.
func splitVersions(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// FarmStats are the numbers /metrics reports from the database.
type FarmStats struct {
	JobsByStatus map[string]int
	// QueueDepth counts River jobs waiting to run, by queue.
	QueueDepth  map[string]int
	LiveWorkers int
	// UnfinishedTasks counts the unfinished tasks by kind and status:
	// chunks waiting for a free slot (TaskWaiting), tasks queued for a
	// worker and tasks running; what an autoscaler of render nodes
	// follows.
	UnfinishedTasks map[TaskCount]int
	// WorkersByState counts the live worker runs by state (idle, busy),
	// and under "dead" the runs silent for longer than the worker timeout,
	// neither stopped nor gone, heard from within DeadWorkerWindow before
	// that.
	WorkersByState map[string]int
}

// TaskCount is the key of FarmStats.UnfinishedTasks.
type TaskCount struct {
	Kind   TaskKind
	Status TaskStatus
}

// WorkerDead is the state /metrics reports for a run that went silent
// without stopping: the database keeps the last state it wrote.
const WorkerDead = "dead"

// DeadWorkerWindow is how long a dead run counts in
// FarmStats.WorkersByState: long enough for an alert to be seen, short
// enough that a machine taken away for good stops being reported.
const DeadWorkerWindow = time.Hour

// Stats reads the farm's numbers; workers count as live when their
// heartbeat is newer than liveSince.
func (q *Queries) Stats(ctx context.Context, liveSince time.Time) (FarmStats, error) {
	st := FarmStats{JobsByStatus: map[string]int{}, QueueDepth: map[string]int{},
		UnfinishedTasks: map[TaskCount]int{}, WorkersByState: map[string]int{}}
	count := func(into map[string]int, query string) error {
		rows, err := q.query(ctx, query)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var label string
			var n int
			if err := rows.Scan(&label, &n); err != nil {
				return err
			}
			into[label] = n
		}
		return rows.Err()
	}
	if err := count(st.JobsByStatus, `SELECT status, COUNT(*) FROM jobs GROUP BY status`); err != nil {
		return st, fmt.Errorf("count jobs: %w", err)
	}
	if err := count(st.QueueDepth, `SELECT queue, COUNT(*) FROM river_job WHERE state IN ('available', 'retryable', 'scheduled') GROUP BY queue`); err != nil {
		return st, fmt.Errorf("count queued work: %w", err)
	}
	rows, err := q.query(ctx, `SELECT kind, status, COUNT(*) FROM tasks WHERE status IN (?, ?, ?) GROUP BY kind, status`, TaskWaiting, TaskQueued, TaskRunning)
	if err != nil {
		return st, fmt.Errorf("count tasks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c TaskCount
		var n int
		if err := rows.Scan(&c.Kind, &c.Status, &n); err != nil {
			return st, fmt.Errorf("count tasks: %w", err)
		}
		st.UnfinishedTasks[c] = n
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("count tasks: %w", err)
	}
	rows, err = q.query(ctx, `SELECT state, COUNT(*) FROM workers WHERE heartbeat_at >= ? AND state NOT IN (?, ?) GROUP BY state`, liveSince.UTC(), WorkerGone, WorkerStopped)
	if err != nil {
		return st, fmt.Errorf("count workers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return st, fmt.Errorf("count workers: %w", err)
		}
		st.WorkersByState[state] = n
		st.LiveWorkers += n
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("count workers: %w", err)
	}
	var dead int
	err = q.queryRow(ctx, `SELECT COUNT(*) FROM workers WHERE heartbeat_at < ? AND heartbeat_at >= ? AND state NOT IN (?, ?)`,
		liveSince.UTC(), liveSince.Add(-DeadWorkerWindow).UTC(), WorkerGone, WorkerStopped).Scan(&dead)
	if err != nil {
		return st, fmt.Errorf("count dead workers: %w", err)
	}
	st.WorkersByState[WorkerDead] = dead
	return st, nil
}

// LiveWorkersNamed lists the runs named name whose heartbeat is newer
// than since and that neither stopped nor were replaced: a node about to
// start under that name asks whether another process holds it.
func (q *Queries) LiveWorkersNamed(ctx context.Context, name string, since time.Time) ([]Worker, error) {
	return q.queryWorkers(ctx, `SELECT `+workerColumns+` FROM workers WHERE name = ? AND heartbeat_at >= ? AND state NOT IN (?, ?) ORDER BY heartbeat_at DESC`,
		name, since.UTC(), WorkerGone, WorkerStopped)
}

// TasksOfReplacedRuns lists the unfinished tasks held by, or given to,
// the runs of a worker's name that the run id replaced (RegisterWorker
// declared them gone): what OrphanedTasks finds of them, for the new run
// to hand out at once rather than leave to the reaper's next search.
func (q *Queries) TasksOfReplacedRuns(ctx context.Context, name, id string) ([]Task, error) {
	cols := "t." + strings.ReplaceAll(taskColumns, ", ", ", t.")
	return q.queryTasks(ctx, `SELECT `+cols+` FROM tasks t JOIN workers w ON w.id = t.worker_id
		WHERE w.name = ? AND w.id <> ? AND w.state = ?
		AND (t.status = ? OR (t.status = ? AND t.kind = ?))`, name, id, WorkerGone, TaskRunning, TaskQueued, TaskRender)
}
