package node

import (
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// lastBeat sets when a worker run last beat its heart to ago before now.
func (f *fixture) lastBeat(runID string, ago time.Duration) {
	f.T.Helper()
	f.Exec(`UPDATE workers SET heartbeat_at = ? WHERE id = ?`, time.Now().Add(-ago).UTC(), runID)
}

// queuedSince makes a task look queued on its queue since ago before now.
func (f *fixture) queuedSince(taskID string, ago time.Duration) {
	f.T.Helper()
	f.Exec(`UPDATE tasks SET updated_at = ? WHERE id = ?`, time.Now().Add(-ago).UTC(), taskID)
}

// validationRoutedTo45 is a job of a 4.5 file whose validation this node
// (Blender 4.2.3) routed to node-45's Blender 4.5.0, queued there since
// two worker timeouts.
func (f *fixture) validationRoutedTo45() (*farm.Job, store.Task) {
	f.T.Helper()
	f.liveWorker("node-45", "4.5.0")
	job := f.validatingJobOf("BLENDER-v405")
	if err := f.validateWork(f.Ctx, job.ID, 1, 3); err != nil {
		f.T.Fatal(err)
	}
	task := f.Tasks(job.ID, store.TaskValidate)[0]
	if task.BlenderVersion != "4.5.0" || task.Generation != 2 {
		f.T.Fatalf("validation = %+v, want routed to 4.5.0", task)
	}
	if sf := f.Job(job.ID).SceneFile; sf == nil || sf.Version != "4.5" {
		f.T.Fatalf("sceneFile = %+v, want the header's 4.5 recorded as the validation was routed", sf)
	}
	f.queuedSince(task.ID, 2*enginetest.WorkerTimeout)
	return job, f.Task(task.ID)
}

// TestAValidationWhoseBlenderLeftGoesToAnotherThatOpensTheFile: the
// 4.5.0 nodes a validation was routed to are gone for longer than the
// worker timeout; a node of 4.6.1 is live, which opens a 4.5 file: the
// validation goes to it, under a new generation, its River job on 4.6.1's
// queue and the old one canceled. Until then, and while a node of 4.5.0
// comes back, it is left where it is.
func TestAValidationWhoseBlenderLeftGoesToAnotherThatOpensTheFile(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job, task := f.validationRoutedTo45()
		f.liveWorker("node-46", "3.4.1", "4.6.1")

		// Its node died a moment ago: it still counts, for a worker
		// timeout, and progress says what the validation waits for.
		f.lastBeat("run-of-node-45", enginetest.WorkerTimeout+10*time.Second)
		if err := f.hk.RouteFromGoneBlenders(f.Ctx); err != nil {
			t.Fatal(err)
		}
		if got := f.Task(task.ID); got.Generation != task.Generation || got.BlenderVersion != "4.5.0" {
			t.Fatalf("a moment after 4.5.0's node died: task = %+v, want it left waiting for 4.5.0", got)
		}
		p, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Blender 4.5.0 to validate the file", "the farm offers 3.4.1, 4.6.1", "another Blender of the farm that opens the file", "BLENDER_UNAVAILABLE"} {
			if !strings.Contains(p.WaitingFor, want) {
				t.Errorf("waitingFor = %q, want it to say %q", p.WaitingFor, want)
			}
		}

		// Gone for longer than the worker timeout.
		f.lastBeat("run-of-node-45", 2*enginetest.WorkerTimeout+time.Second)
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		got := f.Task(task.ID)
		if got.Status != store.TaskQueued || got.Generation != task.Generation+1 || got.BlenderVersion != "4.6.1" {
			t.Fatalf("task = %+v, want queued for 4.6.1 at generation %d", got, task.Generation+1)
		}
		if rj := f.RiverJobByID(got.RiverJobID); rj.Queue != "control_4_6_1" || rj.State != "available" {
			t.Errorf("River job in %s, %s; want available in control_4_6_1", rj.Queue, rj.State)
		}
		if old := f.RiverJobByID(task.RiverJobID); old.State != "cancelled" {
			t.Errorf("the River job on 4.5.0's queue is %s, want cancelled", old.State)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusValidating {
			t.Errorf("job = %s, want still validating", st)
		}
		f.CheckTaskInvariant()
	})
}

// TestAValidationWaitsForItsBlenderWhileANodeOfItComesBack: the run of
// node-45 that the validation was routed to died long ago, but a new run
// of it (Blender 4.5.0 again) is live: the validation stays on 4.5.0's
// queue, which that node works. With no live node at all, it waits too.
func TestAValidationWaitsForItsBlenderWhileANodeOfItComesBack(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		_, task := f.validationRoutedTo45()
		f.lastBeat("run-of-node-45", time.Hour)
		if err := f.hk.RouteFromGoneBlenders(f.Ctx); err != nil {
			t.Fatal(err)
		}
		if got := f.Task(task.ID); got.Generation != task.Generation || got.Status != store.TaskQueued {
			t.Fatalf("with no live node at all: task = %+v, want it left waiting", got)
		}
		f.liveWorker("node-45-again", "4.5.0")
		f.liveWorker("node-46", "4.6.1")
		if err := f.hk.RouteFromGoneBlenders(f.Ctx); err != nil {
			t.Fatal(err)
		}
		if got := f.Task(task.ID); got.Generation != task.Generation || got.BlenderVersion != "4.5.0" {
			t.Fatalf("with a 4.5.0 node back: task = %+v, want it left on 4.5.0's queue", got)
		}
		f.CheckTaskInvariant()
	})
}

