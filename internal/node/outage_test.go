package node

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river/rivertype"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// When the farm's own parts fail: a bucket or a disk that is out is waited
// for without spending the chunk's attempts, a release that cannot be
// written is tried again, and a task nothing carries out any more (the
// farm's invariant broken) is handed out by the reaper. Blender is the
// fake; the bucket is the farm's local store behind a switch; the release
// goes through a wrapper of the store that fails on demand.

// switchableBucket is the farm's object store behind a switch: while it is
// down, every request fails as one to an unreachable bucket does (the HTTP
// client's *url.Error around a refused connection) and nothing is stored.
// downAfterPuts, when above 0, throws the switch after that many Puts went
// through.
type switchableBucket struct {
	objstore.Store
	down          atomic.Bool
	downAfterPuts atomic.Int32
	puts          atomic.Int32
}

func (b *switchableBucket) unreachable(op, key string) error {
	return &url.Error{Op: op, URL: "http://bucket.test/" + key, Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
}

func (b *switchableBucket) Put(ctx context.Context, key string, r io.Reader, maxBytes int64) (int64, error) {
	if b.down.Load() {
		return 0, b.unreachable("Put", key)
	}
	n, err := b.Store.Put(ctx, key, r, maxBytes)
	if err == nil && b.puts.Add(1) == b.downAfterPuts.Load() {
		b.down.Store(true)
	}
	return n, err
}

func (b *switchableBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if b.down.Load() {
		return nil, b.unreachable("Get", key)
	}
	return b.Store.Get(ctx, key)
}

func (b *switchableBucket) Stat(ctx context.Context, key string) (objstore.Info, error) {
	if b.down.Load() {
		return objstore.Info{}, b.unreachable("Head", key)
	}
	return b.Store.Stat(ctx, key)
}

// onSwitchableBucket puts the node's object store behind a switch.
func (f *fixture) onSwitchableBucket() *switchableBucket {
	b := &switchableBucket{Store: f.node.objects}
	f.node.objects = b
	return b
}

// waitingFor is what the job's progress says its work waits for.
func (f *fixture) waitingFor(jobID string) string {
	f.T.Helper()
	p, err := f.api.Progress(f.Ctx, f.P, jobID, farm.ProgressQuery{})
	if err != nil {
		f.T.Fatal(err)
	}
	return p.WaitingFor
}

func TestABucketOutageIsWaitedOutWithoutSpendingAnAttempt(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 3, 3)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		bucket := f.onSwitchableBucket()
		// Frame 1 is stored; then the bucket goes away.
		bucket.downAfterPuts.Store(1)
		f.blender.willRender(fakeRender{saves: []int{1, 2, 3}})

		done := make(chan error, 1)
		go func() { done <- f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts) }()
		waitFor(t, func() bool { return f.waitingFor(job.ID) == "the bucket" })
		if got := testutil.ToFloat64(f.metrics.Waiting.WithLabelValues("bucket")); got != 1 {
			t.Errorf("renderfarm_tasks_waiting{part=bucket} = %v while the bucket is out, want 1", got)
		}
		if fr := f.Frames(job.ID)[2]; fr.Status != farm.FrameRendering {
			t.Errorf("frame 2 while its image cannot be stored = %s, want rendering", fr.Status)
		}
		bucket.down.Store(false)

		if err := <-done; err != nil {
			t.Fatalf("Work = %v, want the chunk done once the bucket is back", err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
		for n, fr := range f.Frames(job.ID) {
			if fr.Status != farm.FrameCompleted || fr.Attempts != 1 || f.Content(fr.ObjectKey) == "" {
				t.Errorf("frame %d = %+v; want completed on its first attempt, its image stored", n, fr)
			}
		}
		if len(f.blender.rendered) != 1 {
			t.Errorf("Blender was asked for %d chunks, want 1: the outage cost no render", len(f.blender.rendered))
		}
		if w := f.waitingFor(job.ID); w != "" {
			t.Errorf("progress still waits for %q", w)
		}
		if got := testutil.ToFloat64(f.metrics.Waiting.WithLabelValues("bucket")); got != 0 {
			t.Errorf("renderfarm_tasks_waiting{part=bucket} = %v after the bucket came back, want 0", got)
		}
		if got := testutil.ToFloat64(f.metrics.Waits.WithLabelValues("bucket")); got != 1 {
			t.Errorf("renderfarm_outage_waits_total{part=bucket} = %v, want 1", got)
		}
		f.CheckTaskInvariant()
	})
}

