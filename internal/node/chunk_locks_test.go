package node

import (
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// The tests of this file play, on PostgreSQL, a chunk that rendered and
// ends without its job's lock beside a chunk of the same job whose last
// attempt failed, which locks the job, fails it and cancels its work,
// the rendered chunk's task among it. Both ends also write a row that
// is not the job's: a third transaction holds that row until both ends
// wait, the failure's first, so that they meet there. Neither may then
// wait for the other in a cycle (PostgreSQL would break it by failing
// one of them): each returns, the job failed.

// TestAFailingChunkAndARenderedOneEndTogetherOnOneNode: the node's run
// of failures names the job (an earlier attempt of the failing chunk
// failed here), so the failure's end takes the job off the node's row,
// and the rendered chunk's end clears that row.
func TestAFailingChunkAndARenderedOneEndTogetherOnOneNode(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		if db.Dialect != store.DialectPostgres {
			t.Skip("SQLite runs one transaction at a time: no two ends to meet at a row's lock")
		}
		f := newFixture(t, db)
		job := f.RenderingJob(f.api, 4, 2)
		tasks := f.Tasks(job.ID, store.TaskRender)
		rendered := f.renderChunk(tasks[0])
		failing := f.Ref(tasks[1])
		f.claim(failing)
		todo := f.startChunk(failing)
		failedBefore := func(tx *store.Tx) error {
			_, err := tx.ChunkFailedOn(f.Ctx, f.node.cfg.WorkerName, job.ID)
			return err
		}
		if err := f.Store.InTx(f.Ctx, failedBefore); err != nil {
			t.Fatal(err)
		}

		f.endBothHolding(failedBefore, failing, &blender.RenderError{Frame: todo[0], Line: "Error: boom", ExitCode: 1}, rendered)

		f.wantFailedWith(job.ID, tasks)
	})
}

// TestAFailingChunkAndARenderedOneEndTogetherInAWorkspaceWithABudget:
// the workspace has a monthly render budget, so each end adds its
// chunk's render seconds to the workspace's row.
func TestAFailingChunkAndARenderedOneEndTogetherInAWorkspaceWithABudget(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		if db.Dialect != store.DialectPostgres {
			t.Skip("SQLite runs one transaction at a time: no two ends to meet at a row's lock")
		}
		f := newFixture(t, db)
		if err := f.Store.SetWorkspaceBudget(f.Ctx, "studio", 3600); err != nil {
			t.Fatal(err)
		}
		job := f.RenderingJob(f.api, 4, 2)
		tasks := f.Tasks(job.ID, store.TaskRender)
		rendered := f.renderChunk(tasks[0])
		// The failing chunk rendered a frame before it failed: it has
		// render seconds to add too.
		failing := f.Ref(tasks[1])
		f.claim(failing)
		todo := f.startChunk(failing)
		if err := f.saveFrame(failing, todo[0], 2); err != nil {
			t.Fatal(err)
		}
		workspaceRow := func(tx *store.Tx) error { return tx.MarkServed(f.Ctx, job.WorkspaceID, time.Now()) }

		f.endBothHolding(workspaceRow, failing, &blender.RenderError{Frame: todo[1], Line: "Error: boom", ExitCode: 1}, rendered)

		f.wantFailedWith(job.ID, tasks)
		budget, spent, err := f.Store.WorkspaceBudget(f.Ctx, job.WorkspaceID)
		if err != nil {
			t.Fatal(err)
		}
		if budget != 3600 || spent <= 0 {
			t.Errorf("workspace budget %g s, spent %g s; want 3600 s, and the failed chunk's seconds spent", budget, spent)
		}
	})
}

