package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// workspace makes a workspace of the farm and answers its principal.
func (f *fixture) workspace(name string) farm.Principal {
	f.T.Helper()
	ws, err := f.Store.EnsureWorkspace(f.Ctx, name)
	if err != nil {
		f.T.Fatal(err)
	}
	return farm.Principal{WorkspaceID: ws.ID, KeyID: "key-" + name}
}

// validatingJobs makes n jobs of p's workspace and asks for their
// validation, one after the other, as a client would.
func (f *fixture) validatingJobs(p farm.Principal, n int) []string {
	f.T.Helper()
	var ids []string
	for range n {
		ticket, err := f.api.CreateUpload(f.Ctx, p, "scene.blend", farm.FileTypeBlend)
		if err != nil {
			f.T.Fatal(err)
		}
		f.PutContent(farm.UploadKey(ticket.Slug, "scene.blend"), "BLENDER-v402 a scene")
		job, err := f.api.CreateJob(f.Ctx, p, ticket.Slug)
		if err != nil {
			f.T.Fatal(err)
		}
		if _, err := f.api.Validate(f.Ctx, p, job.ID); err != nil {
			f.T.Fatal(err)
		}
		ids = append(ids, job.ID)
	}
	return ids
}

// validationPriorities are the River priorities of the validations of
// jobs, in their order, the River job of each task's current generation.
func (f *fixture) validationPriorities(jobs []string) []int {
	f.T.Helper()
	var out []int
	for _, id := range jobs {
		task := f.Tasks(id, store.TaskValidate)[0]
		out = append(out, f.RiverJobByID(task.RiverJobID).Priority)
	}
	return out
}

// TestAValidationsRiverPriorityFollowsItsWorkspacesValidationsAhead:
// a workspace's first two waiting validations get River's first
// priority, the next six the second, then up to the 32nd the third,
// then the last; another workspace's first is first again. A validation
// handed out again keeps its place among its workspace's, however many
// were queued after it.
func TestAValidationsRiverPriorityFollowsItsWorkspacesValidationsAhead(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		a := f.validatingJobs(f.P, 34)
		b := f.validatingJobs(f.workspace("other"), 1)
		want := []int{1, 1, 2, 2, 2, 2, 2, 2}
		for range 24 {
			want = append(want, 3)
		}
		want = append(want, 4, 4)
		if got := f.validationPriorities(a); !slices.Equal(got, want) {
			t.Errorf("first workspace's priorities = %v, want %v", got, want)
		}
		if got := f.validationPriorities(b); !slices.Equal(got, []int{1}) {
			t.Errorf("other workspace's priority = %v, want [1]", got)
		}

		// The first one's worker dies: handed out again, it is still
		// among its workspace's first two.
		f.RegisterWorker("run-dead", "node-dead", time.Now().Add(-time.Hour))
		first := f.Tasks(a[0], store.TaskValidate)[0]
		f.ClaimAs("run-dead", first)
		if err := f.Engine.Requeue(f.Ctx, f.Task(first.ID), "its worker died"); err != nil {
			t.Fatal(err)
		}
		if again := f.Task(first.ID); again.Generation != 2 || f.RiverJobByID(again.RiverJobID).Priority != 1 {
			t.Errorf("handed out again: generation %d, priority %d; want generation 2 at priority 1",
				again.Generation, f.RiverJobByID(again.RiverJobID).Priority)
		}
		// One that began running is no longer ahead of anyone: the next
		// validation of the workspace counts the 33 still waiting.
		f.ClaimAs("run-dead", f.Task(first.ID))
		if got := f.validationPriorities(f.validatingJobs(f.P, 1)); !slices.Equal(got, []int{4}) {
			t.Errorf("a validation behind 33 waiting ones has priority %v, want [4]", got)
		}
	})
}

// recordValidations is a River worker of the control queue that records
// the jobs whose validations it was given, in order, and does nothing
// else.
type recordValidations struct {
	river.WorkerDefaults[engine.ValidateArgs]
	mu    sync.Mutex
	order []string
	all   chan struct{}
	want  int
}

