package node

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/outage"
	"github.com/renderfarm/renderfarm/internal/store"
)

// errNotOurs stops work on a task that was handed to another worker.
var errNotOurs = errors.New("the task was handed to another worker")

// errEndedEarlier says that a task's end, tried again, found the end
// this holder wrote already: its transaction committed, but the reply
// never came (the connection dropped as the database answered), and the
// try was repeated as an outage. The task is ended and its outcome
// recorded, by that commit.
var errEndedEarlier = errors.New("the task's end was written by an earlier try")

// handBackTimeout bounds handing a task back as the worker stops: a stop
// must not wait for a database that is down. What is not handed back then
// is handed out by the reaper, the worker having stopped.
const handBackTimeout = 10 * time.Second

// taskWorker is the River worker of one kind of task: for each River job
// it makes the attempt at the task (start) and runs it with runTask.
type taskWorker[A taskArgs] struct {
	river.WorkerDefaults[A]
	n     *Node
	kind  store.TaskKind
	start func(n *Node, args A) task
	// retryAfter, if set, is how long River waits before the next attempt
	// after attempt failed; unset, River's own backoff.
	retryAfter func(attempt int) time.Duration
}

// taskArgs are the arguments of the River jobs that carry out a task.
type taskArgs interface {
	river.JobArgs
	Task() engine.TaskRef
}

// setAsideRetry is how soon a validation or a finalizing a render node
// may not take (it is sick) is offered again, to any node.
const setAsideRetry = 2 * time.Second

// Work runs one attempt at the task, unless this node may not take it
// (farm.MayTake: it became sick, or blocked on the job, after the chunk
// was given to it): then the task is handed back, without spending an
// attempt, for another node. After a chunk, the node's slot takes the
// next waiting chunk: in the transaction that finished the chunk, or,
// when the attempt ended otherwise (canceled, handed back, not this
// node's any more), here.
func (w *taskWorker[A]) Work(ctx context.Context, rj *river.Job[A]) error {
	if ok, err := w.n.mayTake(ctx, w.kind, rj.Args.Task()); err != nil {
		return err
	} else if !ok {
		if w.kind == store.TaskRender {
			return w.n.passOn(ctx, rj.Args.Task())
		}
		// Validations and finalizings are on queues every node works.
		return river.JobSnooze(setAsideRetry)
	}
	t := w.start(w.n, rj.Args)
	// A chunk's earlier attempts, which failed and freed their slot, were
	// other River jobs': its attempts count them too.
	failedBefore := 0
	if args, ok := any(rj.Args).(engine.RenderArgs); ok {
		failedBefore = args.FailedAttempts
	}
	recorded, err := w.n.runTask(ctx, w.kind, rj.Args.Task(), failedBefore+rj.Attempt, failedBefore+rj.MaxAttempts, t)
	t.done(recorded)
	if w.kind == store.TaskRender && !recorded {
		w.n.fillSlots(context.WithoutCancel(ctx))
	}
	return err
}

// NextRetry is retryAfter's, or River's own (the zero time).
func (w *taskWorker[A]) NextRetry(rj *river.Job[A]) time.Time {
	if w.retryAfter == nil {
		return time.Time{}
	}
	return time.Now().Add(w.retryAfter(rj.Attempt))
}

// A task is one River job's attempt at a task of one kind (a validation,
// a chunk, a finalizing), as runTask carries it out: what it loads, the
// work it does, and what it records.
type task interface {
	// load reads what the work needs once the task is claimed; an error
	// hands the task back for River's retry.
	load(ctx context.Context) (*farm.Job, error)
	// work does the task's work, outside any transaction. An outage
	// (package outage) is waited out and the work done again; another
	// error is retried while attempts are left, and the last attempt's
	// error is recorded (see record). errNotOurs ends the task quietly.
	// w waits out the outages of the work's own steps.
	work(ctx context.Context, w *waiter, job *farm.Job) error
	// finishAs is the task's final status, given the work's error.
	finishAs(workErr error) store.TaskStatus
	// record writes the outcome in the transaction that finishes the task:
	// current is the job, locked. It is not called when the task is no
	// longer this holder's.
	record(ctx context.Context, tx *store.Tx, current *farm.Job, workErr error) error
	// done clears away what the node kept for the task, once runTask
	// returns; recorded says whether this holder recorded the outcome.
	done(recorded bool)
}

