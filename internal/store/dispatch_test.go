package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/store"
)

// waitingChunks adds job-1's waiting chunks to a fresh store: chunk i made
// at at(created[i]), of requirements keys[i], in the workspace studio.
func waitingChunks(t *testing.T, s *store.Store, keys []string, created []int) string {
	t.Helper()
	ws := ensureWorkspace(t, s, "studio")
	insertJob(t, s, newJob("job-1", ws.ID, at(0)))
	for i, key := range keys {
		task := store.Task{ID: chunkID(i), JobID: "job-1", Kind: store.TaskRender, Chunk: i, Status: store.TaskWaiting, Generation: 1,
			WorkspaceID: ws.ID, Requirements: key, CreatedAt: at(created[i]), UpdatedAt: at(created[i])}
		if err := s.InsertTask(t.Context(), task); err != nil {
			t.Fatal(err)
		}
	}
	return ws.ID
}

func chunkID(i int) string { return "chunk-" + string(rune('a'+i)) }

func ids(tasks []store.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID
	}
	return out
}

// TestNextWaitingChunksReadsAheadInTheFarmsOrder: a dispatch reads the
// chunks it will give a batch at a time, in the order NextWaitingChunk
// gives them one by one, across the requirements a worker meets, leaving
// out the ones it already gave.
func TestNextWaitingChunksReadsAheadInTheFarmsOrder(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		// Two sets of requirements, interleaved by creation time.
		ws := waitingChunks(t, s, []string{"cpu", "gpu", "cpu", "gpu", "cpu"}, []int{5, 1, 2, 4, 3})
		ctx := t.Context()
		both := []string{"cpu", "gpu"}

		all, err := s.NextWaitingChunks(ctx, ws, both, nil, nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"chunk-b", "chunk-c", "chunk-e", "chunk-d", "chunk-a"} // by creation
		if !slices.Equal(ids(all), want) {
			t.Fatalf("all waiting = %v, want %v", ids(all), want)
		}
		first, err := s.NextWaitingChunk(ctx, ws, both, nil)
		if err != nil || first.ID != want[0] {
			t.Errorf("NextWaitingChunk = %s, %v; want %s, the first of the batch", first.ID, err, want[0])
		}
		if two, err := s.NextWaitingChunks(ctx, ws, both, nil, nil, 2); err != nil || !slices.Equal(ids(two), want[:2]) {
			t.Errorf("two = %v, %v; want %v", ids(two), err, want[:2])
		}
		if cpu, err := s.NextWaitingChunks(ctx, ws, []string{"cpu"}, nil, []string{"chunk-c"}, 10); err != nil || !slices.Equal(ids(cpu), []string{"chunk-e", "chunk-a"}) {
			t.Errorf("cpu chunks but chunk-c = %v, %v; want [chunk-e chunk-a]", ids(cpu), err)
		}
		if none, err := s.NextWaitingChunks(ctx, ws, both, []string{"job-1"}, nil, 10); err != nil || len(none) != 0 {
			t.Errorf("with job-1 passed over = %v, %v; want none", ids(none), err)
		}
		if _, err := s.NextWaitingChunk(ctx, ws, []string{"other"}, nil); err == nil {
			t.Error("NextWaitingChunk of requirements no chunk has found one")
		}
	})
}

// threeChunksOneCanceled makes three waiting chunks, chunk-a to
// chunk-c, and cancels chunk-b, as a cancel would after a dispatch read
// it.
func threeChunksOneCanceled(t *testing.T, s *store.Store) {
	t.Helper()
	waitingChunks(t, s, []string{"cpu", "cpu", "cpu"}, []int{1, 2, 3})
	if _, err := s.DB().ExecContext(t.Context(), `UPDATE tasks SET status = 'canceled' WHERE id = 'chunk-b'`); err != nil {
		t.Fatal(err)
	}
}

