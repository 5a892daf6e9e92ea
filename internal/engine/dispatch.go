package engine

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
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
// River still runs every chunk: its workers, cancellation and rescue,
// and retries after a passing failure (its data could not be read). A
// chunk whose render failed with attempts left frees its slot and waits
// here again, from its retry wait on (RetryChunkLater). What River cannot do
// (its four priority levels have no fairness between tenants, and a job
// cannot be steered to a worker by what the worker offers) is decided
// here, before River sees the chunk.
//
// Chunks are dispatched, each time in a transaction that takes the
// dispatcher's lock first (store.InDispatchTx), many in one transaction
// where there are many free slots (what every slot's choice reads is
// read once a transaction: see dispatch):
//   - when a chunk ends, right after the transaction that finishes it:
//     the node's freed slots take their next chunks (DispatchTo), the
//     slots of all its chunks that ended while an earlier such dispatch
//     waited for the lock in one transaction;
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
	return e.dispatchTo(ctx, tx, workerID, math.MaxInt, nil)
}

// DispatchFreedSlots is DispatchTo for the slots that chunks freed as
// they ended: served is when each of their workspaces last had a chunk
// end, which this dispatch's choices count as served then, and which it
// records with the rest as it ends. The workspaces' rows are so written
// after the chunks given, as in every dispatch: a transaction that
// writes waiting chunks and a workspace's row takes them in that order,
// so that none waits for the other's in a cycle.
func (e *Engine) DispatchFreedSlots(ctx context.Context, tx *store.Tx, workerID string, served map[string]time.Time) (int, error) {
	return e.dispatchTo(ctx, tx, workerID, math.MaxInt, served)
}

// MarkServed records, in tx, when each workspace of served last had a
// chunk end (store.MarkServed), without dispatching: for a node that
// stops, whose freed slots take no chunk.
func (e *Engine) MarkServed(ctx context.Context, tx *store.Tx, served map[string]time.Time) error {
	for _, workspace := range slices.Sorted(maps.Keys(served)) {
		if err := tx.MarkServed(ctx, workspace, served[workspace]); err != nil {
			return err
		}
	}
	return nil
}

// DispatchFreedSlot gives one free slot of the worker run workerID the
// next waiting chunk, in tx, which must hold the dispatcher's lock: one
// chunk at most, whatever other slots of the run are free (a render node
// fills all its freed slots at once, with DispatchTo). It answers whether
// it gave one; a run that is stopping, or gone, gets none.
func (e *Engine) DispatchFreedSlot(ctx context.Context, tx *store.Tx, workerID string) (bool, error) {
	n, err := e.dispatchTo(ctx, tx, workerID, 1, nil)
	return n > 0, err
}

// dispatchTo fills at most most of the free render slots of the worker
// run workerID, in tx (DispatchTo, DispatchFreedSlots, DispatchFreedSlot),
// counting the workspaces of served as served then (nil: none).
func (e *Engine) dispatchTo(ctx context.Context, tx *store.Tx, workerID string, most int, served map[string]time.Time) (int, error) {
	ws, err := tx.FreeSlotsOf(ctx, workerID)
	if errors.Is(err, store.ErrNotFound) || err == nil && ws.Free == 0 {
		return 0, e.MarkServed(ctx, tx, served)
	}
	if err != nil {
		return 0, err
	}
	d, err := e.newDispatch(ctx, tx)
	if err != nil {
		return 0, err
	}
	maps.Copy(d.served, served)
	d.left = min(ws.Free, most)
	for range min(ws.Free, most) {
		ok, err := d.one(ctx, ws.Worker)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
	}
	return d.finish(ctx)
}

// DispatchIdle fills the free slots of every live worker run with waiting
// chunks, in a transaction of its own, a chunk to each run in turn so
// that one run does not take what others could start at once. It answers
// how many chunks it queued.
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
		d.left = 0
		for _, w := range workers {
			d.left += w.Free
		}
		for len(workers) > 0 {
			next := workers[:0]
			for _, w := range workers {
				ok, err := d.one(ctx, w.Worker)
				if err != nil {
					return err
				}
				if ok {
					if w.Free--; w.Free > 0 {
						next = append(next, w)
					}
				}
			}
			workers = next
		}
		n, err = d.finish(ctx)
		return err
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