// unlockedEnder is a task whose end, for some outcomes, does not lock its
// job (a chunk of whole frames that rendered: see chunk.unlockedJob).
type unlockedEnder interface {
	// unlockedJob is the job that the end with workErr records against
	// without locking it; nil when that end locks the job.
	unlockedJob(workErr error) *farm.Job
	// afterUnlockedEnd runs once such an end has committed.
	afterUnlockedEnd(ctx context.Context)
}

// failureCounter is a task whose failed attempts count against the render
// node and the job (a chunk: see Node.countChunkFailure).
type failureCounter interface {
	// countFailure records that this attempt (River's attempt at the
	// task, counting its earlier River jobs' failed ones) failed with
	// workErr, once however often it is called for the attempt, and
	// answers whether the job must now fail, whatever attempts River has
	// left. errNotOurs: the task is no longer this holder's.
	countFailure(ctx context.Context, attempt int, workErr error) (failJob bool, err error)
}

// mayTake reports whether this node may take a task of kind for ref's
// job: farm.MayTake, with the node's standing read from the database.
// A sick node takes nothing; a node blocked on a job takes none of its
// chunks, but may still validate and finalize it.
func (n *Node) mayTake(ctx context.Context, kind store.TaskKind, ref engine.TaskRef) (bool, error) {
	jobID := ref.JobID
	if kind != store.TaskRender {
		jobID = ""
	}
	ok, err := n.store.MayTake(ctx, n.cfg.WorkerName, jobID)
	if err != nil {
		if outage.Of(err) != outage.None {
			// The claim that follows waits the outage out.
			return true, nil
		}
		return false, err
	}
	if !ok {
		n.log.Debug("this render node may not take the task; handed back for another", "task", ref.TaskID, "job", ref.JobID, "kind", kind)
	}
	return ok, nil
}

// runTask carries out one River job's attempt at a task, the same way for
// every kind: claim the task for the job's generation (a stale or
// duplicate River job ends here, quietly), count it as this node's busy
// task, load, work, then either hand the task back (the worker is
// stopping, or attempts are left: River retries) or finish it and record
// the outcome in one transaction, which is written even if the worker is
// stopping. recorded says whether this holder recorded the outcome: only
// then may it clear away what it kept for the task.
//
// An outage of the database, the bucket or the disk is no attempt's
// fault: claiming, loading and finishing wait for the database as long as
// it takes, and work that met an outage waits until the part answers
// again and is done again (what it stored stays stored), for up to
// Config.OutageTolerance, after which the outage is recorded as the job's
// failure.
func (n *Node) runTask(ctx context.Context, kind store.TaskKind, ref engine.TaskRef, attempt, maxAttempts int, t task) (recorded bool, err error) {
	w := n.newWaiter(ref)
	defer w.done(ctx)
	var claimed bool
	err = w.persist(ctx, func(ctx context.Context) error {
		var err error
		claimed, err = n.claim(ctx, ref)
		return err
	})
	if !claimed {
		return false, err
	}
	defer n.markBusy(ref.TaskID, false)
	defer func() {
		if p := recover(); p != nil {
			// River records the panic and tries again; the task must be
			// there to claim, or the next attempt would take itself for a
			// stale holder and end quietly, leaving the task to nobody.
			n.release(ctx, ref)
			panic(p)
		}
	}()

	var workErr error
	for {
		var job *farm.Job
		err := w.persist(ctx, func(ctx context.Context) error {
			var err error
			job, err = t.load(ctx)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return false, n.handBack(ctx, kind, ref, err)
			}
			n.release(ctx, ref)
			return false, err
		}
		workErr = t.work(ctx, w, job)
		part := outage.Of(workErr)
		if part == outage.None || tooLong(workErr) || ctx.Err() != nil {
			break
		}
		n.log.Warn("work stopped by an outage; it resumes when "+n.waitingFor(part)+" answers again", "job", ref.JobID, "task", ref.TaskID, "err", workErr)
		if err := w.waitUntilBack(ctx, part, workErr); err != nil {
			workErr = err
			break
		}
	}
	switch {
	case errors.Is(workErr, errNotOurs):
		n.log.Info("task was handed to another worker; stopped", "job", ref.JobID, "task", ref.TaskID)
		return false, nil
	case workErr != nil && ctx.Err() != nil:
		// Stopping, or canceled: Cancel already marked the task, or it is
		// handed to another worker now.
		return false, n.handBack(ctx, kind, ref, workErr)
	}
	last := attempt >= maxAttempts || tooLong(workErr)
	if counter, ok := t.(failureCounter); ok && workErr != nil && !tooLong(workErr) {
		var failJob bool
		err := w.persist(ctx, func(ctx context.Context) error {
			var err error
			failJob, err = counter.countFailure(ctx, attempt, workErr)
			return err
		})
		switch {
		case errors.Is(err, errNotOurs):
			return false, nil
		case err != nil:
			n.release(ctx, ref)
			return false, err
		}
		last = last || failJob
	}
	if workErr != nil && !last && kind == store.TaskRender {
		return false, n.waitForAnotherSlot(ctx, w, ref, attempt, workErr)
	}
	if workErr != nil && !last {
		n.log.Warn("task failed; River retries it", "job", ref.JobID, "task", ref.TaskID, "attempt", attempt, "err", workErr)
		n.release(ctx, ref)
		return false, workErr
	}
	var unlocked *farm.Job
	ender, endsUnlocked := t.(unlockedEnder)
	if endsUnlocked {
		unlocked = ender.unlockedJob(workErr)
	}
	err = w.persist(ctx, func(ctx context.Context) error {
		recorded = false
		return n.finishTask(ctx, kind, ref, t.finishAs(workErr), w.unrecordedLogBytes(), unlocked, func(ctx context.Context, tx *store.Tx, current *farm.Job) error {
			recorded = true
			return t.record(ctx, tx, current, workErr)
		})
	})
	if errors.Is(err, errEndedEarlier) {
		// An earlier try committed this very end, record and all.
		n.log.Info("the task's end was written by an earlier try, whose reply was lost", "job", ref.JobID, "task", ref.TaskID)
		recorded, err = true, nil
	}
	if recorded && err == nil {
		w.logBytesRecorded()
	}
	if recorded && err == nil && unlocked != nil {
		ender.afterUnlockedEnd(ctx)
	}
	if recorded && err == nil && kind == store.TaskRender {
		result := metrics.ChunkDone
		if t.finishAs(workErr) == store.TaskFailed {
			result = metrics.ChunkFailed
		}
		n.cfg.Metrics.ChunkFinished(result)
	}
	return recorded && err == nil, err
}

