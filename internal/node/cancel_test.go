package node

import (
	"errors"
	"maps"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

func TestCancelStopsEveryChunkAndKeepsTheRenderedFrames(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 9, 3)
		tasks := f.Tasks(job.ID, store.TaskRender)

		// Chunk 0 runs here: frame 1 is saved, frame 2 is rendering. Chunks 1
		// and 2 wait in the queue.
		running := f.startedChunk(tasks[0])
		if err := f.saveFrame(running, 1, 3); err != nil {
			t.Fatal(err)
		}
		if err := f.node.frameStarted(f.Ctx, running, 2); err != nil {
			t.Fatal(err)
		}

		got, err := f.api.Cancel(f.Ctx, f.P, job.ID)

		if err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		if got.Status != farm.StatusCanceled || f.Job(job.ID).Status != farm.StatusCanceled {
			t.Errorf("job = %s, want canceled", got.Status)
		}
		for i, task := range tasks {
			after := f.Task(task.ID)
			if after.Status != store.TaskCanceled {
				t.Errorf("chunk %d = %s, want canceled", i, after.Status)
			}
			// River cancels the running chunk's context, which kills its
			// Blender; the queued ones never start.
			if rj := f.RiverJobByID(after.RiverJobID); rj.State != "cancelled" {
				t.Errorf("chunk %d River job = %s, want cancelled", i, rj.State)
			}
		}
		want := map[int]farm.FrameStatus{1: farm.FrameCompleted}
		for n := 2; n <= 9; n++ {
			want[n] = farm.FrameCanceled
		}
		if frames := f.FrameStatuses(job.ID); !maps.Equal(frames, want) {
			t.Errorf("frames = %v, want %v", frames, want)
		}

		// A queued chunk whose River job starts all the same cannot take it.
		if ok, err := f.node.claim(f.Ctx, f.Ref(tasks[1])); ok || err != nil {
			t.Errorf("claim of a canceled chunk = %v, %v; want false, nil", ok, err)
		}
		// Whatever the killed chunk still reports is refused.
		if err := f.saveFrame(running, 2, 3); !errors.Is(err, errNotOurs) {
			t.Errorf("frame saved after cancel = %v, want errNotOurs", err)
		}
		if err := f.node.endChunk(f.Ctx, running, nil); err != nil {
			t.Errorf("endChunk after cancel = %v, want nil", err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusCanceled {
			t.Errorf("job after the killed chunk ended = %s, want canceled", st)
		}
		if frames := f.FrameStatuses(job.ID); !maps.Equal(frames, want) {
			t.Errorf("frames after the killed chunk ended = %v, want %v", frames, want)
		}
		if n := len(f.Tasks(job.ID, store.TaskFinalize)); n != 0 {
			t.Errorf("%d finalize tasks, want none", n)
		}
	})
}