// dispatch is one transaction's dispatching, which may fill many slots:
// what every slot's choice reads is read once and kept up to date here
// as chunks are given, the waiting chunks are read ahead a batch at a
// time, and the chunks it gave are written queued, with their River jobs
// inserted, together as it ends (finish). So a dispatch of many chunks
// costs a dozen statements, not a few a chunk: it holds the dispatcher's
// lock, which every dispatch in the farm waits for, only that long.
// No other dispatch runs meanwhile (the dispatcher's lock), so what it
// keeps is what a fresh read would find, but for chunks that ended
// meanwhile, outside the lock: their workspaces' running chunks are
// counted high until the next dispatch, which never lets a workspace
// past its quota.
type dispatch struct {
	e            *Engine
	tx           *store.Tx
	requirements []farm.Requirements
	// keys caches, by worker run, the keys of the requirements it meets.
	keys map[string][]string
	// shares caches, by the keys of a worker's requirements (joined), the
	// workspaces with chunks waiting that such a worker can take.
	shares map[string][]farm.WorkspaceShare
	// served is when each workspace last had a chunk given in this
	// dispatch, written once, at its end (markServed).
	served map[string]time.Time
	// mayTake caches the rule's answer for a worker run and a job.
	mayTake map[[2]string]bool
	// given are the chunks given in this dispatch, each with its worker
	// run: they are written queued, with their River jobs, together, as
	// it ends (finish). Until then they still wait in the database, so
	// the reads that follow leave them out (taken).
	given []store.Task
	taken map[string]bool
	// ahead caches, by workspace and keys, the next waiting chunks in
	// the farm's order, read a batch at a time (nextWaiting).
	ahead map[string]*readAhead
	// left is how many more chunks this dispatch may give: how many it
	// reads ahead.
	left int
}

// readAhead is the next waiting chunks of a workspace that a worker of
// some requirements can take, as a dispatch read them.
type readAhead struct {
	tasks []store.Task
	// all is whether they are every such chunk: a read found fewer than
	// it asked for.
	all bool
	// asked is how many chunks the last read asked for.
	asked int
}

// maxReadAhead bounds the chunks one read of a dispatch asks for.
const maxReadAhead = 64

// readAheadSize is how many chunks a dispatch that may still give left
// asks for in its next read of a workspace's waiting chunks, after a
// read of asked (0: none yet) when workspaces have chunks waiting for
// the same slots. A dispatch shares its slots between the workspaces,
// so its first read of one asks for that workspace's part of them, not
// for them all (with many workspaces it would read many times what it
// gives), and each read after asks for twice the one before: a
// workspace that takes more than its part, the others having fewer
// waiting, is read in a few statements all the same.
func readAheadSize(left, asked, workspaces int) int {
	left, workspaces = max(left, 1), max(workspaces, 1)
	if asked > 0 {
		return min(left, 2*asked, maxReadAhead)
	}
	return min((left+workspaces-1)/workspaces, maxReadAhead)
}

func (e *Engine) newDispatch(ctx context.Context, tx *store.Tx) (*dispatch, error) {
	all, err := tx.AllRequirements(ctx)
	if err != nil {
		return nil, err
	}
	return &dispatch{e: e, tx: tx, requirements: all, keys: map[string][]string{},
		shares: map[string][]farm.WorkspaceShare{}, served: map[string]time.Time{}, mayTake: map[[2]string]bool{},
		taken: map[string]bool{}, ahead: map[string]*readAhead{}, left: 1}, nil
}

