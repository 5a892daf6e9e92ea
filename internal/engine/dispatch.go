package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// Dispatch. A render chunk waits in the farm's tasks table, with no River
// job, until a worker run has a free slot for it; then, in one
// transaction, the chunk is given to that run (queued, its worker_id set)
// and its River job is inserted on the run's own queue (RenderQueue),
// which only that run works. Which waiting chunk a freed slot takes is
// the farm's rule (see package farm's scheduling.go): one the worker can
// render, of the workspace with the fewest running chunks per weight
// under its quota, the highest priority, the oldest render request.
//
// River still runs every chunk: its workers, retries (on the same run's
// queue, the slot kept), cancellation and rescue. What River cannot do
// (its four priority levels have no fairness between tenants, and a job
// cannot be steered to a worker by what the worker offers) is decided
// here, before River sees the chunk.
//
// Chunks are dispatched, each time in a transaction that takes the
// dispatcher's lock first (store.InDispatchTx):
//   - when a chunk ends, right after the transaction that finishes it:
//     the freed slot takes the next chunk (the node calls
//     DispatchFreedSlot);
//   - after a render request, to the live workers' free slots (DispatchIdle);
//   - when a worker starts, or its attempt at a chunk ends without
//     finishing it (a cancel, a hand-back), to its own slots (FillWorker);
//   - when the reaper hands chunks out again, and at each of its runs, as
//     a safety net for a dispatch that never happened (a process that died
//     between a commit and its dispatch, a quota raised).

// RenderQueue is the River queue of the chunks given to the worker run
// workerID (a UUID, which River's queue names allow).
func RenderQueue(workerID string) string { return QueueRender + "_" + workerID }

// DispatchTo fills the free render slots of the worker run workerID with
// waiting chunks, in tx, which must hold the dispatcher's lock
// (store.InDispatchTx). It answers how many chunks it gave the run; a run
// that is stopping, or gone, gets none.
func (e *Engine) DispatchTo(ctx context.Context, tx *store.Tx, workerID string) (int, error) {
	return e.dispatchTo(ctx, tx, workerID, math.MaxInt)
}

// DispatchFreedSlot gives the slot of the worker run workerID that one of
// its chunks, just ended, freed the next waiting chunk, in tx, which must
// hold the dispatcher's lock: one chunk at most. The run's other free
// slots are those of chunks that ended too and whose own dispatch waits
// for the lock: filled now, their chunks would wait for River until those
// attempts return, each after its turn at the lock. It answers whether
// it gave one; a run that is stopping, or gone, gets none.
func (e *Engine) DispatchFreedSlot(ctx context.Context, tx *store.Tx, workerID string) (bool, error) {
	n, err := e.dispatchTo(ctx, tx, workerID, 1)
	return n > 0, err
}

