package store_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestAJobRemovedFromTheHistoryKeepsItsUsage: a job that ended is removed
// with every record of it (its chunk, frames, downloads, webhook event
// and attempt, upload), and the usage reports, by job and by day, answer
// what they answered before, except the bytes its files held, which are
// gone with them. Another job of the workspace is untouched.
func TestAJobRemovedFromTheHistoryKeepsItsUsage(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		for _, id := range []string{"job-old", "job-kept"} {
			insertJob(t, s, newJob(id, ws.ID, time.Now().UTC()))
			task := runningChunkRendered(t, s, store.Task{ID: id + "-c0", JobID: id, WorkspaceID: ws.ID}, map[int]float64{1: 1.25, 2: 2.5})
			if err := s.FinishTask(ctx, task.ID, 1, store.TaskEnd{Status: store.TaskDone, Threads: 4}); err != nil {
				t.Fatal(err)
			}
			if err := s.RecordDownload(ctx, id, 700); err != nil {
				t.Fatal(err)
			}
		}
		hook := store.Webhook{ID: "hook-1", WorkspaceID: ws.ID, URL: "https://example.com/hook", Events: []string{"onRenderComplete"}, Secret: "s", CreatedAt: time.Now()}
		if err := s.InsertWebhook(ctx, hook); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertWebhookEvent(ctx, store.WebhookEvent{ID: "ev-1", WebhookID: hook.ID, JobID: "job-old", Event: "onRenderComplete", Body: []byte("{}"), State: store.EventDelivered, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertWebhookAttempt(ctx, store.WebhookAttempt{ID: "at-1", EventID: "ev-1", WebhookID: hook.ID, Attempt: 1, AttemptedAt: time.Now(), HTTPStatus: 200}); err != nil {
			t.Fatal(err)
		}
		from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		usage := func(groupBy string) farm.Usage {
			t.Helper()
			u, err := s.WorkspaceUsage(ctx, ws.ID, from, to, groupBy)
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		byJob, byDay := usage(farm.UsageByJob), usage(farm.UsageByDay)

		err := removeFromHistory(ctx, s, "job-old")
		if err != nil {
			t.Fatal(err)
		}

		if _, err := s.GetJob(ctx, "", "job-old"); err != store.ErrNotFound {
			t.Errorf("the removed job reads back: %v, want ErrNotFound", err)
		}
		for table, want := range map[string]int{"jobs": 1, "tasks": 1, "frames": 2, "downloads": 1, "webhook_events": 0, "webhook_attempts": 0, "usage_history": 1} {
			if got := countRows(t, s, table); got != want {
				t.Errorf("%s holds %d rows once job-old is removed, want %d", table, got, want)
			}
		}
		same := func(groupBy string, before, after farm.Usage) {
			t.Helper()
			if len(after.Rows) != len(before.Rows) {
				t.Fatalf("usage by %s after the removal = %+v, want the rows of %+v", groupBy, after.Rows, before.Rows)
			}
			for i, b := range before.Rows {
				a := after.Rows[i]
				if b.JobID == "job-old" {
					b.BytesStored = 0 // its files went with it
				}
				if a.Day != b.Day || a.JobID != b.JobID || math.Abs(a.RenderSeconds-b.RenderSeconds) > 1e-9 ||
					a.Frames != b.Frames || a.BytesTransferred != b.BytesTransferred || a.BytesStored > b.BytesStored {
					t.Errorf("usage by %s, row %d: %+v after the removal, want %+v", groupBy, i, a, b)
				}
			}
		}
		same(farm.UsageByJob, byJob, usage(farm.UsageByJob))
		same(farm.UsageByDay, byDay, usage(farm.UsageByDay))
		if got := usage(farm.UsageByJob).Total; got.Frames != 4 || math.Abs(got.RenderSeconds-30) > 1e-9 || got.BytesTransferred != 1400 {
			t.Errorf("the total after the removal = %+v, want 4 frames, 30 worker-seconds and 1400 bytes served", got)
		}
	})
}

// TestJobsEndedBeforeListsOnlyEndedJobsPastTheCutoff: the retention looks
// at completed, failed and canceled jobs that have not changed since the
// cutoff, oldest first; a job still in progress, or changed since, is
// not listed however old.
func TestJobsEndedBeforeListsOnlyEndedJobsPastTheCutoff(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		old := time.Now().Add(-60 * 24 * time.Hour)
		for i, j := range []struct {
			id      string
			status  farm.Status
			updated time.Time
		}{
			{"failed-old", farm.StatusFailed, old.Add(time.Minute)},
			{"completed-old", farm.StatusCompleted, old},
			{"canceled-old", farm.StatusCanceled, old.Add(2 * time.Minute)},
			{"rendering-old", farm.StatusRendering, old},
			{"validated-old", farm.StatusValidated, old},
			{"completed-recent", farm.StatusCompleted, time.Now()},
		} {
			job := newJob(j.id, ws.ID, old.Add(-time.Duration(i)*time.Hour))
			job.Status, job.UpdatedAt = j.status, j.updated
			insertJob(t, s, job)
		}
		ids, err := s.JobsEndedBefore(ctx, time.Now().Add(-31*24*time.Hour), 10)
		want := []string{"completed-old", "failed-old", "canceled-old"}
		if err != nil || len(ids) != len(want) || ids[0] != want[0] || ids[1] != want[1] || ids[2] != want[2] {
			t.Errorf("JobsEndedBefore = %v, %v; want %v", ids, err, want)
		}
		if ids, err := s.JobsEndedBefore(ctx, time.Now().Add(-31*24*time.Hour), 2); err != nil || len(ids) != 2 {
			t.Errorf("JobsEndedBefore with a limit of 2 = %v, %v", ids, err)
		}
	})
}

