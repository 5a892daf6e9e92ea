package housekeeping

import (
	"errors"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// TestAJobEndedBeforeTheRetentionIsRemovedWithItsFiles: with a history
// retention of 31 days, a job that ended 40 days ago is removed, its
// files with it, and the API no longer knows it; its frames still count
// in the workspace's usage. A job that ended yesterday, and one still
// rendering that last changed 40 days ago, are kept whole.
func TestAJobEndedBeforeTheRetentionIsRemovedWithItsFiles(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		old := f.FinishedJobWithFiles(f.api, farm.StatusCompleted)
		recent := f.FinishedJobWithFiles(f.api, farm.StatusCompleted)
		stuck := f.InsertJob(f.api, farm.StatusRendering)
		longAgo := time.Now().UTC().Add(-40 * 24 * time.Hour)
		for _, id := range []string{old.ID, stuck.ID} {
			f.Exec(`UPDATE jobs SET updated_at = ? WHERE id = ?`, longAgo, id)
		}
		// The old job's frames and chunks ended as it did, 40 days ago.
		f.Exec(`UPDATE frames SET updated_at = ? WHERE job_id = ?`, longAgo.Add(-time.Minute), old.ID)
		f.Exec(`UPDATE tasks SET finished_at = ? WHERE job_id = ? AND finished_at IS NOT NULL`, longAgo.Add(-time.Minute), old.ID)
		input, err := f.Store.GetUpload(f.Ctx, f.P.WorkspaceID, old.Slug)
		if err != nil {
			t.Fatal(err)
		}
		if left, _ := f.Objects.List(f.Ctx, farm.JobPrefix(old.ID)); len(left) != 6 {
			t.Fatalf("the old job has %d objects before the removal, want its 6", len(left))
		}
		from, to := time.Now().Add(-41*24*time.Hour), time.Now().Add(time.Hour)
		before, err := f.api.Usage(f.Ctx, f.P, &from, &to, farm.UsageByDay)
		if err != nil {
			t.Fatal(err)
		}

		// Without a retention recorded, every job is kept.
		if n, err := f.hk.RemoveHistory(f.Ctx); err != nil || n != 0 {
			t.Fatalf("RemoveHistory with no retention = %d, %v; want 0 removed", n, err)
		}
		if err := f.Store.SetFarmHistoryRetention(f.Ctx, MinHistoryRetention); err != nil {
			t.Fatal(err)
		}
		n, err := f.hk.RemoveHistory(f.Ctx)
		if err != nil || n != 1 {
			t.Fatalf("RemoveHistory = %d, %v; want the one job that ended 40 days ago", n, err)
		}
		if ran := f.runRemovals(); ran != 1 {
			t.Fatalf("%d removals queued, want 1", ran)
		}

		var notFound *farm.Error
		if _, err := f.api.GetJob(f.Ctx, f.P, old.ID); !errors.As(err, &notFound) || notFound.Kind != farm.KindNotFound {
			t.Errorf("GET the removed job: %v, want not found", err)
		}
		if left, err := f.Objects.List(f.Ctx, farm.JobPrefix(old.ID)); err != nil || len(left) != 0 {
			t.Errorf("objects left under %s: %v, %v", farm.JobPrefix(old.ID), left, err)
		}
		if f.Exists(input.JobInputKey()) || f.Exists(input.ObjectKey) {
			t.Errorf("the removed job's input %s (uploaded to %s) is still stored", input.JobInputKey(), input.ObjectKey)
		}
		if left, _ := f.Objects.List(f.Ctx, farm.JobPrefix(recent.ID)); len(left) != 6 {
			t.Errorf("the job that ended yesterday has %d objects left, want its 6", len(left))
		}
		for _, id := range []string{recent.ID, stuck.ID} {
			if _, err := f.api.GetJob(f.Ctx, f.P, id); err != nil {
				t.Errorf("job %s, kept, reads: %v", id, err)
			}
		}
		if got := f.Count("frames", "job_id = ?", old.ID) + f.Count("tasks", "job_id = ?", old.ID); got != 0 {
			t.Errorf("%d frames and tasks of the removed job are left", got)
		}
		after, err := f.api.Usage(f.Ctx, f.P, &from, &to, farm.UsageByDay)
		if err != nil || after.Total.Frames != before.Total.Frames || after.Total.Frames != 4 {
			t.Errorf("frames in the usage report: %d before, %d after (%v); want the same 4", before.Total.Frames, after.Total.Frames, err)
		}

		// The next run finds nothing more to remove.
		if n, err := f.hk.RemoveHistory(f.Ctx); err != nil || n != 0 {
			t.Errorf("RemoveHistory again = %d, %v; want 0", n, err)
		}
	})
}

// TestARetentionBelowTheFloorIsHeldToIt: a retention recorded shorter
// than MinHistoryRetention (by hand, or by an older serve) removes
// nothing younger than the floor.
func TestARetentionBelowTheFloorIsHeldToIt(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.FinishedJobWithFiles(f.api, farm.StatusFailed)
		f.Exec(`UPDATE jobs SET updated_at = ? WHERE id = ?`, time.Now().UTC().Add(-10*24*time.Hour), job.ID)
		if err := f.Store.SetFarmHistoryRetention(f.Ctx, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		if n, err := f.hk.RemoveHistory(f.Ctx); err != nil || n != 0 {
			t.Errorf("RemoveHistory with a one-day retention = %d, %v; want a job of 10 days kept", n, err)
		}
	})
}

// TestAJobWhoseFilesRemovalWasGivenUpOnLosesThemWithItsHistory: a client
// deleted a job's files, and the removal was given up on (River discards
// a job that failed every attempt); removed from the history, the job's
// folder is removed again.
func TestAJobWhoseFilesRemovalWasGivenUpOnLosesThemWithItsHistory(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.FinishedJobWithFiles(f.api, farm.StatusCompleted)
		if _, err := f.api.DeleteJob(f.Ctx, f.P, job.ID); err != nil {
			t.Fatal(err)
		}
		f.Exec(`DELETE FROM river_job WHERE kind = 'delete_objects'`)
		f.Exec(`UPDATE jobs SET updated_at = ? WHERE id = ?`, time.Now().UTC().Add(-40*24*time.Hour), job.ID)
		if err := f.Store.SetFarmHistoryRetention(f.Ctx, MinHistoryRetention); err != nil {
			t.Fatal(err)
		}
		if n, err := f.hk.RemoveHistory(f.Ctx); err != nil || n != 1 {
			t.Fatalf("RemoveHistory = %d, %v; want the job removed", n, err)
		}
		if ran := f.runRemovals(); ran != 1 {
			t.Fatalf("%d removals queued, want 1", ran)
		}
		if left, err := f.Objects.List(f.Ctx, farm.JobPrefix(job.ID)); err != nil || len(left) != 0 {
			t.Errorf("objects left under %s: %v, %v", farm.JobPrefix(job.ID), left, err)
		}
	})
}
