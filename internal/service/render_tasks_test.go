package service

import (
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// TestAJobMakesOnlySoManyRenderTasks: every resume makes new tasks for the
// frames left, and the earlier ones stay recorded, so a job may make only
// so many over its life. A job whose render, resumes and retries made
// nearly a million (its chunks numbered so here) is refused a resume that
// would pass it, with a 400 that says to make a new job, and stays
// suspended; one that fits is taken.
func TestAJobMakesOnlySoManyRenderTasks(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.WaitingJob(f.api, 10, enginetest.RenderConfig(1))
		// Ten chunks numbered as if 999,995 had been made before them.
		f.Exec(`UPDATE tasks SET chunk = chunk + ? WHERE job_id = ? AND kind = 'render'`, farm.MaxRenderTasksPerJob-15, job.ID)
		if _, _, err := f.api.Suspend(f.Ctx, f.P, job.ID); err != nil {
			t.Fatal(err)
		}

		_, _, err := f.api.Resume(f.Ctx, f.P, job.ID)

		if enginetest.ErrorCode(err) != farm.CodeInvalidRequest || !strings.Contains(err.Error(), "has made 999995 render tasks") ||
			!strings.Contains(err.Error(), "Upload the file again") {
			t.Fatalf("Resume: %v, want 400 %s saying how many tasks the job made and to make a new job", err, farm.CodeInvalidRequest)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusSuspended {
			t.Errorf("the job is %s after the refused resume, want suspended as before", st)
		}

		f.Exec(`UPDATE tasks SET chunk = chunk - 5 WHERE job_id = ? AND kind = 'render'`, job.ID)
		if _, _, err := f.api.Resume(f.Ctx, f.P, job.ID); err != nil {
			t.Errorf("a resume that makes the job's millionth task: %v", err)
		}
	})
}
