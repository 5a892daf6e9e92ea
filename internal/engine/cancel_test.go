package engine

import (
	"errors"
	"maps"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

func TestCancelStopsEveryChunkAndKeepsTheRenderedFrames(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job := f.renderingJob(9, 3)
	tasks := f.tasks(job.ID, store.TaskRender)

	// Chunk 0 runs here: frame 1 is saved, frame 2 is rendering. Chunks 1
	// and 2 wait in the queue.
	running := f.ref(tasks[0])
	f.claim(running)
	f.startChunk(running)
	if err := f.saveFrame(running, 1, 3); err != nil {
		t.Fatal(err)
	}
	if err := f.engine.frameStarted(f.ctx, running, 2); err != nil {
		t.Fatal(err)
	}

	got, err := f.engine.Cancel(f.ctx, f.p, job.ID)

	if err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if got.Status != farm.StatusCanceled || f.job(job.ID).Status != farm.StatusCanceled {
		t.Errorf("job = %s, want canceled", got.Status)
	}
	for i, task := range tasks {
		after := f.task(task.ID)
		if after.Status != store.TaskCanceled {
			t.Errorf("chunk %d = %s, want canceled", i, after.Status)
		}
		// River cancels the running chunk's context, which kills its
		// Blender; the queued ones never start.
		if rj := f.riverJob(after.RiverJobID); rj.State != "cancelled" {
			t.Errorf("chunk %d River job = %s, want cancelled", i, rj.State)
		}
	}
	want := map[int]farm.FrameStatus{1: farm.FrameCompleted}
	for n := 2; n <= 9; n++ {
		want[n] = farm.FrameCanceled
	}
	if frames := f.frameStatuses(job.ID); !maps.Equal(frames, want) {
		t.Errorf("frames = %v, want %v", frames, want)
	}

	// A queued chunk whose River job starts all the same cannot take it.
	if ok, err := f.engine.claim(f.ctx, f.ref(tasks[1])); ok || err != nil {
		t.Errorf("claim of a canceled chunk = %v, %v; want false, nil", ok, err)
	}
	// Whatever the killed chunk still reports is refused.
	if err := f.saveFrame(running, 2, 3); !errors.Is(err, errNotOurs) {
		t.Errorf("frame saved after cancel = %v, want errNotOurs", err)
	}
	if err := f.engine.endChunk(f.ctx, running, nil); err != nil {
		t.Errorf("endChunk after cancel = %v, want nil", err)
	}
	if st := f.job(job.ID).Status; st != farm.StatusCanceled {
		t.Errorf("job after the killed chunk ended = %s, want canceled", st)
	}
	if frames := f.frameStatuses(job.ID); !maps.Equal(frames, want) {
		t.Errorf("frames after the killed chunk ended = %v, want %v", frames, want)
	}
	if n := len(f.tasks(job.ID, store.TaskFinalize)); n != 0 {
		t.Errorf("%d finalize tasks, want none", n)
	}
}

func TestCancelStopsValidation(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job := f.createdJob()
	if _, err := f.engine.Validate(f.ctx, f.p, job.ID); err != nil {
		t.Fatal(err)
	}

	if _, err := f.engine.Cancel(f.ctx, f.p, job.ID); err != nil {
		t.Fatalf("Cancel: %v", err)
	}

	if st := f.job(job.ID).Status; st != farm.StatusCanceled {
		t.Errorf("job = %s, want canceled", st)
	}
	task := f.tasks(job.ID, store.TaskValidate)[0]
	if task.Status != store.TaskCanceled {
		t.Errorf("validate task = %s, want canceled", task.Status)
	}
	if rj := f.riverJob(task.RiverJobID); rj.Kind != "validate_file" || rj.State != "cancelled" {
		t.Errorf("River job = %s %s, want validate_file cancelled", rj.Kind, rj.State)
	}
}

func TestCancelOfAJobThatEndedIsInvalidState(t *testing.T) {
	t.Parallel()
	for _, status := range []farm.Status{farm.StatusCompleted, farm.StatusFailed, farm.StatusCanceled} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			f := newFarmFixture(t)
			job := f.renderingJob(4, 2)
			// A queued chunk left behind must stay as it is too.
			job.Status = status
			if err := f.store.UpdateJob(f.ctx, job); err != nil {
				t.Fatal(err)
			}
			before := f.job(job.ID)

			_, err := f.engine.Cancel(f.ctx, f.p, job.ID)

			var fe *farm.Error
			if !errors.As(err, &fe) || fe.Code != farm.CodeInvalidState || fe.Kind != farm.KindInvalid {
				t.Fatalf("Cancel of a %s job = %v, want a 400 %s", status, err, farm.CodeInvalidState)
			}
			if after := f.job(job.ID); after.Status != status || !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Errorf("job = %s, want untouched %s", after.Status, status)
			}
			for _, task := range f.tasks(job.ID, store.TaskRender) {
				if task.Status != store.TaskQueued || f.riverJob(task.RiverJobID).State != "available" {
					t.Errorf("chunk %d = %s, want left as it was", task.Chunk, task.Status)
				}
			}
			if n := f.count("frames", "job_id = ? AND status = ?", job.ID, farm.FrameCanceled); n != 0 {
				t.Errorf("%d frames canceled, want none", n)
			}
		})
	}
}