// finishTask ends a task as status and records its outcome with record,
// in one transaction that is written even if ctx is canceled. The job is
// locked first, then the task: the order every transaction takes them in,
// so that none waits on another in a cycle; the job's lock also makes the
// last two tasks to end take turns (the last part of a split frame queues
// its merge). record is not called when the task is no longer this
// holder's; nor when it holds the end this holder's earlier try
// committed, whose reply was lost: then finishTask fills the freed slot
// and answers errEndedEarlier (see finish).
//
// With unlocked set, the job is not locked, and record gets unlocked (the
// job as the task started) instead: a chunk of whole frames that rendered
// (see chunk.unlockedJob). A job of thousands of chunks on hundreds of
// slots ended them one at a time while every end locked it, and most of
// the farm's connections waited for that one row (docs/performance.md,
// section 5). Such an end holds its task as it writes its node's row
// (store.ChunkSucceededOn) and, in a workspace with a render budget, the
// workspace's row (store.CountTowardsBudget): rows that every transaction
// takes after the tasks it writes (a failing chunk's end cancels the
// job's chunks first, a dispatch marks its workspaces served as it
// ends), so none holds them while it waits for this end's task.
//
// A chunk's slot is free once the chunk ends: right after that
// transaction, the chunk's workspace is marked served and the dispatcher
// gives the slot the next waiting chunk (unless the node stops), so that
// River starts it on this node's queue as soon as it can (slotFreed). The
// dispatcher's lock, which one dispatch in the farm holds at a time, is
// so held for the dispatch alone, not while the chunk's end is recorded
// (the job's lock, its frames, its events), and the slots that chunks
// freed on this node while one dispatch waited for the lock are filled
// by the next, together: with hundreds of slots, a locked transaction
// for each chunk's end was what limited the farm (docs/performance.md,
// section 5). The workspace is marked there too, not with the end: its
// row is one every dispatch writes, and a chunk's end holding it while
// it waited for the job's lock held up the dispatcher behind it. A node
// that dies before it dispatches leaves its slots to the reaper's
// periodic dispatch, as a dispatch that failed does.
func (n *Node) finishTask(ctx context.Context, kind store.TaskKind, ref engine.TaskRef, status store.TaskStatus, logBytes int64, unlocked *farm.Job, record func(ctx context.Context, tx *store.Tx, current *farm.Job) error) error {
	ctx = context.WithoutCancel(ctx)
	workspace := ""
	err := n.store.InTx(ctx, func(tx *store.Tx) error {
		workspace = ""
		current := unlocked
		if current == nil {
			var err error
			if current, err = tx.LockJob(ctx, "", ref.JobID); err != nil {
				return err
			}
		}
		end := store.TaskEnd{Status: status, Threads: n.blenderThreads(), LogBytes: logBytes, At: time.Now()}
		ok, err := n.finish(ctx, tx, ref, end)
		if errors.Is(err, errEndedEarlier) && kind == store.TaskRender {
			// That commit freed the slot, and its dispatch never ran.
			workspace = current.WorkspaceID
		}
		if !ok {
			return err
		}
		if err := record(ctx, tx, current); err != nil {
			return err
		}
		// The budget last: in a workspace with one it writes the
		// workspace's row, which every transaction takes after the tasks
		// it writes (a dispatch marks its workspaces served as it ends),
		// and record may cancel the job's waiting chunks.
		if err := tx.CountTowardsBudget(ctx, ref.TaskID, end.At); err != nil {
			return err
		}
		if kind == store.TaskRender {
			workspace = current.WorkspaceID
		}
		return nil
	})
	if workspace == "" || err != nil && !errors.Is(err, errEndedEarlier) {
		return err
	}
	n.slotFreed(ctx, workspace)
	return err
}

