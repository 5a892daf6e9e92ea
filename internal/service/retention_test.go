package service

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/housekeeping"
)

func TestDeleteJobOnlyOnceItHasEnded(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		for _, st := range []farm.Status{farm.StatusFailed, farm.StatusCanceled} {
			f := newFixture(t, db)
			job := f.FinishedJobWithFiles(f.api, st)
			if got, err := f.api.DeleteJob(f.Ctx, f.P, job.ID); err != nil || !got.Output.IsDeletedForClient {
				t.Errorf("delete a %s job = %+v, %v; want it deleted", st, got, err)
			}
		}

		f := newFixture(t, db)
		for _, st := range []farm.Status{farm.StatusCreated, farm.StatusValidating, farm.StatusValidated, farm.StatusBooting, farm.StatusRendering, farm.StatusFinalizing} {
			job := f.FinishedJobWithFiles(f.api, st)
			_, err := f.api.DeleteJob(f.Ctx, f.P, job.ID)
			var fe *farm.Error
			if !errors.As(err, &fe) || fe.Code != farm.CodeInvalidState || !strings.Contains(fe.Message, "cancel it first") {
				t.Errorf("delete a %s job: %v, want INVALID_STATE saying to cancel it first", st, err)
			}
			if f.Job(job.ID).Output.IsDeletedForClient {
				t.Errorf("a %s job was marked deleted", st)
			}
		}
		if n := len(f.RiverJobs("delete_objects")); n != 0 {
			t.Errorf("%d removals queued for jobs still in progress", n)
		}
	})
}

func TestDeleteJobOfAnotherWorkspaceIsNotFound(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.FinishedJobWithFiles(f.api, farm.StatusCompleted)
		ws, err := f.Store.EnsureWorkspace(f.Ctx, "other studio")
		if err != nil {
			t.Fatal(err)
		}
		stranger := farm.Principal{WorkspaceID: ws.ID, KeyID: "key-other"}

		_, err = f.api.DeleteJob(f.Ctx, stranger, job.ID)

		if farm.KindOf(err) != farm.KindNotFound {
			t.Errorf("DeleteJob of another workspace's job: %v, want not found", err)
		}
		if f.Job(job.ID).Output.IsDeletedForClient || len(f.RiverJobs("delete_objects")) != 0 {
			t.Error("another workspace's delete changed the job")
		}
	})
}

// TestAFileStoredForADeletedJobAsItsRemovalRanIsRemovedLater: a render
// node that had not yet learnt of the cancel stores a frame for the job
// as the deletion's removal runs, and is killed before it can find the
// job gone and remove the frame itself. The removal queued to run an
// hour after the deletion takes it: nothing stays under the job.
func TestAFileStoredForADeletedJobAsItsRemovalRanIsRemovedLater(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		hk := housekeeping.New(f.Engine, housekeeping.DefaultConfig())
		job := f.FinishedJobWithFiles(f.api, farm.StatusCanceled)
		if _, err := f.api.DeleteJob(f.Ctx, f.P, job.ID); err != nil {
			t.Fatal(err)
		}
		runRemovals := func(state string) int {
			t.Helper()
			ran := 0
			for _, j := range f.RiverJobs(engine.DeleteObjectsArgs{}.Kind()) {
				var args engine.DeleteObjectsArgs
				if err := json.Unmarshal(j.Args, &args); err != nil {
					t.Fatal(err)
				}
				if j.State != state || args.JobID != job.ID {
					continue
				}
				if err := hk.DeleteObjects(f.Ctx, args); err != nil {
					t.Fatal(err)
				}
				ran++
			}
			return ran
		}

		if ran := runRemovals("available"); ran != 1 {
			t.Fatalf("%d removals to run now, want 1", ran)
		}
		late := farm.FrameKey(job.ID, "task-late", 1, "frame_0001.png")
		f.Put(late)
		if ran := runRemovals("scheduled"); ran != 1 {
			t.Fatalf("%d removals to run later, want 1", ran)
		}

		if left, _ := f.Objects.List(f.Ctx, farm.JobPrefix(job.ID)); len(left) != 0 {
			t.Errorf("objects left under the deleted job: %+v", left)
		}
	})
}
