package service

import (
	"errors"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

func TestCancelStopsValidation(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.CreatedJob(f.api)
		if _, err := f.api.Validate(f.Ctx, f.P, job.ID); err != nil {
			t.Fatal(err)
		}

		if _, err := f.api.Cancel(f.Ctx, f.P, job.ID); err != nil {
			t.Fatalf("Cancel: %v", err)
		}

		if st := f.Job(job.ID).Status; st != farm.StatusCanceled {
			t.Errorf("job = %s, want canceled", st)
		}
		task := f.Tasks(job.ID, store.TaskValidate)[0]
		if task.Status != store.TaskCanceled {
			t.Errorf("validate task = %s, want canceled", task.Status)
		}
		if rj := f.RiverJobByID(task.RiverJobID); rj.Kind != "validate_file" || rj.State != "cancelled" {
			t.Errorf("River job = %s %s, want validate_file cancelled", rj.Kind, rj.State)
		}
	})
}

func TestCancelOfAJobThatEndedIsInvalidState(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		for _, status := range []farm.Status{farm.StatusCompleted, farm.StatusFailed, farm.StatusCanceled} {
			t.Run(string(status), func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.RenderingJob(f.api, 4, 2)
				// A queued chunk left behind must stay as it is too.
				job.Status = status
				if err := f.Store.UpdateJob(f.Ctx, job); err != nil {
					t.Fatal(err)
				}
				before := f.Job(job.ID)

				_, err := f.api.Cancel(f.Ctx, f.P, job.ID)

				var fe *farm.Error
				if !errors.As(err, &fe) || fe.Code != farm.CodeInvalidState || fe.Kind != farm.KindInvalid {
					t.Fatalf("Cancel of a %s job = %v, want a 400 %s", status, err, farm.CodeInvalidState)
				}
				if after := f.Job(job.ID); after.Status != status || !after.UpdatedAt.Equal(before.UpdatedAt) {
					t.Errorf("job = %s, want untouched %s", after.Status, status)
				}
				for _, task := range f.Tasks(job.ID, store.TaskRender) {
					if task.Status != store.TaskQueued || f.RiverJobByID(task.RiverJobID).State != "available" {
						t.Errorf("chunk %d = %s, want left as it was", task.Chunk, task.Status)
					}
				}
				if n := f.Count("frames", "job_id = ? AND status = ?", job.ID, farm.FrameCanceled); n != 0 {
					t.Errorf("%d frames canceled, want none", n)
				}
			})
		}
	})
}