func TestABucketOutageAtTheStartIsWaitedOutBeforeBlenderRuns(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		bucket := f.onSwitchableBucket()
		// The job's input cannot be fetched.
		bucket.down.Store(true)
		f.blender.willRender(fakeRender{saves: []int{1, 2}})

		done := make(chan error, 1)
		go func() { done <- f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts) }()
		waitFor(t, func() bool { return f.waitingFor(job.ID) == "the bucket" })
		bucket.down.Store(false)

		if err := <-done; err != nil {
			t.Fatalf("Work = %v, want the chunk done once the bucket is back", err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
	})
}

func TestAnOutageLongerThanTheToleranceFailsTheJobNamingIt(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixtureWith(t, db, func(c *Config) { c.OutageTolerance = 300 * time.Millisecond })
		job := f.RenderingJob(f.api, 3, 3)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		bucket := f.onSwitchableBucket()
		bucket.downAfterPuts.Store(1)
		f.blender.willRender(fakeRender{saves: []int{1, 2, 3}})

		// The first of three attempts: an outage spends none of them, and
		// one that lasts too long is the job's end, recorded at once.
		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work = %v, want the failure recorded", err)
		}
		after := f.Job(job.ID)
		r := after.FailedReason
		if after.Status != farm.StatusFailed || r == nil || r.Name != "FARM_UNAVAILABLE" || r.Type != farm.FailRender ||
			!strings.Contains(r.Message, "the bucket") || !strings.Contains(r.Message, "300ms") {
			t.Fatalf("job = %s, %+v; want failed FARM_UNAVAILABLE naming the bucket and the tolerance", after.Status, r)
		}
		if fr := f.Frames(job.ID)[1]; fr.Status != farm.FrameCompleted {
			t.Errorf("frame 1, stored before the outage = %s, want kept", fr.Status)
		}
		if got := f.Task(ref.TaskID).Status; got != store.TaskFailed {
			t.Errorf("task = %s, want failed", got)
		}
		f.CheckTaskInvariant()
	})
}

func TestADiskBelowItsReserveIsWaitedForBeforeBlenderStarts(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		const tolerance = 2 * time.Second
		f := newFixtureWith(t, db, func(c *Config) {
			// More than any disk has free.
			c.DiskReserve = 1 << 62
			c.OutageTolerance = tolerance
		})
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])

		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts) }()
		waitFor(t, func() bool { return f.waitingFor(job.ID) == "disk space on node-test" })
		if got := testutil.ToFloat64(f.metrics.Waiting.WithLabelValues("disk")); got != 1 {
			t.Errorf("renderfarm_tasks_waiting{part=disk} = %v, want 1", got)
		}

		if err := <-done; err != nil {
			t.Fatalf("Work = %v, want the failure recorded", err)
		}
		if took := time.Since(start); took < tolerance {
			t.Errorf("the job failed after %v, before the tolerance of %v", took, tolerance)
		}
		if len(f.blender.rendered) != 0 {
			t.Errorf("Blender was started on a full disk: %+v", f.blender.rendered)
		}
		r := f.Job(job.ID).FailedReason
		if r == nil || r.Name != "FARM_UNAVAILABLE" || !strings.Contains(r.Message, "disk space on node-test") {
			t.Errorf("failedReason = %+v, want FARM_UNAVAILABLE naming the node's disk space", r)
		}
	})
}

// errDatabaseDown is what the store wrapper answers while "the database"
// is down: a refused connection, as a driver reports it.
var errDatabaseDown = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// cannotRetryLater stands for a failed chunk that cannot be returned to
// waiting (engine.RetryChunkLater answers an error that is no outage):
// the node releases it for River's retry on its own slot instead.
func cannotRetryLater(context.Context, engine.TaskRef, time.Duration) error {
	return errors.New("the chunk could not be returned to waiting")
}