// freedSlots coalesces the dispatches of a node's freed slots: while one
// waits for the dispatcher's lock or holds it, the chunks that end on the
// node meanwhile do not queue for the lock each, one transaction a slot;
// they note their slot and return, and the next dispatch fills every
// slot freed meanwhile, in one transaction.
type freedSlots struct {
	mu sync.Mutex
	// running is set while a dispatch of this node's freed slots is under
	// way; pending, when a slot was freed since it began.
	running, pending bool
	// served are the workspaces whose chunks ended since the last
	// dispatch began, and when the last of each did.
	served map[string]time.Time
	// passes counts the dispatches that run on after their first, in a
	// goroutine of their own; Stop waits for them.
	passes sync.WaitGroup
}

// slotFreed gives the slot a chunk of workspace freed, just ended, the
// next waiting chunk, with any other slot of this node freed meanwhile.
// A chunk's end that finds no dispatch of this node's slots under way
// dispatches at once, here, so that its slot's next chunk is given when
// this attempt returns; one that finds one under way leaves its slot to
// the next, which runs as soon as that one ends, in a goroutine of its
// own, and so on while slots are freed. A dispatch that fails is only
// logged: the reaper's periodic dispatch makes up for it.
func (n *Node) slotFreed(ctx context.Context, workspace string) {
	f := &n.freed
	f.mu.Lock()
	if f.served == nil {
		f.served = map[string]time.Time{}
	}
	f.served[workspace] = time.Now()
	if f.running {
		f.pending = true
		f.mu.Unlock()
		return
	}
	f.running = true
	f.mu.Unlock()
	n.dispatchFreedSlots(ctx)
	if !n.freedSlotsDone() {
		f.passes.Add(1)
		go func() {
			defer f.passes.Done()
			for {
				n.dispatchFreedSlots(ctx)
				if n.freedSlotsDone() {
					return
				}
			}
		}()
	}
}

// freedSlotsDone ends the dispatch of freed slots under way, unless a
// slot was freed while it ran: then the caller runs the next.
func (n *Node) freedSlotsDone() bool {
	f := &n.freed
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending {
		f.pending = false
		return false
	}
	f.running = false
	return true
}

