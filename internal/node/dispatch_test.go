package node

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// These tests run the dispatcher as a render node meets it: the node
// registers its slots and takes waiting chunks as it starts; a render
// request gives chunks to its free slots; each chunk it renders (with the
// fake Blender) ends, and the freed slot is given the next chunk the
// farm's rule picks. They check which chunk that is.

// sharingFixture is a farm whose node, started, has slots render slots.
func sharingFixture(t *testing.T, db enginetest.Database, slots int) *fixture {
	t.Helper()
	f := newFixtureWith(t, db, func(c *Config) { c.Slots = slots })
	if err := f.node.Start(f.Ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.node.Stop)
	return f
}

// workspace is the principal of a key of another workspace, name.
func (f *fixture) workspace(name string) farm.Principal {
	f.T.Helper()
	ws, err := f.Store.EnsureWorkspace(f.Ctx, name)
	if err != nil {
		f.T.Fatal(err)
	}
	return farm.Principal{WorkspaceID: ws.ID, KeyID: "key-of-" + name}
}

// renderIn requests the render of a job of frames 1 to frames, one frame
// a chunk, in the workspace of p, at priority (0: the default).
func (f *fixture) renderIn(p farm.Principal, frames, priority int) *farm.Job {
	f.T.Helper()
	own := f.P
	f.P = p
	defer func() { f.P = own }()
	cfg := enginetest.RenderConfig(1)
	if priority != 0 {
		cfg.Priority = &priority
	}
	return f.WaitingJob(f.api, frames, cfg)
}

// onNode lists the chunks given to this node and not ended, oldest
// dispatch first.
func (f *fixture) onNode() []store.Task {
	f.T.Helper()
	var out []store.Task
	rows, err := f.Store.DB().QueryContext(f.Ctx, f.rebindQuery(`SELECT id FROM tasks WHERE worker_id = ? AND kind = 'render' AND status IN ('queued', 'running') ORDER BY updated_at, id`), f.node.workerID)
	if err != nil {
		f.T.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			f.T.Fatal(err)
		}
		out = append(out, f.Task(id))
	}
	return out
}

// rebindQuery writes a query's placeholders as the farm's database wants
// them.
func (f *fixture) rebindQuery(q string) string {
	if f.Store.Dialect() != store.DialectPostgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + string(rune('0'+n)))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// finish renders chunk task on this node, as River runs it, every frame
// saved: the chunk ends, and its slot takes the next chunk.
func (f *fixture) finish(task store.Task) {
	f.T.Helper()
	var frames []int
	for n, fr := range f.Frames(task.JobID) {
		if fr.TaskID == task.ID {
			frames = append(frames, n)
		}
	}
	slices.Sort(frames)
	f.blender.willRender(fakeRender{saves: frames})
	if err := f.renderWork(f.Ctx, f.Ref(task), 1, enginetest.RenderAttempts); err != nil {
		f.T.Fatalf("chunk %d of job %s: %v", task.Chunk, task.JobID, err)
	}
	if got := f.Task(task.ID); got.Status != store.TaskDone {
		f.T.Fatalf("chunk %d of job %s = %s after rendering, want done", task.Chunk, task.JobID, got.Status)
	}
}

// runningBy counts the chunks on this node by workspace.
func (f *fixture) runningBy() map[string]int {
	f.T.Helper()
	n := map[string]int{}
	for _, t := range f.onNode() {
		n[t.WorkspaceID]++
	}
	return n
}

// TestASmallJobStartsAsSoonAsOneWorkerFrees: workspace A queues 60
// one-frame chunks on a farm of one slot, then workspace B a job of 3.
// The slot freed by A's running chunk goes to B, before A's next two.
func TestASmallJobStartsAsSoonAsOneWorkerFrees(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := sharingFixture(t, db, 1)
		a, b := f.P, f.workspace("other")
		bigJob := f.renderIn(a, 60, 0)
		running := f.onNode()
		if len(running) != 1 || running[0].JobID != bigJob.ID {
			t.Fatalf("on the node after A's request: %+v; want A's first chunk, given in the request", running)
		}
		smallJob := f.renderIn(b, 3, 0)

		var order []string // the job of each chunk the slot took, in turn
		for range 6 {
			running := f.onNode()
			if len(running) != 1 {
				t.Fatalf("%d chunks on a node of one slot", len(running))
			}
			f.finish(running[0])
			next := f.onNode()
			if len(next) != 1 {
				t.Fatalf("the freed slot took %d chunks, want 1", len(next))
			}
			order = append(order, map[string]string{bigJob.ID: "A", smallJob.ID: "B"}[next[0].JobID])
		}
		// A and B have one running at most each: the tie goes to the one
		// that waited longest, so they take turns, B first.
		if want := []string{"B", "A", "B", "A", "B", "A"}; !slices.Equal(order, want) {
			t.Errorf("the slot took chunks of %v, want %v", order, want)
		}
		f.CheckTaskInvariant()
	})
}

