package store

import (
	"context"
	"fmt"
	"time"
)

// Worker states.
const (
	WorkerIdle    = "idle"
	WorkerBusy    = "busy"
	WorkerStopped = "stopped"
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
}

// RegisterWorker records a new worker run and declares earlier runs of the
// same name gone: a node that restarts does not hold what it held before.
func (q *Queries) RegisterWorker(ctx context.Context, w Worker) error {
	if _, err := q.exec(ctx, `UPDATE workers SET state = ? WHERE name = ? AND id <> ? AND state <> ?`, WorkerGone, w.Name, w.ID, WorkerGone); err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	_, err := q.exec(ctx, `INSERT INTO workers (id, name, started_at, heartbeat_at, state, current_task) VALUES (?, ?, ?, ?, ?, ?)`,
		w.ID, w.Name, w.StartedAt.UTC(), w.HeartbeatAt.UTC(), w.State, w.CurrentTask)
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