// dispatchFreedSlots is one dispatch of this node's freed slots, in a
// transaction that holds the dispatcher's lock: the workspaces whose
// chunks ended are marked served, and every free slot of the node takes
// the next waiting chunk the farm's rule picks (unless the node stops).
func (n *Node) dispatchFreedSlots(ctx context.Context) {
	f := &n.freed
	f.mu.Lock()
	served := f.served
	f.served = map[string]time.Time{}
	f.mu.Unlock()
	err := n.store.InDispatchTx(ctx, func(tx *store.Tx) error {
		if n.stopping.Load() {
			return n.engine.MarkServed(ctx, tx, served)
		}
		_, err := n.engine.DispatchFreedSlots(ctx, tx, n.workerID, served)
		return err
	})
	if err != nil {
		n.log.Warn("could not give the freed slots their next chunks; the periodic dispatch will", "err", err)
	}
}

// waitForAnotherSlot gives up the slot of a chunk whose attempt failed with
// attempts left: the chunk waits for the dispatcher again, from
// chunkRetry(attempt) on (engine.RetryChunkLater), so that this slot
// takes another chunk at once (Work fills it once this returns) instead
// of sleeping through the wait, and the retry may go to another node.
// When the wait is over, this node dispatches the waiting chunks to every
// free slot of the farm; if it is gone by then, the reaper's periodic
// dispatch does. The River job ends canceled with the attempt's error
// (river.JobCancel): River keeps the error and does not retry it, since
// the chunk's next attempt is another River job's. Should the chunk not be returned (the
// database is down for longer than the outage tolerance), it is released
// for River's retry on this slot, as other tasks are.
func (n *Node) waitForAnotherSlot(ctx context.Context, w *waiter, ref engine.TaskRef, attempt int, workErr error) error {
	backoff := chunkRetry(attempt)
	err := w.persist(ctx, func(ctx context.Context) error {
		return n.retryChunkLater(ctx, ref, backoff)
	})
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		return nil // canceled, or handed on, meanwhile
	case err != nil:
		n.log.Warn("task failed and could not wait for another slot; River retries it on this one", "job", ref.JobID, "task", ref.TaskID, "attempt", attempt, "err", err)
		n.release(ctx, ref)
		return workErr
	}
	n.markBusy(ref.TaskID, false)
	n.log.Warn("chunk failed; its slot is free, and it is dispatched again after a wait", "job", ref.JobID, "task", ref.TaskID, "attempt", attempt, "wait", backoff, "err", workErr)
	time.AfterFunc(backoff, func() {
		if n.stopping.Load() {
			return
		}
		if _, err := n.engine.DispatchIdle(context.WithoutCancel(ctx)); err != nil {
			n.log.Warn("could not dispatch a chunk after its retry wait; the periodic dispatch will", "job", ref.JobID, "task", ref.TaskID, "err", err)
		}
	})
	return river.JobCancel(workErr)
}

