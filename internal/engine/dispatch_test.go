package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/store"
)

// registerNode records a live render node of the fixtures' Blender with
// slots render slots; its run's id is "run-" and name.
func (f *fixture) registerNode(name string, slots int) string {
	f.T.Helper()
	now := time.Now()
	w := store.Worker{ID: "run-" + name, Name: name, StartedAt: now, HeartbeatAt: now, State: store.WorkerIdle,
		BlenderVersions: []string{"4.2.3"}, Slots: slots}
	if err := f.Store.RegisterWorker(f.Ctx, w); err != nil {
		f.T.Fatal(err)
	}
	return w.ID
}

// TestADispatchOfManyChunksQueuesEachWithItsOwnFrames: one dispatch
// gives chunks of three frames to every free slot of two nodes and
// inserts their River jobs together, in one batch. Each chunk's River job
// names that chunk and carries its frames, on its node's queue, and the
// chunk records that job.
func TestADispatchOfManyChunksQueuesEachWithItsOwnFrames(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.WaitingJob(f.api, 30, enginetest.RenderConfig(3)) // 10 chunks, no node yet
		f.registerNode("node-a", 4)
		f.registerNode("node-b", 3)
		n, err := f.Engine.DispatchIdle(f.Ctx)
		if err != nil || n != 7 {
			t.Fatalf("DispatchIdle = %d, %v; want 7 chunks, one per free slot", n, err)
		}
		frames := f.Frames(job.ID)
		given := 0
		for _, task := range f.Tasks(job.ID, store.TaskRender) {
			if task.Status == store.TaskWaiting {
				continue
			}
			given++
			rj := f.RiverJobByID(task.RiverJobID)
			args := f.RenderArgsOf(rj)
			var want []int
			for n, fr := range frames {
				if fr.TaskID == task.ID {
					want = append(want, n)
				}
			}
			slices.Sort(want)
			if args.TaskID != task.ID || args.Generation != task.Generation || !slices.Equal(args.Frames, want) || rj.Queue != engine.RenderQueue(task.WorkerID) {
				t.Errorf("chunk %d (frames %v) on %s: River job %d carries task %s generation %d, frames %v, on %q",
					task.Chunk, want, task.WorkerID, rj.ID, args.TaskID, args.Generation, args.Frames, rj.Queue)
			}
		}
		if given != 7 || len(f.RiverJobs("render_chunk")) != 7 {
			t.Errorf("%d chunks given and %d render_chunk River jobs, want 7 of each", given, len(f.RiverJobs("render_chunk")))
		}
		f.CheckTaskInvariant()
	})
}

