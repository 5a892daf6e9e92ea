package node

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestAFailedChunkFreesItsSlotDuringItsRetryWait: on a node of one slot,
// the first of two one-frame chunks fails. The slot does not sleep
// through the chunk's wait for its retry: the second chunk takes it at
// once and renders. Once the wait is over, the failed chunk is dispatched
// again on its own (the node's dispatch when the wait ends), with a River
// job that counts the failed attempt against the job's retry limit, and
// completes; each frame is stored once.
func TestAFailedChunkFreesItsSlotDuringItsRetryWait(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := sharingFixture(t, db, 1)
		job := f.renderIn(f.P, 2, 0)
		onNode := f.onNode()
		if len(onNode) != 1 || onNode[0].Chunk != 0 {
			t.Fatalf("on the node after the request: %+v; want chunk 0", onNode)
		}
		failing := onNode[0]

		f.blender.willRender(fakeRender{err: &blender.RenderError{Frame: 1, Line: "Error: out of memory", ExitCode: 1}})
		started := time.Now()
		err := f.renderWork(f.Ctx, f.Ref(failing), 1, enginetest.RenderAttempts)
		if !errors.As(err, new(*blender.RenderError)) || !errors.As(err, new(*river.JobCancelError)) {
			t.Fatalf("Work on the failed attempt = %v; want Blender's error, and River not to retry this River job", err)
		}
		waiting := f.Task(failing.ID)
		if waiting.Status != store.TaskWaiting || waiting.WorkerID != "" || waiting.FailedAttempts != 1 || waiting.Generation != failing.Generation+1 {
			t.Fatalf("the failed chunk = %s on %q, %d failed attempts, generation %d; want waiting for its retry, one attempt failed, generation %d",
				waiting.Status, waiting.WorkerID, waiting.FailedAttempts, waiting.Generation, failing.Generation+1)
		}

		// During the wait, the freed slot holds the other chunk, not the
		// failed one.
		onNode = f.onNode()
		if len(onNode) != 1 || onNode[0].Chunk != 1 {
			t.Fatalf("on the node after the failure: %+v; want chunk 1, in the freed slot", onNode)
		}
		// The job does not wait while a chunk of it renders; once none
		// does, its progress says it waits for the failed chunk's retry.
		if p, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{}); err != nil || strings.Contains(p.WaitingFor, "next attempt") {
			t.Errorf("waitingFor while chunk 1 renders = %q, %v; want no retry named", p.WaitingFor, err)
		}
		f.finish(onNode[0])
		p, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if elapsed := time.Since(started); elapsed >= chunkRetry(1) {
			t.Fatalf("the other chunk took %s, no less than the retry wait of %s: the test proves nothing", elapsed, chunkRetry(1))
		}
		if got := f.Task(failing.ID); got.Status != store.TaskWaiting {
			t.Fatalf("the failed chunk = %s before its wait of %s is over; want waiting", got.Status, chunkRetry(1))
		}
		const retrying = "the next attempt of a chunk whose render failed (failed attempts so far: 1): it is given a render slot again from "
		from, err := time.Parse(time.RFC3339, strings.TrimPrefix(p.WaitingFor, retrying))
		if !strings.HasPrefix(p.WaitingFor, retrying) || err != nil ||
			from.Before(started.Add(-time.Second)) || from.After(started.Add(chunkRetry(1)+time.Second)) {
			t.Errorf("waitingFor during the retry wait = %q; want %q and the time the wait of %s ends", p.WaitingFor, retrying, chunkRetry(1))
		}

		// Once the wait is over, it is dispatched again without anything
		// else happening on the farm.
		var retried store.Task
		waitFor(t, func() bool {
			retried = f.Task(failing.ID)
			return retried.Status == store.TaskQueued
		})
		if retried.WorkerID != f.node.workerID {
			t.Errorf("the retry went to %q, want this node's free slot %q", retried.WorkerID, f.node.workerID)
		}
		rj := f.RiverJobByID(retried.RiverJobID)
		var args engine.RenderArgs
		if err := json.Unmarshal(rj.Args, &args); err != nil {
			t.Fatal(err)
		}
		if args.FailedAttempts != 1 || rj.MaxAttempts != enginetest.RenderAttempts-1 || args.Generation != retried.Generation {
			t.Errorf("the retry's River job carries %d failed attempts and has %d attempts at generation %d; want 1, %d and %d",
				args.FailedAttempts, rj.MaxAttempts, args.Generation, enginetest.RenderAttempts-1, retried.Generation)
		}

		f.blender.willRender(fakeRender{saves: []int{1}})
		w := f.node.renderWorker()
		if err := w.Work(f.Ctx, attemptOf(args, 1, rj.MaxAttempts)); err != nil {
			t.Fatalf("Work on the retry = %v", err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
		for n, fr := range f.Frames(job.ID) {
			if fr.Status != farm.FrameCompleted || f.Content(fr.ObjectKey) == "" {
				t.Errorf("frame %d = %+v; want completed, its image stored", n, fr)
			}
		}
		if n := f.Count("frame_outputs", "job_id = ?", job.ID); n != 2 {
			t.Errorf("%d frame outputs for 2 frames, want each frame stored once", n)
		}
		f.CheckTaskInvariant()
	})
}