// TestWeightsShareTheSlotsInTheirProportion: workspaces of weights 3 and
// 1 with more chunks than the node's 4 slots: counted after every chunk
// that ends, their running chunks are 3 and 1, within one chunk.
func TestWeightsShareTheSlotsInTheirProportion(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := sharingFixture(t, db, 4)
		a, b := f.P, f.workspace("other")
		three := 3
		if err := f.Store.SetWorkspaceShare(f.Ctx, "studio", &three, nil); err != nil {
			t.Fatal(err)
		}
		f.renderIn(a, 30, 0) // takes all 4 slots: B has nothing yet
		f.renderIn(b, 30, 0)
		for i := range 24 {
			running := f.onNode()
			if len(running) != 4 {
				t.Fatalf("%d chunks on a node of 4 slots after %d ended", len(running), i)
			}
			f.finish(running[0])
			n := f.runningBy()
			if n[a.WorkspaceID] < 2 || n[a.WorkspaceID] > 4 || n[b.WorkspaceID] > 2 || n[a.WorkspaceID]+n[b.WorkspaceID] != 4 {
				t.Fatalf("after %d chunks ended, A runs %d and B %d; want 3 and 1, within one", i+1, n[a.WorkspaceID], n[b.WorkspaceID])
			}
			if i > 0 && (n[a.WorkspaceID] != 3 || n[b.WorkspaceID] != 1) {
				t.Errorf("after %d chunks ended, A runs %d and B %d; want 3 and 1", i+1, n[a.WorkspaceID], n[b.WorkspaceID])
			}
		}
	})
}

// TestAQuotaOfOneRunsOneChunkAtATime: workspace B may run one chunk; it
// asks first for more chunks than the node has slots, A after it. B never
// runs more than one, A takes the other slots, and B's job says what it
// waits for.
func TestAQuotaOfOneRunsOneChunkAtATime(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := sharingFixture(t, db, 3)
		a, b := f.P, f.workspace("other")
		one := 1
		if err := f.Store.SetWorkspaceShare(f.Ctx, "other", nil, &one); err != nil {
			t.Fatal(err)
		}
		limited := f.renderIn(b, 8, 0)
		f.renderIn(a, 30, 0)
		p, err := f.api.Progress(f.Ctx, b, limited.ID, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.WaitingFor, "its workspace's limit of 1 running chunks") {
			t.Errorf("waitingFor = %q, want the workspace's limit", p.WaitingFor)
		}
		for i := range 14 {
			n := f.runningBy()
			if n[b.WorkspaceID] > 1 {
				t.Fatalf("after %d chunks ended, B runs %d, over its quota of 1", i, n[b.WorkspaceID])
			}
			if n[b.WorkspaceID] != 1 || n[a.WorkspaceID] != 2 {
				t.Errorf("after %d chunks ended, A runs %d and B %d; want 2 and 1", i, n[a.WorkspaceID], n[b.WorkspaceID])
			}
			f.finish(f.onNode()[0])
		}
	})
}