// TestReplicasDispatchingAtOnceFillEachSlotOnce: three processes (this
// one and two replicas, each with a store of its own) give waiting chunks
// to the same nodes' free slots at once, several times each. No slot is
// filled twice, no chunk is given twice, and every chunk given has
// exactly one live River job, on its node's queue.
func TestReplicasDispatchingAtOnceFillEachSlotOnce(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.WaitingJob(f.api, 40, enginetest.RenderConfig(1)) // no node yet: every chunk waits
		slots := map[string]int{f.registerNode("node-a", 3): 3, f.registerNode("node-b", 2): 2, f.registerNode("node-c", 1): 1}

		engines := []*engine.Engine{f.Engine, f.Replica(), f.Replica()}
		var wg sync.WaitGroup
		errs := make(chan error, 3*len(engines))
		for _, e := range engines {
			for range 3 {
				wg.Go(func() {
					if _, err := e.DispatchIdle(context.WithoutCancel(f.Ctx)); err != nil {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("DispatchIdle: %v", err)
		}

		given := map[string]int{}
		riverJobs := map[int64]bool{}
		for _, task := range f.Tasks(job.ID, store.TaskRender) {
			if task.Status == store.TaskWaiting {
				continue
			}
			given[task.WorkerID]++
			if riverJobs[task.RiverJobID] {
				t.Errorf("River job %d carries two chunks", task.RiverJobID)
			}
			riverJobs[task.RiverJobID] = true
			if rj := f.RiverJobByID(task.RiverJobID); rj.Queue != engine.RenderQueue(task.WorkerID) || rj.State != "available" {
				t.Errorf("chunk %d's River job is %s on %q, want available on its node's queue", task.Chunk, rj.State, rj.Queue)
			}
		}
		if fmt.Sprint(given) != fmt.Sprint(slots) {
			t.Errorf("chunks given by node = %v, want one per slot: %v", given, slots)
		}
		if n := len(f.RiverJobs("render_chunk")); n != 6 {
			t.Errorf("%d render_chunk River jobs, want one for each of the 6 slots", n)
		}
		f.CheckTaskInvariant()
	})
}

// TestNodesAndReplicasDispatchingAtOnceFillEachSlotOnce: dispatches to
// one node's slots (FillWorker, as a node starts or an attempt ends
// without finishing its chunk) and to every node (DispatchIdle), from
// three processes at once: every slot takes one chunk, and no chunk goes
// to two slots. Then the same with a quota on the workspace: the quota
// holds.
func TestNodesAndReplicasDispatchingAtOnceFillEachSlotOnce(t *testing.T) {
	t.Parallel()
	for _, quota := range []int{0, 4} {
		t.Run(fmt.Sprintf("quota %d", quota), func(t *testing.T) {
			t.Parallel()
			eachFixture(t, func(t *testing.T, f *fixture) {
				job := f.WaitingJob(f.api, 60, enginetest.RenderConfig(1))
				if quota > 0 {
					if err := f.Store.SetWorkspaceShare(f.Ctx, "studio", nil, &quota); err != nil {
						t.Fatal(err)
					}
				}
				slots := map[string]int{}
				for i := range 6 {
					slots[f.registerNode(fmt.Sprintf("node-%d", i), 1+i%3)] = 1 + i%3 // 12 slots
				}
				engines := []*engine.Engine{f.Engine, f.Replica(), f.Replica()}
				var wg sync.WaitGroup
				errs := make(chan error, 100)
				for i, e := range engines {
					wg.Go(func() {
						if _, err := e.DispatchIdle(context.WithoutCancel(f.Ctx)); err != nil {
							errs <- err
						}
					})
					for id := range slots {
						for range 2 {
							wg.Go(func() {
								if _, err := engines[(i+1)%len(engines)].FillWorker(context.WithoutCancel(f.Ctx), id); err != nil {
									errs <- err
								}
							})
						}
					}
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Errorf("dispatch: %v", err)
				}

				given, total := map[string]int{}, 0
				for _, task := range f.Tasks(job.ID, store.TaskRender) {
					if task.Status != store.TaskWaiting {
						given[task.WorkerID]++
						total++
					}
				}
				if quota > 0 {
					if total != quota {
						t.Errorf("%d chunks given; want %d, the workspace's quota", total, quota)
					}
				} else if fmt.Sprint(given) != fmt.Sprint(slots) {
					t.Errorf("chunks given by node = %v, want one per slot: %v", given, slots)
				}
				for id, n := range given {
					if n > slots[id] {
						t.Errorf("node %s was given %d chunks for its %d slots", id, n, slots[id])
					}
				}
				f.CheckTaskInvariant()
			})
		})
	}
}

// TestAWorkerTheRuleRefusesIsPassedOver: the dispatcher asks the engine's
// rule (SetWorkerMayTake) before it gives a worker a chunk; the chunks of
// a job the rule refuses that worker wait, and the worker takes the next
// job's, also when it is another workspace's.
func TestAWorkerTheRuleRefusesIsPassedOver(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		blocked := f.WaitingJob(f.api, 2, enginetest.RenderConfig(1))
		own := f.P
		ws, err := f.Store.EnsureWorkspace(f.Ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		f.P.WorkspaceID = ws.ID
		other := f.WaitingJob(f.api, 2, enginetest.RenderConfig(1))
		f.P = own
		f.Engine.SetWorkerMayTake(func(_ context.Context, _ *store.Tx, w store.Worker, chunk store.Task) (bool, error) {
			return !(w.Name == "node-a" && chunk.JobID == blocked.ID), nil
		})
		node := f.registerNode("node-a", 2)
		if n, err := f.Engine.FillWorker(f.Ctx, node); n != 2 || err != nil {
			t.Fatalf("FillWorker = %d, %v; want its 2 slots filled", n, err)
		}
		for _, task := range f.Tasks(blocked.ID, store.TaskRender) {
			if task.Status != store.TaskWaiting {
				t.Errorf("chunk %d of the job node-a may not take is %s on %q, want waiting", task.Chunk, task.Status, task.WorkerID)
			}
		}
		for _, task := range f.Tasks(other.ID, store.TaskRender) {
			if task.Status != store.TaskQueued || task.WorkerID != node {
				t.Errorf("chunk %d of the other job is %s on %q, want queued on node-a", task.Chunk, task.Status, task.WorkerID)
			}
		}
	})
}

// TestADispatchPassesOverAtMostSixteenChunksForOneSlot: the chunks the
// worker rule refuses are bounded per slot (engine.MaxPassedOver), so
// that a slot never holds the dispatcher's lock for long: with 16 refused
// jobs before an allowed one the slot takes the allowed one; with 17, it
// takes nothing this time.
func TestADispatchPassesOverAtMostSixteenChunksForOneSlot(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		for _, refused := range []int{engine.MaxPassedOver, engine.MaxPassedOver + 1} {
			f := newFixture(t, db)
			blocked := map[string]bool{}
			for range refused {
				blocked[f.WaitingJob(f.api, 1, enginetest.RenderConfig(1)).ID] = true
			}
			allowed := f.WaitingJob(f.api, 1, enginetest.RenderConfig(1))
			f.Engine.SetWorkerMayTake(func(_ context.Context, _ *store.Tx, _ store.Worker, chunk store.Task) (bool, error) {
				return !blocked[chunk.JobID], nil
			})
			node := f.registerNode("node-a", 1)
			n, err := f.Engine.FillWorker(f.Ctx, node)
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if refused > engine.MaxPassedOver {
				want = 0
			}
			if n != want || (want == 1 && f.Tasks(allowed.ID, store.TaskRender)[0].WorkerID != node) {
				t.Errorf("with %d refused jobs first, the slot took %d chunks; want %d", refused, n, want)
			}
		}
	})
}

