package store_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
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
			task := runningChunkRendered(t, s, store.Task{ID: j.id + "-c0", JobID: j.id, WorkspaceID: j.ws}, map[int]float64{1: 1.25, 2: 2.5})
			if err := s.FinishTask(ctx, task.ID, 1, store.TaskEnd{Status: store.TaskDone, Threads: 4}); err != nil {
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

// TestAChunkOnGPUsCountsGPUSecondsAndTheMonthAddsUp: a chunk that needs 2
// GPUs records its frames' render time times 2 as GPU-seconds and no
// worker-seconds; a CPU chunk the reverse. The workspace's month total,
// which its render budget is checked against, is the sum of both: summed
// from the month's chunks when the budget is set (the GPU chunk ended
// before), then added to as chunks end; a workspace without chunks has
// used nothing.
func TestAChunkOnGPUsCountsGPUSecondsAndTheMonthAddsUp(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		idle := ensureWorkspace(t, s, "idle")
		onGPUs := farm.Requirements{BlenderVersion: "4.2.3", GPUType: "CUDA", GPUCount: 2}
		onCPU := farm.Requirements{BlenderVersion: "4.2.3"}
		for _, r := range []farm.Requirements{onGPUs, onCPU} {
			if err := s.EnsureRequirements(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		job := newJob("job-1", ws.ID, time.Now().UTC())
		insertJob(t, s, job)
		monthOf := func(id string) float64 {
			t.Helper()
			list, err := s.ListWorkspaceUsage(ctx, time.Now().Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range list {
				if u.ID == id {
					return u.MonthSeconds
				}
			}
			t.Fatalf("workspace %s not listed", id)
			return 0
		}
		for i, need := range []farm.Requirements{onGPUs, onCPU} {
			if i == 1 {
				// The GPU chunk ended before the workspace had a budget.
				if _, spent, err := s.WorkspaceBudget(ctx, ws.ID); err != nil || spent != 0 {
					t.Errorf("the month kept for studio without a budget = %g, %v; want none kept", spent, err)
				}
				if got := monthOf(ws.ID); math.Abs(got-20) > 1e-9 {
					t.Errorf("the month listed for studio = %g, want 20 render seconds", got)
				}
				if err := s.SetWorkspaceBudget(ctx, "studio", 3600); err != nil {
					t.Fatal(err)
				}
				if _, spent, err := s.WorkspaceBudget(ctx, ws.ID); err != nil || math.Abs(spent-20) > 1e-9 {
					t.Errorf("the month of studio once it has a budget = %g, %v; want the 20 render seconds before it", spent, err)
				}
			}
			task := runningChunkRendered(t, s, store.Task{ID: fmt.Sprintf("job-1-c%d", i), JobID: job.ID, Chunk: i, WorkspaceID: ws.ID,
				Requirements: need.Key()}, map[int]float64{i + 1: 10})
			ended := time.Now()
			if err := s.FinishTask(ctx, task.ID, 1, store.TaskEnd{Status: store.TaskDone, Threads: 8, At: ended}); err != nil {
				t.Fatal(err)
			}
			if err := s.CountTowardsBudget(ctx, task.ID, ended); err != nil {
				t.Fatal(err)
			}
		}
		u, err := s.WorkspaceUsage(ctx, ws.ID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), farm.UsageByJob)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Total; math.Abs(got.GPUSeconds-20) > 1e-9 || math.Abs(got.RenderSeconds-80) > 1e-9 {
			t.Errorf("usage = %g GPU-seconds and %g worker-seconds; want 20 (10 s on 2 GPUs) and 80 (10 s on 8 threads)", got.GPUSeconds, got.RenderSeconds)
		}
		if budget, spent, err := s.WorkspaceBudget(ctx, ws.ID); err != nil || budget != 3600 || math.Abs(spent-100) > 1e-9 || math.Abs(monthOf(ws.ID)-100) > 1e-9 {
			t.Errorf("the month of studio = budget %g, spent %g, %v; listed %g; want 3600 and 100 render seconds", budget, spent, err, monthOf(ws.ID))
		}
		if _, spent, err := s.WorkspaceBudget(ctx, idle.ID); err != nil || spent != 0 || monthOf(idle.ID) != 0 {
			t.Errorf("the month of a workspace without chunks = %g, %v; want 0", spent, err)
		}
	})
}

// TestABudgetIsSetInRangeOnly: a budget is 0 (none) to MaxBudget seconds;
// anything else is refused and changes nothing, and an unknown
// workspace is ErrNotFound.
func TestABudgetIsSetInRangeOnly(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		if err := s.SetWorkspaceBudget(ctx, "studio", 7200); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []float64{-1, math.NaN(), math.Inf(1), store.MaxBudget + 1} {
			if err := s.SetWorkspaceBudget(ctx, "studio", bad); err == nil || !strings.Contains(err.Error(), "0 (no budget) to") {
				t.Errorf("a budget of %g seconds: %v; want it refused, saying the range", bad, err)
			}
		}
		if budget, _, err := s.WorkspaceBudget(ctx, ws.ID); err != nil || budget != 7200 {
			t.Errorf("budget after refused changes = %g, %v; want 7200 still", budget, err)
		}
		if err := s.SetWorkspaceBudget(ctx, "nobody", 60); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a budget for an unknown workspace: %v; want ErrNotFound", err)
		}
		if err := s.SetWorkspaceBudget(ctx, "studio", 0); err != nil {
			t.Fatal(err)
		}
		if budget, _, err := s.WorkspaceBudget(ctx, ws.ID); err != nil || budget != 0 {
			t.Errorf("budget after setting 0 = %g, %v; want none", budget, err)
		}
	})
}