// nextWaiting is the next waiting chunk of workspace that a worker
// meeting keys can take, of no job in passOver, and not given in this
// dispatch (store.NextWaitingChunk's order): read ahead
// (readAheadSize), so that a dispatch of many chunks reads them in a
// statement or two. ErrNotFound when there is none.
func (d *dispatch) nextWaiting(ctx context.Context, workspace string, keys, passOver []string) (store.Task, error) {
	if len(passOver) > 0 {
		// Rare (the rule refused a job this worker): read for this one.
		var skip []string
		for _, t := range d.given {
			if t.WorkspaceID == workspace {
				skip = append(skip, t.ID)
			}
		}
		tasks, err := d.tx.NextWaitingChunks(ctx, workspace, keys, passOver, skip, 1)
		if err != nil || len(tasks) == 0 {
			return store.Task{}, cmp.Or(err, store.ErrNotFound)
		}
		return tasks[0], nil
	}
	k := workspace + "\x00" + strings.Join(keys, "\n")
	asked := 0
	for {
		if a := d.ahead[k]; a != nil {
			asked = a.asked
			for len(a.tasks) > 0 && d.taken[a.tasks[0].ID] {
				a.tasks = a.tasks[1:]
			}
			if len(a.tasks) > 0 {
				return a.tasks[0], nil
			}
			if a.all {
				return store.Task{}, store.ErrNotFound
			}
		}
		var skip []string
		for _, t := range d.given {
			if t.WorkspaceID == workspace {
				skip = append(skip, t.ID)
			}
		}
		want := readAheadSize(d.left, asked, len(d.shares[strings.Join(keys, "\n")]))
		tasks, err := d.tx.NextWaitingChunks(ctx, workspace, keys, nil, skip, want)
		if err != nil {
			return store.Task{}, err
		}
		d.ahead[k] = &readAhead{tasks: tasks, all: len(tasks) < want, asked: want}
	}
}

// waitingShares is tx.WaitingShares for keys, read once a dispatch.
func (d *dispatch) waitingShares(ctx context.Context, keys []string) ([]farm.WorkspaceShare, error) {
	k := strings.Join(keys, "\n")
	if shares, ok := d.shares[k]; ok {
		return shares, nil
	}
	shares, err := d.tx.WaitingShares(ctx, keys)
	if err != nil {
		return nil, err
	}
	// A workspace served in this dispatch, or seeded as served by the
	// chunks that ended (DispatchFreedSlots), has waited since then: its
	// row is written only as the dispatch ends (markServed).
	for i := range shares {
		if at, ok := d.served[shares[i].ID]; ok && at.After(shares[i].WaitingSince) {
			shares[i].WaitingSince = at
		}
	}
	d.shares[k] = shares
	return shares, nil
}

// gave keeps the shares up to date after a chunk of workspace was given
// at at: one more running, and served then.
func (d *dispatch) gave(workspace string, at time.Time) {
	for _, shares := range d.shares {
		for i := range shares {
			if shares[i].ID == workspace {
				shares[i].Running++
				shares[i].WaitingSince = at
			}
		}
	}
	d.served[workspace] = at
}

// noneLeft drops workspace from the shares of keys: it has no chunk left
// waiting that a worker of those requirements can take.
func (d *dispatch) noneLeft(keys []string, workspace string) {
	k := strings.Join(keys, "\n")
	d.shares[k] = slices.DeleteFunc(d.shares[k], func(s farm.WorkspaceShare) bool { return s.ID == workspace })
}

// finish ends a dispatch before it commits: the chunks it gave are
// queued with their River jobs, and the workspaces marked served. It
// answers how many chunks were queued: those given, less any canceled
// meanwhile (queueGiven).
func (d *dispatch) finish(ctx context.Context) (int, error) {
	n, err := d.queueGiven(ctx)
	if err != nil {
		return n, err
	}
	return n, d.markServed(ctx)
}

// maxInsertBatch bounds the chunks whose River jobs go in one insert, so
// that a dispatch to thousands of free slots stays within what one
// statement may bind (SQLite allows 32,766 values).
const maxInsertBatch = 500

