package node

import (
	"math"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// chargedSeconds is the render seconds the workspace's usage reports for
// the last hour, and what its render budget counts spent this month.
func (f *fixture) chargedSeconds() (usage, budget float64) {
	f.T.Helper()
	u, err := f.api.Usage(f.Ctx, f.P, new(time.Now().Add(-time.Hour)), new(time.Now().Add(time.Hour)), farm.UsageByJob)
	if err != nil {
		f.T.Fatal(err)
	}
	_, spent, err := f.Store.WorkspaceBudget(f.Ctx, f.P.WorkspaceID)
	if err != nil {
		f.T.Fatal(err)
	}
	return u.Total.RenderSeconds, spent
}

// queuedChunk is the one chunk of a job that a dispatch queued.
func (f *fixture) queuedChunk(jobID string) store.Task {
	f.T.Helper()
	for _, task := range f.Tasks(jobID, store.TaskRender) {
		if task.Status == store.TaskQueued {
			return task
		}
	}
	f.T.Fatalf("job %s has no queued chunk", jobID)
	return store.Task{}
}

// Frames a chunk completed before its job was suspended stay completed (a
// resume renders only the others) and are charged once, to the stopped
// chunk: in the usage report and in the render budget. So are those of a
// chunk whose job was canceled.
func TestFramesCompletedBeforeAStopAreChargedOnce(t *testing.T) {
	t.Parallel()
	for _, stop := range []string{"suspend", "cancel"} {
		t.Run(stop, func(t *testing.T) {
			t.Parallel()
			eachFixture(t, func(t *testing.T, f *fixture) {
				if err := f.Store.SetWorkspaceBudget(f.Ctx, "studio", 1e6); err != nil {
					t.Fatal(err)
				}
				threads := float64(f.node.blenderThreads())
				job := f.RenderingJob(f.api, 4, 4)
				ref := f.startedChunk(f.Tasks(job.ID, store.TaskRender)[0])
				for n := 1; n <= 3; n++ {
					if err := f.saveFrame(ref, n, 100); err != nil {
						t.Fatal(err)
					}
				}
				var err error
				if stop == "suspend" {
					_, _, err = f.api.Suspend(f.Ctx, f.P, job.ID)
				} else {
					_, err = f.api.Cancel(f.Ctx, f.P, job.ID)
				}
				if err != nil {
					t.Fatal(err)
				}
				want := threads * 3 * 100
				if usage, budget := f.chargedSeconds(); math.Abs(usage-want) > 1e-6 || math.Abs(budget-want) > 1e-6 {
					t.Errorf("after the %s: usage %g, budget spent %g render seconds; want both %g, the three frames completed", stop, usage, budget, want)
				}
				if stop == "cancel" {
					return
				}

				if _, _, err := f.api.Resume(f.Ctx, f.P, job.ID); err != nil {
					t.Fatal(err)
				}
				f.DispatchAll(job)
				again := f.renderChunk(f.queuedChunk(job.ID)) // frame 4, in 2 s
				if err := f.node.endChunk(f.Ctx, again, nil); err != nil {
					t.Fatal(err)
				}
				if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
					t.Fatalf("job = %s, want finalizing", st)
				}
				want += threads * 2
				if usage, budget := f.chargedSeconds(); math.Abs(usage-want) > 1e-6 || math.Abs(budget-want) > 1e-6 {
					t.Errorf("after the resume: usage %g, budget spent %g render seconds; want both %g, every frame once", usage, budget, want)
				}
			})
		})
	}
}

// A frame rendered again starts from no render seconds: a retried chunk
// that fails before rendering its frames again is not charged for their
// first render a second time.
func TestARetriedChunkIsChargedOnlyForWhatItRendered(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		if err := f.Store.SetWorkspaceBudget(f.Ctx, "studio", 1e6); err != nil {
			t.Fatal(err)
		}
		threads := float64(f.node.blenderThreads())
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.startedChunk(f.Tasks(job.ID, store.TaskRender)[0])
		for n := 1; n <= 2; n++ {
			if err := f.saveFrame(ref, n, 100); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.node.endChunk(f.Ctx, ref, nil); err != nil {
			t.Fatal(err)
		}
		if err := f.finalize(job.ID); err != nil {
			t.Fatal(err)
		}

		if _, err := f.api.Retry(f.Ctx, f.P, job.ID, farm.RetryRequest{FrameRanges: []string{"1-2"}}); err != nil {
			t.Fatal(err)
		}
		f.DispatchAll(job)
		again := f.startedChunk(f.queuedChunk(job.ID))
		if err := f.node.endChunk(f.Ctx, again, &blender.RenderError{Frame: 1, Line: "Error: out of memory"}); err != nil {
			t.Fatal(err)
		}
		want := threads * 200
		if usage, budget := f.chargedSeconds(); math.Abs(usage-want) > 1e-6 || math.Abs(budget-want) > 1e-6 {
			t.Errorf("usage %g, budget spent %g render seconds after a retried chunk that rendered nothing; want both %g, the first render once", usage, budget, want)
		}
	})
}

// A node of a version before migration 0023 records no threads when it
// claims a chunk, as a farm being upgraded one process at a time still
// runs some. A chunk it holds when its job is canceled is charged for
// its completed frames at the threads that node's own ends were charged
// at: a node gives every Blender of its run the same threads.
func TestAStoppedChunkClaimedWithoutThreadsIsChargedAtItsNodesThreads(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		if err := f.Store.SetWorkspaceBudget(f.Ctx, "studio", 1e6); err != nil {
			t.Fatal(err)
		}
		threads := float64(f.node.blenderThreads())
		claimWithoutThreads := func(task store.Task) engine.TaskRef {
			ref := f.Ref(task)
			if err := f.Store.ClaimTask(f.Ctx, ref.TaskID, ref.Generation, f.node.workerID, 0); err != nil {
				t.Fatal(err)
			}
			return ref
		}
		job := f.RenderingJob(f.api, 4, 2)
		chunks := f.Tasks(job.ID, store.TaskRender)
		ended := claimWithoutThreads(chunks[0])
		for _, n := range f.startChunk(ended) {
			if err := f.saveFrame(ended, n, 100); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.node.endChunk(f.Ctx, ended, nil); err != nil {
			t.Fatal(err)
		}
		stopped := claimWithoutThreads(chunks[1])
		if err := f.saveFrame(stopped, f.startChunk(stopped)[0], 50); err != nil {
			t.Fatal(err)
		}

		if _, err := f.api.Cancel(f.Ctx, f.P, job.ID); err != nil {
			t.Fatal(err)
		}
		want := threads * (2*100 + 50)
		if usage, budget := f.chargedSeconds(); math.Abs(usage-want) > 1e-6 || math.Abs(budget-want) > 1e-6 {
			t.Errorf("usage %g, budget spent %g render seconds; want both %g, the stopped chunk's completed frame at the %g threads its node's ended chunk was charged at",
				usage, budget, want, threads)
		}
	})
}
