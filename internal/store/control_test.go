package store_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestQueueFrameQueuesAFrameAgainKeepingItsAttempts: a resume or a retry
// queues a frame the job has under a new task; it keeps its attempts and
// its last error, loses its image, and a frame being rendered is not
// taken from its holder.
func TestQueueFrameQueuesAFrameAgainKeepingItsAttempts(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		jobWithFrames(t, s, "job-1")
		done := store.Frame{JobID: "job-1", Frame: 1, Status: farm.FrameCompleted, Worker: "node-a", Attempts: 2, ObjectKey: "jobs/job-1/frames/a.1/frame_0001.png", SizeBytes: 9, Error: "Error: once"}
		if err := s.UpdateFrame(ctx, done); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateFrame(ctx, store.Frame{JobID: "job-1", Frame: 2, Status: farm.FrameRendering, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateFrame(ctx, store.Frame{JobID: "job-1", Frame: 3, Status: farm.FrameFailed, Attempts: 3}); err != nil {
			t.Fatal(err)
		}
		task := store.Task{ID: "job-1-task-c", JobID: "job-1", Kind: store.TaskRender, Chunk: 2, Status: store.TaskQueued, Generation: 1, CreatedAt: at(1), UpdatedAt: at(1)}
		if err := s.InsertTask(ctx, task); err != nil {
			t.Fatal(err)
		}

		for _, n := range []int{1, 3} {
			if err := s.QueueFrame(ctx, store.Frame{JobID: "job-1", Frame: n, TaskID: "job-1-task-c", UpdatedAt: at(1)}); err != nil {
				t.Fatalf("QueueFrame(%d): %v", n, err)
			}
		}
		if err := s.QueueFrame(ctx, store.Frame{JobID: "job-1", Frame: 2, TaskID: "job-1-task-c", UpdatedAt: at(1)}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("QueueFrame of a frame being rendered = %v, want ErrConflict", err)
		}
		if err := s.QueueFrame(ctx, store.Frame{JobID: "job-1", Frame: 9, TaskID: "job-1-task-c", UpdatedAt: at(1)}); err != nil {
			t.Errorf("QueueFrame of a new frame = %v, want it inserted", err)
		}

		frames, err := s.FramesOfTask(ctx, "job-1-task-c")
		if err != nil {
			t.Fatal(err)
		}
		if got := frameNumbers(frames); !slices.Equal(got, []int{1, 3, 9}) {
			t.Fatalf("frames of the new task = %v, want [1 3 9]", got)
		}
		one := frames[0]
		if one.Status != farm.FrameQueued || one.Attempts != 2 || one.Worker != "node-a" || one.Error != "Error: once" || one.ObjectKey != "" || one.SizeBytes != 0 {
			t.Errorf("frame 1 queued again = %+v; want queued, its attempts, worker and error kept, no image", one)
		}
		if frames[1].Attempts != 3 {
			t.Errorf("frame 3 queued again has %d attempts, want its 3", frames[1].Attempts)
		}
	})
}

// TestHeldFramesAreThoseNoTaskRenders: the frames behind a job's scouts
// wait with no task until the job is resumed.
func TestHeldFramesAreThoseNoTaskRenders(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		jobWithFrames(t, s, "job-1")
		for _, n := range []int{8, 7} {
			if err := s.QueueFrame(ctx, store.Frame{JobID: "job-1", Frame: n, UpdatedAt: at(0)}); err != nil {
				t.Fatal(err)
			}
		}
		held, err := s.HeldFrames(ctx, "job-1")
		if err != nil || !slices.Equal(held, []int{7, 8}) {
			t.Errorf("HeldFrames = %v, %v; want [7 8]", held, err)
		}
		if n, err := s.UnfinishedTasks(ctx, "job-1", store.TaskRender); err != nil || n != 2 {
			t.Errorf("UnfinishedTasks = %d, %v; want the 2 queued chunks", n, err)
		}
		if next, err := s.NextChunk(ctx, "job-1"); err != nil || next != 2 {
			t.Errorf("NextChunk = %d, %v; want 2, after chunks 0 and 1", next, err)
		}
		if next, err := s.NextChunk(ctx, "no-such-job"); err != nil || next != 0 {
			t.Errorf("NextChunk of a job with no chunk = %d, %v; want 0", next, err)
		}
	})
}