// claim takes a task for this worker. It answers false, with no error,
// when the River job is a stale or duplicate holder of the task: such a
// job must end quietly without touching anything.
func (n *Node) claim(ctx context.Context, ref engine.TaskRef) (bool, error) {
	err := n.store.ClaimTask(ctx, ref.TaskID, ref.Generation, n.workerID, n.blenderThreads())
	if errors.Is(err, store.ErrConflict) {
		n.log.Info("task no longer ours; skipping", "task", ref.TaskID, "job", ref.JobID, "generation", ref.Generation)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	n.markBusy(ref.TaskID, true)
	return true, nil
}

// holds reports whether task, as read from the store, is still this
// worker run's at ref's generation, running.
func (n *Node) holds(task store.Task, ref engine.TaskRef) bool {
	return task.Generation == ref.Generation && task.Status == store.TaskRunning && task.WorkerID == n.workerID
}

// stillHolds checks that this node still holds ref's task at its
// generation: errNotOurs if not.
func (n *Node) stillHolds(ctx context.Context, ref engine.TaskRef) error {
	task, err := n.store.GetTask(ctx, ref.TaskID)
	if err != nil {
		return err
	}
	if !n.holds(task, ref) {
		return errNotOurs
	}
	return nil
}

// release hands a task back after a passing failure, so River's retry of
// the same job can claim it again. A release that fails is tried again,
// with growing pauses, until it is written or ctx ends (the worker stops
// at once): given up, River's retry could not claim the task, and nothing
// would carry it out. If it ends so, the reaper hands the task out (the
// worker stopped, or its task has no live River job).
func (n *Node) release(ctx context.Context, ref engine.TaskRef) {
	n.markBusy(ref.TaskID, false)
	pause := firstOutagePause
	for tries := 1; ; tries++ {
		err := n.releaseTask(context.WithoutCancel(ctx), ref.TaskID, ref.Generation)
		if err == nil {
			if tries > 1 {
				n.log.Info("task released", "task", ref.TaskID, "job", ref.JobID, "tries", tries)
			}
			return
		}
		n.log.Warn("could not release task; trying again", "task", ref.TaskID, "job", ref.JobID, "tries", tries, "err", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			n.log.Error("gave up releasing a task as the worker stops; the reaper will hand it out", "task", ref.TaskID, "job", ref.JobID, "err", err)
			return
		case <-t.C:
		}
		pause = min(2*pause, maxOutagePause)
	}
}

// handBack gives a task this worker holds to another worker at once,
// under a new generation (so nothing this holder still writes counts) and
// a new River job, as the worker stops with the task unfinished. A task
// that was canceled or moved on meanwhile is left as it is. It answers
// nil once the task is handed back, when this River job has nothing left
// to retry, else err.
func (n *Node) handBack(ctx context.Context, kind store.TaskKind, ref engine.TaskRef, err error) error {
	n.markBusy(ref.TaskID, false)
	n.noteCutShort(ctx)
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handBackTimeout)
	defer cancel()
	t := store.Task{ID: ref.TaskID, JobID: ref.JobID, Kind: kind, Generation: ref.Generation}
	if herr := n.engine.Requeue(hctx, t, "the worker stopped before the task was done; it is handed to another worker"); herr != nil {
		n.log.Warn("could not hand back a task as the worker stops; the reaper will hand it out", "task", ref.TaskID, "job", ref.JobID, "err", herr)
		return err
	}
	if kind == store.TaskRender {
		// A chunk waits for the dispatcher again: another worker's free
		// slot takes it now (this one is stopping).
		if _, derr := n.engine.DispatchIdle(hctx); derr != nil {
			n.log.Warn("could not give a chunk handed back to another worker; the reaper will", "task", ref.TaskID, "job", ref.JobID, "err", derr)
		}
	}
	return nil
}

// passOn gives a chunk dispatched to this node, which it may no longer
// take, back to the dispatcher: it waits again under a new generation,
// and the dispatcher, which asks the same rule (farm.MayTake), gives it to
// another node. No attempt is spent. What cannot be handed back now (the
// database is out) is snoozed and asked about again.
func (n *Node) passOn(ctx context.Context, ref engine.TaskRef) error {
	t := store.Task{ID: ref.TaskID, JobID: ref.JobID, Kind: store.TaskRender, Generation: ref.Generation}
	if err := n.engine.Requeue(ctx, t, "this render node may no longer take the job's chunks (sick, or blocked on the job); it is handed to another"); err != nil {
		n.log.Warn("could not hand back a chunk this node may not take; trying again", "task", ref.TaskID, "job", ref.JobID, "err", err)
		return river.JobSnooze(setAsideRetry)
	}
	if _, err := n.engine.DispatchIdle(context.WithoutCancel(ctx)); err != nil {
		n.log.Warn("could not give a chunk handed back to another worker; the periodic dispatch will", "task", ref.TaskID, "job", ref.JobID, "err", err)
	}
	return nil
}

// finish ends a task in the caller's transaction. It answers false when
// the task is no longer this holder's, and then nothing else may be
// written; with errEndedEarlier when the task holds the very end it would
// write, which this holder's earlier try committed (EndedBy).
func (n *Node) finish(ctx context.Context, tx *store.Tx, ref engine.TaskRef, end store.TaskEnd) (bool, error) {
	err := tx.FinishTask(ctx, ref.TaskID, ref.Generation, end)
	if errors.Is(err, store.ErrConflict) {
		ended, err := tx.EndedBy(ctx, ref.TaskID, ref.Generation, n.workerID, end.Status)
		if err != nil {
			return false, err
		}
		if ended {
			return false, errEndedEarlier
		}
		return false, nil
	}
	return err == nil, err
}

// blenderThreads is how many threads each of this node's Blenders
// renders with: what --blender-threads says, or every core.
func (n *Node) blenderThreads() int {
	if n.cfg.BlenderThreads > 0 {
		return n.cfg.BlenderThreads
	}
	return runtime.NumCPU()
}
