package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// On SQLite the store reads outside transactions through connections of
// their own, beside the one that writes; these tests hold both databases
// to what a read outside a transaction promises.

func TestAReadSeesEveryWriteCommittedBeforeIt(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		job := newJob("job-1", ws.ID, at(0))
		insertJob(t, s, job)
		statuses := []farm.Status{farm.StatusValidating, farm.StatusValidated, farm.StatusBooting, farm.StatusRendering}
		for i := range 40 {
			want := statuses[i%len(statuses)]
			job.Status = want
			var err error
			if i%2 == 0 {
				// A transaction, committed when InTx returns...
				err = s.InTx(ctx, func(tx *store.Tx) error { return tx.UpdateJob(ctx, job) })
			} else {
				// ...or a single statement outside one.
				err = s.UpdateJob(ctx, job)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := s.InsertFrame(ctx, store.Frame{JobID: job.ID, Frame: i + 1, TaskID: "task-1", Status: farm.FrameQueued, UpdatedAt: at(0)}); err != nil {
				t.Fatal(err)
			}

			got, err := s.GetJob(ctx, ws.ID, job.ID)
			if err != nil || got.Status != want {
				t.Fatalf("write %d: GetJob read %v, %v; want %s", i+1, got.Status, err, want)
			}
			p, err := s.JobProgress(ctx, ws.ID, job.ID, store.AllFrames)
			if err != nil || p.Status != want || len(p.Frames) != i+1 {
				t.Fatalf("write %d: JobProgress read %s with %d frames, %v; want %s with %d", i+1, p.Status, len(p.Frames), err, want, i+1)
			}
		}
	})
}

func TestReadsDoNotWaitForAnOpenTransaction(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		insertJob(t, s, newJob("job-1", ws.ID, at(0)))

		written, release := make(chan struct{}), make(chan struct{})
		committed := make(chan error, 1)
		go func() {
			committed <- s.InTx(ctx, func(tx *store.Tx) error {
				job, err := tx.LockJob(ctx, ws.ID, "job-1")
				if err != nil {
					return err
				}
				job.Status = farm.StatusValidating
				if err := tx.UpdateJob(ctx, job); err != nil {
					return err
				}
				close(written)
				<-release
				return nil
			})
		}()
		select {
		case <-written:
		case err := <-committed:
			t.Fatalf("the transaction ended early: %v", err)
		}

		// The transaction holds the job's row (and, on SQLite, the write
		// lock): a read goes ahead anyway and sees what was committed.
		readCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		job, err := s.GetJob(readCtx, ws.ID, "job-1")
		cancel()
		if err != nil {
			t.Fatalf("a read while a transaction is open: %v", err)
		}
		if job.Status != farm.StatusCreated {
			t.Errorf("a read during the transaction saw %s, want created: what is not committed is not seen", job.Status)
		}

		close(release)
		if err := <-committed; err != nil {
			t.Fatal(err)
		}
		if job, err := s.GetJob(ctx, ws.ID, "job-1"); err != nil || job.Status != farm.StatusValidating {
			t.Errorf("after the commit: %v, %v; want validating", job.Status, err)
		}
	})
}

func TestReadsKeepWorkingAfterTheSchemaChanges(t *testing.T) {
	t.Parallel()
	// Reads run as prepared statements, kept from one call to the next; a
	// migration applied meanwhile (here, by another process on the same
	// database) must not break them.
	forEachDatabase(t, func(t *testing.T, db testDatabase) {
		s := openStore(t, db)
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		insertJob(t, s, newJob("job-1", ws.ID, at(0)))
		if _, err := s.GetJob(ctx, ws.ID, "job-1"); err != nil {
			t.Fatal(err)
		}

		other := openStore(t, db)
		for _, ddl := range []string{
			`ALTER TABLE jobs ADD COLUMN note TEXT`,
			`DROP INDEX jobs_by_workspace`,
			`CREATE INDEX jobs_by_workspace ON jobs (workspace_id, created_at, id)`,
		} {
			if _, err := other.DB().ExecContext(ctx, ddl); err != nil {
				t.Fatalf("%s: %v", ddl, err)
			}
			job, err := s.GetJob(ctx, ws.ID, "job-1")
			if err != nil || job.ID != "job-1" {
				t.Fatalf("GetJob after %s: %v, %v", ddl, job, err)
			}
			if _, total, err := s.ListJobs(ctx, ws.ID, "", 10, 0); err != nil || total != 1 {
				t.Fatalf("ListJobs after %s: %d jobs, %v", ddl, total, err)
			}
		}
	})
}