// TestAHigherPriorityJobRendersFirst: in one workspace, on a busy slot, a
// job of priority 90 asked for after one of 50 starts before it; raising
// a waiting job's priority puts it before one asked for earlier.
func TestAHigherPriorityJobRendersFirst(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := sharingFixture(t, db, 1)
		busy := f.renderIn(f.P, 1, 0) // holds the one slot
		normal := f.renderIn(f.P, 2, 50)
		urgent := f.renderIn(f.P, 2, 90)
		if urgent.Priority != 90 || normal.Priority != 50 {
			t.Fatalf("priorities = %d and %d, want 90 and 50", urgent.Priority, normal.Priority)
		}
		later := f.renderIn(f.P, 1, 50)
		var order []string
		names := map[string]string{busy.ID: "busy", normal.ID: "normal", urgent.ID: "urgent", later.ID: "later"}
		for i := range 5 {
			running := f.onNode()
			order = append(order, names[running[0].JobID])
			if i == 2 {
				// Both 50s wait; the later one is raised over the other.
				if _, err := f.api.SetPriority(f.Ctx, f.P, later.ID, 60); err != nil {
					t.Fatal(err)
				}
				if got := f.Job(later.ID).Priority; got != 60 {
					t.Errorf("job's priority = %d after the change, want 60", got)
				}
			}
			f.finish(running[0])
		}
		if want := []string{"busy", "urgent", "urgent", "later", "normal"}; !slices.Equal(order, want) {
			t.Errorf("the slot rendered %v, want %v", order, want)
		}
	})
}

// TestAPriorityOutOfRangeChangesNothing: 400 naming the field.
func TestAPriorityOutOfRangeChangesNothing(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.ValidatedJob(f.api, 2)
		for _, p := range []int{-1, 101} {
			_, err := f.api.SetPriority(f.Ctx, f.P, job.ID, p)
			if fe, ok := err.(*farm.Error); !ok || fe.Kind != farm.KindInvalid || fe.Field != "priority" {
				t.Errorf("SetPriority(%d) = %v, want a 400 naming priority", p, err)
			}
		}
		if got := f.Job(job.ID).Priority; got != farm.DefaultPriority {
			t.Errorf("priority = %d, want the default %d unchanged", got, farm.DefaultPriority)
		}
	})
}

// otherNode records another live render node of the farm's Blender, idle,
// with slots render slots and what offer says besides (tags, GPUs,
// memory); its run's id is "run-of-" and name.
func (f *fixture) otherNode(name string, slots int, offer store.Worker) string {
	f.T.Helper()
	now := time.Now()
	offer.ID, offer.Name, offer.StartedAt, offer.HeartbeatAt, offer.State = "run-of-"+name, name, now, now, store.WorkerIdle
	offer.BlenderVersions, offer.Slots = []string{fakeBlenderVersion}, slots
	if err := f.Store.RegisterWorker(f.Ctx, offer); err != nil {
		f.T.Fatal(err)
	}
	return offer.ID
}

// chunksOn counts job's chunks given to the worker run workerID.
func (f *fixture) chunksOn(jobID, workerID string) int {
	n := 0
	for _, t := range f.Tasks(jobID, store.TaskRender) {
		if t.WorkerID == workerID {
			n++
		}
	}
	return n
}

// TestAGPUJobGoesToTheNodeWithThatGPU: on a farm of a CPU node with free
// slots and this node, started with --gpu CUDA:1, a CUDA render goes to
// this node only, and its Blender is told to render on one CUDA device;
// a CPU render takes any node's free slot.
func TestAGPUJobGoesToTheNodeWithThatGPU(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixtureWith(t, db, func(c *Config) { c.Slots, c.GPUs = 1, []farm.GPU{{Type: "CUDA", Count: 1}} })
		cpu := f.otherNode("cpu-node", 4, store.Worker{MemoryBytes: 64 << 30})
		if err := f.node.Start(f.Ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.node.Stop)

		cfg := enginetest.RenderConfig(1)
		cuda := "cuda"
		cfg.ComputeDeviceType = &cuda
		job := f.WaitingJob(f.api, 3, cfg)
		if job.FinalConfig.ComputeDeviceType != "CUDA" || job.FinalConfig.GPUCount != 1 {
			t.Fatalf("finalConfig = %s × %d, want CUDA × 1", job.FinalConfig.ComputeDeviceType, job.FinalConfig.GPUCount)
		}
		if on := f.chunksOn(job.ID, cpu); on != 0 {
			t.Errorf("%d chunks of a CUDA job on the CPU node, want none", on)
		}
		for range 3 {
			running := f.onNode()
			if len(running) != 1 || running[0].JobID != job.ID {
				t.Fatalf("on the GPU node: %+v; want one chunk of the CUDA job", running)
			}
			f.finish(running[0])
		}
		if len(f.blender.rendered) != 3 {
			t.Fatalf("the GPU node's Blender rendered %d chunks, want 3", len(f.blender.rendered))
		}
		for _, r := range f.blender.rendered {
			if s := r.Settings; s.ComputeDeviceType != "CUDA" || s.GPUDevices != 1 {
				t.Errorf("Blender told to render on %q × %d, want CUDA × 1", s.ComputeDeviceType, s.GPUDevices)
			}
		}

		// A render on the CPU may use any node: the idle slots of both
		// take a chunk each.
		plain := f.WaitingJob(f.api, 2, enginetest.RenderConfig(1))
		if onCPU, onGPU := f.chunksOn(plain.ID, cpu), f.chunksOn(plain.ID, f.node.workerID); onCPU != 1 || onGPU != 1 {
			t.Errorf("chunks of a CPU job on the CPU node %d, on the GPU node %d; want one on each", onCPU, onGPU)
		}
	})
}