// TestAValidationWhoseBlenderLeftFailsWhenNoneOpensTheFile: 4.5.0's nodes
// are gone, and the farm runs 4.2.3 alone, which cannot open a 4.5 file:
// the job fails with BLENDER_UNAVAILABLE, saying which Blender it needs,
// and its validation is canceled with its River job.
func TestAValidationWhoseBlenderLeftFailsWhenNoneOpensTheFile(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job, task := f.validationRoutedTo45()
		f.liveWorker("node-42", "4.2.3")
		f.lastBeat("run-of-node-45", time.Hour)
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed || after.FailedReason == nil || after.FailedReason.Name != farm.ReasonBlenderUnavailable ||
			after.FailedReason.Type != farm.FailValidation {
			t.Fatalf("job = %s, %+v; want failed BLENDER_UNAVAILABLE at validation", after.Status, after.FailedReason)
		}
		for _, want := range []string{"saved with Blender 4.5", "needs Blender 4.5 or newer", "Blender 4.5.0", "the farm runs 4.2.3", "--blender"} {
			if !strings.Contains(after.FailedReason.Message, want) {
				t.Errorf("failedReason %q does not say %q", after.FailedReason.Message, want)
			}
		}
		if got := f.Task(task.ID); got.Status != store.TaskCanceled {
			t.Errorf("validation = %s, want canceled", got.Status)
		}
		if rj := f.RiverJobByID(task.RiverJobID); rj.State != "cancelled" {
			t.Errorf("its River job = %s, want cancelled", rj.State)
		}
		f.CheckTaskInvariant()
	})
}

// mergeWaitingForGone423 is a split job of one frame whose parts were
// rendered by Blender 4.2.3 and whose merge waits on 4.2.3's queue, every
// node of 4.2.3 gone for an hour.
func (f *fixture) mergeWaitingForGone423() (*farm.Job, store.Task) {
	f.T.Helper()
	job := f.splitJobRendered(2)
	merge := f.Tasks(job.ID, store.TaskMerge)[0]
	if merge.BlenderVersion != fakeBlenderVersion {
		f.T.Fatalf("merge = %+v, want queued for the job's %s", merge, fakeBlenderVersion)
	}
	f.Exec(`UPDATE workers SET heartbeat_at = ?`, time.Now().Add(-time.Hour).UTC())
	f.queuedSince(merge.ID, 2*enginetest.WorkerTimeout)
	return job, f.Task(merge.ID)
}

// TestAMergeWhoseBlenderLeftIsMergedByAnotherPatchOfItsRelease: the job
// renders with 4.2.3, whose nodes are gone; a node of 4.2.5 and one of
// 4.3.0 are live: the merge goes to 4.2.5 (its release, not 4.3), and a
// node runs it with its 4.2.5.
func TestAMergeWhoseBlenderLeftIsMergedByAnotherPatchOfItsRelease(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixtureOf(t, db, fakeBlenderVersion, "4.2.5")
		job, merge := f.mergeWaitingForGone423()
		f.liveWorker("node-425", "4.2.5")
		f.liveWorker("node-430", "4.3.0")
		p, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.WaitingFor, "Blender 4.2.3") || !strings.Contains(p.WaitingFor, "merges waiting for it go") {
			t.Errorf("waitingFor = %q, want it to name 4.2.3 and what becomes of the merge", p.WaitingFor)
		}
		if err := f.hk.RouteFromGoneBlenders(f.Ctx); err != nil {
			t.Fatal(err)
		}
		got := f.Task(merge.ID)
		if got.Status != store.TaskQueued || got.BlenderVersion != "4.2.5" || got.Generation != merge.Generation+1 {
			t.Fatalf("merge = %+v, want queued for 4.2.5 under a new generation", got)
		}
		queue, _ := engine.BlenderQueue(engine.QueueControl, "4.2.5")
		if rj := f.RiverJobByID(got.RiverJobID); rj.Queue != queue {
			t.Errorf("merge's River job in %s, want %s", rj.Queue, queue)
		}
		if err := f.mergeWork(f.Ctx, got, 1, 3); err != nil {
			t.Fatalf("merge: %v", err)
		}
		if len(f.blenders["4.2.5"].merged) != 1 || len(f.blenders[fakeBlenderVersion].merged) != 0 {
			t.Errorf("merges by 4.2.5: %d, by 4.2.3: %d; want the one by 4.2.5", len(f.blenders["4.2.5"].merged), len(f.blenders[fakeBlenderVersion].merged))
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
		f.CheckTaskInvariant()
	})
}

