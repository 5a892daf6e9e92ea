package node

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// liveNode records another render node, running the fake Blender's
// version, whose heartbeat is fresh: one that may take what this node
// is set aside from.
func (f *fixture) liveNode(name string) {
	f.T.Helper()
	now := time.Now()
	err := f.Store.RegisterWorker(f.Ctx, store.Worker{ID: "run-" + name, Name: name, StartedAt: now, HeartbeatAt: now,
		State: store.WorkerIdle, BlenderVersions: []string{fakeBlenderVersion}})
	if err != nil {
		f.T.Fatalf("RegisterWorker(%s): %v", name, err)
	}
}

// failingChunk is Blender failing on the first frame of a chunk.
func failingChunk(frame int) fakeRender {
	return fakeRender{err: &blender.RenderError{Frame: frame, Line: "Error: the node's GPU driver crashed", ExitCode: 1}}
}

// isSnoozed reports whether a Work answer hands the task back without
// spending an attempt.
func isSnoozed(err error) bool {
	var snooze *river.JobSnoozeError
	return errors.As(err, &snooze)
}

func (f *fixture) blockedWorkers(jobID string) []string {
	f.T.Helper()
	pr, err := f.api.Progress(f.Ctx, f.P, jobID, farm.ProgressQuery{})
	if err != nil {
		f.T.Fatalf("Progress: %v", err)
	}
	return pr.BlockedWorkers
}

// TestAJobsChunksFailingTwiceOnANodeSetItAsideForThatJob: the third
// chunk goes back untouched for another node, and the job goes on: the
// node's failures were its own, not the file's.
func TestAJobsChunksFailingTwiceOnANodeSetItAsideForThatJob(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.liveNode("node-other")
		job := f.RenderingJob(f.api, 4, 2)
		tasks := f.Tasks(job.ID, store.TaskRender)
		first, second := f.Ref(tasks[0]), f.Ref(tasks[1])

		f.blender.willRender(failingChunk(1))
		if err := f.renderWork(f.Ctx, first, 1, enginetest.RenderAttempts); err == nil {
			t.Fatal("a failed chunk's Work = nil; want the error for River's retry")
		}
		if got := f.blockedWorkers(job.ID); len(got) != 0 {
			t.Fatalf("blocked after one failed chunk: %v; want none", got)
		}
		f.blender.willRender(failingChunk(3))
		if err := f.renderWork(f.Ctx, second, 1, enginetest.RenderAttempts); err == nil {
			t.Fatal("a failed chunk's Work = nil; want the error for River's retry")
		}
		if got := f.blockedWorkers(job.ID); !slices.Equal(got, []string{"node-test"}) {
			t.Fatalf("blockedWorkers after two failed chunks = %v, want [node-test]", got)
		}

		// The chunk was given to this node before it was blocked: the node
		// hands it back to wait for another, without spending an attempt.
		if err := f.renderWork(f.Ctx, first, 2, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work of the job's chunk on the blocked node = %v; want it handed back for another node", err)
		}
		if n := len(f.blender.rendered); n != 2 {
			t.Errorf("Blender rendered %d times; want 2: the blocked node must not start it", n)
		}
		if task := f.Task(first.TaskID); (task.Status != store.TaskWaiting && task.Status != store.TaskQueued) ||
			task.Generation != first.Generation+1 || task.WorkerID == f.node.WorkerID() {
			t.Errorf("task = %s, generation %d, on %q; want waiting again (or given to another node) under a new generation", task.Status, task.Generation, task.WorkerID)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusRendering {
			t.Errorf("job = %s, want rendering: a blocked node's failures do not fail it", st)
		}

		// Another job's chunks are still this node's.
		other := f.RenderingJob(f.api, 2, 2)
		f.blender.willRender(fakeRender{saves: []int{1, 2}})
		if err := f.renderWork(f.Ctx, f.Ref(f.Tasks(other.ID, store.TaskRender)[0]), 1, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work of another job's chunk = %v, want it rendered", err)
		}
	})
}

