package store

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// The progress of a workspace's running jobs reads the same statements
// for one job as for twelve: their statuses and frames in one, how their
// work stands (split frames' parts, the Blender versions their work
// needs, their chunks' needs and retry waits, the nodes blocked on them)
// in four. Each job here has 3 frames, a chunk in a retry wait, a chunk
// done, 2 parts of a split frame and a node blocked on it.
func TestProgressOfRunningJobsReadsAsManyStatementsForOneJobAsForMany(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		ws, err := s.EnsureWorkspace(ctx, "studio")
		if err != nil {
			t.Fatal(err)
		}
		need := farm.Requirements{BlenderVersion: "4.3.2", Tags: []string{"big"}}
		if err := s.EnsureRequirements(ctx, need); err != nil {
			t.Fatal(err)
		}
		created := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
		retryAt := now().Add(time.Hour)
		var jobs []string
		addJob := func() {
			t.Helper()
			id := fmt.Sprintf("job-%02d", len(jobs))
			jobs = append(jobs, id)
			at := created.Add(time.Duration(len(jobs)) * time.Second)
			if err := s.InsertJob(ctx, &farm.Job{ID: id, Status: farm.StatusRendering, WorkspaceID: ws.ID, UserID: "key-1", CreatedAt: at, UpdatedAt: at, Slug: "slug-" + id}); err != nil {
				t.Fatal(err)
			}
			for c, status := range []TaskStatus{TaskWaiting, TaskDone} {
				err := s.InsertTask(ctx, Task{ID: fmt.Sprintf("%s-c%d", id, c), JobID: id, Kind: TaskRender, Chunk: c, Status: status, Generation: 1,
					CreatedAt: at, UpdatedAt: at, BlenderVersion: need.BlenderVersion, WorkspaceID: ws.ID, Requirements: need.Key()})
				if err != nil {
					t.Fatal(err)
				}
			}
			for n := 1; n <= 3; n++ {
				if err := s.InsertFrame(ctx, Frame{JobID: id, Frame: n, TaskID: id + "-c0", Status: farm.FrameQueued, UpdatedAt: at}); err != nil {
					t.Fatal(err)
				}
			}
			for _, stmt := range []struct {
				query string
				args  []any
			}{
				{`UPDATE tasks SET retry_at = ?, failed_attempts = 2 WHERE id = ?`, []any{retryAt, id + "-c0"}},
				{`INSERT INTO frame_parts (job_id, frame, part, task_id, object_key, render_seconds) VALUES (?, 1, 0, ?, 'k', 1.5), (?, 1, 1, ?, '', 0)`,
					[]any{id, id + "-c0", id, id + "-c0"}},
				{`INSERT INTO job_workers (job_id, worker_name, failed_chunks, blocked_at) VALUES (?, 'node-b', 2, ?), (?, 'node-a', 2, ?)`,
					[]any{id, at, id, at}},
			} {
				if _, err := s.exec(ctx, stmt.query, stmt.args...); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := JobWork{
			Parts:                  map[int]PartCount{1: {PartsProgress: farm.PartsProgress{Total: 2, Completed: 1}, Seconds: 1.5}},
			BlenderVersionsAwaited: []string{"4.3.2"},
			HasChunks:              true, Need: need, ChunkWaiting: true,
			RetryUntil: retryAt, RetryFailedAttempts: 2,
			BlockedWorkers: []string{"node-a", "node-b"},
		}
		cost := countReads(t, s)
		read := func() (statements int) {
			t.Helper()
			cost.reset()
			progress, err := s.JobsProgress(ctx, ws.ID, true, farm.StatusRendering)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range progress {
				ids = append(ids, p.JobID)
				if len(p.Frames) != 3 {
					t.Errorf("job %s: %d frames, want 3", p.JobID, len(p.Frames))
				}
			}
			if !slices.Equal(ids, jobs) {
				t.Fatalf("JobsProgress listed %q, want %q", ids, jobs)
			}
			work, err := s.WorkOfJobs(ctx, ids, ids)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if got := work[id]; fmt.Sprint(got) != fmt.Sprint(want) || !got.RetryUntil.Equal(want.RetryUntil) {
					t.Errorf("the work of %s =\n%+v\nwant\n%+v", id, got, want)
				}
			}
			statements, _ = cost.counted()
			return statements
		}
		addJob()
		one := read()
		for len(jobs) < 12 {
			addJob()
		}
		if many := read(); one != 5 || many != one {
			t.Errorf("the progress of 1 running job read %d statements, of 12 %d; want 5 for any number", one, many)
		}
		if work, err := s.WorkOfJobs(ctx, []string{"no-such-job"}, []string{"no-such-job"}); err != nil || len(work) != 0 {
			t.Errorf("the work of a job without tasks = %+v, %v; want none", work, err)
		}
	})
}