// TestAFreedSlotTakesOneChunk: the dispatch after a chunk's end gives
// the run one chunk, however many of its slots are free (the others are
// those of chunks whose own dispatch comes next), and none to a run with
// no free slot.
func TestAFreedSlotTakesOneChunk(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.WaitingJob(f.api, 5, enginetest.RenderConfig(1))
		node := f.registerNode("node-a", 3)
		for i, wantGiven := range []bool{true, true, true, false} {
			var given bool
			err := f.Store.InDispatchTx(f.Ctx, func(tx *store.Tx) error {
				var err error
				given, err = f.Engine.DispatchFreedSlot(f.Ctx, tx, node)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if given != wantGiven {
				t.Errorf("dispatch %d: gave a chunk %v, want %v", i+1, given, wantGiven)
			}
			queued := 0
			for _, task := range f.Tasks(job.ID, store.TaskRender) {
				if task.Status == store.TaskQueued && task.WorkerID == node {
					queued++
				}
			}
			if queued != min(i+1, 3) {
				t.Errorf("after dispatch %d the node of 3 slots has %d chunks, want %d", i+1, queued, min(i+1, 3))
			}
		}
		f.CheckTaskInvariant()
	})
}

// TestADispatchGivesEachChunkOnceWhenTheRulePassesOverAJob: a node that
// may not take the first job fills its three slots in one dispatch, then
// a second node fills its own. The chunks a dispatch gave are still
// waiting in the database until it ends, so each slot's read past the
// refused job must leave out those the slots before it took: every chunk
// is given once, and the refused job's go to the other node.
func TestADispatchGivesEachChunkOnceWhenTheRulePassesOverAJob(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		first := f.WaitingJob(f.api, 2, enginetest.RenderConfig(1))
		second := f.WaitingJob(f.api, 4, enginetest.RenderConfig(1))
		f.Engine.SetWorkerMayTake(func(_ context.Context, _ *store.Tx, w store.Worker, chunk store.Task) (bool, error) {
			return !(w.Name == "node-b" && chunk.JobID == first.ID), nil
		})
		nodeB := f.registerNode("node-b", 3)
		if n, err := f.Engine.FillWorker(f.Ctx, nodeB); err != nil || n != 3 {
			t.Fatalf("FillWorker(node-b) = %d, %v; want its 3 slots filled", n, err)
		}
		nodeA := f.registerNode("node-a", 3)
		if n, err := f.Engine.DispatchIdle(f.Ctx); err != nil || n != 3 {
			t.Fatalf("DispatchIdle = %d, %v; want node-a's 3 slots filled", n, err)
		}
		on := map[string]int{}
		for _, job := range []string{first.ID, second.ID} {
			for _, task := range f.Tasks(job, store.TaskRender) {
				if task.Status != store.TaskQueued {
					t.Errorf("chunk %d of job %s is %s, want queued", task.Chunk, job, task.Status)
					continue
				}
				if job == first.ID && task.WorkerID != nodeA {
					t.Errorf("chunk %d of the first job went to %s, want node-a", task.Chunk, task.WorkerID)
				}
				on[task.WorkerID]++
			}
		}
		if on[nodeA] != 3 || on[nodeB] != 3 || len(f.RiverJobs("render_chunk")) != 6 {
			t.Errorf("chunks per node %v and %d River jobs; want 3 on each node, 6 jobs", on, len(f.RiverJobs("render_chunk")))
		}
		f.CheckTaskInvariant()
	})
}

