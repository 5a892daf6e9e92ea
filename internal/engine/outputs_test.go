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

// TestAZipAFinalizingOfAnEarlierVersionStoresIsLeftForItToRecord: in a
// rolling update, a node of a version before the outputs/ folders
// finalizes the job: it stores frames.zip under the job's legacy key,
// then records it as it completes the job. A sweep that runs between the
// two (a removal a retry queued, running late; the end of a stale holder
// on a node of this version) must leave the zip, or the job completes
// recording a zip that is gone.
func TestAZipAFinalizingOfAnEarlierVersionStoresIsLeftForItToRecord(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.InsertJob(f.api, farm.StatusFinalizing)
		task := f.finalizeTask(job, "earlier-version", store.TaskRunning)
		legacyZip := farm.LegacyJobOutputKeys(job.ID)[0]
		f.Put(legacyZip)

		if _, err := f.Engine.RemoveUnkeptOutputs(f.Ctx, job.ID); err != nil {
			t.Fatal(err)
		}

		// The earlier version's finalizing completes the job with its zip.
		f.Exec(`UPDATE tasks SET status = ? WHERE id = ?`, store.TaskDone, task.ID)
		job = f.Job(job.ID)
		job.Status, job.Files = farm.StatusCompleted, farm.JobFiles{FramesZipKey: legacyZip, FramesZipSize: 10}
		if err := f.Store.UpdateJob(f.Ctx, job); err != nil {
			t.Fatal(err)
		}
		if !f.Exists(legacyZip) {
			t.Errorf("%s, which the job now records, was removed while its finalizing stored it", legacyZip)
		}
	})
}