// TestWorkerRunsSilentSinceTheCutoffAreRemoved: a run that sent no
// heartbeat since the cutoff goes; one that did stays.
func TestWorkerRunsSilentSinceTheCutoffAreRemoved(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		for _, w := range []store.Worker{
			{ID: "run-old", Name: "node-old", StartedAt: time.Now().Add(-90 * 24 * time.Hour), HeartbeatAt: time.Now().Add(-60 * 24 * time.Hour), State: store.WorkerGone},
			{ID: "run-live", Name: "node-1", StartedAt: time.Now(), HeartbeatAt: time.Now(), State: store.WorkerIdle},
		} {
			if err := s.RegisterWorker(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.RemoveWorkersSilentSince(ctx, time.Now().Add(-31*24*time.Hour))
		if err != nil || n != 1 || countRows(t, s, "workers") != 1 {
			t.Errorf("RemoveWorkersSilentSince = %d, %v, leaving %d runs; want 1 removed and the live one left", n, err, countRows(t, s, "workers"))
		}
	})
}

// TestADownloadCountedAfterItsJobWasRemovedStaysInTheUsage: a download
// that began before its job was removed from the history, and ended
// after (a large zip, read from a file already open), is counted once
// it ends: the bytes served go to what the job's usage keeps by day.
func TestADownloadCountedAfterItsJobWasRemovedStaysInTheUsage(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		insertJob(t, s, newJob("job-old", ws.ID, time.Now().UTC()))
		task := runningChunkRendered(t, s, store.Task{ID: "job-old-c0", JobID: "job-old", WorkspaceID: ws.ID}, map[int]float64{1: 1.25})
		if err := s.FinishTask(ctx, task.ID, 1, store.TaskEnd{Status: store.TaskDone, Threads: 4}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordDownload(ctx, "job-old", 700); err != nil {
			t.Fatal(err)
		}
		err := removeFromHistory(ctx, s, "job-old")
		if err != nil {
			t.Fatal(err)
		}

		if err := s.RecordDownload(ctx, "job-old", 300); err != nil {
			t.Fatal(err)
		}
		// A job the farm never had counts nothing.
		if err := s.RecordDownload(ctx, "job-never", 50); err != nil {
			t.Fatal(err)
		}
		from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		for _, groupBy := range []string{farm.UsageByJob, farm.UsageByDay} {
			u, err := s.WorkspaceUsage(ctx, ws.ID, from, to, groupBy)
			if err != nil {
				t.Fatal(err)
			}
			if u.Total.BytesTransferred != 1000 || groupBy == farm.UsageByJob && len(u.Rows) != 1 {
				t.Errorf("usage by %s once the job is removed = %+v; want the 1000 bytes served, 300 of them after, all the removed job's", groupBy, u)
			}
		}
		if n := countRows(t, s, "downloads"); n != 0 {
			t.Errorf("downloads holds %d rows for a job removed, or never made", n)
		}
	})
}