// TestTheLastNodeThatMayTakeAJobIsNotSetAside, and a file that fails on
// every node fails its job after Config.MaxFailedChunks failed chunks,
// with the nodes not held to account.
func TestAJobFailsAfterMaxFailedChunksAndItsNodesAreNotBlamed(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 6, 2)
		tasks := f.Tasks(job.ID, store.TaskRender)
		for i, frame := range []int{1, 3} {
			f.blender.willRender(failingChunk(frame))
			if err := f.renderWork(f.Ctx, f.Ref(tasks[i]), 1, enginetest.RenderAttempts); err == nil {
				t.Fatalf("chunk %d: Work = nil, want the error for River's retry", i)
			}
		}
		if got := f.blockedWorkers(job.ID); len(got) != 0 {
			t.Fatalf("blocked = %v; want none: no other node may take the job's chunks", got)
		}
		f.blender.willRender(failingChunk(5))
		if err := f.renderWork(f.Ctx, f.Ref(tasks[2]), 1, enginetest.RenderAttempts); err != nil {
			t.Fatalf("the third failed chunk's Work = %v; want the job's failure recorded, not retried", err)
		}
		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed || after.FailedReason == nil ||
			!strings.Contains(after.FailedReason.Message, "frame 5 failed after 1 attempts (3 chunks of the job failed, the most --max-failed-chunks allows)") {
			t.Fatalf("job = %s, %+v; want failed after 3 failed chunks, naming the limit", after.Status, after.FailedReason)
		}
		if n := f.Count("worker_health", "name = ? AND failed_jobs = '' AND sick_since IS NULL", "node-test"); n != 1 {
			t.Errorf("node-test's run of failures still holds the job that failed for its own fault")
		}
	})
}

// TestAChunkFailureCountedAgainAfterItsAnswerWasLostCountsOnce: the
// count of a failed attempt commits, its answer is lost, and the node
// counts it again, as it does through an outage of the database. The
// failure counts once against the job, the node and the node's run of
// failures, and the try again answers as the first did, from the job's
// count. Another attempt of the same generation (River's retry after a
// passing failure) that fails is a failure of its own.
func TestAChunkFailureCountedAgainAfterItsAnswerWasLostCountsOnce(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.node.cfg.MaxFailedChunks = 2
		job := f.RenderingJob(f.api, 4, 2)
		ref := f.startedChunk(f.Tasks(job.ID, store.TaskRender)[0])
		failure := &blender.RenderError{Frame: 1, Line: "Error: out of memory"}
		counted := func(want int) {
			t.Helper()
			if got := f.Count("job_workers", "job_id = ? AND worker_name = ? AND failed_chunks = ?", job.ID, "node-test", want); got != 1 {
				t.Errorf("node-test's failed chunks of the job are not %d", want)
			}
		}

		for try := 1; try <= 2; try++ {
			failJob, err := f.node.countChunkFailure(f.Ctx, ref, 1, failure)
			if err != nil || failJob {
				t.Fatalf("try %d: failJob %v, %v; want the job to go on after one failure", try, failJob, err)
			}
			counted(1)
		}

		failJob, err := f.node.countChunkFailure(f.Ctx, ref, 2, failure)
		if err != nil || !failJob {
			t.Fatalf("the second attempt: failJob %v, %v; want the job to fail at --max-failed-chunks 2", failJob, err)
		}
		counted(2)
		if failJob, err := f.node.countChunkFailure(f.Ctx, ref, 2, failure); err != nil || !failJob {
			t.Errorf("the second attempt tried again: failJob %v, %v; want the first try's answer", failJob, err)
		}
		counted(2)
	})
}

