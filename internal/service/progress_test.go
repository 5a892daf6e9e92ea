package service

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// frameState is one frame of a progress example: its status and, once
// completed, how long Blender took.
type frameState struct {
	status  farm.FrameStatus
	seconds float64
}

var (
	queued    = frameState{status: farm.FrameQueued}
	rendering = frameState{status: farm.FrameRendering}
	failed    = frameState{status: farm.FrameFailed}
	canceled  = frameState{status: farm.FrameCanceled}
)

func done(seconds float64) frameState {
	return frameState{status: farm.FrameCompleted, seconds: seconds}
}

// insertFrames gives a job frames 1, 2, … in the given states.
func (f *fixture) insertFrames(jobID string, states ...frameState) {
	f.T.Helper()
	now := time.Now().UTC()
	for i, s := range states {
		fr := store.Frame{JobID: jobID, Frame: i + 1, TaskID: "task-" + jobID, Status: s.status, UpdatedAt: now}
		if s.status != farm.FrameQueued {
			fr.Worker, fr.Attempts = "node-a", 1
		}
		if s.status == farm.FrameCompleted {
			fr.RenderSeconds = s.seconds
			fr.ObjectKey = farm.JobFramesPrefix(jobID) + enginetest.FrameName(i+1)
		}
		if err := f.Store.InsertFrame(f.Ctx, fr); err != nil {
			f.T.Fatal(err)
		}
	}
}

func eta(seconds float64) *float64 { return &seconds }

func TestProgressCountsFramesAndEstimatesTheTimeLeft(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		tests := []struct {
			name   string
			status farm.Status
			frames []frameState

			completed, rendering, failed int
			percent                      float64
			eta                          *float64
		}{
			{
				// Six frames left at a mean of 25 s, two rendering at once.
				name:      "frames left times the mean frame time, shared by the frames rendering",
				status:    farm.StatusRendering,
				frames:    []frameState{done(10), done(20), done(30), done(40), rendering, rendering, queued, queued, queued, queued},
				completed: 4, rendering: 2, percent: 40, eta: eta(75),
			},
			{
				name:      "with no frame rendering, one worker is assumed",
				status:    farm.StatusRendering,
				frames:    []frameState{done(12), queued, queued},
				completed: 1, percent: 33.3, eta: eta(24),
			},
			{
				// 4 frames × (3.5 s / 3) / 3 rendering = 1.555… s
				name:      "percent and eta are rounded to a tenth",
				status:    farm.StatusRendering,
				frames:    []frameState{done(1), done(1), done(1.5), rendering, rendering, rendering, queued},
				completed: 3, rendering: 3, percent: 42.9, eta: eta(1.6),
			},
			{
				name:      "no eta before the first frame is done",
				status:    farm.StatusRendering,
				frames:    []frameState{rendering, queued, queued},
				rendering: 1,
			},
			{
				name:   "no eta and no frames while booting",
				status: farm.StatusBooting,
				frames: []frameState{queued, queued},
			},
			{
				name:      "finalizing: every frame is done and nothing is left",
				status:    farm.StatusFinalizing,
				frames:    []frameState{done(3), done(5)},
				completed: 2, percent: 100, eta: eta(0),
			},
			{
				name:      "a completed job is 100% with no eta",
				status:    farm.StatusCompleted,
				frames:    []frameState{done(3), done(5)},
				completed: 2, percent: 100,
			},
			{
				name:      "a failed job counts its failed frames and has no eta",
				status:    farm.StatusFailed,
				frames:    []frameState{done(3), done(5), failed, canceled, canceled},
				completed: 2, failed: 1, percent: 40,
			},
			{
				name:      "a canceled job keeps the share it rendered",
				status:    farm.StatusCanceled,
				frames:    []frameState{done(3), canceled, canceled, canceled},
				completed: 1, percent: 25,
			},
			{
				name:   "a job that never rendered has no frames",
				status: farm.StatusValidated,
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.InsertJob(f.api, tt.status)
				f.insertFrames(job.ID, tt.frames...)

				pr, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{})

				if err != nil {
					t.Fatalf("Progress: %v", err)
				}
				if pr.JobID != job.ID || pr.Status != tt.status {
					t.Errorf("progress of %s %s, want of %s %s", pr.JobID, pr.Status, job.ID, tt.status)
				}
				got := fmt.Sprintf("total %d, completed %d, rendering %d, failed %d, %v%%", pr.FramesTotal, pr.FramesCompleted, pr.FramesRendering, pr.FramesFailed, pr.PercentComplete)
				want := fmt.Sprintf("total %d, completed %d, rendering %d, failed %d, %v%%", len(tt.frames), tt.completed, tt.rendering, tt.failed, tt.percent)
				if got != want {
					t.Errorf("progress = %s, want %s", got, want)
				}
				if !sameEta(pr.EtaSeconds, tt.eta) {
					t.Errorf("etaSeconds = %s, want %s", showEta(pr.EtaSeconds), showEta(tt.eta))
				}
				if pr.Frames == nil || len(pr.Frames) != len(tt.frames) {
					t.Fatalf("%d frame lines, want %d (an empty list, not null, when there are none)", len(pr.Frames), len(tt.frames))
				}
				for i, line := range pr.Frames {
					if line.Frame != i+1 || line.Status != tt.frames[i].status || line.RenderSeconds != tt.frames[i].seconds {
						t.Errorf("frame line %d = %+v, want frame %d %s in %v s", i, line, i+1, tt.frames[i].status, tt.frames[i].seconds)
					}
				}
			})
		}
	})
}