// endBothHolding ends the failing chunk with failErr and the rendered
// chunk, in that order, each once the one before waits for a lock, while
// a transaction that ran hold keeps what hold locked; it lets go once
// both wait. Both ends must return without error.
func (f *fixture) endBothHolding(hold func(tx *store.Tx) error, failing engine.TaskRef, failErr error, rendered engine.TaskRef) {
	f.T.Helper()
	holding, release := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
			if err := hold(tx); err != nil {
				return err
			}
			close(holding)
			<-release
			return nil
		})
	}()
	select {
	case <-holding:
	case err := <-holder:
		f.T.Fatalf("hold the row: %v", err)
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	failed, ended := make(chan error, 1), make(chan error, 1)
	go func() { failed <- f.node.endChunk(f.Ctx, failing, failErr) }()
	f.waitForLockWaits(1)
	go func() { ended <- f.node.endChunk(f.Ctx, rendered, nil) }()
	f.waitForLockWaits(2)
	released = true
	close(release)
	if err := <-holder; err != nil {
		f.T.Fatal(err)
	}

	for name, end := range map[string]chan error{"the failing chunk": failed, "the rendered chunk": ended} {
		select {
		case err := <-end:
			if err != nil {
				f.T.Errorf("end of %s: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			f.T.Fatalf("the end of %s did not return within 30 s", name)
		}
	}
}

// waitForLockWaits waits, for up to 20 s, until n of the database's
// sessions wait for a lock.
func (f *fixture) waitForLockWaits(n int) {
	f.T.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		err := f.Store.DB().QueryRowContext(f.Ctx, `SELECT COUNT(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			f.T.Fatalf("count the sessions waiting for a lock: %v", err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			f.T.Fatalf("after 20 s, %d sessions wait for a lock, want %d", waiting, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantFailedWith checks a job failed by its second chunk: that chunk
// failed, the first either done or canceled, nothing left to do, and the
// first chunk's frames still completed.
func (f *fixture) wantFailedWith(jobID string, tasks []store.Task) {
	f.T.Helper()
	if st := f.Job(jobID).Status; st != farm.StatusFailed {
		f.T.Errorf("job = %s, want failed", st)
	}
	if st := f.Task(tasks[1].ID).Status; st != store.TaskFailed {
		f.T.Errorf("failing chunk = %s, want failed", st)
	}
	if st := f.Task(tasks[0].ID).Status; st != store.TaskDone && st != store.TaskCanceled {
		f.T.Errorf("rendered chunk = %s, want done or canceled", st)
	}
	frames, err := f.Store.FramesOfTask(f.Ctx, tasks[0].ID)
	if err != nil {
		f.T.Fatal(err)
	}
	for _, fr := range frames {
		if fr.Status != farm.FrameCompleted {
			f.T.Errorf("frame %d of the rendered chunk = %s, want completed", fr.Frame, fr.Status)
		}
	}
	if n := f.Count("tasks", "job_id = ? AND status IN (?, ?, ?)", jobID, store.TaskWaiting, store.TaskQueued, store.TaskRunning); n != 0 {
		f.T.Errorf("%d tasks of the failed job left to do, want none", n)
	}
}

// TestAFailingChunkAndADispatchMeetAtTheWorkspacesRow: in a workspace
// with a render budget, a chunk whose last attempt failed ends (it adds
// its render seconds to the workspace's row, and cancels the job's
// waiting chunks) while another node's freed slots are dispatched (the
// dispatch gives waiting chunks and marks the workspace served). Both
// write the workspace's row and the waiting chunks; a third transaction
// holds the row until both wait, in either order. Each takes the chunks
// before the row, so neither waits for the other in a cycle: both
// return, the job failed, and no chunk of it is left to do.
func TestAFailingChunkAndADispatchMeetAtTheWorkspacesRow(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		if db.Dialect != store.DialectPostgres {
			t.Skip("SQLite runs one transaction at a time: no two transactions to meet at a row's lock")
		}
		for _, dispatchFirst := range []bool{false, true} {
			f := newFixture(t, db)
			if err := f.Store.SetWorkspaceBudget(f.Ctx, "studio", 3600); err != nil {
				t.Fatal(err)
			}
			job := f.WaitingJob(f.api, 6, enginetest.RenderConfig(2)) // 3 chunks, no node yet
			f.otherNode("node-a", 1, store.Worker{})
			if n, err := f.Engine.DispatchIdle(f.Ctx); err != nil || n != 1 {
				t.Fatalf("DispatchIdle = %d, %v; want the one slot filled", n, err)
			}
			var failing engine.TaskRef
			for _, task := range f.Tasks(job.ID, store.TaskRender) {
				if task.Status == store.TaskQueued {
					failing = f.Ref(task)
				}
			}
			f.claim(failing)
			todo := f.startChunk(failing)
			if err := f.saveFrame(failing, todo[0], 2); err != nil {
				t.Fatal(err)
			}
			other := f.otherNode("node-b", 2, store.Worker{})

			holding, release := make(chan struct{}), make(chan struct{})
			holder := make(chan error, 1)
			go func() {
				holder <- f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
					if err := tx.MarkServed(f.Ctx, job.WorkspaceID, time.Now()); err != nil {
						return err
					}
					close(holding)
					<-release
					return nil
				})
			}()
			<-holding
			failed, dispatched := make(chan error, 1), make(chan error, 1)
			fail := func() {
				failed <- f.node.endChunk(f.Ctx, failing, &blender.RenderError{Frame: todo[1], Line: "Error: boom", ExitCode: 1})
			}
			dispatch := func() {
				dispatched <- f.Store.InDispatchTx(f.Ctx, func(tx *store.Tx) error {
					_, err := f.Engine.DispatchFreedSlots(f.Ctx, tx, other, map[string]time.Time{job.WorkspaceID: time.Now()})
					return err
				})
			}
			first, second := fail, dispatch
			if dispatchFirst {
				first, second = dispatch, fail
			}
			go first()
			f.waitForLockWaits(1)
			go second()
			f.waitForLockWaits(2)
			close(release)
			if err := <-holder; err != nil {
				t.Fatal(err)
			}
			for name, end := range map[string]chan error{"the failing chunk's end": failed, "the dispatch": dispatched} {
				select {
				case err := <-end:
					if err != nil {
						t.Errorf("dispatch first %v: %s: %v", dispatchFirst, name, err)
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("dispatch first %v: %s did not return within 30 s", dispatchFirst, name)
				}
			}
			if st := f.Job(job.ID).Status; st != farm.StatusFailed {
				t.Errorf("dispatch first %v: job = %s, want failed", dispatchFirst, st)
			}
			if n := f.Count("tasks", "job_id = ? AND status IN (?, ?, ?)", job.ID, store.TaskWaiting, store.TaskQueued, store.TaskRunning); n != 0 {
				t.Errorf("dispatch first %v: %d tasks of the failed job left to do, want none", dispatchFirst, n)
			}
		}
	})
}
