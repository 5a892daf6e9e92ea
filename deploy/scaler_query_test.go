package deploy_test

import (
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// TestPostgresScalerQueryCountsTheWorkThatWaits runs the KEDA PostgreSQL
// trigger's query from values.yaml on a farm database of the current
// schema, and checks it counts what the renderfarm_tasks gauge (and so
// the Prometheus trigger) counts: waiting, queued and running tasks of
// every kind, nothing finished. A change to the tasks table that breaks the
// query fails here.
func TestPostgresScalerQueryCountsTheWorkThatWaits(t *testing.T) {
	values, err := readValues()
	if err != nil {
		t.Fatal(err)
	}
	dsn := testbackends.PostgresDatabase(t, "")
	st, err := store.OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := engine.Migrate(t.Context(), st, dsn); err != nil {
		t.Fatal(err)
	}

	count := func() int {
		t.Helper()
		var n int
		if err := st.DB().QueryRowContext(t.Context(), values.Autoscaling.PostgreSQL.Query).Scan(&n); err != nil {
			t.Fatalf("the scaler's query %q: %v", values.Autoscaling.PostgreSQL.Query, err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("an empty farm: the query counts %d; want 0 (scale to zero)", n)
	}

	ws, err := st.EnsureWorkspace(t.Context(), "studio")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	job := &farm.Job{ID: "job-1", Status: farm.StatusRendering, WorkspaceID: ws.ID, UserID: "key-1", Slug: "slug-1", CreatedAt: now, UpdatedAt: now}
	if err := st.InsertJob(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	for i, task := range []struct {
		kind   store.TaskKind
		status store.TaskStatus
	}{
		{store.TaskRender, store.TaskWaiting}, {store.TaskRender, store.TaskQueued}, {store.TaskRender, store.TaskRunning},
		{store.TaskValidate, store.TaskQueued}, {store.TaskFinalize, store.TaskRunning},
		{store.TaskRender, store.TaskDone}, {store.TaskRender, store.TaskFailed}, {store.TaskRender, store.TaskCanceled},
	} {
		err := st.InsertTask(t.Context(), store.Task{
			ID: "task-" + string(rune('a'+i)), JobID: job.ID, Kind: task.kind, Chunk: i, Status: task.status,
			Generation: 1, CreatedAt: now, UpdatedAt: now,
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	stats, err := st.Stats(t.Context(), now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	gauge := 0
	for _, n := range stats.UnfinishedTasks {
		gauge += n
	}
	if n := count(); n != 5 || n != gauge {
		t.Errorf("the scaler's query counts %d tasks, renderfarm_tasks %d; want 5 for both (1 waiting, 2 queued, 2 running)", n, gauge)
	}
}