// TestAReleaseThatFailsIsTriedUntilItIsWritten: a chunk fails, cannot be
// returned to waiting, and the database goes down, so handing it back for
// River's retry fails too. The
// release is tried again until it is written; given up after one try, as
// it was, River's retry could not claim the task and ended quietly, and
// the job stayed rendering for ever.
func TestAReleaseThatFailsIsTriedUntilItIsWritten(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 3, 3)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		var failed atomic.Int32
		f.node.retryChunkLater = cannotRetryLater
		f.node.releaseTask = func(ctx context.Context, id string, generation int) error {
			if failed.Load() < 3 {
				failed.Add(1)
				return errDatabaseDown
			}
			return f.Store.ReleaseTask(ctx, id, generation)
		}
		boom := &blender.RenderError{Frame: 2, Line: "Error: out of memory", ExitCode: 1}
		f.blender.willRender(fakeRender{saves: []int{1}, err: boom})

		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); !errors.As(err, new(*blender.RenderError)) {
			t.Fatalf("Work on attempt 1 = %v; want Blender's error, for River's retry", err)
		}
		if n := failed.Load(); n != 3 {
			t.Errorf("the release failed %d times, want 3 before it was written", n)
		}
		if task := f.Task(ref.TaskID); task.Status != store.TaskQueued || task.Generation != ref.Generation {
			t.Errorf("task = %s at generation %d, want released for River's retry", task.Status, task.Generation)
		}

		// River's retry takes it and renders the rest.
		f.blender.willRender(fakeRender{saves: []int{2, 3}})
		if err := f.renderWork(f.Ctx, ref, 2, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work on attempt 2 = %v", err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
		f.CheckTaskInvariant()
	})
}

// TestATaskLeftHeldByALiveWorkerIsHandedOutOnceItsRiverJobEnds: the worker
// exits while the database is down, so its release is never written. The
// task stays running, held by a worker that is alive (its heartbeat is
// fresh); River's retry cannot claim it and ends; nothing carries the task
// out. The reaper finds it, by its River job ended and its holder no
// longer working on it, and hands it out again.
func TestATaskLeftHeldByALiveWorkerIsHandedOutOnceItsRiverJobEnds(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 3, 3)
		task := f.Tasks(job.ID, store.TaskRender)[0]
		ref := f.Ref(task)
		f.RegisterWorker(f.node.workerID, "node-test", time.Now())
		exiting, exit := context.WithCancel(f.Ctx)
		f.node.retryChunkLater = cannotRetryLater
		f.node.releaseTask = func(context.Context, string, int) error {
			exit() // the process exits, with the database still down
			return errDatabaseDown
		}
		f.blender.willRender(fakeRender{saves: []int{1}, err: &blender.RenderError{Frame: 2, Line: "Error: boom", ExitCode: 1}})
		if err := f.renderWork(exiting, ref, 1, enginetest.RenderAttempts); err == nil {
			t.Fatal("Work on attempt 1 = nil, want Blender's error")
		}
		if got := f.Task(task.ID); got.Status != store.TaskRunning || got.WorkerID != f.node.workerID {
			t.Fatalf("task = %s held by %q, want left running here (the release was never written)", got.Status, got.WorkerID)
		}

		// River's retry finds the task held and ends quietly; River
		// completes its job.
		f.node.releaseTask = f.Store.ReleaseTask
		if err := f.renderWork(f.Ctx, ref, 2, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work on attempt 2 = %v, want nil", err)
		}
		f.EndRiverJob(task.RiverJobID, "completed", nil)

		// While its holder might still be working on it, the task is left.
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		if got := f.Task(task.ID); got.Generation != 1 {
			t.Fatalf("task handed out at generation %d though just claimed", got.Generation)
		}
		// Untouched by its holder for longer than the worker timeout: it
		// is handed out.
		f.Exec(`UPDATE tasks SET updated_at = ? WHERE id = ?`, time.Now().Add(-2*enginetest.WorkerTimeout).UTC(), task.ID)
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		got := f.Task(task.ID)
		if got.Status != store.TaskWaiting || got.Generation != 2 {
			t.Fatalf("task = %s at generation %d; want handed out again, waiting for a worker", got.Status, got.Generation)
		}
		f.DispatchAll(job)
		if got = f.Task(task.ID); got.Status != store.TaskQueued || f.RiverJobByID(got.RiverJobID).State != "available" {
			t.Fatalf("task = %s, River job %d; want given to a worker with a live River job", got.Status, got.RiverJobID)
		}
		if n := testutil.ToFloat64(f.metrics.StrandedTasks.WithLabelValues("completed")); n != 1 {
			t.Errorf("renderfarm_stranded_tasks_total{river_state=completed} = %v, want 1", n)
		}
		f.CheckTaskInvariant()

		f.blender.willRender(fakeRender{saves: []int{2, 3}})
		if err := f.renderWork(f.Ctx, f.Ref(got), 1, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work on the task handed out = %v", err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
	})
}