// TestRunningProgressListsOnlyTheJobsBeingWorkedOn: the jobs the farm
// works on, and the suspended ones, which are still its work (paused);
// not the jobs that wait for a request or ended.
func TestRunningProgressListsOnlyTheJobsBeingWorkedOn(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		want := map[farm.Status]bool{
			farm.StatusCreated: false, farm.StatusValidating: true, farm.StatusValidated: false,
			farm.StatusBooting: true, farm.StatusRendering: true, farm.StatusFinalizing: true,
			farm.StatusSuspended: true,
			farm.StatusCompleted: false, farm.StatusFailed: false, farm.StatusCanceled: false,
		}
		var wantIDs []string
		for status, running := range want {
			job := f.InsertJob(f.api, status)
			if running {
				wantIDs = append(wantIDs, job.ID)
			}
		}
		other, err := f.Store.EnsureWorkspace(f.Ctx, "another studio")
		if err != nil {
			t.Fatal(err)
		}
		// Another workspace's running job is not this one's to see.
		foreign := f.InsertJob(f.api, farm.StatusRendering)
		f.Exec(`UPDATE jobs SET workspace_id = ? WHERE id = ?`, other.ID, foreign.ID)

		list, err := f.api.RunningProgress(f.Ctx, f.P, farm.ProgressQuery{})

		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, pr := range list {
			got = append(got, pr.JobID)
			if !want[pr.Status] {
				t.Errorf("listed a %s job", pr.Status)
			}
		}
		slices.Sort(got)
		slices.Sort(wantIDs)
		if !slices.Equal(got, wantIDs) {
			t.Errorf("running jobs = %v, want %v (this workspace's validating, booting, rendering, finalizing and suspended jobs)", got, wantIDs)
		}
	})
}

func sameEta(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func showEta(e *float64) string {
	if e == nil {
		return "null"
	}
	return fmt.Sprint(*e)
}

func TestProgressOfAJobThatIsNotTheWorkspacesIsNotFound(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		other, err := f.Store.EnsureWorkspace(f.Ctx, "another studio")
		if err != nil {
			t.Fatal(err)
		}
		foreign := f.InsertJob(f.api, farm.StatusRendering)
		f.insertFrames(foreign.ID, done(3), rendering)
		f.Exec(`UPDATE jobs SET workspace_id = ? WHERE id = ?`, other.ID, foreign.ID)

		for _, id := range []string{foreign.ID, "0192f5d6-3c1e-7a4b-9e2f-6b1d2c3e4f50", "not-a-job-id"} {
			pr, err := f.api.Progress(f.Ctx, f.P, id, farm.ProgressQuery{})
			if farm.KindOf(err) != farm.KindNotFound || pr != nil {
				t.Errorf("Progress(%s) = %+v, %v; want not found", id, pr, err)
			}
		}
	})
}