// Without their frames, the progress of a workspace's jobs answers a row
// a job, whatever its frames, and counts them as reading each does: a
// job of 2,000 frames, one without any, and a job of another workspace.
func TestProgressWithoutFramesReadsARowAJob(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		ws, err := s.EnsureWorkspace(ctx, "studio")
		if err != nil {
			t.Fatal(err)
		}
		other, err := s.EnsureWorkspace(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
		statuses := []farm.FrameStatus{farm.FrameCompleted, farm.FrameRendering, farm.FrameFailed, farm.FrameQueued, farm.FrameCanceled}
		for i, job := range []struct {
			id, workspace string
			frames        int
		}{{"job-big", ws.ID, 2000}, {"job-empty", ws.ID, 0}, {"job-other", other.ID, 10}} {
			created := at.Add(time.Duration(i) * time.Second)
			if err := s.InsertJob(ctx, &farm.Job{ID: job.id, Status: farm.StatusRendering, WorkspaceID: job.workspace, UserID: "key-1",
				CreatedAt: created, UpdatedAt: created, Slug: "slug-" + job.id}); err != nil {
				t.Fatal(err)
			}
			for n := 1; n <= job.frames; n++ {
				err := s.InsertFrame(ctx, Frame{JobID: job.id, Frame: n, TaskID: "t", Status: statuses[n%len(statuses)], RenderSeconds: float64(n%7) / 4, UpdatedAt: created})
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		full, err := s.JobsProgress(ctx, ws.ID, true, farm.StatusRendering)
		if err != nil {
			t.Fatal(err)
		}
		cost := countReads(t, s)
		counted, err := s.JobsProgress(ctx, ws.ID, false, farm.StatusRendering)
		if err != nil {
			t.Fatal(err)
		}
		if statements, rows := cost.counted(); statements != 1 || rows != 2 {
			t.Errorf("without frames: %d rows in %d statements, want a row a job (2) in 1", rows, statements)
		}
		if len(full) != 2 || len(counted) != 2 || full[0].Counts.Total != 2000 || full[0].Counts.Failed != 400 {
			t.Fatalf("with frames %+v; without %+v; want the workspace's 2 jobs, the first's 2,000 frames counted", full, counted)
		}
		for i := range full {
			f, c := full[i], counted[i]
			if c.Frames != nil || c.JobID != f.JobID || c.Status != f.Status ||
				c.Counts.Total != f.Counts.Total || c.Counts.Completed != f.Counts.Completed || c.Counts.Rendering != f.Counts.Rendering ||
				c.Counts.Failed != f.Counts.Failed || math.Abs(c.Counts.CompletedSeconds-f.Counts.CompletedSeconds) > 1e-9 {
				t.Errorf("job %s without frames: %+v; want the counts of %+v and no frames", f.JobID, c, f.Counts)
			}
			one, err := s.JobProgress(ctx, ws.ID, f.JobID, NoFrames)
			if err != nil || one.Counts != c.Counts || one.Frames != nil {
				t.Errorf("JobProgress(%s) without frames = %+v, %v; want %+v", f.JobID, one, err, c.Counts)
			}
		}
	})
}

// A span of frame numbers lists the frames of a job that fall in it, in
// one statement of a row a frame listed, and counts every frame of the
// job as a read of them all does: here a job of every other frame from 1
// to 3,999, read a page at a time as a grid of its frames shows them.
func TestProgressOfASpanListsItsFramesAndCountsTheJob(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		ws, err := s.EnsureWorkspace(ctx, "studio")
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
		for _, id := range []string{"job-odd", "job-empty"} {
			if err := s.InsertJob(ctx, &farm.Job{ID: id, Status: farm.StatusRendering, WorkspaceID: ws.ID, UserID: "key-1",
				CreatedAt: at, UpdatedAt: at, Slug: "slug-" + id}); err != nil {
				t.Fatal(err)
			}
		}
		statuses := []farm.FrameStatus{farm.FrameCompleted, farm.FrameRendering, farm.FrameFailed, farm.FrameQueued, farm.FrameCompleted}
		for n := 1; n < 4000; n += 2 {
			err := s.InsertFrame(ctx, Frame{JobID: "job-odd", Frame: n, TaskID: "t", Status: statuses[n%len(statuses)], Worker: fmt.Sprintf("node-%d", n%3),
				RenderSeconds: float64(n%7) / 4, Attempts: 1 + n%2, UpdatedAt: at})
			if err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.JobProgress(ctx, ws.ID, "job-odd", AllFrames)
		if err != nil || len(all.Frames) != 2000 {
			t.Fatalf("every frame: %d frames, %v; want 2,000", len(all.Frames), err)
		}
		for _, span := range []struct {
			from, to int
			want     []farm.FrameProgress
		}{
			{1, 1000, all.Frames[:500]},
			{1000, 1999, all.Frames[500:1000]},
			{3999, 3999, all.Frames[1999:]},
			{2, 2, nil},              // between two frames
			{4000, 1048574, nil},     // past the last
			{0, 1048574, all.Frames}, // every frame
		} {
			cost := countReads(t, s)
			got, err := s.JobProgress(ctx, ws.ID, "job-odd", FramesBetween(span.from, span.to))
			if err != nil {
				t.Fatal(err)
			}
			if statements, rows := cost.counted(); statements != 1 || rows != max(1, len(span.want)) {
				t.Errorf("frames %d-%d: %d rows in %d statements; want a row a frame listed (%d) in 1", span.from, span.to, rows, statements, len(span.want))
			}
			if !slices.Equal(got.Frames, span.want) {
				t.Errorf("frames %d-%d: listed %d frames %v…; want %d from %v", span.from, span.to, len(got.Frames), head(got.Frames), len(span.want), head(span.want))
			}
			c := got.Counts
			if got.Status != farm.StatusRendering || c.Total != all.Counts.Total || c.Completed != all.Counts.Completed || c.Rendering != all.Counts.Rendering ||
				c.Failed != all.Counts.Failed || math.Abs(c.CompletedSeconds-all.Counts.CompletedSeconds) > 1e-9 {
				t.Errorf("frames %d-%d: %s, counts %+v; want rendering, the job's %+v", span.from, span.to, got.Status, c, all.Counts)
			}
		}
		empty, err := s.JobProgress(ctx, ws.ID, "job-empty", FramesBetween(1, 100))
		if err != nil || len(empty.Frames) != 0 || empty.Counts != (FrameCounts{}) || empty.Status != farm.StatusRendering {
			t.Errorf("a job without frames: %+v, %v; want it rendering, nothing listed or counted", empty, err)
		}
		if _, err := s.JobProgress(ctx, "another-workspace", "job-odd", FramesBetween(1, 100)); err != ErrNotFound {
			t.Errorf("another workspace's job: %v; want ErrNotFound", err)
		}
	})
}

// head is the first frames of a list, for a message.
func head(frames []farm.FrameProgress) []farm.FrameProgress { return frames[:min(3, len(frames))] }