// TestATaskItsHolderWorksOnStaysWithIt: a River job can end while its
// task is still being worked on (River rescued it after a long render, and
// the duplicate ended quietly). The holder's heartbeat touches the tasks
// it works on, so the reaper leaves them alone.
func TestATaskItsHolderWorksOnStaysWithIt(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		task := f.Tasks(job.ID, store.TaskRender)[0]
		f.RegisterWorker(f.node.workerID, "node-test", time.Now())
		f.claim(f.Ref(task))
		f.EndRiverJob(task.RiverJobID, "completed", nil)
		f.Exec(`UPDATE tasks SET updated_at = ? WHERE id = ?`, time.Now().Add(-2*enginetest.WorkerTimeout).UTC(), task.ID)

		if err := f.node.beat(f.Ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		if got := f.Task(task.ID); got.Status != store.TaskRunning || got.Generation != 1 {
			t.Errorf("task = %s at generation %d, want left with the holder that works on it", got.Status, got.Generation)
		}
	})
}

// TestATaskThatPanicsOnEveryAttemptFailsItsJob: each attempt that panics
// hands the task back, so River's next attempt can take it; once River
// gives up (discarded, the panic recorded), the reaper fails the job with
// the panic as its reason instead of handing the task out again for ever.
func TestATaskThatPanicsOnEveryAttemptFailsItsJob(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		task := f.Tasks(job.ID, store.TaskRender)[0]
		f.RegisterWorker(f.node.workerID, "node-test", time.Now())
		const panicked = "assignment to entry in nil map"
		for attempt := 1; attempt <= enginetest.RenderAttempts; attempt++ {
			f.blender.willRender(fakeRender{panics: panicked})
			func() {
				defer func() {
					if p := recover(); p != panicked {
						t.Fatalf("attempt %d: recovered %v, want the panic", attempt, p)
					}
				}()
				_ = f.renderWork(f.Ctx, f.Ref(task), attempt, enginetest.RenderAttempts)
			}()
			if got := f.Task(task.ID); got.Status != store.TaskQueued {
				t.Fatalf("task after attempt %d panicked = %s, want handed back for the next attempt", attempt, got.Status)
			}
		}
		f.EndRiverJob(task.RiverJobID, "discarded", &rivertype.AttemptError{
			At: time.Now().UTC(), Attempt: enginetest.RenderAttempts, Error: panicked, Trace: "goroutine 7 [running]:\nnode.(*chunk).work(...)",
		})

		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		after := f.Job(job.ID)
		if r := after.FailedReason; after.Status != farm.StatusFailed || r == nil || r.Name != "INTERNAL_ERROR" || !strings.Contains(r.Message, panicked) {
			t.Fatalf("job = %s, %+v; want failed INTERNAL_ERROR with the panic", after.Status, r)
		}
		if got := f.Task(task.ID); got.Status != store.TaskCanceled || got.Generation != 1 {
			t.Errorf("task = %s at generation %d, want canceled, not handed out again", got.Status, got.Generation)
		}
		f.CheckTaskInvariant()
	})
}

// TestAFrameBegunAgainCountsAnotherAttempt: the worker stops while Blender
// is on frame 2; the chunk is handed back and the same worker, started
// again under the same name, takes it. Frame 2 was begun twice: two
// attempts.
func TestAFrameBegunAgainCountsAnotherAttempt(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 3, 3)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		stopping, stop := context.WithCancel(f.Ctx)
		f.blender.willRender(fakeRender{saves: []int{1}, begin: 2, hang: true})
		done := make(chan error, 1)
		go func() { done <- f.renderWork(stopping, ref, 1, enginetest.RenderAttempts) }()
		waitFor(t, func() bool { return f.Frames(job.ID)[2].Status == farm.FrameRendering })
		stop()
		if err := <-done; err != nil {
			t.Fatalf("Work = %v, want the chunk handed back", err)
		}

		f.DispatchAll(job)
		again := f.Ref(f.Task(ref.TaskID))
		f.blender.willRender(fakeRender{saves: []int{2, 3}})
		if err := f.renderWork(f.Ctx, again, 1, enginetest.RenderAttempts); err != nil {
			t.Fatalf("Work after the restart = %v", err)
		}
		want := map[int]int{1: 1, 2: 2, 3: 1}
		for n, fr := range f.Frames(job.ID) {
			if fr.Status != farm.FrameCompleted || fr.Attempts != want[n] {
				t.Errorf("frame %d = %s after %d attempts, want completed after %d", n, fr.Status, fr.Attempts, want[n])
			}
		}
	})
}
