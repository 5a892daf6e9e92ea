package housekeeping

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// A log stored by a node killed before its chunk's end was written counts
// towards its workspace's storage once the job has ended; a log counted
// as its attempt ended is not counted twice, and a job that ends again
// after a retry is counted again.
func TestALogLeftUncountedByAKilledNodeIsCountedOnceItsJobEnds(t *testing.T) {
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 1)
		other := f.RenderingJob(f.api, 2, 1) // still rendering
		task := f.Tasks(job.ID, store.TaskRender)[0]
		at := time.Now()
		used := func() int64 {
			t.Helper()
			s, err := f.Store.GetWorkspaceStorage(f.Ctx, job.WorkspaceID, "")
			if err != nil {
				t.Fatal(err)
			}
			return s.UsedBytes
		}

		// An attempt's log, counted as the attempt ended.
		f.PutContent(farm.JobLogKey(job.ID, at, "chunk1"), strings.Repeat("a", 100))
		if err := f.Store.AddTaskLogBytes(f.Ctx, task.ID, 100); err != nil {
			t.Fatal(err)
		}
		// Another, stored by a node killed before it could end its chunk,
		// and one of the job still rendering.
		f.PutContent(farm.JobLogKey(job.ID, at.Add(time.Second), "chunk2"), strings.Repeat("b", 40))
		f.PutContent(farm.JobLogKey(other.ID, at, "chunk1"), strings.Repeat("c", 7))
		before := used()

		f.SetStatus(job.ID, farm.StatusFailed)
		if n, err := f.hk.CountEndedJobsLogs(f.Ctx); err != nil || n != 1 {
			t.Fatalf("CountEndedJobsLogs = %d, %v; want the one job that ended", n, err)
		}
		if got := used() - before; got != 40 {
			t.Errorf("the workspace's storage grew by %d bytes, want 40: the uncounted log, and nothing of the job still rendering", got)
		}
		if n, err := f.hk.CountEndedJobsLogs(f.Ctx); err != nil || n != 0 {
			t.Errorf("a second run counted %d jobs (%v), want none: nothing changed", n, err)
		}
		if got := used() - before; got != 40 {
			t.Errorf("after a second run the storage grew by %d bytes, want 40", got)
		}
		// The attempt that kept the uncounted log, not killed after all
		// but given up on, records its size once its job has ended: the
		// count has it already.
		if err := f.Store.AddTaskLogBytes(f.Ctx, task.ID, 40); err != nil {
			t.Fatal(err)
		}
		if _, err := f.hk.CountEndedJobsLogs(f.Ctx); err != nil {
			t.Fatal(err)
		}
		if got := used() - before; got != 40 {
			t.Errorf("a log's size recorded after its job ended and was counted grew the storage to +%d bytes, want 40: the log counted twice", got)
		}
		// Another such attempt stores its log only after the count: the
		// job is counted again at the next run.
		f.PutContent(farm.JobLogKey(job.ID, at.Add(3*time.Second), "late"), strings.Repeat("e", 15))
		if err := f.Store.AddTaskLogBytes(f.Ctx, task.ID, 15); err != nil {
			t.Fatal(err)
		}
		if n, err := f.hk.CountEndedJobsLogs(f.Ctx); err != nil || n != 1 {
			t.Fatalf("after a log stored late, CountEndedJobsLogs = %d, %v; want the job counted again", n, err)
		}
		if got := used() - before; got != 55 {
			t.Errorf("after a log stored late the storage grew by %d bytes, want 55", got)
		}
		before += 15

		// Retried, a chunk's log left uncounted again, and ended again.
		f.SetStatus(job.ID, farm.StatusRendering)
		f.PutContent(farm.JobLogKey(job.ID, at.Add(2*time.Second), "chunk3"), strings.Repeat("d", 25))
		f.SetStatus(job.ID, farm.StatusCompleted)
		if n, err := f.hk.CountEndedJobsLogs(f.Ctx); err != nil || n != 1 {
			t.Fatalf("after the job ended again, CountEndedJobsLogs = %d, %v; want 1", n, err)
		}
		if got := used() - before; got != 65 {
			t.Errorf("the storage grew by %d bytes, want 65: both uncounted logs, each once", got)
		}
	})
}

// A log stored and recorded by a holder given up on, while its job's
// logs are being counted (after the count has listed them, before it has
// written what it found), is counted at the next run.
func TestALogStoredWhileItsJobsLogsAreCountedIsCountedAtTheNextRun(t *testing.T) {
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 1)
		task := f.Tasks(job.ID, store.TaskRender)[0]
		at := time.Now()
		f.PutContent(farm.JobLogKey(job.ID, at, "chunk1"), strings.Repeat("a", 30))
		f.SetStatus(job.ID, farm.StatusCompleted)
		before, err := f.Store.GetWorkspaceStorage(f.Ctx, job.WorkspaceID, "")
		if err != nil {
			t.Fatal(err)
		}

		listed := &listHook{Store: f.hk.objects, after: func() {
			f.PutContent(farm.JobLogKey(job.ID, at.Add(time.Second), "given-up"), strings.Repeat("b", 12))
			if err := f.Store.AddTaskLogBytes(f.Ctx, task.ID, 12); err != nil {
				t.Fatal(err)
			}
		}}
		f.hk.objects = listed
		if _, err := f.hk.CountEndedJobsLogs(f.Ctx); err != nil {
			t.Fatal(err)
		}
		listed.after = nil
		if n, err := f.hk.CountEndedJobsLogs(f.Ctx); err != nil || n != 1 {
			t.Fatalf("the run after = %d, %v; want the job counted again", n, err)
		}
		if n, err := f.hk.CountEndedJobsLogs(f.Ctx); err != nil || n != 0 {
			t.Errorf("a third run counted %d jobs (%v), want none", n, err)
		}
		after, err := f.Store.GetWorkspaceStorage(f.Ctx, job.WorkspaceID, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := after.UsedBytes - before.UsedBytes; got != 42 {
			t.Errorf("the storage grew by %d bytes, want 42: both logs, the one stored during the count too", got)
		}
	})
}

// listHook is a store whose List calls after once it has listed.
type listHook struct {
	objstore.Store
	after func()
}

func (l *listHook) List(ctx context.Context, prefix string) ([]objstore.Info, error) {
	objs, err := l.Store.List(ctx, prefix)
	if l.after != nil {
		l.after()
	}
	return objs, err
}