// TestRunningProgressReportsAsProgressDoes: each job's report in the list
// is the one Progress gives, a suspended job's included: its frames done,
// why it waits and, once its scouts are done, the time the rest will take.
func TestRunningProgressReportsAsProgressDoes(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.InsertJob(f.api, farm.StatusRendering)
		f.insertFrames(job.ID, done(10), done(20), rendering, failed, queued)
		paused := f.InsertJob(f.api, farm.StatusSuspended)
		f.insertFrames(paused.ID, done(10), queued, queued)
		f.Exec(`UPDATE jobs SET suspended_reason = ? WHERE id = ?`, farm.SuspendedOnRequest, paused.ID)
		scouted := f.InsertJob(f.api, farm.StatusSuspended)
		f.insertFrames(scouted.ID, done(4), done(6), queued, queued)
		f.Exec(`UPDATE jobs SET suspended_reason = ? WHERE id = ?`, farm.SuspendedScoutFramesReady, scouted.ID)

		list, err := f.api.RunningProgress(f.Ctx, f.P, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var want []farm.Progress
		for _, id := range []string{job.ID, paused.ID, scouted.ID} {
			one, err := f.api.Progress(f.Ctx, f.P, id, farm.ProgressQuery{})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, *one)
		}
		if want[1].SuspendedReason != farm.SuspendedOnRequest || want[2].EtaSeconds == nil {
			t.Fatalf("Progress of the suspended jobs = %+v, %+v; want the reason, and the scouted job's time left", want[1], want[2])
		}

		// Compared as the API sends them, in the order the jobs were made.
		got, _ := json.Marshal(list)
		wanted, _ := json.Marshal(want)
		if string(got) != string(wanted) {
			t.Errorf("RunningProgress =\n%s\nwant\n%s", got, wanted)
		}
	})
}