func (w *recordValidations) Work(_ context.Context, job *river.Job[engine.ValidateArgs]) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.order = append(w.order, job.Args.JobID)
	if len(w.order) == w.want {
		close(w.all)
	}
	return nil
}

// TestAWorkspacesManyValidationsDoNotHoldUpAnothers: one workspace asks
// for 40 validations, then another for one; River, running one
// validation at a time, runs the second workspace's third, after the
// first workspace's first two, not last.
func TestAWorkspacesManyValidationsDoNotHoldUpAnothers(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		rec := &recordValidations{all: make(chan struct{}), want: 41}
		f.Engine.Register(map[string]int{engine.QueueControl: 1}, func(w *river.Workers) { river.AddWorker(w, rec) })
		a := f.validatingJobs(f.P, 40)
		b := f.validatingJobs(f.workspace("other"), 1)[0]
		if err := f.Engine.Start(f.Ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = f.Engine.Stop(ctx)
		})
		select {
		case <-rec.all:
		case <-time.After(30 * time.Second):
			rec.mu.Lock()
			defer rec.mu.Unlock()
			t.Fatalf("River ran %d of the 41 validations in 30 s", len(rec.order))
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if at := slices.Index(rec.order, b); at != 2 {
			t.Errorf("the other workspace's validation ran %d of 41, want 3rd (after the first workspace's first two)", at+1)
		}
		if !slices.Equal(rec.order[:2], a[:2]) {
			t.Errorf("first two run = %v, want the first workspace's first two %v", rec.order[:2], a[:2])
		}
	})
}

// TestAMergeIsRankedAmongItsWorkspacesValidations: a workspace's merges
// wait on the same control queues as its validations, and are ranked
// with them.
func TestAMergeIsRankedAmongItsWorkspacesValidations(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 1)
		f.validatingJobs(f.P, 8)
		err := f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
			return f.Engine.EnqueueMerge(f.Ctx, tx, f.Job(job.ID), 1)
		})
		if err != nil {
			t.Fatal(err)
		}
		merge := f.Tasks(job.ID, store.TaskMerge)[0]
		rj := f.RiverJobByID(merge.RiverJobID)
		var args engine.MergeArgs
		if err := json.Unmarshal(rj.Args, &args); err != nil {
			t.Fatal(err)
		}
		if rj.Priority != 3 || args.Frame != 1 {
			t.Errorf("merge of frame %d at priority %d; want frame 1 at 3, behind its workspace's 8 waiting validations", args.Frame, rj.Priority)
		}
	})
}

// TestValidationsThatWaitedLongAreRaisedToTheFirstPriority: of a
// workspace's twelve waiting validations, the first ten were made
// ControlPriorityAge and more ago; raised, those of them below the first
// priority get it, and the two made since keep theirs.
func TestValidationsThatWaitedLongAreRaisedToTheFirstPriority(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		jobs := f.validatingJobs(f.P, 12)
		if got := f.validationPriorities(jobs); fmt.Sprint(got) != "[1 1 2 2 2 2 2 2 3 3 3 3]" {
			t.Fatalf("priorities as queued = %v", got)
		}
		for _, id := range jobs[:10] {
			f.Exec(`UPDATE tasks SET created_at = ? WHERE job_id = ?`, time.Now().UTC().Add(-engine.ControlPriorityAge-time.Minute), id)
		}

		n, err := f.Store.RaiseLongWaitingControlTasks(f.Ctx, time.Now().Add(-engine.ControlPriorityAge))

		if err != nil || n != 8 {
			t.Errorf("RaiseLongWaitingControlTasks = %d, %v; want the 8 of the first ten below the first priority", n, err)
		}
		if got := f.validationPriorities(jobs); fmt.Sprint(got) != "[1 1 1 1 1 1 1 1 1 1 3 3]" {
			t.Errorf("priorities once raised = %v, want the first ten at 1 and the last two as they were", got)
		}
	})
}