// A chunk counts in the month it ended in: one that ended in the last
// instant of last month, whose transaction wrote its workspace's budget
// just after midnight, adds nothing to this month's total, which a budget
// set now sums afresh from this month's chunks alike.
func TestAChunkCountsInTheMonthItEnded(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		if err := s.SetWorkspaceBudget(ctx, "studio", 3600); err != nil {
			t.Fatal(err)
		}
		job := newJob("job-1", ws.ID, time.Now().UTC())
		insertJob(t, s, job)
		task := runningChunkRendered(t, s, store.Task{ID: "job-1-c0", JobID: job.ID, WorkspaceID: ws.ID}, map[int]float64{1: 10})
		now := time.Now().UTC()
		lastMonthsEnd := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).Add(-time.Millisecond)
		if err := s.FinishTask(ctx, task.ID, 1, store.TaskEnd{Status: store.TaskDone, Threads: 4, At: lastMonthsEnd}); err != nil {
			t.Fatal(err)
		}
		if err := s.CountTowardsBudget(ctx, task.ID, lastMonthsEnd); err != nil {
			t.Fatal(err)
		}
		if _, spent, err := s.WorkspaceBudget(ctx, ws.ID); err != nil || spent != 0 {
			t.Errorf("this month of studio = %g, %v; want 0: its one chunk ended last month", spent, err)
		}
		if err := s.SetWorkspaceBudget(ctx, "studio", 7200); err != nil {
			t.Fatal(err)
		}
		if _, spent, err := s.WorkspaceBudget(ctx, ws.ID); err != nil || spent != 0 {
			t.Errorf("this month of studio summed afresh = %g, %v; want 0", spent, err)
		}
	})
}

// runningChunkRendered adds task, a render chunk running at generation 1,
// with its frames completed, each rendered in the seconds of rendered.
func runningChunkRendered(t *testing.T, s *store.Store, task store.Task, rendered map[int]float64) store.Task {
	t.Helper()
	task.Kind, task.Status, task.Generation = store.TaskRender, store.TaskRunning, 1
	task.CreatedAt, task.UpdatedAt = time.Now(), time.Now()
	if err := s.InsertTask(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	for frame, seconds := range rendered {
		err := s.InsertFrame(t.Context(), store.Frame{JobID: task.JobID, Frame: frame, TaskID: task.ID, Status: farm.FrameCompleted,
			RenderSeconds: seconds, SizeBytes: 100, UpdatedAt: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
	}
	return task
}