// TestAMergeWhoseBlenderLeftFailsItsJobWithoutAPatchOfItsRelease: only
// 4.3.0 is live, another release: the job fails with BLENDER_UNAVAILABLE
// naming the frame and the Blender 4.2 it needs. So does a job that
// pinned 4.2.3 exactly, with 4.2.5 live.
func TestAMergeWhoseBlenderLeftFailsItsJobWithoutAPatchOfItsRelease(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job, merge := f.mergeWaitingForGone423()
		f.liveWorker("node-430", "4.3.0")
		if err := f.hk.RouteFromGoneBlenders(f.Ctx); err != nil {
			t.Fatal(err)
		}
		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed || after.FailedReason == nil || after.FailedReason.Name != farm.ReasonBlenderUnavailable ||
			after.FailedReason.Type != farm.FailRender {
			t.Fatalf("job = %s, %+v; want failed BLENDER_UNAVAILABLE at render", after.Status, after.FailedReason)
		}
		for _, want := range []string{"frame 1", "rendered with Blender 4.2.3", "needs Blender 4.2,", "the farm runs 4.3.0", "/retry"} {
			if !strings.Contains(after.FailedReason.Message, want) {
				t.Errorf("failedReason %q does not say %q", after.FailedReason.Message, want)
			}
		}
		if got := f.Task(merge.ID); got.Status != store.TaskCanceled {
			t.Errorf("merge = %s, want canceled", got.Status)
		}
		f.CheckTaskInvariant()
	})
	eachFixture(t, func(t *testing.T, f *fixture) {
		job, _ := f.mergeWaitingForGone423()
		pinned := f.Job(job.ID)
		pin := fakeBlenderVersion
		pinned.RequestedConfig.BlenderVersion = &pin
		if err := f.Store.UpdateJob(f.Ctx, pinned); err != nil {
			t.Fatal(err)
		}
		f.liveWorker("node-425", "4.2.5")
		if err := f.hk.RouteFromGoneBlenders(f.Ctx); err != nil {
			t.Fatal(err)
		}
		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed || after.FailedReason == nil || !strings.Contains(after.FailedReason.Message, "needs Blender 4.2.3,") {
			t.Fatalf("pinned to 4.2.3: job = %s, %+v; want failed, needing 4.2.3", after.Status, after.FailedReason)
		}
	})
}

// TestAJobIsNotFailedForABlenderThatCameBackWhileTheReaperWaitedForItsLock:
// the reaper read that 4.2.3's nodes were gone and that no patch of 4.2 is
// live (4.3.0 alone), so the merge's job is to fail; but a node of 4.2.3
// starts while the reaper waits for the job's row (a request holds it).
// Once it has the row, the Blender is back: the job does not fail, and
// the merge waits on 4.2.3's queue for that node.
func TestAJobIsNotFailedForABlenderThatCameBackWhileTheReaperWaitedForItsLock(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job, merge := f.mergeWaitingForGone423()
		f.liveWorker("node-430", "4.3.0")

		locked, back := make(chan struct{}), make(chan struct{})
		held := make(chan error, 1)
		go func() {
			held <- f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
				if _, err := tx.LockJob(f.Ctx, "", job.ID); err != nil {
					return err
				}
				close(locked)
				<-back
				now := time.Now()
				return tx.RegisterWorker(f.Ctx, store.Worker{ID: "run-of-node-423-again", Name: "node-423", StartedAt: now, HeartbeatAt: now,
					State: store.WorkerIdle, BlenderVersions: []string{fakeBlenderVersion}})
			})
		}()
		<-locked
		reaped := make(chan error, 1)
		go func() { reaped <- f.hk.RouteFromGoneBlenders(f.Ctx) }()
		if f.Store.Dialect() == store.DialectPostgres {
			f.waitForLockWaits(1)
		} else {
			// The reaper's reads are the read pool's; its transaction
			// waits for the writer.
			time.Sleep(time.Second)
		}
		close(back)
		if err := <-held; err != nil {
			t.Fatal(err)
		}
		if err := <-reaped; err != nil {
			t.Fatal(err)
		}
		if after := f.Job(job.ID); after.Status != farm.StatusRendering {
			t.Fatalf("job = %s, %+v; want still rendering, its Blender back", after.Status, after.FailedReason)
		}
		if got := f.Task(merge.ID); got.Status != store.TaskQueued || got.Generation != merge.Generation || got.BlenderVersion != fakeBlenderVersion {
			t.Errorf("merge = %+v, want left queued for %s", got, fakeBlenderVersion)
		}
		f.CheckTaskInvariant()
	})
}
