package store_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// registerWorkerWith records a worker run that offers the given Blenders.
func registerWorkerWith(t *testing.T, s *store.Store, id, name string, heartbeat time.Time, versions ...string) {
	t.Helper()
	w := store.Worker{ID: id, Name: name, StartedAt: heartbeat, HeartbeatAt: heartbeat, State: store.WorkerIdle, BlenderVersions: versions}
	if err := s.RegisterWorker(t.Context(), w); err != nil {
		t.Fatalf("RegisterWorker(%s): %v", id, err)
	}
}

// TestLiveBlenderVersionsCountsTheLiveWorkersOfEachVersion: what the farm
// offers is what its live worker runs offer; a stale, stopped or replaced
// run offers nothing.
func TestLiveBlenderVersionsCountsTheLiveWorkersOfEachVersion(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		now := time.Now()
		registerWorkerWith(t, s, "a", "node-a", now, "3.4.1")
		registerWorkerWith(t, s, "b", "node-b", now, "3.4.1", "4.3.2")
		registerWorkerWith(t, s, "c-old", "node-c", now, "4.5.0")
		registerWorkerWith(t, s, "c", "node-c", now, "3.4.1") // node-c restarted without its 4.5
		registerWorkerWith(t, s, "stale", "node-d", now.Add(-time.Hour), "5.0.0")
		registerWorkerWith(t, s, "stopped", "node-e", now, "4.2.0")
		if err := s.Heartbeat(t.Context(), "stopped", store.WorkerStopped, ""); err != nil {
			t.Fatal(err)
		}
		registerWorkerWith(t, s, "api", "api-only", now) // offers none

		got, err := s.LiveBlenderVersions(t.Context(), now.Add(-time.Minute))
		want := []farm.BlenderOffer{{Version: "3.4.1", Workers: 3}, {Version: "4.3.2", Workers: 1}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("LiveBlenderVersions = %+v, %v; want %+v", got, err, want)
		}

		workers, err := s.ListWorkers(t.Context(), now.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range workers {
			if w.ID == "b" && !slices.Equal(w.BlenderVersions, []string{"3.4.1", "4.3.2"}) {
				t.Errorf("ListWorkers shows node-b's Blenders as %q", w.BlenderVersions)
			}
		}
	})
}

func TestLiveBlenderVersionsOfAFarmWithoutWorkersIsEmpty(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		got, err := s.LiveBlenderVersions(t.Context(), time.Now().Add(-time.Minute))
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("LiveBlenderVersions = %#v, %v; want an empty list", got, err)
		}
	})
}

func TestRegisterWorkerRefusesWhatIsNotABlenderVersion(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		w := store.Worker{ID: "w", Name: "node", StartedAt: time.Now(), HeartbeatAt: time.Now(), State: store.WorkerIdle,
			BlenderVersions: []string{"3.4.1", "4.3,2"}}
		if err := s.RegisterWorker(t.Context(), w); err == nil {
			t.Error("a worker offering Blender \"4.3,2\" was registered")
		}
	})
}

// TestRouteTaskMovesATaskToAnotherVersionUnderANewGeneration: a node that
// holds a task needing a Blender it lacks hands it on; its own River job
// can then write nothing more, and the version stays with the task.
func TestRouteTaskMovesATaskToAnotherVersionUnderANewGeneration(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "validate", Kind: store.TaskValidate})
		if err := s.ClaimTask(t.Context(), "validate", 1, "node-without-4.3", 1); err != nil {
			t.Fatal(err)
		}
		gen, err := s.RouteTask(t.Context(), "validate", 1, "4.3.2")
		if err != nil || gen != 2 {
			t.Fatalf("RouteTask = %d, %v; want generation 2", gen, err)
		}
		got := getTask(t, s, "validate")
		if got.Status != store.TaskQueued || got.WorkerID != "" || got.Generation != 2 || got.BlenderVersion != "4.3.2" {
			t.Errorf("after RouteTask: %+v; want queued, no worker, generation 2, Blender 4.3.2", got)
		}
		if err := s.FinishTask(t.Context(), "validate", 1, store.TaskEnd{Status: store.TaskDone}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("the node that routed it finishing it: %v, want ErrConflict", err)
		}
		// Handed out again (its next holder died), it keeps its version.
		if _, err := s.RequeueTask(t.Context(), "validate", 2); err != nil {
			t.Fatal(err)
		}
		if got := getTask(t, s, "validate"); got.BlenderVersion != "4.3.2" || got.Generation != 3 {
			t.Errorf("after a requeue: %+v; want Blender 4.3.2 kept, generation 3", got)
		}

		add(store.Task{ID: "done", Status: store.TaskDone})
		if _, err := s.RouteTask(t.Context(), "done", 1, "4.3.2"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("RouteTask of a finished task: %v, want ErrConflict", err)
		}
	})
}

func TestBlenderVersionsAwaitedAreThoseOfTheJobsWorkLeft(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		add := jobWithTasks(t, s, "job-1")
		add(store.Task{ID: "chunk-0", BlenderVersion: "4.3.2"})
		add(store.Task{ID: "chunk-1", BlenderVersion: "4.3.2", Chunk: 1})
		add(store.Task{ID: "chunk-2", BlenderVersion: "4.10.0", Chunk: 2, Status: store.TaskRunning})
		add(store.Task{ID: "chunk-3", BlenderVersion: "3.4.1", Chunk: 3, Status: store.TaskDone})
		add(store.Task{ID: "finalize", Kind: store.TaskFinalize})
		work, err := s.WorkOfJobs(t.Context(), []string{"job-1"}, []string{"job-1"})
		if got, want := work["job-1"].BlenderVersionsAwaited, []string{"4.3.2", "4.10.0"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("BlenderVersionsAwaited = %q, %v; want %q", got, err, want)
		}
		if got := getTask(t, s, "chunk-0"); got.BlenderVersion != "4.3.2" {
			t.Errorf("GetTask's Blender = %q, want 4.3.2", got.BlenderVersion)
		}
	})
}
