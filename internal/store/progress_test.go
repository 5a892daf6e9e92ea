package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// framesForProgress gives job frames 1 to n, inserted last first, in
// every state a progress report shows: the odd ones completed on node-a
// in frame/2 s, the even ones rendering on node-b on their second try.
func framesForProgress(t *testing.T, s *store.Store, jobID string, n int) []farm.FrameProgress {
	t.Helper()
	want := make([]farm.FrameProgress, n)
	for i := n; i >= 1; i-- {
		f := store.Frame{JobID: jobID, Frame: i, TaskID: "task-1", Status: farm.FrameCompleted, Worker: "node-a",
			RenderSeconds: float64(i) / 2, Attempts: 1, ObjectKey: fmt.Sprintf("jobs/%s/frames/%d.png", jobID, i), SizeBytes: 1000, UpdatedAt: at(i)}
		if i%2 == 0 {
			f.Status, f.Worker, f.RenderSeconds, f.Attempts, f.ObjectKey, f.SizeBytes = farm.FrameRendering, "node-b", 0, 2, "", 0
		}
		if err := s.InsertFrame(t.Context(), f); err != nil {
			t.Fatal(err)
		}
		want[i-1] = farm.FrameProgress{Frame: f.Frame, Status: f.Status, Worker: f.Worker, RenderSeconds: f.RenderSeconds, Attempts: f.Attempts}
	}
	return want
}

func TestJobProgressReadsTheStatusAndTheFramesInOrder(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		job := finishedJob(ws.ID) // every column set, the JSON ones too
		job.Status = farm.StatusRendering
		insertJob(t, s, job)
		want := framesForProgress(t, s, job.ID, 5)

		p, err := s.JobProgress(t.Context(), ws.ID, job.ID, store.AllFrames)

		if err != nil {
			t.Fatal(err)
		}
		status, frames := p.Status, p.Frames
		if status != farm.StatusRendering {
			t.Errorf("status = %s, want rendering", status)
		}
		if !slices.Equal(frames, want) {
			t.Errorf("frames =\n%+v\nwant\n%+v", frames, want)
		}
		// The lighter read answers what the full one does.
		full, err := s.FramesOfJob(t.Context(), job.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range full {
			fp := farm.FrameProgress{Frame: f.Frame, Status: f.Status, Worker: f.Worker, RenderSeconds: f.RenderSeconds, Attempts: f.Attempts}
			if fp != frames[i] {
				t.Errorf("frame %d: JobProgress %+v, FramesOfJob %+v", f.Frame, frames[i], fp)
			}
		}
		inProgress, err := s.JobsProgress(t.Context(), ws.ID, true, farm.StatusRendering)
		if err != nil {
			t.Fatal(err)
		}
		if len(inProgress) != 1 || inProgress[0].JobID != job.ID || !slices.Equal(inProgress[0].Frames, want) {
			t.Errorf("JobsProgress =\n%+v\nwant the job with\n%+v", inProgress, want)
		}
	})
}

func TestJobProgressOfAJobWithoutFrames(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		insertJob(t, s, newJob("job-1", ws.ID, at(0)))

		p, err := s.JobProgress(t.Context(), ws.ID, "job-1", store.AllFrames)

		if err != nil || p.Status != farm.StatusCreated || len(p.Frames) != 0 || p.WaitingFor != "" {
			t.Errorf("JobProgress = %+v, %v; want created, no frames, waiting for nothing", p, err)
		}
	})
}

func TestJobProgressOfAnotherWorkspacesJobIsNotFound(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		other := ensureWorkspace(t, s, "other studio")
		insertJob(t, s, newJob("job-1", ws.ID, at(0)))
		framesForProgress(t, s, "job-1", 2)

		for _, c := range []struct{ workspace, job string }{{other.ID, "job-1"}, {ws.ID, "job-2"}} {
			p, err := s.JobProgress(t.Context(), c.workspace, c.job, store.AllFrames)
			if !errors.Is(err, store.ErrNotFound) || p.Frames != nil {
				t.Errorf("JobProgress(%s, %s) = %+v, %v; want ErrNotFound", c.workspace, c.job, p, err)
			}
		}
	})
}

// BenchmarkProgressRead compares what a progress poll reads on SQLite,
// from goroutines side by side as HTTP requests come: the whole job and
// all of its frames' columns, as it did, against JobProgress.
func BenchmarkProgressRead(b *testing.B) {
	s, err := store.OpenSQLite(b.Context(), b.TempDir()+"/farm.db")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ws, err := s.EnsureWorkspace(b.Context(), "studio")
	if err != nil {
		b.Fatal(err)
	}
	job := finishedJob(ws.ID)
	if err := s.InsertJob(b.Context(), job); err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= 24; i++ {
		err := s.InsertFrame(b.Context(), store.Frame{JobID: job.ID, Frame: i, TaskID: "task-1", Status: farm.FrameCompleted,
			Worker: "node-a", RenderSeconds: 1.5, Attempts: 1, ObjectKey: "jobs/job-full/frames/x.png", UpdatedAt: at(0)})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("job and frames", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.GetJob(b.Context(), ws.ID, job.ID); err != nil {
					b.Error(err)
					return
				}
				if _, err := s.FramesOfJob(b.Context(), job.ID); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("JobProgress", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.JobProgress(b.Context(), ws.ID, job.ID, store.AllFrames); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