// TestADownloadCountedAsItsJobIsRemovedIsKept: a download counted while
// the job's removal is under way, its row of the day written before the
// removal takes it, is in the usage kept of the job: what the removal
// keeps is what it removes.
func TestADownloadCountedAsItsJobIsRemovedIsKept(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		insertJob(t, s, newJob("job-old", ws.ID, time.Now().UTC()))
		if err := s.RecordDownload(ctx, "job-old", 700); err != nil {
			t.Fatal(err)
		}
		removed := make(chan error, 1)
		err := s.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.RecordDownload(ctx, "job-old", 100); err != nil {
				return err
			}
			blocked := awaitBlocked(t, s)
			go func() {
				removed <- removeFromHistory(ctx, s, "job-old")
			}()
			blocked()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-removed; err != nil {
			t.Fatal(err)
		}
		checkServedKeptOnce(t, s, ws.ID, 800)
	})
}

// A download that ends while its job's removal has read its downloads
// and not yet committed waits for the removal, and is then kept with
// what the job used: it leaves no row in downloads of a job that is gone.
func TestADownloadEndingDuringItsJobsRemovalIsKeptWithItsUsage(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		insertJob(t, s, newJob("job-old", ws.ID, time.Now().UTC()))
		if err := s.RecordDownload(ctx, "job-old", 700); err != nil {
			t.Fatal(err)
		}
		counted := make(chan error, 1)
		err := s.InTx(ctx, func(tx *store.Tx) error {
			job, err := tx.LockJob(ctx, "", "job-old")
			if err != nil {
				return err
			}
			if err := tx.RemoveJobFromHistory(ctx, job); err != nil {
				return err
			}
			blocked := awaitBlocked(t, s)
			go func() {
				counted <- s.RecordDownload(ctx, "job-old", 100)
			}()
			blocked()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-counted; err != nil {
			t.Fatal(err)
		}
		checkServedKeptOnce(t, s, ws.ID, 800)
	})
}

// A download's count does not wait for a transaction that only moves its
// job on (LockJob), as a failing chunk, a cancel or a retry does: it
// ends while that transaction is still open.
func TestADownloadIsCountedWhileItsJobIsLockedToMoveOn(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		if s.Dialect() != store.DialectPostgres {
			t.Skip("SQLite runs one writing transaction at a time")
		}
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		insertJob(t, s, newJob("job-1", ws.ID, time.Now().UTC()))
		err := s.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.LockJob(ctx, "", "job-1"); err != nil {
				return err
			}
			counted := make(chan error, 1)
			go func() { counted <- s.RecordDownload(ctx, "job-1", 100) }()
			select {
			case err := <-counted:
				return err
			case <-time.After(10 * time.Second):
				t.Error("after 10 s, the download's count still waited for the transaction that locked its job")
				return nil
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// checkServedKeptOnce checks that the bytes served of a workspace's job
// removed from the history within the hour are want, kept in its usage,
// and that downloads holds no row of it.
func checkServedKeptOnce(t *testing.T, s *store.Store, workspaceID string, want int64) {
	t.Helper()
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	u, err := s.WorkspaceUsage(t.Context(), workspaceID, from, to, farm.UsageByJob)
	if err != nil {
		t.Fatal(err)
	}
	if u.Total.BytesTransferred != want {
		t.Errorf("bytes served once the job is removed = %d, want the %d counted", u.Total.BytesTransferred, want)
	}
	if n := countRows(t, s, "downloads"); n != 0 {
		t.Errorf("downloads holds %d rows of a job that is gone", n)
	}
}

// removeFromHistory removes a job from the history as the retention does:
// its lock taken first, in a transaction of its own.
func removeFromHistory(ctx context.Context, s *store.Store, jobID string) error {
	return s.InTx(ctx, func(tx *store.Tx) error {
		job, err := tx.LockJob(ctx, "", jobID)
		if err != nil {
			return err
		}
		return tx.RemoveJobFromHistory(ctx, job)
	})
}
