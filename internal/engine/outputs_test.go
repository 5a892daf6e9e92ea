package engine_test

import (
	"slices"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestWhatAFinalizingStoredGoesOnceNoHolderCanRecordIt: a completed job
// records the zip and preview of its finalize task's last holder. Beside
// them are what other holders left: an earlier generation of the same
// task (its node died), a task that failed, and zips stored under the
// keys of farms before outputs had folders. A task still running, and
// one made after the tasks were read (neither is read as over), keep
// theirs. The sweep removes exactly what no holder can store or record
// any more and the job does not record.
func TestWhatAFinalizingStoredGoesOnceNoHolderCanRecordIt(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.FinishedJobWithFiles(f.api, farm.StatusCompleted)
		recorded := f.Tasks(job.ID, store.TaskFinalize)[0]
		// The task was handed out again once: generation 2 holds it.
		f.Exec(`UPDATE tasks SET generation = 2 WHERE id = ?`, recorded.ID)
		job.Files.FramesZipKey = farm.FramesZipKey(job.ID, recorded.ID, 2)
		job.Files.VideoKey = farm.PreviewVideoKey(job.ID, recorded.ID, 2)
		job.Files.CompositeNodesZipKey = farm.LegacyJobOutputKeys(job.ID)[1]
		if err := f.Store.UpdateJob(f.Ctx, job); err != nil {
			t.Fatal(err)
		}
		failed := f.finalizeTask(job, "failed", store.TaskFailed)
		running := f.finalizeTask(job, "running", store.TaskRunning)

		kept := []string{
			job.Files.FramesZipKey,
			job.Files.VideoKey,
			job.Files.CompositeNodesZipKey,
			farm.FramesZipKey(job.ID, running.ID, 1),
			farm.FramesZipKey(job.ID, running.ID, 2),
			farm.FramesZipKey(job.ID, "made-since", 1),
		}
		removed := []string{
			farm.FramesZipKey(job.ID, recorded.ID, 1),
			farm.PreviewVideoKey(job.ID, recorded.ID, 1),
			farm.FramesZipKey(job.ID, failed.ID, 1),
			farm.CompositeNodesZipKey(job.ID, failed.ID, 1),
			farm.LegacyJobOutputKeys(job.ID)[0],
			farm.LegacyJobOutputKeys(job.ID)[2],
		}
		for _, key := range slices.Concat(kept, removed) {
			f.Put(key)
		}

		n, err := f.Engine.RemoveUnkeptOutputs(f.Ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range kept {
			if !f.Exists(key) {
				t.Errorf("%s was removed", key)
			}
		}
		for _, key := range removed {
			if f.Exists(key) {
				t.Errorf("%s is still stored", key)
			}
		}
		if n != 4 {
			t.Errorf("removed %d objects of the outputs' folders, want 4", n)
		}
	})
}

// finalizeTask inserts a finalize task of job, in status, at generation 1.
func (f *fixture) finalizeTask(job *farm.Job, id string, status store.TaskStatus) store.Task {
	f.T.Helper()
	now := time.Now().UTC()
	task := store.Task{ID: id + "-" + job.ID, JobID: job.ID, Kind: store.TaskFinalize, Status: status,
		Generation: 1, WorkspaceID: job.WorkspaceID, CreatedAt: now, UpdatedAt: now}
	if err := f.Store.InsertTask(f.Ctx, task); err != nil {
		f.T.Fatal(err)
	}
	return task
}