// TestAChunkCanceledWhileADispatchRunsGetsNoRiverJob: a dispatch reads
// the waiting chunks without locking them, so on PostgreSQL a job can be
// canceled, and the cancel committed, between the dispatch's read of its
// chunks and its end. Here the cancel commits while the dispatch asks its
// rule about the job's first chunk, after it read all four chunks ahead.
// The canceled job's chunks are given in the dispatch but get no River
// job: only the other job's two chunks are queued, and the dispatch
// counts those.
func TestAChunkCanceledWhileADispatchRunsGetsNoRiverJob(t *testing.T) {
	t.Parallel()
	f := newFixture(t, enginetest.Database{Dialect: store.DialectPostgres})
	canceled := f.WaitingJob(f.api, 2, enginetest.RenderConfig(1))
	kept := f.WaitingJob(f.api, 2, enginetest.RenderConfig(1))
	var once sync.Once
	cancelDone := make(chan error, 1)
	f.Engine.SetWorkerMayTake(func(context.Context, *store.Tx, store.Worker, store.Task) (bool, error) {
		once.Do(func() {
			// The cancel, through the API, in a transaction of its own;
			// its dispatch afterwards waits for this one's lock.
			go func() {
				_, err := f.api.Cancel(f.Ctx, f.P, canceled.ID)
				cancelDone <- err
			}()
			deadline := time.Now().Add(10 * time.Second)
			for f.Count("tasks", "job_id = ? AND status = ?", canceled.ID, store.TaskCanceled) < 2 {
				if time.Now().After(deadline) {
					t.Error("the cancel did not commit within 10 s")
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
		return true, nil
	})
	node := f.registerNode("node-a", 4)
	n, err := f.Engine.FillWorker(f.Ctx, node)
	if err != nil || n != 2 {
		t.Errorf("FillWorker = %d, %v; want the 2 chunks of the job not canceled queued", n, err)
	}
	if err := <-cancelDone; err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	for _, task := range f.Tasks(canceled.ID, store.TaskRender) {
		if task.Status != store.TaskCanceled || task.RiverJobID != 0 || task.WorkerID != "" {
			t.Errorf("chunk %d of the canceled job = %s on %q with River job %d; want canceled, on no worker, with none",
				task.Chunk, task.Status, task.WorkerID, task.RiverJobID)
		}
	}
	for _, task := range f.Tasks(kept.ID, store.TaskRender) {
		if task.Status != store.TaskQueued || task.WorkerID != node || task.RiverJobID == 0 {
			t.Errorf("chunk %d of the other job = %s on %q with River job %d; want queued on node-a with one",
				task.Chunk, task.Status, task.WorkerID, task.RiverJobID)
		}
	}
	if jobs := f.RiverJobs("render_chunk"); len(jobs) != 2 {
		t.Errorf("%d render_chunk River jobs, want 2: none for the canceled job's chunks", len(jobs))
	}
	f.CheckTaskInvariant()
}