// TestRequiredTagsGoOnlyToATaggedNode: a job that requires the tag "gpu"
// waits for this node, tagged, though an untagged node has free slots;
// tags no registered node has, or more memory than any has, are refused
// naming the field, and change nothing.
func TestRequiredTagsGoOnlyToATaggedNode(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixtureWith(t, db, func(c *Config) { c.Slots, c.Tags = 1, []string{"gpu"} })
		plain := f.otherNode("plain-node", 4, store.Worker{MemoryBytes: 8 << 30})
		if err := f.node.Start(f.Ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.node.Stop)

		cfg := enginetest.RenderConfig(1)
		cfg.RequiredTags = []string{"gpu"}
		job := f.WaitingJob(f.api, 3, cfg)
		if on, here := f.chunksOn(job.ID, plain), f.chunksOn(job.ID, f.node.workerID); on != 0 || here != 1 {
			t.Errorf("chunks on the untagged node %d, on the tagged one %d; want 0 and 1 (its one slot)", on, here)
		}
		for range 3 {
			f.finish(f.onNode()[0])
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s after the tagged node rendered every chunk, want finalizing", st)
		}

		for _, tc := range []struct {
			field  string
			change func(*farm.RenderConfig)
		}{
			{"requiredTags", func(c *farm.RenderConfig) { c.RequiredTags = []string{"fast"} }},
			{"minimumRam", func(c *farm.RenderConfig) { ram := 1 << 12; c.MinimumRAM = &ram }},
		} {
			refused := f.ValidatedJob(f.api, 2)
			cfg := enginetest.RenderConfig(1)
			tc.change(cfg)
			_, _, err := f.api.Render(f.Ctx, f.P, refused.ID, cfg)
			if fe, ok := err.(*farm.Error); !ok || fe.Kind != farm.KindInvalid || fe.Field != tc.field {
				t.Errorf("a render no node could take (%s) = %v, want a 400 naming %s", tc.field, err, tc.field)
			}
			if st := f.Job(refused.ID).Status; st != farm.StatusValidated || len(f.Tasks(refused.ID, store.TaskRender)) != 0 {
				t.Errorf("after the refusal the job is %s with chunks; want validated with none", st)
			}
		}
	})
}

// TestAStoppingNodeHandsBackTheChunksItNeverStarted: chunks given to a
// node wait on its own queue, which nobody else works; as it stops, it
// takes no more (drained), and hands those it never started to the
// dispatcher, which gives them to another node at once.
func TestAStoppingNodeHandsBackTheChunksItNeverStarted(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixtureWith(t, db, func(c *Config) { c.Slots = 2 })
		if err := f.node.Start(f.Ctx); err != nil {
			t.Fatal(err)
		}
		job := f.renderIn(f.P, 2, 0)
		given := f.onNode()
		if len(given) != 2 {
			t.Fatalf("%d chunks on the node, want its 2 slots filled", len(given))
		}
		other := f.otherNode("node-b", 2, store.Worker{})

		f.node.Drain(f.Ctx)
		if n, err := f.Engine.FillWorker(f.Ctx, f.node.workerID); n != 0 || err != nil {
			t.Errorf("FillWorker of a draining node = %d, %v; want nothing", n, err)
		}
		f.node.Stop()

		for _, before := range given {
			after := f.Task(before.ID)
			if after.Status != store.TaskQueued || after.WorkerID != other || after.Generation != before.Generation+1 {
				t.Errorf("chunk %d = %s on %q at generation %d; want handed to node-b at generation %d",
					after.Chunk, after.Status, after.WorkerID, after.Generation, before.Generation+1)
			}
			if rj := f.RiverJobByID(before.RiverJobID); rj.State != "cancelled" {
				t.Errorf("the stopped node's River job of chunk %d is %s, want cancelled", before.Chunk, rj.State)
			}
		}
		if st := f.Job(job.ID).Status; st != farm.StatusBooting {
			t.Errorf("job = %s, want still booting", st)
		}
		f.CheckTaskInvariant()
	})
}