// TestANodeWhoseChunksFailOnThreeJobsInARowIsSick: it takes nothing,
// not even another job's validation, until it is enabled again.
func TestANodeWhoseChunksFailOnThreeJobsInARowIsSick(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.liveNode("node-other")
		for i := range 3 {
			job := f.RenderingJob(f.api, 2, 2)
			f.blender.willRender(failingChunk(1))
			if err := f.renderWork(f.Ctx, f.Ref(f.Tasks(job.ID, store.TaskRender)[0]), 1, enginetest.RenderAttempts); err == nil {
				t.Fatalf("job %d: Work = nil, want the error for River's retry", i+1)
			}
		}
		sick, err := f.Store.SickWorkers(f.Ctx)
		if err != nil || len(sick) != 1 || sick[0].Name != "node-test" || !strings.Contains(sick[0].SickReason, "3 different jobs") {
			t.Fatalf("SickWorkers = %+v, %v; want node-test, saying why", sick, err)
		}
		if names, err := f.Store.SickWorkerNames(f.Ctx); err != nil || !slices.Equal(names, []string{"node-test"}) {
			t.Errorf("SickWorkerNames = %v, %v; want [node-test] for /metrics", names, err)
		}

		fourth := f.RenderingJob(f.api, 2, 2)
		ref := f.Ref(f.Tasks(fourth.ID, store.TaskRender)[0])
		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work of a new job's chunk on the sick node = %v; want it handed back", err)
		}
		if task := f.Task(ref.TaskID); task.Status != store.TaskWaiting || task.Generation != ref.Generation+1 {
			t.Errorf("the sick node's chunk = %s, generation %d; want waiting again under a new generation", task.Status, task.Generation)
		}
		validating := f.validatingJob()
		if err := f.validateWork(f.Ctx, validating.ID, 1, 3); !isSnoozed(err) {
			t.Fatalf("Work of a validation on the sick node = %v; want it handed back", err)
		}

		if wasSick, err := f.Store.EnableWorker(f.Ctx, "node-test"); err != nil || !wasSick {
			t.Fatalf("EnableWorker = %v, %v", wasSick, err)
		}
		f.blender.willRender(fakeRender{saves: []int{1, 2}})
		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work once enabled = %v, want the chunk rendered", err)
		}
	})
}

// TestAFrameBlenderSavedEmptyFails: Blender said it saved the frame, and
// the file is there, but empty: the frame fails, saying so.
func TestAFrameBlenderSavedEmptyFails(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		f.blender.willRender(fakeRender{saves: []int{1, 2}, empty: []int{2}})
		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); err == nil {
			t.Fatal("Work = nil after an empty frame; want an error, so that River retries")
		}
		frames := f.Frames(job.ID)
		if fr := frames[2]; fr.Status != farm.FrameQueued || !strings.Contains(fr.Error, "is empty (0 bytes)") || fr.ObjectKey != "" {
			t.Errorf("frame 2 = %+v; want queued again, saying its image is empty, nothing stored", fr)
		}
		if fr := frames[1]; fr.Status != farm.FrameCompleted {
			t.Errorf("frame 1 = %s, want completed", fr.Status)
		}
	})
}

// TestScoutFramesWaitingForASlotKeepTheJobRendering: a job is suspended
// for approval only once all its scout frames are rendered. Here, on a
// farm of one slot, the first scout chunk is done, the second failed once
// and waits out its retry wait, the third waits for the slot: the job
// settles (as after any chunk's end) and stays rendering, where counting
// only the chunks queued or running suspended it with two scout frames
// unrendered.
func TestScoutFramesWaitingForASlotKeepTheJobRendering(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := sharingFixture(t, db, 1)
		cfg := enginetest.RenderConfig(1)
		cfg.ScoutFrames = &farm.ScoutFrames{Auto: true}
		job := f.WaitingJob(f.api, 9, cfg)
		f.finish(f.onNode()[0])
		second := f.onNode()
		if len(second) != 1 {
			t.Fatalf("%d chunks on the node of one slot after the first scout chunk, want 1", len(second))
		}
		// Its attempt fails: the chunk waits out its retry wait, its slot
		// free.
		ref := f.startedChunk(second[0])
		if err := f.Engine.RetryChunkLater(f.Ctx, ref, time.Hour); err != nil {
			t.Fatal(err)
		}

		if _, err := f.Engine.SettleRendering(f.Ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		if after := f.Job(job.ID); after.Status != farm.StatusRendering {
			t.Errorf("job = %s (%q) with 2 of its 3 scout frames waiting for a slot; want rendering", after.Status, after.SuspendedReason)
		}
	})
}

