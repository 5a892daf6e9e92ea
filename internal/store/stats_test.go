package store_test

import (
	"context"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// forEachStoreWithRiver is forEachStore with River's tables beside the
// farm's, as a running farm has them: Stats counts River's queue too.
func forEachStoreWithRiver(t *testing.T, test func(t *testing.T, s *store.Store)) {
	t.Helper()
	run := func(t *testing.T, open func(ctx context.Context) (*store.Store, error), dsn string) {
		s, err := open(t.Context())
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		if err := engine.Migrate(t.Context(), s, dsn); err != nil {
			t.Fatalf("migrate River: %v", err)
		}
		test(t, s)
	}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "farm.db")
		run(t, func(ctx context.Context) (*store.Store, error) { return store.OpenSQLite(ctx, path) }, "")
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := testbackends.PostgresDatabase(t, "")
		run(t, func(ctx context.Context) (*store.Store, error) { return store.OpenPostgres(ctx, dsn) }, dsn)
	})
}

func TestStatsCountUnfinishedTasksAndWorkersByState(t *testing.T) {
	t.Parallel()
	forEachStoreWithRiver(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "render-queued-1", Kind: store.TaskRender, Status: store.TaskQueued})
		add(store.Task{ID: "render-queued-2", Kind: store.TaskRender, Status: store.TaskQueued})
		add(store.Task{ID: "render-running", Kind: store.TaskRender, Status: store.TaskRunning})
		add(store.Task{ID: "render-done", Kind: store.TaskRender, Status: store.TaskDone})
		add(store.Task{ID: "render-failed", Kind: store.TaskRender, Status: store.TaskFailed})
		add(store.Task{ID: "validate-queued", Kind: store.TaskValidate, Status: store.TaskQueued})

		now := time.Now()
		liveSince := now.Add(-time.Minute)
		for _, w := range []store.Worker{
			{ID: "w-idle", Name: "idle", HeartbeatAt: now, State: store.WorkerIdle},
			{ID: "w-busy-1", Name: "busy-1", HeartbeatAt: now, State: store.WorkerBusy},
			{ID: "w-busy-2", Name: "busy-2", HeartbeatAt: now, State: store.WorkerBusy},
			// Silent for ten minutes while busy: dead.
			{ID: "w-dead", Name: "dead", HeartbeatAt: now.Add(-10 * time.Minute), State: store.WorkerBusy},
			// Silent for longer than the window: no longer reported.
			{ID: "w-long-gone", Name: "long-gone", HeartbeatAt: liveSince.Add(-store.DeadWorkerWindow - time.Minute), State: store.WorkerIdle},
			// Stopped on SIGTERM: neither live nor dead, however old.
			{ID: "w-stopped", Name: "stopped", HeartbeatAt: now.Add(-10 * time.Minute), State: store.WorkerStopped},
		} {
			w.StartedAt = w.HeartbeatAt
			if err := s.RegisterWorker(t.Context(), w); err != nil {
				t.Fatalf("RegisterWorker(%s): %v", w.ID, err)
			}
		}

		st, err := s.Stats(t.Context(), liveSince)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		wantTasks := map[store.TaskCount]int{
			{Kind: store.TaskRender, Status: store.TaskQueued}:   2,
			{Kind: store.TaskRender, Status: store.TaskRunning}:  1,
			{Kind: store.TaskValidate, Status: store.TaskQueued}: 1,
		}
		if !maps.Equal(st.UnfinishedTasks, wantTasks) {
			t.Errorf("UnfinishedTasks = %v, want %v", st.UnfinishedTasks, wantTasks)
		}
		wantWorkers := map[string]int{store.WorkerIdle: 1, store.WorkerBusy: 2, store.WorkerDead: 1}
		if !maps.Equal(st.WorkersByState, wantWorkers) {
			t.Errorf("WorkersByState = %v, want %v", st.WorkersByState, wantWorkers)
		}
		if st.LiveWorkers != 3 {
			t.Errorf("LiveWorkers = %d, want 3 (idle and busy runs heard from within the timeout)", st.LiveWorkers)
		}
	})
}