// TestASpentRenderBudgetStopsDispatch: workspace B may use one chunk's
// render seconds a month. Its first chunk to end spends them: the slot it
// frees takes none of B's waiting chunks, B's other running chunk
// finishes, B's job says it waits for render time, and A's job, asked for
// later, takes the slots. A larger budget lets B's chunks go on.
func TestASpentRenderBudgetStopsDispatch(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := sharingFixture(t, db, 2)
		a, b := f.P, f.workspace("other")
		// The fake Blender renders each frame in 1.5 s: a one-frame chunk
		// is 1.5 s times the node's threads of worker-seconds.
		chunkSeconds := 1.5 * float64(f.node.blenderThreads())
		if err := f.Store.SetWorkspaceBudget(f.Ctx, "other", chunkSeconds); err != nil {
			t.Fatal(err)
		}
		budgeted := f.renderIn(b, 6, 0)
		if n := f.runningBy()[b.WorkspaceID]; n != 2 {
			t.Fatalf("B runs %d chunks before spending anything, want 2 (the node's slots)", n)
		}

		f.finish(f.onNode()[0])
		if budget, spent, err := f.Store.WorkspaceBudget(f.Ctx, b.WorkspaceID); err != nil || budget != chunkSeconds || math.Abs(spent-chunkSeconds) > 1e-9 {
			t.Fatalf("B's budget and month = %g, %g, %v; want %g and %g", budget, spent, err, chunkSeconds, chunkSeconds)
		}
		if n := f.runningBy()[b.WorkspaceID]; n != 1 {
			t.Fatalf("after B spent its budget, B runs %d chunks; want 1: its running chunk goes on, the freed slot takes none of B's", n)
		}
		p, err := f.api.Progress(f.Ctx, b, budgeted.ID, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.WaitingFor, "render budget") || !strings.Contains(p.WaitingFor, `renderfarm workspaces set "other" --max-render-hours-per-month`) {
			t.Errorf("waitingFor = %q, want it to name the spent render budget and how to raise it", p.WaitingFor)
		}
		f.finish(f.onNode()[0]) // B's running chunk finishes: nothing is cut short

		other := f.renderIn(a, 4, 0)
		if n := f.runningBy(); n[a.WorkspaceID] != 2 || n[b.WorkspaceID] != 0 {
			t.Fatalf("with B out of budget, A runs %d and B %d; want 2 and 0", n[a.WorkspaceID], n[b.WorkspaceID])
		}
		if p, err := f.api.Progress(f.Ctx, a, other.ID, farm.ProgressQuery{}); err != nil || p.WaitingFor != "" {
			t.Errorf("A's job: waitingFor %q, %v; want nothing: A has no budget", p.WaitingFor, err)
		}

		if err := f.Store.SetWorkspaceBudget(f.Ctx, "other", 100*chunkSeconds); err != nil {
			t.Fatal(err)
		}
		f.finish(f.onNode()[0])
		if n := f.runningBy(); n[b.WorkspaceID] != 1 || n[a.WorkspaceID] != 1 {
			t.Errorf("with B's budget raised, A runs %d and B %d; want 1 and 1: the freed slot goes to B", n[a.WorkspaceID], n[b.WorkspaceID])
		}
		f.CheckTaskInvariant()
	})
}