// TestSuspendingSendsRenderingFramesBackToTheQueue: the frames a
// suspended job's chunks were on wait in the queue; stored ones stay.
func TestSuspendingSendsRenderingFramesBackToTheQueue(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		jobWithFrames(t, s, "job-1")
		for frame, st := range map[int]farm.FrameStatus{1: farm.FrameCompleted, 2: farm.FrameRendering, 4: farm.FrameRendering} {
			if err := s.UpdateFrame(ctx, store.Frame{JobID: "job-1", Frame: frame, Status: st, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.MoveUnfinishedFramesOfJob(ctx, "job-1"); err != nil {
			t.Fatal(err)
		}
		want := map[int]farm.FrameStatus{1: farm.FrameCompleted, 2: farm.FrameQueued, 3: farm.FrameQueued, 4: farm.FrameQueued, 5: farm.FrameQueued}
		if got := statusesOf(t, s, "job-1"); !maps.Equal(got, want) {
			t.Errorf("frames = %v, want %v", got, want)
		}
	})
}

// TestTwoFailedChunksBlockAWorkerOnAJobOnly: a node's record with one job
// counts its failed chunks and blocks it there alone; MayTake and
// Standing say so, and a retry forgets it.
func TestTwoFailedChunksBlockAWorkerOnAJobOnly(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		jobWithTasks(t, s, "job-1")
		jobWithTasks(t, s, "job-2")
		count := func(job, worker string) store.ChunkFailure {
			t.Helper()
			var cf store.ChunkFailure
			err := s.InTx(ctx, func(tx *store.Tx) error {
				var err error
				cf, err = tx.CountChunkFailure(ctx, job, worker, "Error: boom")
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return cf
		}
		if cf := count("job-1", "node-bad"); cf != (store.ChunkFailure{JobFailures: 1, WorkerFailures: 1}) {
			t.Errorf("first failure = %+v", cf)
		}
		if cf := count("job-1", "node-good"); cf != (store.ChunkFailure{JobFailures: 2, WorkerFailures: 1}) {
			t.Errorf("another node's failure = %+v", cf)
		}
		if cf := count("job-1", "node-bad"); cf != (store.ChunkFailure{JobFailures: 3, WorkerFailures: 2}) {
			t.Errorf("second failure on node-bad = %+v", cf)
		}
		if err := s.BlockWorker(ctx, "job-1", "node-bad"); err != nil {
			t.Fatal(err)
		}
		mayTake := func(worker, job string) bool {
			t.Helper()
			ok, err := s.MayTake(ctx, worker, job)
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.Standing(ctx, worker, job)
			if err != nil {
				t.Fatal(err)
			}
			if farm.MayTake(st) != ok {
				t.Errorf("MayTake(%s, %s) = %v but its standing %+v says otherwise", worker, job, ok, st)
			}
			return ok
		}
		if mayTake("node-bad", "job-1") || !mayTake("node-bad", "job-2") || !mayTake("node-bad", "") || !mayTake("node-good", "job-1") {
			t.Error("node-bad must be set aside for job-1 alone")
		}
		if blocked, err := s.BlockedWorkers(ctx, "job-1"); err != nil || !slices.Equal(blocked, []string{"node-bad"}) {
			t.Errorf("BlockedWorkers = %v, %v; want [node-bad]", blocked, err)
		}
		if n, err := s.JobChunkFailures(ctx, "job-1"); err != nil || n != 1 {
			t.Errorf("JobChunkFailures = %d, %v; want 1: node-bad's two failures were its own fault", n, err)
		}

		now := time.Now()
		registerWorkerWith(t, s, "run-bad", "node-bad", now, "4.2.3")
		registerWorkerWith(t, s, "run-good", "node-good", now, "4.2.3")
		registerWorkerWith(t, s, "run-other", "node-other", now, "3.4.1")
		registerWorkerWith(t, s, "run-stale", "node-stale", now.Add(-time.Hour), "4.2.3")
		takers, err := s.TakersOf(ctx, "job-1", "node-good", "4.2.3", now.Add(-time.Minute))
		if err != nil || len(takers) != 0 {
			t.Errorf("TakersOf(job-1) but node-good = %v, %v; want none: node-bad is blocked, node-other lacks the Blender, node-stale is dead", takers, err)
		}
		if takers, err := s.TakersOf(ctx, "job-2", "node-good", "4.2.3", now.Add(-time.Minute)); err != nil || !slices.Equal(takers, []string{"node-bad"}) {
			t.Errorf("TakersOf(job-2) but node-good = %v, %v; want [node-bad]", takers, err)
		}

		if err := s.ForgetJobFailures(ctx, "job-1"); err != nil {
			t.Fatal(err)
		}
		if !mayTake("node-bad", "job-1") {
			t.Error("node-bad is still blocked on job-1 after its failures were forgotten")
		}
	})
}

// TestChunksFailingOnThreeJobsInARowMakeAWorkerSick: failures on the
// same job count once; a success ends the run; a job that failed for its
// own fault is taken off the run; enable makes a sick node take work
// again.
func TestChunksFailingOnThreeJobsInARowMakeAWorkerSick(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		fail := func(worker, job string) store.WorkerHealth {
			t.Helper()
			var h store.WorkerHealth
			err := s.InTx(ctx, func(tx *store.Tx) error {
				var err error
				h, err = tx.ChunkFailedOn(ctx, worker, job)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		fail("node-a", "job-1")
		fail("node-a", "job-1")
		if h := fail("node-a", "job-2"); h.Sick() || !slices.Equal(h.FailedJobs, []string{"job-1", "job-2"}) {
			t.Errorf("after two jobs: %+v; want not sick, the two jobs in its run", h)
		}
		if err := s.ChunkSucceededOn(ctx, "node-a"); err != nil {
			t.Fatal(err)
		}
		fail("node-a", "job-3")
		fail("node-a", "job-4")
		if err := s.AbsolveWorkers(ctx, "job-4"); err != nil {
			t.Fatal(err)
		}
		if h := fail("node-a", "job-5"); h.Sick() {
			t.Errorf("after a success, job 3, job 4 (its own fault) and job 5: %+v; want not sick", h)
		}
		h := fail("node-a", "job-6")
		if !h.Sick() || !strings.Contains(h.SickReason, "3 different jobs") || !strings.Contains(h.SickReason, "job-6") {
			t.Fatalf("after jobs 3, 5 and 6: %+v; want sick, saying why", h)
		}
		if ok, err := s.MayTake(ctx, "node-a", ""); err != nil || ok {
			t.Errorf("MayTake of a sick node = %v, %v; want false, for any work", ok, err)
		}
		sick, err := s.SickWorkers(ctx)
		if err != nil || len(sick) != 1 || sick[0].Name != "node-a" || sick[0].SickSince.IsZero() {
			t.Errorf("SickWorkers = %+v, %v; want node-a", sick, err)
		}

		if _, err := s.EnableWorker(ctx, "no-such-node"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("EnableWorker of an unknown node = %v, want ErrNotFound", err)
		}
		wasSick, err := s.EnableWorker(ctx, "node-a")
		if err != nil || !wasSick {
			t.Fatalf("EnableWorker = %v, %v; want it was sick", wasSick, err)
		}
		if ok, err := s.MayTake(ctx, "node-a", "job-6"); err != nil || !ok {
			t.Errorf("MayTake after enable = %v, %v; want true", ok, err)
		}
		if h := fail("node-a", "job-7"); h.Sick() || len(h.FailedJobs) != 1 {
			t.Errorf("a failure after enable: %+v; want a fresh run of one job", h)
		}
	})
}
