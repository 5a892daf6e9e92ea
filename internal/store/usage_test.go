package store_test

import (
	"math"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestWorkspaceUsageSumsChunksFramesAndDownloads: a chunk's worker-seconds
// are its frames' render seconds times the threads given; the report sums
// them with the frames completed, the bytes stored and the bytes served,
// by job and by day, for one workspace or all, and leaves out what ended
// outside the period.
func TestWorkspaceUsageSumsChunksFramesAndDownloads(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		other := ensureWorkspace(t, s, "other")
		for _, j := range []struct{ id, ws string }{{"job-1", ws.ID}, {"job-2", other.ID}} {
			job := newJob(j.id, j.ws, time.Now().UTC())
			insertJob(t, s, job)
			task := store.Task{ID: j.id + "-c0", JobID: j.id, Kind: store.TaskRender, Status: store.TaskRunning, Generation: 1,
				CreatedAt: time.Now(), UpdatedAt: time.Now(), WorkspaceID: j.ws}
			if err := s.InsertTask(ctx, task); err != nil {
				t.Fatal(err)
			}
			for frame, secs := range map[int]float64{1: 1.25, 2: 2.5} {
				err := s.InsertFrame(ctx, store.Frame{JobID: j.id, Frame: frame, TaskID: task.ID, Status: farm.FrameCompleted,
					RenderSeconds: secs, SizeBytes: 100, UpdatedAt: time.Now().UTC()})
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := s.RecordChunkUsage(ctx, task.ID, 4); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			if err := s.RecordDownload(ctx, "job-1", 700); err != nil {
				t.Fatal(err)
			}
		}
		from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		for _, groupBy := range []string{farm.UsageByJob, farm.UsageByDay} {
			u, err := s.WorkspaceUsage(ctx, ws.ID, from, to, groupBy)
			if err != nil {
				t.Fatal(err)
			}
			want := farm.UsageRow{RenderSeconds: 4 * 3.75, Frames: 2, BytesStored: 200, BytesTransferred: 1400}
			got := u.Total
			if len(u.Rows) != 1 || math.Abs(got.RenderSeconds-want.RenderSeconds) > 1e-9 || got.Frames != want.Frames ||
				got.BytesStored != want.BytesStored || got.BytesTransferred != want.BytesTransferred {
				t.Errorf("usage by %s = %+v, want one row and a total of %+v", groupBy, u, want)
			}
		}
		all, err := s.WorkspaceUsage(ctx, "", from, to, farm.UsageByJob)
		if err != nil || len(all.Rows) != 2 || all.Total.Frames != 4 || math.Abs(all.Total.RenderSeconds-30) > 1e-9 {
			t.Errorf("every workspace's usage = %+v, %v; want two jobs, 4 frames, 30 worker-seconds", all, err)
		}
		// Downloads are counted by day, so a period sees those of every
		// day it touches; tomorrow sees none of today's.
		tomorrow := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		later, err := s.WorkspaceUsage(ctx, ws.ID, tomorrow, tomorrow.Add(time.Hour), farm.UsageByDay)
		if err != nil || len(later.Rows) != 0 || later.Total != (farm.UsageRow{}) {
			t.Errorf("usage of tomorrow = %+v, %v; want nothing", later, err)
		}
	})
}