// TestAChunksEndIsRecordedWhileTheDispatcherIsBusy: a chunk's end does
// not wait for the dispatcher's lock, which one dispatch in the farm
// holds at a time: the chunk is done, and its job's frames recorded,
// while another transaction holds the lock; its slot takes the next
// chunk once the lock is free. (PostgreSQL: SQLite runs one transaction
// at a time.)
func TestAChunksEndIsRecordedWhileTheDispatcherIsBusy(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		if db.Dialect != store.DialectPostgres {
			t.Skip("SQLite runs one transaction at a time: no dispatcher's lock to find taken")
		}
		f := sharingFixture(t, db, 1)
		job := f.renderIn(f.P, 2, 0)
		running := f.onNode()
		if len(running) != 1 {
			t.Fatalf("%d chunks on a node of one slot", len(running))
		}
		first := running[0]

		holding, release := make(chan struct{}), make(chan struct{})
		holder := make(chan error, 1)
		go func() {
			holder <- f.Store.InDispatchTx(f.Ctx, func(*store.Tx) error {
				close(holding)
				<-release
				return nil
			})
		}()
		<-holding
		f.blender.willRender(fakeRender{saves: []int{first.Chunk + 1}})
		rendered := make(chan error, 1)
		go func() { rendered <- f.renderWork(f.Ctx, f.Ref(first), 1, enginetest.RenderAttempts) }()
		for deadline := time.Now().Add(30 * time.Second); f.Task(first.ID).Status != store.TaskDone; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				close(release)
				t.Fatalf("chunk %d is %s 30 s after it rendered, while the dispatcher was busy; want done", first.Chunk, f.Task(first.ID).Status)
			}
		}
		if next := f.onNode(); len(next) != 0 {
			t.Errorf("while the dispatcher was busy the freed slot took %d chunks", len(next))
		}
		close(release)
		if err := <-holder; err != nil {
			t.Fatal(err)
		}
		if err := <-rendered; err != nil {
			t.Fatal(err)
		}
		next := f.onNode()
		if len(next) != 1 || next[0].JobID != job.ID || next[0].ID == first.ID {
			t.Errorf("after the dispatcher was free, the node has %+v; want the job's other chunk", next)
		}
		f.CheckTaskInvariant()
	})
}

// TestChunksEndingWhileTheirNodesDispatchWaitsDoNotQueueForTheLock: on a
// node of 3 slots, a chunk ends while another transaction holds the
// dispatcher's lock, so its slot's dispatch waits for it. The node's two
// other chunks end meanwhile: their attempts return at once, without a
// transaction each in the queue for the lock, and once the lock is free
// the node's dispatches fill all three freed slots, each with a chunk of
// its own. (PostgreSQL: SQLite runs one transaction at a time.)
func TestChunksEndingWhileTheirNodesDispatchWaitsDoNotQueueForTheLock(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		if db.Dialect != store.DialectPostgres {
			t.Skip("SQLite runs one transaction at a time: no dispatcher's lock to find taken")
		}
		f := sharingFixture(t, db, 3)
		job := f.renderIn(f.P, 6, 0)
		running := f.onNode()
		if len(running) != 3 {
			t.Fatalf("%d chunks on a node of 3 slots, want 3", len(running))
		}

		holding, release := make(chan struct{}), make(chan struct{})
		holder := make(chan error, 1)
		go func() {
			holder <- f.Store.InDispatchTx(f.Ctx, func(*store.Tx) error {
				close(holding)
				<-release
				return nil
			})
		}()
		<-holding
		defer func() {
			select {
			case <-release:
			default:
				close(release)
			}
		}()

		// The first chunk's end waits for the lock, to dispatch.
		f.blender.willRender(fakeRender{saves: []int{running[0].Chunk + 1}})
		first := make(chan error, 1)
		go func() { first <- f.renderWork(f.Ctx, f.Ref(running[0]), 1, enginetest.RenderAttempts) }()
		waitFor(t, func() bool { return f.Task(running[0].ID).Status == store.TaskDone })

		// The others end and return while the lock is still held.
		for _, task := range running[1:] {
			f.blender.willRender(fakeRender{saves: []int{task.Chunk + 1}})
			done := make(chan error, 1)
			go func() { done <- f.renderWork(f.Ctx, f.Ref(task), 1, enginetest.RenderAttempts) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("chunk %d: %v", task.Chunk, err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("chunk %d's attempt did not return in 20 s while the node's dispatch waited for the lock; want it to return at once", task.Chunk)
			}
		}
		if next := f.onNode(); len(next) != 0 {
			t.Fatalf("while the dispatcher's lock was held the freed slots took %d chunks", len(next))
		}

		close(release)
		if err := <-holder; err != nil {
			t.Fatal(err)
		}
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		var next []store.Task
		waitFor(t, func() bool { next = f.onNode(); return len(next) == 3 })
		for _, task := range next {
			if task.JobID != job.ID || task.Chunk < 3 {
				t.Errorf("after the lock was free the node has chunk %d of job %s; want one of the job's last three", task.Chunk, task.JobID)
			}
		}
		f.CheckTaskInvariant()
	})
}