// TestProgressWithoutFramesCountsAsTheFramesDo: asked without frames,
// each report, of one job or of the running ones, is the report with
// them, frames left out: counters, percentage, time left (from the
// frames, from a split frame's parts, from the scouts), and what it
// waits for, counted by the database rather than from the frames.
func TestProgressWithoutFramesCountsAsTheFramesDo(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.InsertJob(f.api, farm.StatusRendering)
		f.insertFrames(job.ID, done(10), done(20), rendering, failed, queued)
		scouted := f.InsertJob(f.api, farm.StatusSuspended)
		f.insertFrames(scouted.ID, done(4), done(6), queued, queued)
		f.Exec(`UPDATE jobs SET suspended_reason = ? WHERE id = ?`, farm.SuspendedScoutFramesReady, scouted.ID)
		// A split job: frame 1 merged, frame 2's parts half stored.
		split := f.InsertJob(f.api, farm.StatusRendering)
		f.insertFrames(split.ID, done(8), rendering)
		for frame, stored := range map[int][]bool{1: {true, true}, 2: {true, false}} {
			for part, ok := range stored {
				key := ""
				if ok {
					key = fmt.Sprintf("jobs/%s/parts/%d/%d.exr", split.ID, frame, part)
				}
				f.Exec(`INSERT INTO frame_parts (job_id, frame, part, task_id, object_key, render_seconds) VALUES (?, ?, ?, 'task', ?, ?)`,
					split.ID, frame, part, key, map[bool]float64{true: 3, false: 0}[ok])
			}
		}
		empty := f.InsertJob(f.api, farm.StatusBooting)

		withFrames, err := f.api.RunningProgress(f.Ctx, f.P, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		counted, err := f.api.RunningProgress(f.Ctx, f.P, farm.ProgressQuery{WithoutFrames: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(withFrames) != 4 || withFrames[0].FramesTotal != 5 || withFrames[0].FramesCompleted != 2 || withFrames[0].FramesFailed != 1 ||
			withFrames[2].Frames[1].Parts == nil || withFrames[0].EtaSeconds == nil || withFrames[1].EtaSeconds == nil {
			t.Fatalf("RunningProgress = %+v; want the 4 jobs, the first with 2 of 5 frames done and 1 failed, the split frame's parts and the times left", withFrames)
		}
		listed := make([][]farm.FrameProgress, len(withFrames))
		for i := range withFrames {
			listed[i], withFrames[i].Frames = withFrames[i].Frames, nil
		}
		got, _ := json.Marshal(counted)
		want, _ := json.Marshal(withFrames)
		if string(got) != string(want) {
			t.Errorf("RunningProgress without frames =\n%s\nwant\n%s", got, want)
		}
		for i, id := range []string{job.ID, scouted.ID, split.ID, empty.ID} {
			one, err := f.api.Progress(f.Ctx, f.P, id, farm.ProgressQuery{WithoutFrames: true})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(one)
			want, _ := json.Marshal(withFrames[i])
			if string(got) != string(want) {
				t.Errorf("Progress of %s without frames =\n%s\nwant\n%s", id, got, want)
			}
			// A span lists its frames (a split frame's parts with it), and
			// counts and estimates as the whole report does.
			span, err := f.api.Progress(f.Ctx, f.P, id, farm.ProgressQuery{Frames: &farm.FrameRange{Start: 2, End: 3, Step: 1}})
			if err != nil {
				t.Fatal(err)
			}
			whole := withFrames[i]
			whole.Frames = []farm.FrameProgress{}
			for _, fr := range listed[i] {
				if fr.Frame >= 2 && fr.Frame <= 3 {
					whole.Frames = append(whole.Frames, fr)
				}
			}
			got, _ = json.Marshal(span)
			want, _ = json.Marshal(whole)
			if string(got) != string(want) {
				t.Errorf("Progress of %s, frames 2-3 =\n%s\nwant\n%s", id, got, want)
			}
		}
	})
}

// TestProgressWithoutFramesEstimatesAsWithThem: a report with its frames
// adds their render seconds in Go, one without in the database, in
// another order; the estimates, rounded to a tenth of a second, still
// agree where the sums differ in their last bit: six frames of 0.1 s,
// and frames of 0.3, 0.2 and 0.1 s written in that order.
func TestProgressWithoutFramesEstimatesAsWithThem(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		tenths := f.InsertJob(f.api, farm.StatusRendering)
		f.insertFrames(tenths.ID, done(0.1), done(0.1), done(0.1), done(0.1), done(0.1), done(0.1),
			rendering, rendering, queued, queued, queued, queued, queued, queued, queued, queued, queued)
		backwards := f.InsertJob(f.api, farm.StatusRendering)
		now := time.Now().UTC()
		for n := 14; n >= 1; n-- {
			fr := store.Frame{JobID: backwards.ID, Frame: n, TaskID: "task", Status: farm.FrameQueued, UpdatedAt: now}
			switch {
			case n <= 3:
				fr.Status, fr.RenderSeconds, fr.Worker, fr.Attempts = farm.FrameCompleted, float64(n)/10, "node-a", 1
			case n <= 7:
				fr.Status, fr.Worker, fr.Attempts = farm.FrameRendering, "node-a", 1
			}
			if err := f.Store.InsertFrame(f.Ctx, fr); err != nil {
				t.Fatal(err)
			}
		}
		for _, job := range []string{tenths.ID, backwards.ID} {
			with, err := f.api.Progress(f.Ctx, f.P, job, farm.ProgressQuery{})
			if err != nil {
				t.Fatal(err)
			}
			without, err := f.api.Progress(f.Ctx, f.P, job, farm.ProgressQuery{WithoutFrames: true})
			if err != nil {
				t.Fatal(err)
			}
			if with.EtaSeconds == nil || without.EtaSeconds == nil || *with.EtaSeconds != *without.EtaSeconds {
				t.Errorf("job %s: etaSeconds %v with its frames, %v without; want the same", job, deref(with.EtaSeconds), deref(without.EtaSeconds))
			}
		}
	})
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