// dispatchTo fills at most most of the free render slots of the worker
// run workerID, in tx (DispatchTo, DispatchFreedSlot).
func (e *Engine) dispatchTo(ctx context.Context, tx *store.Tx, workerID string, most int) (int, error) {
	ws, err := tx.FreeSlotsOf(ctx, workerID)
	if errors.Is(err, store.ErrNotFound) || err == nil && ws.Free == 0 {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	d, err := e.newDispatch(ctx, tx)
	if err != nil {
		return 0, err
	}
	n := 0
	for ; n < min(ws.Free, most); n++ {
		ok, err := d.one(ctx, ws.Worker)
		if err != nil || !ok {
			return n, err
		}
	}
	return n, nil
}

// DispatchIdle fills the free slots of every live worker run with waiting
// chunks, in a transaction of its own, a chunk to each run in turn so
// that one run does not take what others could start at once. It answers
// how many chunks it gave out.
func (e *Engine) DispatchIdle(ctx context.Context) (int, error) {
	n := 0
	err := e.store.InDispatchTx(ctx, func(tx *store.Tx) error {
		n = 0
		workers, err := tx.WorkersWithFreeSlots(ctx, time.Now().Add(-e.cfg.WorkerTimeout))
		if err != nil || len(workers) == 0 {
			return err
		}
		d, err := e.newDispatch(ctx, tx)
		if err != nil {
			return err
		}
		for len(workers) > 0 {
			next := workers[:0]
			for _, w := range workers {
				ok, err := d.one(ctx, w.Worker)
				if err != nil {
					return err
				}
				if ok {
					n++
					if w.Free--; w.Free > 0 {
						next = append(next, w)
					}
				}
			}
			workers = next
		}
		return nil
	})
	return n, err
}

// FillWorker fills the free slots of the worker run workerID, in a
// transaction of its own when it has any: after its attempt at a chunk
// ended without the transaction that finishes a chunk (a cancel, a
// hand-back, a chunk that was not its own), and when it starts.
func (e *Engine) FillWorker(ctx context.Context, workerID string) (int, error) {
	// A look without the lock first: most of the time the slot is taken
	// already (the chunk's end dispatched), and nothing need wait.
	if ws, err := e.store.FreeSlotsOf(ctx, workerID); err != nil || ws.Free == 0 {
		if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
		return 0, err
	}
	n := 0
	err := e.store.InDispatchTx(ctx, func(tx *store.Tx) error {
		var err error
		n, err = e.DispatchTo(ctx, tx, workerID)
		return err
	})
	return n, err
}

// dispatch is one transaction's dispatching: the sets of requirements
// chunks were queued with, read once.
type dispatch struct {
	e            *Engine
	tx           *store.Tx
	requirements []farm.Requirements
	// keys caches, by worker run, the keys of the requirements it meets.
	keys map[string][]string
}

func (e *Engine) newDispatch(ctx context.Context, tx *store.Tx) (*dispatch, error) {
	all, err := tx.AllRequirements(ctx)
	if err != nil {
		return nil, err
	}
	return &dispatch{e: e, tx: tx, requirements: all, keys: map[string][]string{}}, nil
}

// meets lists the keys of the requirements worker meets.
func (d *dispatch) meets(w store.Worker) []string {
	if keys, ok := d.keys[w.ID]; ok {
		return keys
	}
	offer := w.Offer()
	keys := []string{}
	for _, r := range d.requirements {
		if offer.Meets(r) {
			keys = append(keys, r.Key())
		}
	}
	d.keys[w.ID] = keys
	return keys
}

// WorkerMayTake decides, for one chunk the farm's rule picked, whether
// the worker run may take its job's chunks at all: the place for a rule
// about one job and one worker that the chunk's requirements cannot say
// (a worker a job's owner blocked, say). A job it refuses is passed over
// for that worker in this dispatch, and the worker gets the next chunk
// the rule picks. It runs inside the dispatcher's transaction.
type WorkerMayTake func(ctx context.Context, tx *store.Tx, w store.Worker, chunk store.Task) (bool, error)

// farmRuleMayTake is the default WorkerMayTake, the farm's rule
// (farm.MayTake): a render node that is sick takes nothing, and one
// blocked on a job (its chunks failed there twice) takes none of that
// job's chunks.
func farmRuleMayTake(ctx context.Context, tx *store.Tx, w store.Worker, chunk store.Task) (bool, error) {
	return tx.MayTake(ctx, w.Name, chunk.JobID)
}

// SetWorkerMayTake sets the rule the dispatcher asks before it gives a
// worker a chunk of a job (see WorkerMayTake). Set it before the engine
// starts; nil restores the default, the farm's rule (farmRuleMayTake).
func (e *Engine) SetWorkerMayTake(rule WorkerMayTake) {
	if rule == nil {
		rule = farmRuleMayTake
	}
	e.mayTake = rule
}

// MaxPassedOver bounds the chunks one dispatch passes over for one slot
// (jobs the worker may not take, chunks taken meanwhile), so that a slot
// never holds the dispatcher's lock for long; the reaper's periodic
// dispatch tries again.
const MaxPassedOver = 16

// one gives worker run w the waiting chunk the farm's rule picks for it,
// if there is one: it answers false when none that w can render waits (or
// every workspace that has one is at its quota).
func (d *dispatch) one(ctx context.Context, w store.Worker) (bool, error) {
	keys := d.meets(w)
	if len(keys) == 0 {
		return false, nil
	}
	var passedOver []string        // jobs w may not take
	exhausted := map[string]bool{} // workspaces whose every chunk w could take is of such a job
	for range MaxPassedOver + 1 {
		shares, err := d.tx.WaitingShares(ctx, keys)
		if err != nil {
			return false, err
		}
		shares = slices.DeleteFunc(shares, func(s farm.WorkspaceShare) bool { return exhausted[s.ID] })
		i := farm.NextWorkspace(shares)
		if i < 0 {
			return false, nil
		}
		task, err := d.tx.NextWaitingChunk(ctx, shares[i].ID, keys, passedOver)
		if errors.Is(err, store.ErrNotFound) {
			// Every chunk of that workspace w could take is of a job it may
			// not take: the next workspace in the farm's order.
			exhausted[shares[i].ID] = true
			continue
		}
		if err != nil {
			return false, err
		}
		ok, err := d.e.mayTake(ctx, d.tx, w, task)
		if err != nil {
			return false, err
		}
		if !ok {
			passedOver = append(passedOver, task.JobID)
			continue
		}
		given, err := d.give(ctx, w, task)
		if err != nil || given {
			return given, err
		}
		// Canceled or handed on since it was read (on PostgreSQL, by a
		// transaction that committed meanwhile): the next one.
	}
	return false, nil
}

// give gives the waiting chunk task to worker run w and inserts its River
// job on w's queue; false when the chunk no longer waits.
func (d *dispatch) give(ctx context.Context, w store.Worker, task store.Task) (bool, error) {
	rows, err := d.tx.FramesOfTask(ctx, task.ID)
	if err != nil {
		return false, err
	}
	frames := make([]int, len(rows))
	for i, f := range rows {
		frames[i] = f.Frame
	}
	err = d.tx.DispatchTask(ctx, task.ID, task.Generation, w.ID)
	if errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dispatch chunk %d of job %s: %w", task.Chunk, task.JobID, err)
	}
	task.Status, task.WorkerID = store.TaskQueued, w.ID
	if err := d.e.insertTask(ctx, d.tx, task, frames); err != nil {
		return false, err
	}
	return true, d.tx.MarkServed(ctx, task.WorkspaceID, time.Now())
}