// TestQueueChunksQueuesThoseStillWaiting: the chunks a dispatch gave are
// written queued in one statement, each for its worker run and River
// job; one canceled meanwhile, or requeued at another generation, is left
// as it is.
func TestQueueChunksQueuesThoseStillWaiting(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		threeChunksOneCanceled(t, s)
		ctx := t.Context()
		before := time.Now().Add(-time.Millisecond)
		n, err := s.QueueChunks(ctx, []store.QueuedChunk{
			{TaskID: "chunk-a", Generation: 1, WorkerID: "run-1", RiverJobID: 11},
			{TaskID: "chunk-b", Generation: 1, WorkerID: "run-1", RiverJobID: 12},
			{TaskID: "chunk-c", Generation: 2, WorkerID: "run-2", RiverJobID: 13},
		})
		if err != nil || n != 1 {
			t.Fatalf("QueueChunks = %d, %v; want 1 queued", n, err)
		}
		a := getTask(t, s, "chunk-a")
		if a.Status != store.TaskQueued || a.WorkerID != "run-1" || a.RiverJobID != 11 {
			t.Errorf("chunk-a = %s on %q, River job %d; want queued on run-1 for River job 11", a.Status, a.WorkerID, a.RiverJobID)
		}
		if times, err := s.TimesOfTask(ctx, "chunk-a"); err != nil || times.Dispatched.Before(before) {
			t.Errorf("chunk-a's dispatch time = %v, %v; want now", times.Dispatched, err)
		}
		if b := getTask(t, s, "chunk-b"); b.Status == store.TaskQueued || b.RiverJobID != 0 {
			t.Errorf("the canceled chunk-b = %s, River job %d; want it left canceled", b.Status, b.RiverJobID)
		}
		if c := getTask(t, s, "chunk-c"); c.Status != store.TaskWaiting || c.WorkerID != "" || c.RiverJobID != 0 {
			t.Errorf("chunk-c, of another generation = %s on %q, River job %d; want it left waiting", c.Status, c.WorkerID, c.RiverJobID)
		}
	})
}

// TestLockWaitingChunksAnswersThoseStillWaiting: before a dispatch
// inserts River jobs for the chunks it gave, it keeps those still waiting
// at the generation it read: one canceled meanwhile, or handed a new
// generation, gets no River job. On PostgreSQL those it keeps are locked
// until it commits: a cancel from another transaction waits for the
// dispatch instead of slipping in between.
func TestLockWaitingChunksAnswersThoseStillWaiting(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		threeChunksOneCanceled(t, s)
		ctx := t.Context()
		given := []store.QueuedChunk{
			{TaskID: "chunk-c", Generation: 2, WorkerID: "run-2"},
			{TaskID: "chunk-b", Generation: 1, WorkerID: "run-1"},
			{TaskID: "chunk-a", Generation: 1, WorkerID: "run-1"},
		}
		err := s.InDispatchTx(ctx, func(tx *store.Tx) error {
			waiting, err := tx.LockWaitingChunks(ctx, given)
			if err != nil {
				return err
			}
			if len(waiting) != 1 || waiting[0] != given[2] {
				t.Errorf("LockWaitingChunks = %+v; want only chunk-a, the one still waiting at the generation given", waiting)
			}
			if s.Dialect() != store.DialectPostgres {
				return nil
			}
			// Another transaction that would cancel chunk-a waits for
			// this one: it gives up at its lock timeout.
			other, err := s.DB().BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer other.Rollback()
			if _, err := other.ExecContext(ctx, `SET LOCAL lock_timeout = '200ms'`); err != nil {
				return err
			}
			if _, err := other.ExecContext(ctx, `UPDATE tasks SET status = 'canceled' WHERE id = 'chunk-a'`); err == nil {
				t.Error("another transaction canceled chunk-a while the dispatch held it")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestRefreshPlannerStatsCountsTheChunksJustAdded: after many chunks are
// added, PostgreSQL's planner knows of them at once, not at autovacuum's
// next round.
func TestRefreshPlannerStatsCountsTheChunksJustAdded(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		keys := make([]string, 26)
		created := make([]int, 26)
		for i := range keys {
			keys[i], created[i] = "cpu", i
		}
		waitingChunks(t, s, keys, created)
		if err := s.RefreshPlannerStats(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s.Dialect() != store.DialectPostgres {
			return // SQLite keeps no such statistics: nothing to check
		}
		var tuples float64
		if err := s.DB().QueryRowContext(t.Context(), `SELECT reltuples FROM pg_class WHERE relname = 'tasks'`).Scan(&tuples); err != nil {
			t.Fatal(err)
		}
		if tuples != 26 {
			t.Errorf("the planner takes tasks to hold %v rows, want the 26 just added", tuples)
		}
	})
}