// queueGiven writes the chunks given in this dispatch queued, with their
// River jobs, a few statements a batch of chunks (the chunks locked,
// their frames read, their River jobs inserted, the tasks queued) rather
// than a few a chunk: these statements run under the dispatcher's lock,
// which every dispatch in the farm takes in turn. A chunk canceled, or
// handed a new generation, since the dispatch read it (on PostgreSQL, by
// a transaction that committed meanwhile) is left out: no River job is
// inserted for it. It answers how many chunks it queued.
func (d *dispatch) queueGiven(ctx context.Context) (int, error) {
	queued := 0
	for batch := range slices.Chunk(d.given, maxInsertBatch) {
		chunks := make([]store.QueuedChunk, len(batch))
		for i, task := range batch {
			chunks[i] = store.QueuedChunk{TaskID: task.ID, Generation: task.Generation, WorkerID: task.WorkerID}
		}
		waiting, err := d.tx.LockWaitingChunks(ctx, chunks)
		if err != nil {
			return queued, err
		}
		if len(waiting) == 0 {
			continue
		}
		still := make(map[string]bool, len(waiting))
		ids := make([]string, len(waiting))
		for i, c := range waiting {
			still[c.TaskID], ids[i] = true, c.TaskID
		}
		tasks := slices.DeleteFunc(slices.Clone(batch), func(t store.Task) bool { return !still[t.ID] })
		frames, err := d.tx.FramesOfTasks(ctx, ids)
		if err != nil {
			return queued, err
		}
		riverJobs, err := d.e.insertChunkJobs(ctx, d.tx, tasks, frames)
		if err != nil {
			return queued, err
		}
		for i := range waiting {
			waiting[i].RiverJobID = riverJobs[waiting[i].TaskID]
		}
		n, err := d.tx.QueueChunks(ctx, waiting)
		if err != nil {
			return queued, err
		}
		queued += n
	}
	d.given = d.given[:0]
	clear(d.taken)
	clear(d.ahead)
	return queued, nil
}

// markServed records, for each workspace that had chunks given, the time
// of its last (store.MarkServed): once a dispatch, before it commits.
func (d *dispatch) markServed(ctx context.Context) error {
	if err := d.e.MarkServed(ctx, d.tx, d.served); err != nil {
		return err
	}
	clear(d.served)
	return nil
}

// workerMayTake is the rule (Engine.SetWorkerMayTake) asked once a
// dispatch for a worker run and a job.
func (d *dispatch) workerMayTake(ctx context.Context, w store.Worker, task store.Task) (bool, error) {
	key := [2]string{w.ID, task.JobID}
	if ok, asked := d.mayTake[key]; asked {
		return ok, nil
	}
	ok, err := d.e.mayTake(ctx, d.tx, w, task)
	if err != nil {
		return false, err
	}
	d.mayTake[key] = ok
	return ok, nil
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
// (jobs the worker may not take, workspaces with none it may), so that a slot
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
		all, err := d.waitingShares(ctx, keys)
		if err != nil {
			return false, err
		}
		shares := slices.DeleteFunc(slices.Clone(all), func(s farm.WorkspaceShare) bool { return exhausted[s.ID] })
		i := farm.NextWorkspace(shares)
		if i < 0 {
			return false, nil
		}
		task, err := d.nextWaiting(ctx, shares[i].ID, keys, passedOver)
		if errors.Is(err, store.ErrNotFound) {
			if len(passedOver) == 0 {
				// None left at all: for the rest of this dispatch too.
				d.noneLeft(keys, shares[i].ID)
				continue
			}
			// Every chunk of that workspace w could take is of a job it may
			// not take: the next workspace in the farm's order.
			exhausted[shares[i].ID] = true
			continue
		}
		if err != nil {
			return false, err
		}
		ok, err := d.workerMayTake(ctx, w, task)
		if err != nil {
			return false, err
		}
		if !ok {
			passedOver = append(passedOver, task.JobID)
			continue
		}
		d.give(w, task)
		return true, nil
	}
	return false, nil
}

// give gives the waiting chunk task to worker run w. It is written
// queued, with its River job on w's queue, as the dispatch ends, with the
// others it gave (finish).
func (d *dispatch) give(w store.Worker, task store.Task) {
	task.Status, task.WorkerID = store.TaskQueued, w.ID
	d.given = append(d.given, task)
	d.taken[task.ID] = true
	d.left--
	d.gave(task.WorkspaceID, time.Now())
}