// TestScoutFramesRenderFirstThenTheJobWaitsForApproval: the scout frames'
// chunks are the only ones queued; once they are done the job is
// suspended with its reason and an estimate of the rest, and resuming
// queues the rest alone.
func TestScoutFramesRenderFirstThenTheJobWaitsForApproval(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.ValidatedJob(f.api, 9)
		cfg := enginetest.RenderConfig(1)
		cfg.ScoutFrames = &farm.ScoutFrames{Auto: true}
		job, _, err := f.api.Render(f.Ctx, f.P, job.ID, cfg)
		if err != nil {
			t.Fatalf("Render: %v", err)
		}
		f.DispatchAll(job)
		tasks := f.Tasks(job.ID, store.TaskRender)
		var queued []int
		for _, fr := range f.Frames(job.ID) {
			if fr.TaskID != "" {
				queued = append(queued, fr.Frame)
			}
		}
		slices.Sort(queued)
		if len(tasks) != 3 || !slices.Equal(queued, []int{1, 5, 9}) {
			t.Fatalf("%d chunks for frames %v; want 3, for the scout frames 1, 5 and 9 alone", len(tasks), queued)
		}
		for _, task := range tasks {
			frame := f.renderArgs(f.Ref(task)).Frames[0]
			f.blender.willRender(fakeRender{saves: []int{frame}})
			if err := f.renderWork(f.Ctx, f.Ref(task), 1, enginetest.RenderAttempts); err != nil {
				t.Fatalf("scout chunk of frame %d: %v", frame, err)
			}
		}
		after := f.Job(job.ID)
		if after.Status != farm.StatusSuspended || after.SuspendedReason != farm.SuspendedScoutFramesReady {
			t.Fatalf("job = %s (%q); want suspended, its scout frames ready", after.Status, after.SuspendedReason)
		}
		pr, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{})
		if err != nil || pr.EtaSeconds == nil || *pr.EtaSeconds <= 0 || pr.FramesCompleted != 3 || pr.FramesTotal != 9 {
			t.Fatalf("progress = %+v, %v; want 3 of 9 frames and an estimate of the rest", pr, err)
		}

		resumed, replay, err := f.api.Resume(f.Ctx, f.P, job.ID)
		if err != nil || replay || resumed.Status != farm.StatusRendering {
			t.Fatalf("Resume = %+v, %v, %v; want rendering", resumed, replay, err)
		}
		f.DispatchAll(resumed)
		var rest []int
		for _, task := range f.Tasks(job.ID, store.TaskRender) {
			if task.Status == store.TaskQueued {
				rest = append(rest, f.renderArgs(f.Ref(task)).Frames...)
			}
		}
		slices.Sort(rest)
		if !slices.Equal(rest, []int{2, 3, 4, 6, 7, 8}) {
			t.Errorf("chunks queued by resume render %v; want the six frames that are not scouts", rest)
		}
		want := map[int]farm.FrameStatus{1: farm.FrameCompleted, 5: farm.FrameCompleted, 9: farm.FrameCompleted}
		for _, fr := range rest {
			want[fr] = farm.FrameQueued
		}
		if got := f.FrameStatuses(job.ID); !maps.Equal(got, want) {
			t.Errorf("frames = %v, want %v", got, want)
		}
	})
}
