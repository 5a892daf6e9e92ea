package service

import (
	"errors"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
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
